"""The one exception tree of crampsense.

Every error a user can cause or meet is a :class:`CrampsenseError`; its message says what was
wrong (with the offending value) and what to do. The CLI prints ``str(error)`` as one line and
exits non-zero; a traceback appears only with ``--debug``.

::

    CrampsenseError
    ├── ConfigError                 bad key, bad value or unreadable config file
    ├── DeviceError                 a wearable could not be found, paired or talked to
    │   ├── DeviceNotFoundError     no advertisement from that address / no such paired device
    │   ├── ConnectionLostError     the link dropped or stalled
    │   └── ProtocolError           the device answered something its protocol does not allow
    ├── DecodeError                 a packet's bytes do not parse (carries offset and field)
    ├── StorageError                a session file or night table cannot be read or written
    │   ├── ForeignFileError        the file is not a crampsense session (or a newer format)
    │   ├── CorruptFileError        the file is damaged; the intact prefix is reported
    │   └── DiskFullError           the disk filled up; committed data is safe
    ├── JournalError                a journal entry or import file does not parse
    │   └── ImportFileError         an export to import is malformed, hostile or unknown
    ├── DetectionError              signals the detector cannot work with (rates, shapes)
    └── UsageError                  a command-line argument is wrong
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionLostError",
    "CorruptFileError",
    "CrampsenseError",
    "DecodeError",
    "DetectionError",
    "DeviceError",
    "DeviceNotFoundError",
    "DiskFullError",
    "ForeignFileError",
    "ImportFileError",
    "JournalError",
    "ProtocolError",
    "StorageError",
    "UsageError",
]


class CrampsenseError(Exception):
    """Root of every error crampsense raises on purpose."""


class ConfigError(CrampsenseError):
    """A configuration file, key or value is wrong.

    Attributes
    ----------
    key : str or None
        Dotted key that was wrong (``"detection.min_duration_s"``), if any.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DeviceError(CrampsenseError):
    """A wearable could not be found, paired or talked to."""

    def __init__(self, message: str, *, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address


class DeviceNotFoundError(DeviceError):
    """No device with that address advertised, or no such paired device."""


class ConnectionLostError(DeviceError):
    """The link dropped or went silent."""


class ProtocolError(DeviceError):
    """The device answered with something its protocol does not allow (an error status)."""


class DecodeError(CrampsenseError):
    """A packet does not parse.

    Attributes
    ----------
    offset : int
        Byte offset in the payload where decoding failed.
    field : str
        Name of the field being decoded.
    """

    def __init__(self, message: str, *, offset: int, field: str) -> None:
        super().__init__(f"{message} (at byte {offset}, field {field!r})")
        self.offset = offset
        self.field = field


class StorageError(CrampsenseError):
    """A stored file cannot be read or written."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class ForeignFileError(StorageError):
    """The file is not a crampsense session file, or is of a newer format version."""


class CorruptFileError(StorageError):
    """The file is damaged. ``recovered`` counts the intact records that could be read."""

    def __init__(self, message: str, *, path: str | None = None, recovered: int = 0) -> None:
        super().__init__(message, path=path)
        self.recovered = recovered


class DiskFullError(StorageError):
    """The disk is full. Everything committed before is intact."""


class JournalError(CrampsenseError):
    """A journal entry or import file does not parse.

    Attributes
    ----------
    line : int or None
        1-based line number in the offending file, when known.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class ImportFileError(JournalError):
    """A file given to ``crampsense import`` is malformed, hostile or of an unknown layout.

    Raised before anything is stored: an import either completes or changes nothing.
    """


class DetectionError(CrampsenseError):
    """The detector was given signals it cannot work with."""


class UsageError(CrampsenseError):
    """A command-line argument is wrong."""
