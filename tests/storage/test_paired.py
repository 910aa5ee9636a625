"""The paired-device and Device Information stores: atomic, owner-only, damage reported."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from crampsense.errors import ConfigError
from crampsense.storage.paired import (
    PairedDevice,
    load_device_info,
    load_paired,
    save_device_info,
    save_paired,
)


def test_paired_devices_round_trip_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    devices = [PairedDevice("AA:BB", "band L", "crampsense-band", "left-calf", simulated=True)]
    path = save_paired(home, devices)
    assert load_paired(home) == devices
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert load_paired(tmp_path / "none") == []


def test_damaged_paired_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "devices.json").write_text("{not json")
    with pytest.raises(ConfigError, match="damaged"):
        load_paired(tmp_path)


def test_device_information_round_trip_by_lower_case_address(tmp_path: Path) -> None:
    save_device_info(tmp_path, "AA:BB:CC:00:00:01", {"firmware": "3.1.2", "model": "H10"})
    save_device_info(tmp_path, "aa:bb:cc:00:00:02", {"software": "2.0"})
    known = load_device_info(tmp_path)
    assert known == {"aa:bb:cc:00:00:01": {"firmware": "3.1.2", "model": "H10"},
                     "aa:bb:cc:00:00:02": {"software": "2.0"}}
    assert stat.S_IMODE((tmp_path / "device-info.json").stat().st_mode) == 0o600
    assert load_device_info(tmp_path / "none") == {}


def test_damaged_device_information_is_reported_and_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "device-info.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="damaged"):
        save_device_info(tmp_path, "AA:BB", {"firmware": "1"})
    assert (tmp_path / "device-info.json").read_text() == "[1, 2"
