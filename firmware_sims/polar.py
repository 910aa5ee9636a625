"""Firmware of a Polar PMD sensor (H10, Verity Sense, OH1), simulated.

The simulator writes the PMD wire format with its own encoders (``encode_*`` below, written
from the specification, independent of the host's decoder in :mod:`crampsense.devices.polar`)
and has the sensors' documented behaviour:

- GATT: the PMD service (control point: read, write, indicate; data: notify), the standard
  Heart Rate service (1 Hz measurements), Battery and Device Information;
- the control point answers only on a link whose MTU is at least 232 (below, silence, as the
  device does); with ``requires_pairing=True`` every control-point write fails with ATT error
  0x05 (Insufficient Authentication) until :attr:`PolarSensor.paired` is set by the backend;
- a control-point read gives the feature bitmaps; get settings answers with setting TLVs;
  start validates every setting and answers each error status of PMD (``F0 02 type status``);
  :meth:`PolarSensor.fail_next` makes the next command fail with any status (for tests);
- data frames carry the device time (ns since 2000-01-01) of their last sample; a frame leaves
  when its last sample is taken; ACC frames are raw int16 (H10) or delta-compressed (Verity
  Sense, OH1), ECG (H10) raw int24 µV; frames hold what fits ``mtu - 3`` bytes;
- the clock runs from ``device_time0_ns`` at power-on; after a power cycle
  (``SimulatedWorld.power_off/power_on``) it restarts at 2019-01-01T00:00:00Z (a clock that
  was never set), and streaming stops;
- :meth:`PolarSensor.take_off` (the sensor leaves the body) and :meth:`PolarSensor.interrupt`
  stop the measurements and indicate ``01 [types]``; while off the body a start answers
  ``INVALID_STATE``; :attr:`PolarSensor.in_charger` makes starts answer ``DEVICE_IN_CHARGER``.

Acceleration comes from a :class:`~firmware_sims.peripheral.SignalSource` (the leg's
accelerometer; when the stream rate differs from the source's the nearest earlier source
sample is taken); the H10's ECG is synthesised by :func:`synthetic_ecg_uv`.
"""

from __future__ import annotations

import logging
import math
import struct
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.gatt import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    DEVICE_INFORMATION_UUIDS,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
)
from crampsense.devices.polar import (
    CLOCK_RESET_NS,
    CONTROL_UUID,
    DATA_HEADER_BYTES,
    DATA_UUID,
    FEATURES_READ,
    MEASUREMENT_STOPPED,
    MIN_MTU,
    MODELS,
    RESPONSE_CODE,
    SERVICE_UUID,
    MeasurementType,
    ModelSpec,
    Opcode,
    SettingType,
    Status,
)
from crampsense.errors import ConfigError, DecodeError
from firmware_sims.heart_rate import encode_heart_rate_measurement
from firmware_sims.peripheral import (
    ATT_HEADER_BYTES,
    ATT_INSUFFICIENT_AUTHENTICATION,
    ATT_READ_NOT_PERMITTED,
    ATT_WRITE_NOT_PERMITTED,
    Advertisement,
    AttError,
    CharDef,
    Link,
    ServiceDef,
    SignalSource,
    SimulatedPeripheral,
)

__all__ = [
    "DEFAULT_DEVICE_TIME0_NS",
    "PolarSensor",
    "encode_acc_frame",
    "encode_delta_frame",
    "encode_ecg_frame",
    "encode_features",
    "encode_measurement_stopped",
    "encode_raw_frame",
    "encode_response",
    "encode_settings",
    "read_settings",
    "synthetic_ecg_uv",
    "synthetic_hr_bpm",
]

logger = logging.getLogger(__name__)

#: Device clock at power-on (ns since 2000-01-01): 2025-01-10T22:00:00Z, a clock the phone
#: app set recently. A power cycle resets it to 2019-01-01 (``CLOCK_RESET_NS``).
DEFAULT_DEVICE_TIME0_NS: Final = (1_736_546_400 - 946_684_800) * 10**9
#: Delta blocks of this many samples: several blocks per frame, as the sensors send.
DEFAULT_BLOCK_SAMPLES: Final = 16
#: Heart Rate Measurement period (s).
HR_PERIOD_S: Final = 1.0
#: ECG shape as Gaussians over the beat's phase (0-1): (centre, width, amplitude µV) of the
#: P, Q, R, S and T waves; a lead-I-like beat of ~1.2 mV R wave (textbook morphology, after
#: McSharry et al., IEEE TBME 50(3), 2003, without their ODE).
_ECG_WAVES: Final = (
    (0.18, 0.030, 120.0),
    (0.300, 0.012, -150.0),
    (0.330, 0.012, 1200.0),
    (0.360, 0.014, -300.0),
    (0.600, 0.050, 300.0),
)
#: Respiratory baseline wander of chest ECG: 40 µV at 0.25 Hz (15 breaths/min).
_ECG_WANDER_UV: Final = 40.0
_ECG_WANDER_HZ: Final = 0.25
#: Sleeping heart rate: a seeded mean of 52-62 bpm, ±2-5 bpm over a 5-minute cycle.
_HR_MEAN_BPM: Final = (52.0, 62.0)
_HR_SWING_BPM: Final = (2.0, 5.0)
_HR_PERIOD_S: Final = 300.0
#: ECG values are int24 µV on the wire.
_I24_MAX: Final = 2**23 - 1
_NS_PER_S: Final = 1_000_000_000


def _hr_params(seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng([seed, 0x48])
    return (
        float(rng.uniform(*_HR_MEAN_BPM)),
        float(rng.uniform(*_HR_SWING_BPM)),
        float(rng.uniform(0.0, 2 * np.pi)),
    )


def synthetic_hr_bpm(t_s: npt.ArrayLike, seed: int = 0) -> npt.NDArray[np.float64]:
    """The heart rate behind :func:`synthetic_ecg_uv` (bpm), a seeded slow sinusoid."""
    mean, swing, phase = _hr_params(seed)
    t = np.asarray(t_s, dtype=np.float64)
    out: npt.NDArray[np.float64] = mean + swing * np.sin(2 * np.pi * t / _HR_PERIOD_S + phase)
    return out


def synthetic_ecg_uv(t_s: npt.ArrayLike, seed: int = 0) -> npt.NDArray[np.float64]:
    """A plausible chest ECG (µV) at times ``t_s`` (s), closed form in time.

    The beat phase is the integral of :func:`synthetic_hr_bpm` / 60 (closed form, so any
    chunking gives the same numbers); within a beat the P-QRS-T complex is a sum of Gaussians
    over the phase fraction (:data:`_ECG_WAVES`), plus respiratory baseline wander.

    Parameters
    ----------
    t_s : array_like
        Times in seconds, any shape.
    seed : int
        Seed of the heart-rate trace.

    Returns
    -------
    ndarray of float64, same shape as ``t_s``
        ECG in µV (R peaks about 1.2 mV).
    """
    mean, swing, phase = _hr_params(seed)
    t = np.asarray(t_s, dtype=np.float64)
    w = 2 * np.pi / _HR_PERIOD_S
    beats = (mean * t + swing / w * (np.cos(phase) - np.cos(w * t + phase))) / 60.0
    frac = beats - np.floor(beats)
    ecg = _ECG_WANDER_UV * np.sin(2 * np.pi * _ECG_WANDER_HZ * t)
    for centre, width, amplitude in _ECG_WAVES:
        ecg = ecg + amplitude * np.exp(-0.5 * ((frac - centre) / width) ** 2)
    out: npt.NDArray[np.float64] = ecg
    return out


# ------------------------------------------------------------------ the wire (firmware side)
# Written from Polar's PMD description (docs: PROTOCOLS.md section 1), not with the host's
# codec in crampsense.devices.polar: a simulator that borrowed the decoder's codec could not
# catch a codec bug. Only spec constants (UUIDs, opcodes, type numbers) are shared.

#: struct code of each setting's values: u16 rate, resolution and range, u8 channels, f32 factor.
_SETTING_CODES: Final[Mapping[int, str]] = {
    SettingType.SAMPLE_RATE: "<H",
    SettingType.RESOLUTION: "<H",
    SettingType.RANGE: "<H",
    SettingType.CHANNELS: "<B",
    SettingType.FACTOR: "<f",
}
#: Raw frames: (measurement type, frame type) -> (channels, bytes per value). ACC frame types
#: 0/1/2 carry int8/int16/int24 mG, ECG frame type 0 int24 µV.
_RAW_FORMATS: Final[Mapping[tuple[int, int], tuple[int, int]]] = {
    (MeasurementType.ACC, 0): (3, 1),
    (MeasurementType.ACC, 1): (3, 2),
    (MeasurementType.ACC, 2): (3, 3),
    (MeasurementType.ECG, 0): (1, 3),
}
_DELTA_FLAG: Final = 0x80


def encode_features(types: Sequence[int]) -> bytes:
    """The control point's read value ``0F`` + a u16 bitmap with bit ``t`` per type ``t``."""
    bitmap = sum(1 << int(t) for t in set(types))
    return bytes([FEATURES_READ]) + bitmap.to_bytes(2, "little")


def encode_response(
    opcode: int, measurement_type: int, status: int, params: bytes = b"", *, more: int = 0
) -> bytes:
    """A response indication ``F0 [opcode][type][status][more][params...]``."""
    head = (RESPONSE_CODE, opcode, measurement_type, status, more)
    return bytes(v & 0xFF for v in head) + params


def encode_measurement_stopped(types: Sequence[int]) -> bytes:
    """The unsolicited ``01 [types...]`` indication."""
    return bytes([MEASUREMENT_STOPPED, *(int(t) for t in types)])


def encode_settings(settings: Sequence[tuple[int, Sequence[float]]]) -> bytes:
    """Setting TLVs ``[type][count][count × value]`` (a get-settings answer's parameters)."""
    out = bytearray()
    for kind, values in settings:
        code = _SETTING_CODES[kind]
        out += bytes([kind, len(values)])
        out += b"".join(struct.pack(code, v if code == "<f" else int(v)) for v in values)
    return bytes(out)


def read_settings(tlvs: bytes) -> dict[int, tuple[float, ...]] | Status:
    """A start command's setting TLVs as ``{type: values}``, or the status that refuses them
    (an unknown type: invalid parameter; a TLV cut short: invalid length)."""
    out: dict[int, tuple[float, ...]] = {}
    i = 0
    while i < len(tlvs):
        code = _SETTING_CODES.get(tlvs[i])
        if code is None:
            return Status.INVALID_PARAMETER
        if i + 2 > len(tlvs):
            return Status.INVALID_LENGTH
        end = i + 2 + tlvs[i + 1] * struct.calcsize(code)
        if end > len(tlvs):
            return Status.INVALID_LENGTH
        out[tlvs[i]] = tuple(v for (v,) in struct.iter_unpack(code, tlvs[i + 2 : end]))
        i = end
    return out


def _fits(values: npt.NDArray[np.int64], bits: int, field: str) -> None:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if values.size and not (lo <= values.min() and values.max() <= hi):
        msg = (
            f"sample values {values.min()}..{values.max()} do not fit {bits}-bit signed "
            f"fields ({lo}..{hi}); clip them first"
        )
        raise DecodeError(msg, offset=DATA_HEADER_BYTES, field=field)


def _frame_header(measurement_type: int, timestamp_ns: int, frame_type_byte: int) -> bytes:
    """Type, u64 device time of the last sample (ns since 2000-01-01), frame type byte."""
    if not 0 <= timestamp_ns < 2**64:
        msg = f"timestamp {timestamp_ns} ns does not fit a u64; pass ns since 2000-01-01"
        raise DecodeError(msg, offset=1, field="timestamp")
    return struct.pack("<BQB", measurement_type, timestamp_ns, frame_type_byte)


def _le(values: npt.NDArray[np.int64], width: int) -> bytes:
    """Each value as ``width`` little-endian two's-complement bytes, in order."""
    return (values.astype("<i8").view(np.uint8).reshape(-1, 8)[:, :width]).tobytes()


def encode_raw_frame(
    measurement_type: int, timestamp_ns: int, frame_type: int, samples: npt.ArrayLike
) -> bytes:
    """A raw data frame: header, then each sample's channels as little-endian ints.

    ``samples`` has shape (channels, n) in mG (ACC) or µV (ECG).
    """
    n_ch, width = _RAW_FORMATS[int(measurement_type), int(frame_type)]
    arr = np.asarray(samples, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[0] != n_ch:
        msg = f"samples of shape {arr.shape} for a {n_ch}-channel frame; pass ({n_ch}, n)"
        raise DecodeError(msg, offset=DATA_HEADER_BYTES, field="samples")
    _fits(arr, 8 * width, "samples")
    return _frame_header(measurement_type, timestamp_ns, frame_type) + _le(arr.T.ravel(), width)


def encode_acc_frame(timestamp_ns: int, samples_mg: npt.ArrayLike, frame_type: int = 1) -> bytes:
    """A raw ACC frame, ``samples_mg`` of shape (3, n).

    Examples
    --------
    The SDK's raw test vector (PROTOCOLS.md):

    >>> encode_acc_frame(2_000_000_000, [[-9, -8], [-1, -2], [999, 997]]).hex(" ")
    '02 00 94 35 77 00 00 00 00 01 f7 ff ff ff e7 03 f8 ff fe ff e5 03'
    """
    return encode_raw_frame(MeasurementType.ACC, timestamp_ns, frame_type, samples_mg)


def encode_ecg_frame(timestamp_ns: int, samples_uv: npt.ArrayLike) -> bytes:
    """A raw ECG frame (frame type 0, int24 µV), ``samples_uv`` of shape (n,)."""
    arr = np.asarray(samples_uv, dtype=np.int64).reshape(1, -1)
    return encode_raw_frame(MeasurementType.ECG, timestamp_ns, 0, arr)


def encode_delta_frame(
    measurement_type: int,
    timestamp_ns: int,
    frame_type: int,
    samples: npt.ArrayLike,
    *,
    resolution_bits: int | None = None,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    min_delta_bits: int = 1,
) -> bytes:
    """A delta-compressed frame (frame type byte ``0x80 | frame_type``).

    The first sample is the reference (``ceil(resolution / 8)`` bytes per channel), then
    blocks of up to ``block_samples`` samples: ``[delta bits][count]`` and the ``count ×
    channels`` deltas (channels interleaved per sample), each a two's-complement field of
    ``delta bits``, packed least-significant bit first. A block uses the fewest bits its
    deltas need, but at least ``min_delta_bits``.

    Examples
    --------
    The SDK's compressed test vector (PROTOCOLS.md) but for the padding bits after the last
    delta, which the device leaves as garbage (``08``) and this encoder zeros:

    >>> samples = [[-15, -20], [20, 17], [1008, 1008]]
    >>> encode_delta_frame(2, 101, 1, samples, min_delta_bits=6).hex(" ")
    '02 65 00 00 00 00 00 00 00 81 f1 ff 14 00 f0 03 06 01 7b 0f 00'
    """
    arr = np.asarray(samples, dtype=np.int64)
    n_ch, width = _RAW_FORMATS.get((int(measurement_type), int(frame_type)), (arr.shape[0], 0))
    bits = 8 * width if resolution_bits is None else int(resolution_bits)
    if arr.ndim != 2 or arr.shape[0] != n_ch or arr.shape[1] < 1 or bits < 1:
        msg = f"samples of shape {arr.shape}; pass (n_channels, n >= 1) integer samples"
        raise DecodeError(msg, offset=DATA_HEADER_BYTES, field="samples")
    if not 1 <= block_samples <= 0xFF:
        msg = f"block_samples {block_samples} is outside 1-255 (the count is a u8)"
        raise DecodeError(msg, offset=DATA_HEADER_BYTES, field="sample_count")
    _fits(arr, bits, "reference_sample")
    out = bytearray(_frame_header(measurement_type, timestamp_ns, _DELTA_FLAG | frame_type))
    out += _le(arr[:, 0], math.ceil(bits / 8))
    deltas = np.diff(arr, axis=1).T  # (n - 1, channels): sample by sample
    for start in range(0, deltas.shape[0], block_samples):
        block = deltas[start : start + block_samples]
        # two's-complement width: the largest magnitude (~v for negatives) plus a sign bit
        need = int(np.where(block < 0, ~block, block).max()).bit_length() + 1
        width_bits = max(need, min_delta_bits)
        fields = block.ravel() & ((1 << width_bits) - 1)
        lsb_first = (fields[:, None] >> np.arange(width_bits)) & 1
        out += bytes([width_bits, len(block)])
        out += np.packbits(lsb_first.astype(np.uint8).ravel(), bitorder="little").tobytes()
    return bytes(out)


@dataclass(slots=True)
class _Stream:
    """One running measurement between start and stop."""

    mtype: MeasurementType
    fs_hz: int
    range_g: int
    start_dev_ns: int  # device time of sample -1 (sample k at start + (k + 1) periods)
    start_mono_ns: int
    samples_per_frame: int
    compressed: bool
    frame_type: int
    sent: int = 0

    def device_ns(self, k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out: npt.NDArray[np.int64] = self.start_dev_ns + np.rint(
            (k + 1) * (1e9 / self.fs_hz)
        ).astype(np.int64)
        return out


class PolarSensor(SimulatedPeripheral):
    """A Polar H10, Verity Sense or OH1's firmware (see the module docstring).

    Parameters
    ----------
    address : str
        Bluetooth address.
    source : SignalSource
        What the accelerometer measures (the leg); only ``acc_mg``/``acc_fs_hz``/
        ``duration_s`` are used.
    model : str
        ``"h10"``, ``"verity-sense"`` or ``"oh1"``.
    name : str or None
        Advertised name; ``None``: ``"Polar H10 1A2B3C4D"`` style from the address.
    requires_pairing : bool
        Control-point writes need an encrypted (paired) link: ATT error 0x05 until
        :attr:`paired` is true.
    compressed : bool or None
        Send ACC as delta-compressed frames; ``None``: as the model does (H10 raw, others
        compressed).
    device_time0_ns : int
        Device clock at power-on (ns since 2000-01-01).
    drift_ppm : float
        Device clock rate error relative to the simulated clock (ppm, positive = fast).
    ecg_seed : int
        Seed of the synthetic ECG / heart rate.
    block_samples : int
        Samples per delta block in compressed frames.
    firmware : str
        Device Information firmware string.
    battery_percent : int
        Battery level reported.

    Attributes
    ----------
    paired : bool
        Set by the backend once the link is encrypted.
    worn : bool
        On the body (:meth:`take_off` / :meth:`put_on`).
    in_charger : bool
        Starts answer ``DEVICE_IN_CHARGER`` while true.
    frames_sent : int
        Data frames notified so far.
    """

    preferred_mtu = MIN_MTU

    def __init__(
        self,
        address: str,
        source: SignalSource,
        *,
        model: str = "h10",
        name: str | None = None,
        requires_pairing: bool = False,
        compressed: bool | None = None,
        device_time0_ns: int = DEFAULT_DEVICE_TIME0_NS,
        drift_ppm: float = 0.0,
        ecg_seed: int = 0,
        block_samples: int = DEFAULT_BLOCK_SAMPLES,
        firmware: str = "3.1.1",
        battery_percent: int = 90,
    ) -> None:
        key = str(model).strip().lower().replace(" ", "-")
        spec = MODELS.get(key)
        if spec is None:
            msg = f"unknown Polar model {model!r}; use one of {', '.join(MODELS)}"
            raise ConfigError(msg, key="model")
        serial = address.replace(":", "").upper()[-8:]
        super().__init__(address, name or f"{spec.name.replace('Verity ', '')} {serial}")
        self.spec: ModelSpec = spec
        self.source = source
        self.requires_pairing = bool(requires_pairing)
        self.paired = False
        self.worn = True
        self.in_charger = False
        self.compressed = bool(spec.acc_frame_type & 0x80) if compressed is None else compressed
        self.drift_ppm = float(drift_ppm)
        self.ecg_seed = int(ecg_seed)
        self.block_samples = int(block_samples)
        self.firmware = firmware
        self.battery_percent = int(battery_percent)
        self.frames_sent = 0
        self._dev0_ns = int(device_time0_ns)
        self._boot_ns = 0
        self._now_ns = 0
        self._streams: dict[MeasurementType, _Stream] = {}
        self._forced: deque[int] = deque()
        self._next_hr_ns = 0
        self._src_total = math.floor(source.duration_s * source.acc_fs_hz)

    # ------------------------------------------------------------------ clock

    def device_time_ns(self, now_ns: int) -> int:
        """Device clock (ns since 2000-01-01) at simulated monotonic ``now_ns``."""
        elapsed = max(0, now_ns - self._boot_ns)
        return self._dev0_ns + round(elapsed * (1.0 + self.drift_ppm * 1e-6))

    def power_cycle(self, now_ns: int) -> None:
        """Reboot (``SimulatedWorld.power_on``): the clock restarts at 2019-01-01, streams
        stop, the sensor is worn again."""
        self._boot_ns = now_ns
        self._dev0_ns = CLOCK_RESET_NS
        self._streams.clear()
        self._forced.clear()
        self.worn = True

    # ------------------------------------------------------------------ GATT

    def gatt(self) -> tuple[ServiceDef, ...]:
        dis = tuple(
            CharDef(DEVICE_INFORMATION_UUIDS[k], ("read",), f"{k} string")
            for k in ("manufacturer", "model", "serial", "firmware")
        )
        return (
            ServiceDef(
                HEART_RATE_SERVICE_UUID, (CharDef(HEART_RATE_MEASUREMENT_UUID, ("notify",)),)
            ),
            ServiceDef(
                SERVICE_UUID,
                (
                    CharDef(CONTROL_UUID, ("read", "write", "indicate"), "PMD control point"),
                    CharDef(DATA_UUID, ("notify",), "PMD data"),
                ),
            ),
            ServiceDef(BATTERY_SERVICE_UUID, (CharDef(BATTERY_LEVEL_UUID, ("read", "notify")),)),
            ServiceDef(DEVICE_INFORMATION_SERVICE_UUID, dis),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(
            local_name=self.name, service_uuids=(HEART_RATE_SERVICE_UUID, SERVICE_UUID)
        )

    def device_information(self) -> dict[str, str]:
        return {
            "manufacturer": "Polar Electro Oy",
            "model": self.spec.name,
            "serial": self.address.replace(":", "").upper(),
            "firmware": self.firmware,
        }

    def read(self, char_uuid: str) -> bytes:
        if char_uuid == CONTROL_UUID:
            return encode_features(sorted(self.spec.features))
        if char_uuid == BATTERY_LEVEL_UUID:
            return bytes([self.battery_percent])
        info = self.device_information()
        for field, uuid in DEVICE_INFORMATION_UUIDS.items():
            if char_uuid == uuid and field in info:
                return info[field].encode()
        raise AttError(ATT_READ_NOT_PERMITTED, f"{char_uuid} is not readable")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        if char_uuid != CONTROL_UUID:
            raise AttError(ATT_WRITE_NOT_PERMITTED, f"{char_uuid} is not writable")
        if self.requires_pairing and not self.paired:
            raise AttError(ATT_INSUFFICIENT_AUTHENTICATION, "Insufficient Authentication")
        link = self.link
        if link is None or link.mtu < MIN_MTU:
            logger.debug("%s: MTU below %d, command %s ignored", self.address, MIN_MTU,
                         bytes(data).hex(" "))
            return
        self._indicate(link, self._handle(bytes(data), link))

    def fail_next(self, status: Status | int, count: int = 1) -> None:
        """Answer the next ``count`` commands with ``status`` (tests of every error code)."""
        self._forced.extend([int(status)] * count)

    # ------------------------------------------------------------------ commands

    def _indicate(self, link: Link, payload: bytes) -> None:
        link.notify(CONTROL_UUID, payload)

    def _handle(self, data: bytes, link: Link) -> bytes:
        opcode = data[0] if data else 0
        if len(data) < 2:
            return encode_response(opcode, 0, Status.INVALID_LENGTH)
        mtype = data[1]
        if self._forced:
            return encode_response(opcode, mtype, self._forced.popleft())
        if opcode not in Opcode._value2member_map_:
            return encode_response(opcode, mtype, Status.INVALID_OPCODE)
        if mtype not in MeasurementType._value2member_map_:
            return encode_response(opcode, mtype, Status.INVALID_MEASUREMENT_TYPE)
        kind = MeasurementType(mtype)
        if kind not in self.spec.features or kind not in (MeasurementType.ACC,
                                                          MeasurementType.ECG):
            return encode_response(opcode, mtype, Status.NOT_SUPPORTED)
        if opcode == Opcode.GET_SETTINGS:
            return encode_response(opcode, mtype, Status.SUCCESS, self._settings(kind))
        if opcode == Opcode.STOP:
            if self._streams.pop(kind, None) is None:
                return encode_response(opcode, mtype, Status.ALREADY_IN_STATE)
            return encode_response(opcode, mtype, Status.SUCCESS)
        status, params = self._start(kind, data[2:], link)
        return encode_response(opcode, mtype, status, params)

    def _settings(self, kind: MeasurementType) -> bytes:
        if kind == MeasurementType.ACC:
            return encode_settings([
                (SettingType.SAMPLE_RATE, self.spec.acc_rates_hz),
                (SettingType.RESOLUTION, self.spec.acc_resolutions_bits),
                (SettingType.RANGE, self.spec.acc_ranges_g),
                (SettingType.CHANNELS, [3]),
            ])
        return encode_settings([
            (SettingType.SAMPLE_RATE, self.spec.ecg_rates_hz),
            (SettingType.RESOLUTION, self.spec.ecg_resolutions_bits),
        ])

    def _start(
        self, kind: MeasurementType, tlvs: bytes, link: Link
    ) -> tuple[Status, bytes]:
        if self.in_charger:
            return Status.DEVICE_IN_CHARGER, b""
        if not self.worn:
            return Status.INVALID_STATE, b""
        if kind in self._streams:
            return Status.ALREADY_IN_STATE, b""
        settings = read_settings(tlvs)
        if isinstance(settings, Status):
            return settings, b""
        if any(len(v) != 1 for v in settings.values()):
            return Status.INVALID_PARAMETER, b""
        acc = kind == MeasurementType.ACC
        rate = settings.get(SettingType.SAMPLE_RATE)
        resolution = settings.get(SettingType.RESOLUTION)
        rng = settings.get(SettingType.RANGE)
        if rate is None or resolution is None or (acc and rng is None):
            return Status.INVALID_PARAMETER, b""
        rates = self.spec.acc_rates_hz if acc else self.spec.ecg_rates_hz
        resolutions = self.spec.acc_resolutions_bits if acc else self.spec.ecg_resolutions_bits
        if int(rate[0]) not in rates:
            return Status.INVALID_SAMPLE_RATE, b""
        if int(resolution[0]) not in resolutions:
            return Status.INVALID_RESOLUTION, b""
        if acc and rng is not None and int(rng[0]) not in self.spec.acc_ranges_g:
            return Status.INVALID_RANGE, b""
        channels = settings.get(SettingType.CHANNELS)
        if channels is not None and int(channels[0]) != (3 if acc else 1):
            return Status.INVALID_NUMBER_OF_CHANNELS, b""
        compressed = self.compressed and acc
        n_ch, width = (3, 2) if acc else (1, 3)
        room = link.mtu - ATT_HEADER_BYTES - DATA_HEADER_BYTES
        now = link.now_ns()
        self._streams[kind] = _Stream(
            mtype=kind, fs_hz=int(rate[0]), range_g=int(rng[0]) if rng else 0,
            start_dev_ns=self.device_time_ns(now), start_mono_ns=now,
            samples_per_frame=max(1, room // (n_ch * width)), compressed=compressed,
            frame_type=1 if acc else 0,
        )
        params = encode_settings([(SettingType.FACTOR, [1.0])]) if compressed else b""
        return Status.SUCCESS, params

    # ------------------------------------------------------------------ behaviour

    def take_off(self) -> None:
        """The sensor leaves the body: measurements stop with ``01 [types]``."""
        self.worn = False
        self.interrupt()

    def put_on(self) -> None:
        """Back on the body: starts are accepted again."""
        self.worn = True

    def interrupt(self) -> None:
        """Stop every running measurement on the device's own initiative (``01 [types]``)."""
        if not self._streams:
            return
        types = sorted(self._streams)
        self._streams.clear()
        if self.link is not None:
            self._indicate(self.link, encode_measurement_stopped(types))

    def on_disconnect(self) -> None:
        """A real sensor stops streaming when the central goes away."""
        self._streams.clear()
        super().on_disconnect()

    @property
    def streaming(self) -> tuple[MeasurementType, ...]:
        """Measurements running now."""
        return tuple(sorted(self._streams))

    def tick(self, now_ns: int) -> None:
        self._now_ns = now_ns
        link = self.link
        if link is None:
            return
        dev_now = self.device_time_ns(now_ns)
        for stream in list(self._streams.values()):
            self._send_due(link, stream, dev_now)
        if HEART_RATE_MEASUREMENT_UUID in self.subscribed:
            while self._next_hr_ns <= now_ns:
                hr = round(float(synthetic_hr_bpm(self._next_hr_ns / 1e9, self.ecg_seed)))
                link.notify(
                    HEART_RATE_MEASUREMENT_UUID,
                    encode_heart_rate_measurement(hr if self.worn else 0,
                                                  contact_detected=self.worn),
                )
                self._next_hr_ns += round(HR_PERIOD_S * _NS_PER_S)
        else:
            self._next_hr_ns = now_ns

    def finished(self) -> bool:
        now = self._now_ns if self.link is None else max(self._now_ns, self.link.now_ns())
        return now >= round(self.source.duration_s * 1e9)

    def _send_due(self, link: Link, st: _Stream, dev_now: int) -> None:
        period_ns = 1e9 / st.fs_hz
        due = math.floor((dev_now - st.start_dev_ns) / period_ns)
        n_frames = (due - st.sent) // st.samples_per_frame
        if n_frames <= 0:
            return
        k = st.sent + np.arange(n_frames * st.samples_per_frame, dtype=np.int64)
        counts = self._samples(st, k)
        if counts is None:
            return
        n_ok = counts.shape[1] // st.samples_per_frame
        times = st.device_ns(k)
        for f in range(n_ok):
            a, b = f * st.samples_per_frame, (f + 1) * st.samples_per_frame
            for payload in self._encode(st, times[a:b], counts[:, a:b], link.mtu):
                link.notify(DATA_UUID, payload)
                self.frames_sent += 1
        st.sent += n_ok * st.samples_per_frame

    def _samples(self, st: _Stream, k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64] | None:
        """Integer samples of stream samples ``k`` (shape (n_ch, len(k))), cut at the source
        end to whole frames; ``None`` when nothing is left."""
        period_mono_ns = 1e9 / st.fs_hz / (1.0 + self.drift_ppm * 1e-6)
        mono_s = (st.start_mono_ns + (k + 1) * period_mono_ns) / 1e9
        if st.mtype == MeasurementType.ECG:
            ecg = synthetic_ecg_uv(mono_s, self.ecg_seed)
            out: npt.NDArray[np.int64] = np.clip(np.rint(ecg), -_I24_MAX, _I24_MAX).astype(
                np.int64
            ).reshape(1, -1)
            return out
        src_fs = self.source.acc_fs_hz
        idx = np.floor(mono_s * src_fs + 1e-9).astype(np.int64)
        inside = int(np.searchsorted(idx, self._src_total))
        inside -= inside % st.samples_per_frame
        if inside == 0:
            return None
        idx = idx[:inside]
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        acc = np.asarray(self.source.acc_mg(lo, hi - lo), dtype=np.float64)[:, idx - lo]
        limit = min(st.range_g * 1000, 2**15 - 1)
        counts: npt.NDArray[np.int64] = np.clip(np.rint(acc), -limit, limit).astype(np.int64)
        return counts

    def _encode(
        self, st: _Stream, times: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], mtu: int
    ) -> list[bytes]:
        """One frame, or several when a compressed frame would not fit ``mtu - 3`` bytes."""
        ts = int(times[-1])
        if st.compressed:
            payload = encode_delta_frame(
                st.mtype, ts, st.frame_type, counts, block_samples=self.block_samples
            )
        else:
            payload = encode_raw_frame(st.mtype, ts, st.frame_type, counts)
        if len(payload) <= mtu - ATT_HEADER_BYTES or counts.shape[1] == 1:
            return [payload]
        half = counts.shape[1] // 2
        return self._encode(st, times[:half], counts[:, :half], mtu) + self._encode(
            st, times[half:], counts[:, half:], mtu
        )
