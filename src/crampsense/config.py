"""Typed configuration from TOML, with every key registered and documented.

Where things live
-----------------
- ``CRAMPSENSE_HOME`` (environment), if set, is the data directory *and* holds ``config.toml``.
- Otherwise the data directory is :func:`platformdirs.user_data_dir` (``~/.local/share/crampsense``
  on Linux) and the config file :func:`platformdirs.user_config_dir` ``/config.toml``.
- ``configs/default.toml`` in the repository lists every key with its default and meaning; the
  registry :data:`KEYS` below is the source of truth and a test keeps the two equal.

Unknown keys, wrong types and out-of-range values raise :class:`~crampsense.errors.ConfigError`
naming the key, the value and what is allowed, before anything else happens.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from crampsense.errors import ConfigError

__all__ = ["KEYS", "Config", "Key", "default_config_path", "default_data_dir", "load_config"]

APP_NAME = "crampsense"
HOME_ENV = "CRAMPSENSE_HOME"


@dataclass(frozen=True, slots=True)
class Key:
    """One registered configuration key."""

    name: str  # dotted: "section.key"
    type: type
    default: Any
    doc: str
    min: float | None = None
    max: float | None = None


KEYS: tuple[Key, ...] = (
    Key("paths.data_dir", str, "", "Data directory; empty = CRAMPSENSE_HOME or the OS default."),
    Key(
        "recording.commit_interval_s", float, 1.0,
        "Longest time frames stay in memory before an SQLite commit (the most a kill can lose).",
        min=0.05, max=1.0,
    ),
    Key("recording.scan_timeout_s", float, 10.0, "How long a scan listens for advertisements.",
        min=0.1, max=120.0),
    Key("recording.reconnect_max_backoff_s", float, 30.0,
        "Cap of the exponential back-off between reconnect attempts.", min=0.1, max=600.0),
    Key("recording.stall_timeout_s", float, 10.0,
        "Connected but silent this long counts as a stall and forces a reconnect.",
        min=1.0, max=600.0),
    Key("band.emg_fs_hz", int, 1000,
        "EMG sample rate requested from a crampsense reference band (Hz).", min=200, max=2000),
    Key("band.imu_fs_hz", int, 50, "Accelerometer sample rate requested from the band (Hz).",
        min=25, max=400),
    Key("detection.min_duration_s", float, 8.0,
        "Shortest sustained contraction reported as a cramp (s).", min=1.0, max=120.0),
    Key("detection.on_ratio", float, 3.0,
        "Envelope over the channel floor that opens an event (hysteresis high).",
        min=1.2, max=50.0),
    Key("detection.off_ratio", float, 2.0,
        "Envelope over the channel floor that closes an event (hysteresis low).",
        min=1.05, max=50.0),
    Key("summary.baseline_days", int, 30,
        "Days of history a night is compared with in the summary.", min=3, max=365),
    Key("summary.water_low_ml", float, 1500.0,
        "Water intake below which a day counts as 'low water' in comparisons (ml).",
        min=0.0, max=10000.0),
)

_BY_NAME = {k.name: k for k in KEYS}


def default_data_dir() -> Path:
    """``$CRAMPSENSE_HOME`` or the platform's user data directory."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_path() -> Path:
    """``$CRAMPSENSE_HOME/config.toml`` or the platform's user config file."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "config.toml"
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


class Config:
    """Validated configuration: ``cfg["detection.min_duration_s"]`` or ``cfg.section("band")``."""

    def __init__(self, values: Mapping[str, Any], source: Path | None = None) -> None:
        self._values = {k.name: k.default for k in KEYS}
        self._values.update(values)
        self.source = source

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            raise ConfigError(f"unknown config key {name!r}", key=name)
        return self._values[name]

    def section(self, name: str) -> dict[str, Any]:
        """All keys of one section, without the section prefix."""
        prefix = name + "."
        return {k[len(prefix):]: v for k, v in self._values.items() if k.startswith(prefix)}

    @property
    def data_dir(self) -> Path:
        configured = str(self._values["paths.data_dir"])
        return Path(configured).expanduser() if configured else default_data_dir()


_TYPE_WORDS = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def _check(key: Key, value: Any) -> Any:
    where = f"config key {key.name!r}"
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, key.type) or (isinstance(value, bool) and key.type is not bool):
        raise ConfigError(
            f"{where} must be {_TYPE_WORDS.get(key.type, key.type.__name__)}, got {value!r} "
            f"({key.doc.rstrip('.')}; default {key.default!r})",
            key=key.name,
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{where} is NaN; use a number", key=key.name)
        if (key.min is not None and value < key.min) or (key.max is not None and value > key.max):
            raise ConfigError(
                f"{where} = {value!r} is out of range; allowed {key.min} to {key.max}",
                key=key.name,
            )
    return value


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate a parsed TOML mapping against :data:`KEYS`."""
    values: dict[str, Any] = {}
    for section, body in data.items():
        if not isinstance(body, Mapping):
            raise ConfigError(
                f"config entry {section!r} must be a [section] table; known sections: "
                + ", ".join(sorted({k.name.split('.')[0] for k in KEYS})),
                key=section,
            )
        for name, value in body.items():
            dotted = f"{section}.{name}"
            key = _BY_NAME.get(dotted)
            if key is None:
                known = sorted(k.name for k in KEYS if k.name.startswith(section + "."))
                hint = f"known keys in [{section}]: {', '.join(known)}" if known else (
                    "known sections: " + ", ".join(sorted({k.name.split('.')[0] for k in KEYS}))
                )
                raise ConfigError(f"unknown config key {dotted!r} in {source}; {hint}", key=dotted)
            values[dotted] = _check(key, value)
    if values.get("detection.off_ratio", 0) > values.get("detection.on_ratio", 1e9):
        raise ConfigError(
            "config key 'detection.off_ratio' must not exceed 'detection.on_ratio'",
            key="detection.off_ratio",
        )
    return Config(values, source)


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file; a missing default file means all defaults.

    Raises
    ------
    ConfigError
        Unreadable file, TOML syntax error, unknown key, wrong type or out-of-range value.
    """
    explicit = path is not None
    path = path or default_config_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"config file {path} does not exist; check the --config path")
        return Config({}, None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    return parse_config(data, path)
