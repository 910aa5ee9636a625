"""Config registry, configs/default.toml, validation messages."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crampsense.config import (
    KEYS,
    default_config_path,
    default_data_dir,
    load_config,
    parse_config,
)
from crampsense.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_default_toml_lists_every_registered_key_with_its_default() -> None:
    doc = tomllib.loads((ROOT / "configs" / "default.toml").read_text())
    flat = {f"{s}.{k}": v for s, body in doc.items() for k, v in body.items()}
    assert set(flat) == {k.name for k in KEYS}
    for key in KEYS:
        assert flat[key.name] == key.default, key.name
    text = (ROOT / "configs" / "default.toml").read_text()
    for key in KEYS:  # every key carries its documentation line
        assert key.doc in text, key.name


def test_defaults_when_no_file(tmp_path: Path) -> None:
    cfg = load_config(None) if not default_config_path().exists() else parse_config({})
    assert cfg["detection.min_duration_s"] == 8.0
    assert cfg.section("band") == {"emg_fs_hz": 1000, "imu_fs_hz": 50}


def test_unknown_key_names_the_key_and_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[detection]\nmin_duration = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "detection.min_duration" in message
    assert "detection.min_duration_s" in message  # the fix is named
    assert info.value.key == "detection.min_duration"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('[band]\nemg_fs_hz = "fast"\n', "must be a whole number"),
        ("[band]\nemg_fs_hz = 50\n", "out of range"),
        ("[band]\nemg_fs_hz = true\n", "must be a whole number"),
        ("[recording]\ncommit_interval_s = nan\n", "NaN"),
        ("[detection]\non_ratio = 2.0\noff_ratio = 2.5\n", "must not exceed"),
        ("band = 3\n", "must be a [section] table"),
        ("[nope]\nx = 1\n", "known sections"),
        ("[band\n", "not valid TOML"),
    ],
)
def test_bad_values_are_rejected_with_one_clear_line(
    tmp_path: Path, body: str, fragment: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_int_is_accepted_for_float_keys() -> None:
    cfg = parse_config({"detection": {"min_duration_s": 10}})
    assert cfg["detection.min_duration_s"] == 10.0
    assert isinstance(cfg["detection.min_duration_s"], float)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_crampsense_home_overrides_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAMPSENSE_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert default_config_path() == tmp_path / "config.toml"
    (tmp_path / "config.toml").write_text("[paths]\ndata_dir = '/elsewhere'\n")
    assert load_config().data_dir == Path("/elsewhere")
