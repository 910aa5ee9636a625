"""Which device families crampsense knows, and which one an advertisement belongs to.

:data:`FAMILIES` maps a family key (stored with every paired device) to its
:class:`~crampsense.devices.base.DeviceProtocol` class. :func:`identify` picks the family of a
scanned device; :func:`protocol_for` builds the protocol of a paired one.

Families are tried most specific first: a crampsense reference band, a Polar sensor, a
Ganglion or a Movesense is recognised by its own service or name before the generic Heart Rate
Service, which many devices expose next to their own. The table is explicit: every family
module is imported here, so a broken family fails at import, not silently at scan time.

Device profiles (``crampsense/devices/profiles/<family>.toml``, package data read with
:mod:`importlib.resources`, so an installed wheel has them too) document each family's
streams, rates, units, scales and channel maps; :func:`load_profiles` reads and validates them and
:func:`check_profile` checks one against its protocol's :meth:`capabilities
<crampsense.devices.base.DeviceProtocol.capabilities>`, so a profile cannot drift from the code.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Final

from crampsense.devices.base import DeviceProtocol
from crampsense.devices.ganglion import GanglionProtocol
from crampsense.devices.heart_rate import HeartRateProtocol
from crampsense.devices.movesense import MovesenseProtocol
from crampsense.devices.polar import PolarPmdProtocol
from crampsense.devices.reference_band import ReferenceBandProtocol
from crampsense.errors import ConfigError, DeviceError
from crampsense.models import PLACEMENTS

__all__ = [
    "FAMILIES",
    "PROFILE_DIR",
    "DeviceProfile",
    "StreamProfile",
    "check_profile",
    "families",
    "identify",
    "load_profile",
    "load_profiles",
    "protocol_for",
    "register",
]

logger = logging.getLogger(__name__)

#: Family key -> protocol class, in the order :func:`identify` tries them: most specific first,
#: the generic Heart Rate Service last (Polar straps and many other devices advertise it next to
#: their own service).
FAMILIES: dict[str, type[DeviceProtocol]] = {
    cls.family: cls
    for cls in (
        ReferenceBandProtocol,
        PolarPmdProtocol,
        GanglionProtocol,
        MovesenseProtocol,
        HeartRateProtocol,
    )
}


def register(cls: type[DeviceProtocol], *, first: bool = False) -> None:
    """Add a family (``cls.family`` is the key); ``first`` makes :func:`identify` try it first."""
    key = cls.family
    if first:
        rest = {k: v for k, v in FAMILIES.items() if k != key}
        FAMILIES.clear()
        FAMILIES[key] = cls
        FAMILIES.update(rest)
    else:
        FAMILIES[key] = cls


def families() -> tuple[str, ...]:
    """Known family keys, in the order :func:`identify` tries them."""
    return tuple(FAMILIES)


def identify(local_name: str | None, service_uuids: Sequence[str]) -> DeviceProtocol | None:
    """The protocol of the first family whose ``matches`` accepts the advert, refined by its
    ``for_advertisement`` (a Polar "Sense" name gives the Verity Sense model).

    Parameters
    ----------
    local_name : str or None
        Advertised local name.
    service_uuids : sequence of str
        Advertised service UUIDs (any case, 16- or 128-bit form).

    Returns
    -------
    DeviceProtocol or None
        ``None`` when no known family matches (the device is not supported).
    """
    for cls in FAMILIES.values():
        protocol = cls()
        if protocol.matches(local_name, service_uuids):
            return protocol.for_advertisement(local_name)
    return None


def protocol_for(family: str, **options: Any) -> DeviceProtocol:
    """Build the protocol of ``family`` with ``options`` passed to its constructor.

    Raises
    ------
    DeviceError
        ``family`` is not known (the message lists the known ones).
    ConfigError
        ``options`` are not accepted by that family.
    """
    cls = FAMILIES.get(family)
    if cls is None:
        known = ", ".join(sorted(FAMILIES))
        msg = f"unknown device family {family!r}; known families are: {known}"
        raise DeviceError(msg)
    try:
        return cls(**options)
    except TypeError as exc:
        msg = f"device family {family!r} does not accept options {sorted(options)}: {exc}"
        raise ConfigError(msg, key=f"devices.{family}") from exc


# --------------------------------------------------------------------------- device profiles

#: The device profiles shipped with the package (``crampsense/devices/profiles/*.toml``).
PROFILE_DIR: Final[Traversable] = files("crampsense.devices") / "profiles"

#: Top-level profile keys and the types they take (a documented, closed set: a typo is an
#: error, not a silently ignored setting).
_PROFILE_KEYS: Final[Mapping[str, tuple[type, ...]]] = {
    "family": (str,),
    "display_name": (str,),
    "protocol_version": (int,),
    "match_service_uuids": (list,),
    "match_name_prefix": (str, list),
    "match_name_prefixes": (list,),
    "data_uuids": (list,),
    "control_uuids": (list,),
    "default_placement": (str,),
    "mtu": (int,),
    "min_mtu": (int,),
    "tick_hz": (int, float),
    "tick_modulo": (int,),
    "seq_modulo": (int,),
    "streams": (dict,),
    "device_information": (dict,),
    "options": (dict,),
    "models": (dict,),
    "firmware": (dict,),
    "references": (list, str),
    # characteristics and settings some families document beyond the common ones
    "send_uuid": (str,),
    "disconnect_uuid": (str,),
    "software_revision_uuid": (str,),
    "default_firmware": (int,),
    "packets_per_s": (int, float),
    "samples_per_packet": (int,),
    "resync_gap_s": (int, float),
    "commands": (dict,),
    "channel_map": (list,),
    "resources": (dict, list),
    "write_uuid": (str,),
    "resource": (str,),
    "hello_reference": (int,),
    "acc_reference": (int,),
    "imu_reference": (int,),
}
_REQUIRED_KEYS: Final = ("family", "display_name", "data_uuids", "streams")
#: Keys of a ``[streams.<name>]`` table and their types.
_STREAM_KEYS: Final[Mapping[str, tuple[type, ...]]] = {
    "unit": (str,),
    "fs_hz": (int, float, str),
    "supported_fs_hz": (list,),
    "scale": (int, float),
    "range": (int, float),
    "range_g": (int, float),
    "supported_range_g": (list,),
    "resolution_bits": (int,),
    "channels": (list,),
    "channel_placements": (dict,),
    "invalid_flags": (int,),
    "nominal_period_s": (int, float),
    "temperature_scale": (int, float),
    "accel_scale": (int, float),
    "char_uuid": (str,),
    "models": (list,),
    "scale_g_per_count": (int, float),
    "max_step_18bit_uv": (int, float),
    "max_step_19bit_uv": (int, float),
    "resource": (str,),
    "mps2_per_g": (int, float),
}
_REQUIRED_STREAM_KEYS: Final = ("unit", "fs_hz")
#: ``fs_hz`` of a stream without a nominal rate (heart rate, RR intervals, status).
IRREGULAR: Final = "irregular"


@dataclass(frozen=True, slots=True)
class StreamProfile:
    """One ``[streams.<name>]`` table of a device profile.

    Attributes
    ----------
    stream : str
        Stream name (``"emg"``, ``"acc"``, ...), as in ``SampleBlock.stream``.
    unit : str
        Unit of the decoded values.
    channels : tuple of str
        Channel labels in wire order.
    fs_hz : float or None
        Default rate (Hz); ``None`` for irregular streams.
    supported_fs_hz : tuple of float
        Rates the device accepts (empty when not documented).
    settings : mapping
        Every key of the table as written (scales, ranges, flags).
    """

    stream: str
    unit: str
    channels: tuple[str, ...]
    fs_hz: float | None
    supported_fs_hz: tuple[float, ...]
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A validated device profile (``devices/profiles/<family>.toml``).

    Attributes
    ----------
    family, display_name : str
    path : Traversable
        The file it was read from (a :class:`~pathlib.Path` for an installed package).
    data_uuids, control_uuids, match_service_uuids : tuple of str
        Lower-case UUIDs.
    default_placement : str or None
        One of :data:`~crampsense.models.PLACEMENTS`.
    streams : mapping of str to StreamProfile
    raw : mapping
        The whole document.
    """

    family: str
    display_name: str
    path: Traversable
    data_uuids: tuple[str, ...]
    control_uuids: tuple[str, ...]
    match_service_uuids: tuple[str, ...]
    default_placement: str | None
    streams: Mapping[str, StreamProfile]
    raw: Mapping[str, Any]


def _stem(path: Traversable) -> str:
    return path.name.removesuffix(".toml")


def _profile_error(path: Traversable, key: str, what: str) -> ConfigError:
    return ConfigError(f"device profile {path.name}: {what}", key=f"{_stem(path)}.{key}")


def _check_types(
    path: Traversable,
    table: Mapping[str, Any],
    allowed: Mapping[str, tuple[type, ...]],
    prefix: str,
) -> None:
    for key, value in table.items():
        types = allowed.get(key)
        if types is None:
            known = ", ".join(sorted(allowed))
            msg = f"unknown key {prefix}{key!r}; known keys are {known}: fix or remove it"
            raise _profile_error(path, prefix + key, msg)
        if not isinstance(value, types) or isinstance(value, bool):
            names = " or ".join(t.__name__ for t in types)
            msg = f"{prefix}{key} = {value!r} is not a {names}; see the other profiles"
            raise _profile_error(path, prefix + key, msg)


def _uuids(path: Traversable, doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = doc.get(key, [])
    if not all(isinstance(v, str) for v in values):
        msg = f"{key} must be a list of UUID strings, got {values!r}"
        raise _profile_error(path, key, msg)
    return tuple(v.lower() for v in values)


def _fs(path: Traversable, key: str, value: Any) -> float | None:
    if value == IRREGULAR:
        return None
    if isinstance(value, str):
        msg = f"{key} = {value!r} is neither a rate in Hz nor {IRREGULAR!r}"
        raise _profile_error(path, key, msg)
    if not value > 0:
        msg = f"{key} = {value!r} Hz must be > 0 (or {IRREGULAR!r})"
        raise _profile_error(path, key, msg)
    return float(value)


def load_profile(path: Traversable) -> DeviceProfile:
    """Read and validate one device profile.

    Parameters
    ----------
    path : Traversable
        A ``<family>.toml`` profile (a :class:`~pathlib.Path` or a package resource).

    Returns
    -------
    DeviceProfile

    Raises
    ------
    ConfigError
        Unreadable or not TOML, an unknown or missing key, a value of the wrong type, a
        placement that does not exist, or a default rate missing from the supported ones
        (one line naming the file and the key).
    """
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"cannot read device profile {path} ({exc}); fix the file or restore it from git"
        raise ConfigError(msg, key=_stem(path)) from exc
    _check_types(path, doc, _PROFILE_KEYS, "")
    for key in _REQUIRED_KEYS:
        if key not in doc:
            raise _profile_error(path, key, f"the required key {key!r} is missing; add it")
    if doc["family"] != _stem(path):
        msg = f"family {doc['family']!r} does not match the file name; name it {doc['family']}.toml"
        raise _profile_error(path, "family", msg)
    placement = doc.get("default_placement")
    if placement is not None and placement not in PLACEMENTS:
        msg = f"default_placement {placement!r} is not one of {', '.join(PLACEMENTS)}"
        raise _profile_error(path, "default_placement", msg)
    streams: dict[str, StreamProfile] = {}
    for name, table in doc["streams"].items():
        prefix = f"streams.{name}."
        if not isinstance(table, dict):
            msg = f"streams.{name} must be a table ([streams.{name}]), got {table!r}"
            raise _profile_error(path, f"streams.{name}", msg)
        _check_types(path, table, _STREAM_KEYS, prefix)
        for key in _REQUIRED_STREAM_KEYS:
            if key not in table:
                msg = f"the required key {prefix}{key} is missing; add it"
                raise _profile_error(path, prefix + key, msg)
        fs = _fs(path, prefix + "fs_hz", table["fs_hz"])
        supported = tuple(
            float(v) for v in table.get("supported_fs_hz", []) if isinstance(v, (int, float))
        )
        if len(supported) != len(table.get("supported_fs_hz", [])):
            msg = f"{prefix}supported_fs_hz must be a list of rates in Hz"
            raise _profile_error(path, prefix + "supported_fs_hz", msg)
        if fs is not None and supported and fs not in supported:
            msg = f"{prefix}fs_hz = {fs:g} Hz is not among supported_fs_hz {list(supported)}"
            raise _profile_error(path, prefix + "fs_hz", msg)
        streams[name] = StreamProfile(
            stream=name,
            unit=table["unit"],
            channels=tuple(str(c) for c in table.get("channels", ())),
            fs_hz=fs,
            supported_fs_hz=supported,
            settings=dict(table),
        )
    return DeviceProfile(
        family=doc["family"],
        display_name=doc["display_name"],
        path=path,
        data_uuids=_uuids(path, doc, "data_uuids"),
        control_uuids=_uuids(path, doc, "control_uuids"),
        match_service_uuids=_uuids(path, doc, "match_service_uuids"),
        default_placement=placement,
        streams=streams,
        raw=doc,
    )


def load_profiles(directory: Traversable | None = None) -> dict[str, DeviceProfile]:
    """Every ``*.toml`` profile in ``directory`` (default :data:`PROFILE_DIR`), by family.

    A missing directory gives ``{}``.

    Raises
    ------
    ConfigError
        A profile does not load (see :func:`load_profile`).
    """
    folder = PROFILE_DIR if directory is None else directory
    if not folder.is_dir():
        return {}
    tomls = sorted(
        (f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name
    )
    return {p.family: p for p in map(load_profile, tomls)}


def check_profile(profile: DeviceProfile, protocol: DeviceProtocol | None = None) -> None:
    """Check a profile against its family's protocol (default options unless given).

    Every stream the protocol's :meth:`~crampsense.devices.base.DeviceProtocol.capabilities`
    lists must be in the profile with the same unit, channels and default rate; the data and
    control characteristics must be the protocol's; a documented MTU must be at least the
    protocol's ``min_mtu``. The profile may document more streams than the capabilities
    (optional fields such as the heart-rate strap's energy and battery).

    Raises
    ------
    ConfigError
        The first disagreement, in one line naming the file and the key.
    DeviceError
        The profile's family is not registered.
    """
    path = profile.path
    proto = protocol if protocol is not None else protocol_for(profile.family)
    if proto.family != profile.family:
        msg = f"family {profile.family!r} is checked against the {proto.family!r} protocol"
        raise _profile_error(path, "family", msg)
    for key, theirs in (
        ("data_uuids", proto.data_uuids()),
        ("control_uuids", proto.control_uuids()),
    ):
        ours = getattr(profile, key)
        if sorted(ours) != sorted(u.lower() for u in theirs):
            msg = f"{key} {list(ours)} differ from the protocol's {list(theirs)}; copy them"
            raise _profile_error(path, key, msg)
    mtu = profile.raw.get("mtu")
    if mtu is not None and mtu < proto.min_mtu:
        msg = f"mtu = {mtu} is below the protocol's minimum {proto.min_mtu}; raise it"
        raise _profile_error(path, "mtu", msg)
    min_mtu = profile.raw.get("min_mtu")
    if min_mtu is not None and min_mtu != proto.min_mtu:
        msg = f"min_mtu = {min_mtu} differs from the protocol's {proto.min_mtu}"
        raise _profile_error(path, "min_mtu", msg)
    for cap in proto.capabilities():
        stream = profile.streams.get(cap.stream)
        prefix = f"streams.{cap.stream}"
        if stream is None:
            msg = f"the protocol streams {cap.stream!r} but there is no [{prefix}]; document it"
            raise _profile_error(path, prefix, msg)
        if stream.unit != cap.unit:
            msg = f"{prefix}.unit = {stream.unit!r} but the protocol decodes {cap.unit!r}"
            raise _profile_error(path, prefix + ".unit", msg)
        if stream.channels != tuple(cap.channels):
            msg = (
                f"{prefix}.channels = {list(stream.channels)} but the protocol gives "
                f"{list(cap.channels)}"
            )
            raise _profile_error(path, prefix + ".channels", msg)
        if stream.fs_hz != (None if cap.fs_hz is None else float(cap.fs_hz)):
            want = IRREGULAR if cap.fs_hz is None else f"{cap.fs_hz:g}"
            got = stream.settings["fs_hz"]
            msg = f"{prefix}.fs_hz = {got!r} but the protocol's default is {want}"
            raise _profile_error(path, prefix + ".fs_hz", msg)
