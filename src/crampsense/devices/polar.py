"""Polar Measurement Data (PMD): the Polar H10 chest strap, Verity Sense and OH1.

crampsense uses a Polar sensor worn on the calf or the ankle as a leg accelerometer (all three
models) and, on the H10, as an ECG (heart-rate context). This module is the executable form of
the PMD facts in ``shared/design/PROTOCOLS.md`` section 1 (public Polar documentation,
re-implemented here, not copied), host side only: UUIDs, command encoders, decoders, and the
:class:`PolarPmdProtocol` the transport drives. The sensor's side (feature read, responses,
data frames) is encoded by ``firmware_sims/polar.py``, written apart from these decoders.

Wire summary (little-endian)::

    control point fb005c81 (read, write, indicate)
      read        0F [feature bitmap byte 1] [byte 2]   bit n of byte 1 = measurement type n
      command     [opcode 1 get settings | 2 start | 3 stop][type][settings TLVs...]
      TLV         [setting type][count][count × value]  0 rate u16 Hz, 1 resolution u16 bits,
                  2 range u16 ±g, 4 channels u8, 5 factor f32
      response    F0 [opcode][type][status][more][parameters (TLVs for get settings)]
      unsolicited 01 [types...]   the device stopped these measurements on its own

    data fb005c82 (notify)
      0           measurement type (0 ECG, 2 ACC)
      1-8         u64 ns since 2000-01-01T00:00:00Z of the LAST sample of the frame
      9           frame type: bit 7 delta-compressed, bits 0-6 the sample format
      10-         raw: samples back to back (ACC type 0/1/2: 3 × int8/int16/int24 mG;
                  ECG type 0: int24 µV); compressed: a reference sample, then blocks of
                  [delta bits u8][count u8][deltas packed LSB-first, channels interleaved]

Example (a raw ACC frame, the first two samples of PROTOCOLS.md's test vector)::

    02 00 94 35 77 00 00 00 00 01 | F7 FF FF FF E7 03 | F8 FF FE FF E5 03
    -> ACC, 2 000 000 000 ns after 2000-01-01, (-9, -1, 999) and (-8, -2, 997) mG
"""

from __future__ import annotations

import enum
import logging
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.base import (
    Capability,
    ControlEvent,
    DeviceProtocol,
    GattWrite,
    PacketBatch,
)
from crampsense.devices.timeline import TimelineBuilder
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import ACC_UNIT, ECG_UNIT, Frame, SampleBlock

__all__ = [
    "ACC_CHANNELS",
    "CLOCK_RESET_NS",
    "CONTROL_UUID",
    "DATA_HEADER_BYTES",
    "DATA_UUID",
    "ECG_CHANNELS",
    "EPOCH_2000_UNIX_NS",
    "FEATURES_READ",
    "MEASUREMENT_STOPPED",
    "MIN_MTU",
    "MODELS",
    "RESPONSE_CODE",
    "SERVICE_UUID",
    "TIMESTAMP_MODULO",
    "ControlResponse",
    "MeasurementType",
    "ModelSpec",
    "Opcode",
    "PmdFrame",
    "PolarPmdProtocol",
    "SettingType",
    "Status",
    "decode_pmd_frame",
    "device_ns_to_unix_ns",
    "encode_get_settings",
    "encode_settings",
    "encode_start",
    "encode_start_acc",
    "encode_start_ecg",
    "encode_stop",
    "model_from_name",
    "parse_features",
    "parse_measurement_stopped",
    "parse_response",
    "parse_settings",
    "raw_resolution_bits",
    "spread_sample_times_ns",
    "unix_ns_to_device_ns",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- identifiers

SERVICE_UUID: Final = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
CONTROL_UUID: Final = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
DATA_UUID: Final = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

#: ATT MTU the sensors need before they answer anything (Polar's default request; the H10
#: would stream at 70, the others need more, so one number for the family).
MIN_MTU: Final = 232
#: First byte of the control point's read value (the feature bitmaps follow).
FEATURES_READ: Final = 0x0F
#: First byte of every response indication.
RESPONSE_CODE: Final = 0xF0
#: First byte of the unsolicited "measurement stopped" indication.
MEASUREMENT_STOPPED: Final = 0x01
#: PMD time zero, 2000-01-01T00:00:00Z, in Unix ns.
EPOCH_2000_UNIX_NS: Final = 946_684_800 * 10**9
#: Where a clock that was never set restarts after a shutdown: 2019-01-01T00:00:00Z, in ns
#: since 2000-01-01 (H10; see Polar's TimeSystemExplained).
CLOCK_RESET_NS: Final = (1_546_300_800 - 946_684_800) * 10**9
#: The timestamp is a u64; it never wraps within a product's life.
TIMESTAMP_MODULO: Final = 2**64
#: Bytes before the samples: type, u64 timestamp, frame type.
DATA_HEADER_BYTES: Final = 10
#: Measurement types live in the low six bits of a type byte.
_TYPE_MASK: Final = 0x3F
_COMPRESSED_BIT: Final = 0x80
_FRAME_TYPE_MASK: Final = 0x7F

ACC_CHANNELS: Final = ("x", "y", "z")
ECG_CHANNELS: Final = ("ecg",)


class MeasurementType(enum.IntEnum):
    """PMD measurement types (byte 1 of a command, byte 0 of a data frame)."""

    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6


class Opcode(enum.IntEnum):
    """Control-point command opcodes."""

    GET_SETTINGS = 1
    START = 2
    STOP = 3


class SettingType(enum.IntEnum):
    """Setting TLV types of a start command and a get-settings response."""

    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    CHANNELS = 4
    FACTOR = 5


class Status(enum.IntEnum):
    """Response status (byte 3 of an ``F0`` indication)."""

    SUCCESS = 0
    INVALID_OPCODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13


#: What the user should do about each error status (one clause, after the status name).
_STATUS_ADVICE: Final[Mapping[Status, str]] = {
    Status.INVALID_OPCODE: "the sensor firmware does not know this command; update it",
    Status.INVALID_MEASUREMENT_TYPE: "this model has no such measurement; check polar.model",
    Status.NOT_SUPPORTED: (
        "this model or firmware does not stream it; turn it off (polar.ecg = false on "
        "Verity Sense/OH1) or update the firmware"
    ),
    Status.INVALID_LENGTH: "the command was cut short; check that the link MTU is at least 232",
    Status.INVALID_PARAMETER: "a setting is missing or unknown; use the model's profile values",
    Status.ALREADY_IN_STATE: "the measurement already runs (or is already stopped)",
    Status.INVALID_RESOLUTION: "use the resolution the profile lists (polar.acc_resolution_bits)",
    Status.INVALID_SAMPLE_RATE: "use a rate the model supports (polar.acc_fs_hz)",
    Status.INVALID_RANGE: "use a range the model supports (polar.acc_range_g)",
    Status.INVALID_MTU: "the link MTU is below 232; use an adapter/OS that negotiates 232",
    Status.INVALID_NUMBER_OF_CHANNELS: "request the model's channel count (3 for ACC)",
    Status.INVALID_STATE: (
        "the sensor is not worn or busy (H10: off the strap); put it on and reconnect"
    ),
    Status.DEVICE_IN_CHARGER: "take the sensor off the charger and wear it",
}

#: Width in bytes and struct code of each setting's values.
_SETTING_FORMATS: Final[Mapping[int, tuple[int, str]]] = {
    SettingType.SAMPLE_RATE: (2, "<H"),
    SettingType.RESOLUTION: (2, "<H"),
    SettingType.RANGE: (2, "<H"),
    SettingType.CHANNELS: (1, "<B"),
    SettingType.FACTOR: (4, "<f"),
}

#: Raw sample formats: (measurement type, frame type) -> (channels, bits per sample value).
_RAW_FORMATS: Final[Mapping[tuple[int, int], tuple[int, int]]] = {
    (MeasurementType.ACC, 0): (3, 8),
    (MeasurementType.ACC, 1): (3, 16),
    (MeasurementType.ACC, 2): (3, 24),
    (MeasurementType.ECG, 0): (1, 24),
}

#: Resolution used for a *compressed* frame's reference sample when the frame type names
#: no raw format: the ECG resolution the H10 reports (14 bits). Not verified on hardware.
_ECG_COMPRESSED_DEFAULT_BITS: Final = 14


def raw_resolution_bits(measurement_type: int, frame_type: int) -> tuple[int, int] | None:
    """``(channels, bits)`` of a frame type's samples, or ``None`` if the type is unknown.

    Examples
    --------
    >>> raw_resolution_bits(MeasurementType.ACC, 1)
    (3, 16)
    """
    return _RAW_FORMATS.get((int(measurement_type), int(frame_type) & _FRAME_TYPE_MASK))


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one Polar model offers over PMD (mirrored by ``devices/profiles/polar-pmd.toml``).

    Attributes
    ----------
    key : str
        ``"h10"``, ``"verity-sense"`` or ``"oh1"``.
    name : str
        Shown name (``"Polar H10"``).
    name_prefix : str
        Advertised names start with this (``"Polar H10 1234ABCD"``).
    features : frozenset of MeasurementType
        What the feature read reports.
    acc_rates_hz, acc_ranges_g, acc_resolutions_bits : tuple of int
        Accelerometer settings the model accepts.
    acc_default_hz, acc_default_range_g : int
        Used when the user sets nothing.
    acc_frame_type : int
        Frame type byte of its ACC frames (``0x01`` raw int16, ``0x81`` delta-compressed).
    ecg_rates_hz, ecg_resolutions_bits : tuple of int
        ECG settings (empty when the model has no ECG).
    heart_rate_service : bool
        Also exposes the standard Heart Rate Service.
    """

    key: str
    name: str
    name_prefix: str
    features: frozenset[MeasurementType]
    acc_rates_hz: tuple[int, ...]
    acc_ranges_g: tuple[int, ...]
    acc_resolutions_bits: tuple[int, ...]
    acc_default_hz: int
    acc_default_range_g: int
    acc_frame_type: int
    ecg_rates_hz: tuple[int, ...] = ()
    ecg_resolutions_bits: tuple[int, ...] = ()
    heart_rate_service: bool = False

    @property
    def has_ecg(self) -> bool:
        return MeasurementType.ECG in self.features


#: The three supported models. H10: Polar's H10 product page (ACC 25-200 Hz, ±2/4/8 g, ECG
#: 130 Hz); Verity Sense: ACC 52 Hz ±8 g (SDK mode widens the rates to 26-416 Hz); OH1: ACC
#: 50 Hz ±8 g. The H10 sends raw int16 ACC frames (PROTOCOLS.md); the optical sensors'
#: compressed ACC frames follow the SDK's test vectors (type 0x81).
MODELS: Final[Mapping[str, ModelSpec]] = {
    "h10": ModelSpec(
        key="h10", name="Polar H10", name_prefix="polar h10",
        features=frozenset({MeasurementType.ECG, MeasurementType.ACC}),
        acc_rates_hz=(25, 50, 100, 200), acc_ranges_g=(2, 4, 8), acc_resolutions_bits=(16,),
        acc_default_hz=200, acc_default_range_g=8, acc_frame_type=0x01,
        ecg_rates_hz=(130,), ecg_resolutions_bits=(14,), heart_rate_service=True,
    ),
    "verity-sense": ModelSpec(
        key="verity-sense", name="Polar Verity Sense", name_prefix="polar sense",
        features=frozenset({MeasurementType.PPG, MeasurementType.ACC, MeasurementType.PPI,
                            MeasurementType.GYRO, MeasurementType.MAG}),
        acc_rates_hz=(26, 52, 104, 208, 416), acc_ranges_g=(8,), acc_resolutions_bits=(16,),
        acc_default_hz=52, acc_default_range_g=8, acc_frame_type=0x81, heart_rate_service=True,
    ),
    "oh1": ModelSpec(
        key="oh1", name="Polar OH1", name_prefix="polar oh1",
        features=frozenset({MeasurementType.PPG, MeasurementType.ACC, MeasurementType.PPI}),
        acc_rates_hz=(50,), acc_ranges_g=(8,), acc_resolutions_bits=(16,),
        acc_default_hz=50, acc_default_range_g=8, acc_frame_type=0x81, heart_rate_service=True,
    ),
}
_MODEL_ALIASES: Final[Mapping[str, str]] = {
    "h10": "h10", "polar h10": "h10",
    "verity-sense": "verity-sense", "verity sense": "verity-sense", "sense": "verity-sense",
    "polar sense": "verity-sense", "polar verity sense": "verity-sense",
    "oh1": "oh1", "polar oh1": "oh1",
}


def _model(model: str) -> ModelSpec:
    key = _MODEL_ALIASES.get(str(model).strip().lower())
    if key is None:
        msg = f"unknown Polar model {model!r}; use one of h10, verity-sense, oh1"
        raise ConfigError(msg, key="polar.model")
    return MODELS[key]


def model_from_name(local_name: str | None) -> str | None:
    """The model key an advertised or Device Information name belongs to, else ``None``.

    Examples
    --------
    >>> model_from_name("Polar H10 1234ABCD"), model_from_name("Polar Sense B5A3C21E")
    ('h10', 'verity-sense')
    >>> model_from_name("Garmin HRM") is None
    True
    """
    if not local_name:
        return None
    name = str(local_name).strip().lower()
    for spec in MODELS.values():
        if name.startswith(spec.name_prefix) or name == spec.name.lower():
            return spec.key
    if name.startswith("polar verity sense"):
        return "verity-sense"
    return None


# --------------------------------------------------------------------------- time


def device_ns_to_unix_ns(device_ns: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """PMD time (ns since 2000-01-01) to Unix ns; only meaningful for a set clock."""
    return np.asarray(device_ns, dtype=np.int64) + EPOCH_2000_UNIX_NS


def unix_ns_to_device_ns(unix_ns: int) -> int:
    """Unix ns to PMD time (ns since 2000-01-01)."""
    return int(unix_ns) - EPOCH_2000_UNIX_NS


def spread_sample_times_ns(
    timestamps_ns: npt.ArrayLike,
    n_samples: npt.ArrayLike,
    fs_hz: float,
    previous_ns: int | None = None,
) -> npt.NDArray[np.int64]:
    """Per-sample device times of consecutive frames (PMD convention).

    Frame ``i`` with timestamp ``ts[i]`` (its last sample) and ``n[i]`` samples gets sample
    times ``ts[i] - (n[i] - 1 - j) × step`` for ``j = 0 .. n[i]-1``, where
    ``step = (ts[i] - ts[i-1]) / n[i]``; the first frame (without ``previous_ns``) uses the
    nominal ``1e9 / fs_hz``, as does a frame whose timestamp does not advance (a clock reset).

    Parameters
    ----------
    timestamps_ns : array_like of int, shape (n_frames,)
        Frame timestamps (ns since 2000-01-01), in arrival order.
    n_samples : array_like of int, shape (n_frames,)
        Samples per frame (>= 1).
    fs_hz : float
        Nominal sample rate (Hz).
    previous_ns : int or None
        Timestamp of the frame before the first one, if known.

    Returns
    -------
    ndarray of int64, shape (n_samples.sum(),)
        Device times (ns since 2000-01-01); the last sample of each frame equals its timestamp.

    Examples
    --------
    >>> spread_sample_times_ns([1000, 1400], [2, 2], 1e7).tolist()
    [900, 1000, 1200, 1400]
    """
    ts = np.asarray(timestamps_ns, dtype=np.int64).ravel()
    n = np.asarray(n_samples, dtype=np.int64).ravel()
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    prev = np.concatenate(([-1 if previous_ns is None else int(previous_ns)], ts[:-1]))
    nominal = 1e9 / float(fs_hz)
    step = np.where(
        (prev >= 0) & (ts > prev), (ts - prev) / np.maximum(n, 1), nominal
    ).astype(np.float64)
    last_index = np.cumsum(n) - 1
    back = np.repeat(last_index, n) - np.arange(int(n.sum()))
    times: npt.NDArray[np.int64] = np.repeat(ts, n) - np.rint(
        back * np.repeat(step, n)
    ).astype(np.int64)
    return times


# --------------------------------------------------------------------------- control point


def parse_features(payload: bytes | bytearray) -> frozenset[MeasurementType]:
    """The measurement types a control-point read reports.

    Raises
    ------
    ProtocolError
        Not a feature read (first byte not ``0x0F``, or too short).
    """
    payload = bytes(payload)
    if len(payload) < 2 or payload[0] != FEATURES_READ:
        msg = (
            f"PMD control point read {payload.hex(' ') or '(empty)'} is not a feature read "
            "(0F ...); the device is not a Polar PMD sensor or its firmware is too old"
        )
        raise ProtocolError(msg)
    bitmap = int.from_bytes(payload[1:3], "little")
    return frozenset(t for t in MeasurementType if bitmap >> int(t) & 1)


def encode_settings(settings: Sequence[tuple[int, Sequence[float]]]) -> bytes:
    """Setting TLVs ``[type][count][values]`` in the given order.

    Raises
    ------
    DecodeError
        An unknown setting type or a value that does not fit its field.
    """
    out = bytearray()
    for kind, values in settings:
        fmt = _SETTING_FORMATS.get(int(kind))
        if fmt is None:
            msg = f"setting type {kind} is unknown; use 0 rate, 1 resolution, 2 range, 4, 5"
            raise DecodeError(msg, offset=len(out), field="setting_type")
        out += bytes([int(kind), len(values)])
        try:
            for v in values:
                out += struct.pack(fmt[1], v if fmt[1] == "<f" else int(v))
        except struct.error as exc:
            msg = f"setting {SettingType(kind).name} value {values!r} does not fit ({exc})"
            raise DecodeError(msg, offset=len(out), field="setting_value") from exc
    return bytes(out)


def parse_settings(params: bytes) -> dict[SettingType, tuple[float, ...]]:
    """Setting TLVs to ``{type: values}`` (ints, or floats for the factor).

    Raises
    ------
    DecodeError
        An unknown setting type or a TLV cut short.
    """
    params = bytes(params)
    out: dict[SettingType, tuple[float, ...]] = {}
    i = 0
    while i < len(params):
        kind = params[i]
        fmt = _SETTING_FORMATS.get(kind)
        if fmt is None:
            msg = f"unknown PMD setting type {kind}; update crampsense to read it"
            raise DecodeError(msg, offset=i, field="setting_type")
        if i + 1 >= len(params):
            msg = "PMD setting TLV ends after its type byte; the answer was cut short"
            raise DecodeError(msg, offset=i + 1, field="setting_count")
        count = params[i + 1]
        width, code = fmt
        end = i + 2 + count * width
        if end > len(params):
            msg = (
                f"PMD setting {SettingType(kind).name} announces {count} values "
                f"({count * width} bytes) but {len(params) - i - 2} remain; it was cut short"
            )
            raise DecodeError(msg, offset=len(params), field="setting_value")
        values = tuple(
            float(v[0]) if code == "<f" else int(v[0])
            for v in struct.iter_unpack(code, params[i + 2 : end])
        )
        out[SettingType(kind)] = values
        i = end
    return out


def encode_get_settings(measurement_type: int) -> bytes:
    """``01 [type]``: ask which settings a measurement supports."""
    return bytes([Opcode.GET_SETTINGS, int(measurement_type)])


def encode_start(measurement_type: int, settings: Sequence[tuple[int, Sequence[float]]]) -> bytes:
    """``02 [type] [TLVs]``: start a measurement with these settings (one value each)."""
    return bytes([Opcode.START, int(measurement_type)]) + encode_settings(settings)


def encode_start_acc(fs_hz: int, range_g: int, resolution_bits: int = 16) -> bytes:
    """Start ACC, TLVs in Polar's order (range, rate, resolution).

    Examples
    --------
    >>> encode_start_acc(200, 8, 16).hex(" ")
    '02 02 02 01 08 00 00 01 c8 00 01 01 10 00'
    """
    return encode_start(
        MeasurementType.ACC,
        [(SettingType.RANGE, [range_g]), (SettingType.SAMPLE_RATE, [fs_hz]),
         (SettingType.RESOLUTION, [resolution_bits])],
    )


def encode_start_ecg(fs_hz: int = 130, resolution_bits: int = 14) -> bytes:
    """Start ECG (rate, resolution).

    Examples
    --------
    >>> encode_start_ecg().hex(" ")
    '02 00 00 01 82 00 01 01 0e 00'
    """
    return encode_start(
        MeasurementType.ECG,
        [(SettingType.SAMPLE_RATE, [fs_hz]), (SettingType.RESOLUTION, [resolution_bits])],
    )


def encode_stop(measurement_type: int) -> bytes:
    """``03 [type]``."""
    return bytes([Opcode.STOP, int(measurement_type)])


def parse_measurement_stopped(payload: bytes) -> tuple[int, ...]:
    """The measurement types of a ``01 [types...]`` indication (empty if it is not one)."""
    payload = bytes(payload)
    if not payload or payload[0] != MEASUREMENT_STOPPED:
        return ()
    return tuple(payload[1:])


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """A parsed ``F0`` indication.

    Attributes
    ----------
    opcode, measurement_type, status, more : int
        As sent (``status`` is a :class:`Status` value; kept as int for unknown codes).
    params : bytes
        Parameters (setting TLVs for get settings).
    """

    opcode: int
    measurement_type: int
    status: int
    more: int
    params: bytes

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    def settings(self) -> dict[SettingType, tuple[float, ...]]:
        """The parameters as setting TLVs (see :func:`parse_settings`)."""
        return parse_settings(self.params)


#: ``F0 op type status`` at least; ``more`` may be missing on an error.
_MIN_RESPONSE_BYTES: Final = 4


def parse_response(payload: bytes) -> ControlResponse:
    """Parse an ``F0`` response indication.

    Raises
    ------
    ProtocolError
        Not an ``F0`` response, or shorter than 4 bytes.
    """
    payload = bytes(payload)
    if len(payload) < _MIN_RESPONSE_BYTES or payload[0] != RESPONSE_CODE:
        msg = (
            f"PMD control indication {payload.hex(' ') or '(empty)'} is not a response "
            "(F0 opcode type status ...); the sensor's firmware does not follow PMD"
        )
        raise ProtocolError(msg)
    more = payload[4] if len(payload) > _MIN_RESPONSE_BYTES else 0
    return ControlResponse(payload[1], payload[2] & _TYPE_MASK, payload[3], more, payload[5:])


def _name(enum_cls: type[enum.IntEnum], value: int) -> str:
    return enum_cls(value).name if value in enum_cls._value2member_map_ else f"0x{value:02X}"


# --------------------------------------------------------------------------- data frames


@dataclass(frozen=True, slots=True, eq=False)
class PmdFrame:
    """A decoded data frame.

    Attributes
    ----------
    measurement_type : int
        :class:`MeasurementType` value.
    timestamp_ns : int
        Device time of the last sample, ns since 2000-01-01T00:00:00Z.
    frame_type : int
        Bits 0-6 of byte 9.
    compressed : bool
        Bit 7 of byte 9.
    samples : ndarray of int64, shape (n_channels, n)
        Sample values as integers, before any factor (mG or µV for ACC and ECG).
    """

    measurement_type: int
    timestamp_ns: int
    frame_type: int
    compressed: bool
    samples: npt.NDArray[np.int64]

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])


def _sign_extend(values: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
    if bits <= 0:
        return np.zeros_like(values)
    half = np.int64(1) << np.int64(bits - 1)
    out: npt.NDArray[np.int64] = ((values & ((half << 1) - 1)) ^ half) - half
    return out


def _le_ints(raw: npt.NDArray[np.uint8], width: int) -> npt.NDArray[np.int64]:
    """Little-endian unsigned integers of ``width`` bytes: raw shape (..., width) -> (...)."""
    weights = np.int64(1) << (np.int64(8) * np.arange(width, dtype=np.int64))
    out: npt.NDArray[np.int64] = (raw.astype(np.int64) * weights).sum(axis=-1)
    return out


def _decode_delta_body(
    payload: bytes, n_ch: int, resolution_bits: int
) -> npt.NDArray[np.int64]:
    """Samples (n_ch, n) of a compressed frame's body (from byte 10)."""
    width = math.ceil(resolution_bits / 8)
    pos = DATA_HEADER_BYTES
    ref_end = pos + n_ch * width
    if len(payload) < ref_end:
        msg = (
            f"compressed frame of {len(payload)} bytes is shorter than its reference sample "
            f"({n_ch} × {width} bytes); it was truncated (check the MTU)"
        )
        raise DecodeError(msg, offset=len(payload), field="reference_sample")
    raw = np.frombuffer(payload, dtype=np.uint8, count=n_ch * width, offset=pos)
    ref = _sign_extend(_le_ints(raw.reshape(n_ch, width), width), resolution_bits)
    pos = ref_end
    parts: list[npt.NDArray[np.int64]] = [ref.reshape(1, n_ch)]
    while pos < len(payload):
        if pos + 2 > len(payload):
            msg = "compressed frame ends inside a block header; it was truncated"
            raise DecodeError(msg, offset=pos, field="block_header")
        bits, count = payload[pos], payload[pos + 1]
        if bits > 32 or count == 0:
            msg = (
                f"delta block of {bits} bits × {count} samples is impossible (1-32 bits, "
                "at least 1 sample); the frame is corrupted"
            )
            raise DecodeError(msg, offset=pos, field="delta_bits" if count else "sample_count")
        n_bytes = math.ceil(bits * n_ch * count / 8)
        start = pos + 2
        if start + n_bytes > len(payload):
            msg = (
                f"delta block announces {count} samples × {n_ch} channels × {bits} bits "
                f"({n_bytes} bytes) but {len(payload) - start} remain; it was truncated"
            )
            raise DecodeError(msg, offset=len(payload), field="deltas")
        if bits == 0:
            parts.append(np.zeros((count, n_ch), dtype=np.int64))
        else:
            packed = np.frombuffer(payload, dtype=np.uint8, count=n_bytes, offset=start)
            bit_arr = np.unpackbits(packed, bitorder="little")[: bits * n_ch * count]
            weights = np.int64(1) << np.arange(bits, dtype=np.int64)
            values = bit_arr.reshape(count * n_ch, bits).astype(np.int64) @ weights
            parts.append(_sign_extend(values, bits).reshape(count, n_ch))
        pos = start + n_bytes
    stacked = np.concatenate(parts, axis=0)  # reference then deltas, (n, n_ch)
    samples: npt.NDArray[np.int64] = np.cumsum(stacked, axis=0).T
    return np.ascontiguousarray(samples)


def decode_pmd_frame(
    payload: bytes,
    *,
    resolution_bits: int | None = None,
    channels: int | None = None,
) -> PmdFrame:
    """Decode one PMD data frame (raw or delta-compressed) to integer samples.

    Parameters
    ----------
    payload : bytes
        The notification value.
    resolution_bits : int or None
        Resolution of a compressed frame's reference sample when its frame type names no raw
        format (ECG: 14); ``None`` takes the frame type's.
    channels : int or None
        Channel count for such frames (ECG: 1, ACC: 3 by default).

    Returns
    -------
    PmdFrame

    Raises
    ------
    DecodeError
        A header cut short, an unknown measurement or frame type, or samples that do not fill
        the frame (``offset`` and ``field`` say where).
    """
    payload = bytes(payload)
    if len(payload) < DATA_HEADER_BYTES:
        msg = f"PMD frame of {len(payload)} bytes is shorter than its 10-byte header"
        raise DecodeError(msg, offset=len(payload), field="header")
    mtype = payload[0] & _TYPE_MASK
    if mtype not in (MeasurementType.ACC, MeasurementType.ECG):
        msg = (
            f"PMD measurement type {payload[0]} is not streamed by crampsense (ACC 2, ECG 0); "
            "the sensor sends a stream nobody started"
        )
        raise DecodeError(msg, offset=0, field="measurement_type")
    (timestamp,) = struct.unpack_from("<Q", payload, 1)
    ft_byte = payload[9]
    compressed = bool(ft_byte & _COMPRESSED_BIT)
    frame_type = ft_byte & _FRAME_TYPE_MASK
    fmt = raw_resolution_bits(mtype, frame_type)
    if compressed:
        if fmt is not None and resolution_bits is None:
            n_ch, bits = fmt
        else:
            default_ch = 1 if mtype == MeasurementType.ECG else 3
            n_ch = int(channels) if channels is not None else default_ch
            bits = int(resolution_bits) if resolution_bits is not None else (
                fmt[1] if fmt is not None else _ECG_COMPRESSED_DEFAULT_BITS
            )
        samples = _decode_delta_body(payload, n_ch, bits)
    else:
        if fmt is None:
            msg = (
                f"PMD {_name(MeasurementType, mtype)} frame type {frame_type} is unknown "
                "(ACC 0/1/2, ECG 0); update crampsense for this firmware"
            )
            raise DecodeError(msg, offset=9, field="frame_type")
        n_ch, bits = fmt
        width = bits // 8
        body = len(payload) - DATA_HEADER_BYTES
        step = n_ch * width
        if body == 0 or body % step:
            msg = (
                f"raw {_name(MeasurementType, mtype)} frame body of {body} bytes is not a "
                f"whole number of {step}-byte samples; it was truncated (check the MTU)"
            )
            raise DecodeError(msg, offset=len(payload) - body % step if body else len(payload),
                              field="samples")
        raw = np.frombuffer(payload, dtype=np.uint8, offset=DATA_HEADER_BYTES)
        ints = _sign_extend(_le_ints(raw.reshape(-1, n_ch, width), width), bits)
        samples = np.ascontiguousarray(ints.T)
    return PmdFrame(mtype, int(timestamp), frame_type, compressed, samples)


# --------------------------------------------------------------------------- protocol

#: Raw frames of one length are decoded together only when at least this many share it.
_MIN_BATCH_PACKETS: Final = 8
#: Device timestamps are ns.
_TICK_HZ: Final = 1e9
#: PMD frames carry no sequence number; the builder needs a modulus anyway (never used).
_SEQ_MODULO_UNUSED: Final = 2**16


class PolarPmdProtocol(DeviceProtocol):
    """A Polar sensor streaming over PMD: leg acceleration (and ECG on the H10).

    Parameters
    ----------
    model : str
        ``"h10"``, ``"verity-sense"`` or ``"oh1"`` (names such as ``"Polar H10"`` work too).
    acc_fs_hz : int or None
        Accelerometer rate; ``None`` takes the model's default (H10 200, Verity Sense 52,
        OH1 50 Hz).
    acc_range_g : int or None
        Full scale (±g); ``None``: the model's default (8).
    acc_resolution_bits : int
        Accelerometer resolution to request (16).
    acc_factor : float
        Multiplier from wire values to mG (1.0 on every model crampsense knows; a start
        response may report another factor).
    ecg : bool or None
        Stream ECG as well; ``None`` means "if the model has it" (H10 only).
    ecg_fs_hz, ecg_resolution_bits : int
        ECG settings (130 Hz, 14 bits).

    Raises
    ------
    ConfigError
        An unknown model or a setting the model does not support.
    """

    family = "polar-pmd"
    display_name = "Polar PMD sensor (H10, Verity Sense, OH1)"
    min_mtu = MIN_MTU

    def __init__(
        self,
        model: str = "h10",
        *,
        acc_fs_hz: int | None = None,
        acc_range_g: int | None = None,
        acc_resolution_bits: int = 16,
        acc_factor: float = 1.0,
        ecg: bool | None = None,
        ecg_fs_hz: int = 130,
        ecg_resolution_bits: int = 14,
    ) -> None:
        spec = _model(model)
        fs = spec.acc_default_hz if acc_fs_hz is None else int(acc_fs_hz)
        rng = spec.acc_default_range_g if acc_range_g is None else int(acc_range_g)
        checks = (
            ("polar.acc_fs_hz", fs, spec.acc_rates_hz),
            ("polar.acc_range_g", rng, spec.acc_ranges_g),
            ("polar.acc_resolution_bits", int(acc_resolution_bits), spec.acc_resolutions_bits),
        )
        for key, value, allowed in checks:
            if value not in allowed:
                setting = key.split(".")[1]
                msg = f"{spec.name} does not support {setting}={value}; use one of {allowed}"
                raise ConfigError(msg, key=key)
        want_ecg = spec.has_ecg if ecg is None else bool(ecg)
        if want_ecg and not spec.has_ecg:
            msg = f"{spec.name} has no ECG; set polar.ecg = false (only the H10 streams ECG)"
            raise ConfigError(msg, key="polar.ecg")
        if want_ecg and (
            int(ecg_fs_hz) not in spec.ecg_rates_hz
            or int(ecg_resolution_bits) not in spec.ecg_resolutions_bits
        ):
            msg = (
                f"{spec.name} ECG runs at {spec.ecg_rates_hz} Hz and {spec.ecg_resolutions_bits} "
                f"bits, not {ecg_fs_hz} Hz / {ecg_resolution_bits} bits; use those"
            )
            raise ConfigError(msg, key="polar.ecg_fs_hz")
        if not (math.isfinite(acc_factor) and acc_factor > 0):
            msg = f"polar.acc_factor must be a positive number, got {acc_factor!r}; use 1.0"
            raise ConfigError(msg, key="polar.acc_factor")
        self.spec = spec
        self.model = spec.key
        self.acc_fs_hz = fs
        self.acc_range_g = rng
        self.acc_resolution_bits = int(acc_resolution_bits)
        self.acc_factor = float(acc_factor)
        self.ecg = want_ecg
        self.ecg_fs_hz = int(ecg_fs_hz)
        self.ecg_resolution_bits = int(ecg_resolution_bits)

    # ------------------------------------------------------------------ discovery

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        """Any Polar PMD sensor: the PMD service advertised, or a known model name."""
        if any(u.lower() == SERVICE_UUID for u in service_uuids):
            return True
        return model_from_name(local_name) is not None

    def for_name(self, local_name: str | None) -> PolarPmdProtocol:
        """This protocol for the model ``local_name`` names (itself if unknown or the same)."""
        key = model_from_name(local_name)
        if key is None or key == self.model:
            return self
        return PolarPmdProtocol(key, ecg=MODELS[key].has_ecg)

    def for_advertisement(self, local_name: str | None) -> DeviceProtocol:
        """The model the advertised name names (``"Polar Sense 1A000A02"`` → Verity Sense)."""
        return self.for_name(local_name)

    def configure(self, device_info: Mapping[str, str]) -> DeviceProtocol:
        """The model named by the Device Information model string (e.g. ``"Polar H10"``).

        A different model than configured gets that model's defaults (another model's rates
        would be refused); the same model keeps this configuration.
        """
        return self.for_name(device_info.get("model"))

    def capabilities(self) -> tuple[Capability, ...]:
        caps = [Capability("acc", ACC_CHANNELS, ACC_UNIT, float(self.acc_fs_hz))]
        if self.ecg:
            caps.append(Capability("ecg", ECG_CHANNELS, ECG_UNIT, float(self.ecg_fs_hz)))
        return tuple(caps)

    def control_uuids(self) -> tuple[str, ...]:
        return (CONTROL_UUID,)

    def data_uuids(self) -> tuple[str, ...]:
        return (DATA_UUID,)

    # ------------------------------------------------------------------ commands

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        """For each stream: get settings (checked against this configuration), then start.

        ``device_time_ns`` is unused: PMD has no set-time command (the clock is set over
        Polar's file transfer service, which crampsense does not use); timestamps are
        reconciled with host time by the timeline instead.
        """
        del device_time_ns
        writes = [
            GattWrite(CONTROL_UUID, encode_get_settings(MeasurementType.ACC), True, True),
            GattWrite(
                CONTROL_UUID,
                encode_start_acc(self.acc_fs_hz, self.acc_range_g, self.acc_resolution_bits),
                True, True,
            ),
        ]
        if self.ecg:
            writes += [
                GattWrite(CONTROL_UUID, encode_get_settings(MeasurementType.ECG), True, True),
                GattWrite(
                    CONTROL_UUID, encode_start_ecg(self.ecg_fs_hz, self.ecg_resolution_bits),
                    True, True,
                ),
            ]
        return tuple(writes)

    def stop_commands(self) -> tuple[GattWrite, ...]:
        types = [MeasurementType.ACC] + ([MeasurementType.ECG] if self.ecg else [])
        return tuple(GattWrite(CONTROL_UUID, encode_stop(t), True, True) for t in types)

    def check_response(self, char_uuid: str, payload: bytes) -> None:
        """Raise :class:`~crampsense.errors.ProtocolError` unless the answer is a success.

        ``ALREADY_IN_STATE`` passes (the goal, running or stopped, holds). A get-settings
        answer must list this configuration's rate, range and resolution. A "measurement
        stopped" message instead of an answer is an error too (the sensor is off the body).
        """
        if char_uuid.lower() != CONTROL_UUID:
            return
        payload = bytes(payload)
        stopped = parse_measurement_stopped(payload)
        if payload[:1] == bytes([MEASUREMENT_STOPPED]):
            names = ", ".join(_name(MeasurementType, t) for t in stopped) or "all"
            msg = (
                f"Polar sensor stopped its measurement ({names}) instead of answering; it is "
                "probably off the body or charging: wear it and reconnect"
            )
            raise ProtocolError(msg)
        resp = parse_response(payload)
        what = f"{_name(Opcode, resp.opcode)} {_name(MeasurementType, resp.measurement_type)}"
        if resp.status == Status.ALREADY_IN_STATE:
            logger.debug("Polar %s: already in state", what)
            return
        if not resp.ok:
            name = _name(Status, resp.status)
            advice = (
                _STATUS_ADVICE[Status(resp.status)]
                if resp.status in Status._value2member_map_
                else "the firmware is newer than this crampsense; update crampsense"
            )
            msg = f"Polar sensor refused {what} with status {name}: {advice}"
            raise ProtocolError(msg)
        if resp.opcode == Opcode.GET_SETTINGS:
            self._check_settings(resp)

    def _check_settings(self, resp: ControlResponse) -> None:
        try:
            settings = resp.settings()
        except DecodeError as exc:
            msg = f"Polar settings answer does not parse ({exc}); update the sensor firmware"
            raise ProtocolError(msg) from exc
        if resp.measurement_type == MeasurementType.ACC:
            wanted = {
                SettingType.SAMPLE_RATE: (self.acc_fs_hz, "polar.acc_fs_hz"),
                SettingType.RANGE: (self.acc_range_g, "polar.acc_range_g"),
                SettingType.RESOLUTION: (self.acc_resolution_bits, "polar.acc_resolution_bits"),
            }
        elif resp.measurement_type == MeasurementType.ECG:
            wanted = {
                SettingType.SAMPLE_RATE: (self.ecg_fs_hz, "polar.ecg_fs_hz"),
                SettingType.RESOLUTION: (self.ecg_resolution_bits, "polar.ecg_resolution_bits"),
            }
        else:
            return
        for kind, (value, key) in wanted.items():
            offered = settings.get(kind)
            if offered is not None and value not in offered:
                shown = "/".join(str(int(v)) for v in offered)
                msg = (
                    f"this Polar sensor offers {kind.name.lower()} {shown}, not {value}; set "
                    f"{key} to one of those (is polar.model right?)"
                )
                raise ProtocolError(msg)

    def on_control(self, char_uuid: str, payload: bytes) -> ControlEvent | None:
        """``01 [types]`` (the sensor stopped streaming on its own) -> ``restart``."""
        if char_uuid.lower() != CONTROL_UUID or not payload:
            return None
        payload = bytes(payload)
        if payload[0] == MEASUREMENT_STOPPED:
            names = ", ".join(_name(MeasurementType, t) for t in payload[1:]) or "all"
            return ControlEvent("restart", f"Polar sensor stopped measurement: {names}")
        if payload[0] == RESPONSE_CODE:
            return None
        return ControlEvent("mark", f"unknown Polar control message {payload.hex(' ')}")

    # ------------------------------------------------------------------ decoding

    def _stream_of(self, mtype: int) -> tuple[str, tuple[str, ...], str, float, float]:
        if mtype == MeasurementType.ACC:
            return "acc", ACC_CHANNELS, ACC_UNIT, float(self.acc_fs_hz), self.acc_factor
        return "ecg", ECG_CHANNELS, ECG_UNIT, float(self.ecg_fs_hz), 1.0

    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode a data notification; control-point indications give ``[]``.

        The block's ``device_ticks`` is the device time of its *first* sample (ns since
        2000-01-01): the frame timestamp minus ``n - 1`` nominal periods. ``sequence`` is
        ``None`` (PMD has none).

        Raises
        ------
        DecodeError
            Malformed bytes or a characteristic that is not the PMD data characteristic.
        """
        uuid = frame.characteristic_uuid.lower()
        if uuid == CONTROL_UUID:
            return []
        if uuid != DATA_UUID:
            msg = f"characteristic {frame.characteristic_uuid} is not the PMD data characteristic"
            raise DecodeError(msg, offset=0, field="characteristic_uuid")
        payload = frame.payload
        ecg_compressed = (
            len(payload) >= DATA_HEADER_BYTES
            and payload[0] & _TYPE_MASK == MeasurementType.ECG
            and bool(payload[9] & _COMPRESSED_BIT)
        )
        f = decode_pmd_frame(
            payload, resolution_bits=self.ecg_resolution_bits if ecg_compressed else None
        )
        stream, channels, unit, fs, factor = self._stream_of(f.measurement_type)
        values = f.samples.astype(np.float32)
        if factor != 1.0:
            values *= np.float32(factor)
        return [
            SampleBlock(
                frame.device_address, stream, channels, unit, fs, values,
                device_ticks=self._first_sample_ns(f.timestamp_ns, f.n_samples, fs),
                sequence=None, flags=0,
            )
        ]

    @staticmethod
    def _first_sample_ns(timestamp_ns: int, n: int, fs_hz: float) -> int:
        return int(timestamp_ns) - round((n - 1) * 1e9 / fs_hz)

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode many raw frames of one length and format at once (vectorised).

        Raw frames (the H10's ACC and ECG) have a fixed length per format, so frames of one
        ``(length, type byte, frame type byte)`` are read as one byte matrix. Compressed
        frames (variable length) and groups of fewer than :data:`_MIN_BATCH_PACKETS` are left
        to :meth:`decode`. Values and device ticks are bit for bit those of :meth:`decode`.
        """
        del host_time_ns  # the frames carry device time
        if char_uuid.lower() != DATA_UUID:
            return None
        total = len(payloads)
        if total == 0:
            return []
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=total)
        heads = np.zeros((total, 2), dtype=np.int64)
        long_enough = np.flatnonzero(lengths >= DATA_HEADER_BYTES)
        for i in long_enough.tolist():  # two bytes per frame; the samples are vectorised
            p = payloads[i]
            heads[i, 0], heads[i, 1] = p[0], p[9]
        key = lengths * 65536 + heads[:, 0] * 256 + heads[:, 1]
        out: list[PacketBatch] = []
        for k in np.unique(key[long_enough]).tolist():
            length, rest = divmod(int(k), 65536)
            type_byte, ft_byte = divmod(rest, 256)
            if ft_byte & _COMPRESSED_BIT:
                continue
            fmt = raw_resolution_bits(type_byte & _TYPE_MASK, ft_byte)
            if fmt is None or type_byte not in (MeasurementType.ACC, MeasurementType.ECG):
                continue
            n_ch, bits = fmt
            width = bits // 8
            body = length - DATA_HEADER_BYTES
            if body <= 0 or body % (n_ch * width):
                continue
            index = np.flatnonzero(key == k).astype(np.int64)
            if index.size < _MIN_BATCH_PACKETS:
                continue
            rows = np.frombuffer(
                b"".join([payloads[i] for i in index.tolist()]), dtype=np.uint8
            ).reshape(index.size, length)
            count = body // (n_ch * width)
            ts_u64 = np.ascontiguousarray(rows[:, 1:9]).view("<u8").ravel()
            fits = ts_u64 < np.uint64(2**63)  # int64 device ticks; larger ones go to decode
            if not fits.all():
                rows, index = rows[fits], index[fits]
                if index.size == 0:
                    continue
            ts = ts_u64[fits].astype(np.int64)
            ints = _sign_extend(
                _le_ints(rows[:, DATA_HEADER_BYTES:].reshape(index.size, count, n_ch, width),
                         width),
                bits,
            )  # (packets, count, n_ch)
            values = ints.transpose(2, 0, 1).reshape(n_ch, index.size * count).astype(np.float32)
            stream, channels, unit, fs, factor = self._stream_of(type_byte)
            if factor != 1.0:
                values *= np.float32(factor)
            first = ts - round((count - 1) * 1e9 / fs)
            out.append(
                PacketBatch(
                    stream=stream, channels=channels, unit=unit, fs_hz=fs, index=index,
                    values=values, n_samples=np.full(index.size, count, dtype=np.int64),
                    sequence=np.full(index.size, -1, dtype=np.int64), device_ticks=first,
                    flags=np.zeros(index.size, dtype=np.int64),
                )
            )
        return out

    def timeline_builder(self, stream: str) -> TimelineBuilder | None:
        """A builder for ``"acc"`` or ``"ecg"`` on device time (ns since 2000, no wrap).

        PMD frames have no sequence number: the builder segments on host silence and on
        device time that disagrees with host time. The H10's clock jumping back to
        2019-01-01 after a power cycle is such a disagreement: the builder starts a new epoch
        placed by host receive time, so the night never jumps by years.
        """
        if stream == "acc":
            fs = self.acc_fs_hz
        elif stream == "ecg" and self.ecg:
            fs = self.ecg_fs_hz
        else:
            return None
        return TimelineBuilder(stream, float(fs), _TICK_HZ, _SEQ_MODULO_UNUSED, TIMESTAMP_MODULO)

    # ------------------------------------------------------------------ metadata

    def metadata(self) -> Mapping[str, str]:
        return {
            "family": self.family,
            "model": self.model,
            "acc_fs_hz": str(self.acc_fs_hz),
            "acc_range_g": str(self.acc_range_g),
            "acc_resolution_bits": str(self.acc_resolution_bits),
            "acc_factor": repr(self.acc_factor),
            "acc_channels": ",".join(ACC_CHANNELS),
            "ecg": "true" if self.ecg else "false",
            "ecg_fs_hz": str(self.ecg_fs_hz),
            "ecg_resolution_bits": str(self.ecg_resolution_bits),
            "tick_hz": str(int(_TICK_HZ)),
            "time_zero": "2000-01-01T00:00:00Z",
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> PolarPmdProtocol:
        """Rebuild the protocol from :meth:`metadata` (missing keys take the defaults).

        Raises
        ------
        ConfigError
            A stored value that does not parse or that the model does not support.
        """
        kwargs: dict[str, int | float | bool | None] = {}
        try:
            for key in ("acc_fs_hz", "acc_range_g", "acc_resolution_bits", "ecg_fs_hz",
                        "ecg_resolution_bits"):
                if key in metadata:
                    kwargs[key] = int(metadata[key])
            if "acc_factor" in metadata:
                kwargs["acc_factor"] = float(metadata["acc_factor"])
        except ValueError as exc:
            msg = (
                f"Polar session metadata {dict(metadata)!r} holds a value that is not a "
                "number; the session file is damaged or from another program"
            )
            raise ConfigError(msg, key="polar") from exc
        if "ecg" in metadata:
            kwargs["ecg"] = metadata["ecg"].strip().lower() == "true"
        model = metadata.get("model", "h10")
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def with_options(self, **changes: int | float | bool) -> PolarPmdProtocol:
        """A copy with some options changed (validated like the constructor)."""
        current: dict[str, int | float | bool] = {
            "acc_fs_hz": self.acc_fs_hz, "acc_range_g": self.acc_range_g,
            "acc_resolution_bits": self.acc_resolution_bits, "acc_factor": self.acc_factor,
            "ecg": self.ecg, "ecg_fs_hz": self.ecg_fs_hz,
            "ecg_resolution_bits": self.ecg_resolution_bits,
        }
        current.update(changes)
        return PolarPmdProtocol(self.model, **current)  # type: ignore[arg-type]

