"""What the person paired: the remembered devices and the Device Information read at pairing.

Both are machine-written state in the data directory (JSON rather than the hand-edited TOML
config), written atomically and owner-only with :func:`~crampsense.storage.files.
atomic_write_bytes`: a crash leaves the old list or the new one, never half of either.

- ``devices.json``: :class:`PairedDevice` entries (address, family, placement, ...).
- ``device-info.json``: the Device Information strings read when pairing, per address (what
  a family's ``configure`` needs to rebuild the paired configuration: the Ganglion's firmware,
  the Polar model).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from crampsense.errors import ConfigError
from crampsense.storage.files import atomic_write_bytes

__all__ = [
    "DEVICE_INFO_FILE",
    "PAIRED_FILE",
    "PairedDevice",
    "load_device_info",
    "load_paired",
    "save_device_info",
    "save_paired",
]

PAIRED_FILE: Final = "devices.json"
PAIRED_FORMAT: Final = 1
DEVICE_INFO_FILE: Final = "device-info.json"
_DEVICE_INFO_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class PairedDevice:
    """A device the user paired: where it is worn and how to talk to it."""

    address: str
    name: str
    family: str
    placement: str
    simulated: bool = False
    firmware: str = ""


def load_paired(data_dir: Path) -> list[PairedDevice]:
    """Read the paired devices; a missing file means none.

    Raises
    ------
    ConfigError
        The file exists but is not a valid device list.
    """
    path = data_dir / PAIRED_FILE
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != PAIRED_FORMAT:
            msg = f"unknown format {doc.get('format')!r}"
            raise ValueError(msg)
        return [PairedDevice(**entry) for entry in doc["devices"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"paired-device list {path} is damaged ({exc}); remove it and pair again with "
            "`crampsense pair ADDRESS --placement ...`"
        ) from exc


def save_paired(data_dir: Path, devices: list[PairedDevice]) -> Path:
    """Write the paired devices atomically, owner-only; returns the file's path."""
    path = data_dir / PAIRED_FILE
    doc = {"format": PAIRED_FORMAT, "devices": [asdict(d) for d in devices]}
    atomic_write_bytes(path, json.dumps(doc, indent=2).encode("utf-8"))
    return path


def load_device_info(data_dir: Path) -> dict[str, dict[str, str]]:
    """Device Information strings stored at pairing, by lower-case address ({} if none).

    Raises
    ------
    ConfigError
        The file exists but does not parse.
    """
    path = data_dir / DEVICE_INFO_FILE
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != _DEVICE_INFO_FORMAT:
            msg = f"unknown format {doc.get('format')!r}"
            raise ValueError(msg)
        return {str(k).lower(): {str(a): str(b) for a, b in v.items()}
                for k, v in doc["devices"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(
            f"device information file {path} is damaged ({exc}); remove it and pair the "
            "devices again with `crampsense pair ADDRESS --placement ...`"
        ) from exc


def save_device_info(data_dir: Path, address: str, info: dict[str, str]) -> Path:
    """Remember the Device Information strings of ``address`` (owner-only, atomic)."""
    known = load_device_info(data_dir)
    known[address.lower()] = dict(info)
    path = data_dir / DEVICE_INFO_FILE
    doc = {"format": _DEVICE_INFO_FORMAT, "devices": known}
    atomic_write_bytes(path, json.dumps(doc, indent=1).encode("utf-8"))
    return path
