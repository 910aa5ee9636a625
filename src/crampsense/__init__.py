"""crampsense: detect nocturnal leg cramps from BLE wearables and join them with the day before.

The names a Python user needs are importable from here (``from crampsense import
detect_cramps``); the list, with one line each, is ``docs/api.md``. They are loaded on first
use, so ``import crampsense`` stays cheap (the command line starts without the signal
processing).

The library is quiet: it logs to ``logging.getLogger("crampsense...")`` with a ``NullHandler``
and never prints; only :mod:`crampsense.cli` configures logging and writes to the terminal.
Not a medical device: it reports associations, never causes.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Final

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: Final[dict[str, str]] = {
    # detection: arrays in, events out
    "detect_cramps": "crampsense.detection",
    "CrampResults": "crampsense.detection",
    "LegSignals": "crampsense.detection",
    "DetectionParams": "crampsense.detection",
    "StreamingDetector": "crampsense.detection",
    "compare_events": "crampsense.detection",
    "EventScores": "crampsense.detection",
    "sleep_period": "crampsense.detection",
    # pipeline: files and sessions to results
    "analyze_session": "crampsense.pipeline.replay",
    "SessionAnalysis": "crampsense.pipeline.replay",
    "load_legs": "crampsense.pipeline.files",
    # storage
    "read_edf_header": "crampsense.storage.edf",
    "read_edf_signals": "crampsense.storage.edf",
    "write_edf": "crampsense.storage.edf",
    "SessionReader": "crampsense.storage.session_log",
    "SessionWriter": "crampsense.storage.session_log",
    # transport
    "Transport": "crampsense.transport.base",
    "BleTransport": "crampsense.transport.ble",
    "IngestSession": "crampsense.transport.ingest",
    # clocks
    "SystemClock": "crampsense.clock",
    "FakeClock": "crampsense.clock",
    # models
    "Frame": "crampsense.models",
    "SampleBlock": "crampsense.models",
    "DeviceInfo": "crampsense.models",
    "CrampEvent": "crampsense.models",
    "CoverageGap": "crampsense.models",
    "Night": "crampsense.models",
    "SleepSummary": "crampsense.models",
    "Severity": "crampsense.models",
    "MarkKind": "crampsense.models",
    # the error tree
    "CrampsenseError": "crampsense.errors",
    "ConfigError": "crampsense.errors",
    "DeviceError": "crampsense.errors",
    "DeviceNotFoundError": "crampsense.errors",
    "ConnectionLostError": "crampsense.errors",
    "ProtocolError": "crampsense.errors",
    "DecodeError": "crampsense.errors",
    "StorageError": "crampsense.errors",
    "ForeignFileError": "crampsense.errors",
    "CorruptFileError": "crampsense.errors",
    "DiskFullError": "crampsense.errors",
    "JournalError": "crampsense.errors",
    "DetectionError": "crampsense.errors",
    "UsageError": "crampsense.errors",
}

__all__ = [
    "BleTransport",
    "ConfigError",
    "ConnectionLostError",
    "CorruptFileError",
    "CoverageGap",
    "CrampEvent",
    "CrampResults",
    "CrampsenseError",
    "DecodeError",
    "DetectionError",
    "DetectionParams",
    "DeviceError",
    "DeviceInfo",
    "DeviceNotFoundError",
    "DiskFullError",
    "EventScores",
    "FakeClock",
    "ForeignFileError",
    "Frame",
    "IngestSession",
    "JournalError",
    "LegSignals",
    "MarkKind",
    "Night",
    "ProtocolError",
    "SampleBlock",
    "SessionAnalysis",
    "SessionReader",
    "SessionWriter",
    "Severity",
    "SleepSummary",
    "StorageError",
    "StreamingDetector",
    "SystemClock",
    "Transport",
    "UsageError",
    "__version__",
    "analyze_session",
    "compare_events",
    "detect_cramps",
    "load_legs",
    "read_edf_header",
    "read_edf_signals",
    "sleep_period",
    "write_edf",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        msg = f"module 'crampsense' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and editors: the same names, eagerly
    from crampsense.clock import FakeClock, SystemClock
    from crampsense.detection import (
        CrampResults,
        DetectionParams,
        EventScores,
        LegSignals,
        StreamingDetector,
        compare_events,
        detect_cramps,
        sleep_period,
    )
    from crampsense.errors import (
        ConfigError,
        ConnectionLostError,
        CorruptFileError,
        CrampsenseError,
        DecodeError,
        DetectionError,
        DeviceError,
        DeviceNotFoundError,
        DiskFullError,
        ForeignFileError,
        JournalError,
        ProtocolError,
        StorageError,
        UsageError,
    )
    from crampsense.models import (
        CoverageGap,
        CrampEvent,
        DeviceInfo,
        Frame,
        MarkKind,
        Night,
        SampleBlock,
        Severity,
        SleepSummary,
    )
    from crampsense.pipeline.files import load_legs
    from crampsense.pipeline.replay import SessionAnalysis, analyze_session
    from crampsense.storage.edf import read_edf_header, read_edf_signals, write_edf
    from crampsense.storage.session_log import SessionReader, SessionWriter
    from crampsense.transport.base import Transport
    from crampsense.transport.ble import BleTransport
    from crampsense.transport.ingest import IngestSession

logging.getLogger(__name__).addHandler(logging.NullHandler())
