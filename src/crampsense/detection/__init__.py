"""Cramp detection: leg EMG (and accelerometer) arrays in, cramp events out.

Pure signal processing (numpy/scipy/polars): no I/O, no asyncio. The public entry points are
:func:`detect_cramps` (returns a :class:`CrampResults`) and :func:`compare_events` (scores
events against truth). The stages are exposed for reuse and testing: :func:`emg_envelope`,
:func:`emg_floor`, :func:`emg_activation`, :func:`acc_features`.

Method, parameters, outputs, limits and measured performance: ``docs/detection.md``.
"""

from __future__ import annotations

from crampsense.detection.acc import AccFeatures, acc_features
from crampsense.detection.detector import CrampResults, LegSignals, detect_cramps
from crampsense.detection.emg import Envelope, emg_activation, emg_envelope, emg_floor
from crampsense.detection.params import DetectionParams
from crampsense.detection.scoring import EventScores, compare_events

__all__ = [
    "AccFeatures",
    "CrampResults",
    "DetectionParams",
    "Envelope",
    "EventScores",
    "LegSignals",
    "acc_features",
    "compare_events",
    "detect_cramps",
    "emg_activation",
    "emg_envelope",
    "emg_floor",
]
