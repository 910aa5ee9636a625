"""Cramp detection: leg EMG (and accelerometer) arrays in, cramp events out.

Pure signal processing (numpy/scipy/polars): no I/O, no asyncio. The public entry points are
:func:`detect_cramps` (a whole night; returns a :class:`CrampResults`),
:class:`StreamingDetector` (the same result block by block, with onset alarms),
:func:`compare_events` (scores events against truth), :func:`sleep_period` (HDCZA from the
leg accelerometer) and :func:`possible_cramps` (accelerometer-only detection). The stages
are exposed for reuse and testing: :func:`emg_envelope`, :func:`emg_floor`,
:func:`emg_activation`, :func:`acc_features`, :func:`acc_epochs`.

Method, parameters, outputs, limits and measured performance: ``docs/detection.md``.
"""

from __future__ import annotations

from crampsense.detection.acc import AccFeatures, acc_features
from crampsense.detection.acc_only import AccCrampParams, possible_cramps
from crampsense.detection.detector import LegSignals, detect_cramps
from crampsense.detection.emg import (
    EmgFrontEnd,
    Envelope,
    EnvelopeFrontEnd,
    emg_activation,
    emg_envelope,
    emg_floor,
    hop_envelope,
)
from crampsense.detection.params import DetectionParams
from crampsense.detection.results import CrampResults
from crampsense.detection.scoring import EventScores, compare_events
from crampsense.detection.sleep import AccEpochs, SleepParams, SleepPeriod, acc_epochs, sleep_period
from crampsense.detection.stream import CrampAlarm, StreamingDetector, StreamLeg, StreamUpdate

__all__ = [
    "AccCrampParams",
    "AccEpochs",
    "AccFeatures",
    "CrampAlarm",
    "CrampResults",
    "DetectionParams",
    "EmgFrontEnd",
    "Envelope",
    "EnvelopeFrontEnd",
    "EventScores",
    "LegSignals",
    "SleepParams",
    "SleepPeriod",
    "StreamLeg",
    "StreamUpdate",
    "StreamingDetector",
    "acc_epochs",
    "acc_features",
    "compare_events",
    "detect_cramps",
    "emg_activation",
    "emg_envelope",
    "emg_floor",
    "hop_envelope",
    "possible_cramps",
    "sleep_period",
]
