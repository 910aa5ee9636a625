"""Firmware of the crampsense reference band, simulated (profile: ``docs/reference-band.md``).

The simulator sends the documented bytes with its own encoders (``encode_*`` below, written
from the profile, independent of the host's decoder in :mod:`crampsense.devices.reference_band`),
with the band's real timing and quirks:

- a free-running µs counter that starts at ``clock_offset_us`` at power-on, runs ``drift_ppm``
  fast relative to the simulated clock and wraps every 2**32 µs; packet timestamps are its low
  32 bits, SET_TIME relates it to Unix time (and clears the clock-not-set flag) without
  stepping it;
- samples are taken on the device clock: sample ``k`` after START at counter
  ``start + k × 10**6 / fs``; a packet leaves when its last sample is taken;
- packets hold as many samples as fit ``link.mtu - 3`` bytes (read at START);
- sequence numbers restart at 0 on each START; a disconnect stops streaming, and a central
  that reconnects must subscribe and START again; the source resumes at the position matching
  simulated time, so what happened during the disconnect is lost, as on hardware;
- EMG is clipped at the int16 range (flag *saturated*), lead-off comes from the source;
- a status notification every :data:`STATUS_PERIOD_S` while connected.

The source is read in blocks of about one second (:data:`SOURCE_BLOCK_S`), never per packet.
When the stream rate differs from the source rate, the device takes the nearest earlier source
sample (no anti-alias filter): request the source's own rate for faithful signals.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.reference_band import (
    ACC_CHANNELS,
    ACC_MG_PER_LSB,
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    CONTROL_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    DEVICE_INFORMATION_UUIDS,
    EMG_CHANNELS,
    EMG_RATES_HZ,
    EMG_UUID,
    EMG_UV_PER_LSB,
    FLAG_BATTERY_LOW,
    FLAG_CLOCK_NOT_SET,
    FLAG_LEAD_OFF_GL,
    FLAG_LEAD_OFF_GM,
    FLAG_SATURATED,
    IMU_RATES_HZ,
    IMU_UUID,
    PROTOCOL_VERSION,
    RESPONSE_BIT,
    SERVICE_UUID,
    SKIN_TEMP_C_PER_LSB,
    STATUS_UUID,
    TICK_MODULO,
    BandConfig,
    Opcode,
    Status,
    StreamId,
)
from crampsense.errors import DecodeError
from firmware_sims.peripheral import (
    ATT_ATTRIBUTE_NOT_FOUND,
    ATT_HEADER_BYTES,
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
    "BATTERY_DRAIN_PERCENT_PER_H",
    "DEFAULT_CLOCK_OFFSET_US",
    "MANUFACTURER_ID",
    "PLACEMENT_CODES",
    "SOURCE_BLOCK_S",
    "STATUS_PERIOD_S",
    "ReferenceBand",
    "acc_mg_to_counts",
    "emg_uv_to_counts",
    "encode_config_response",
    "encode_data_packet",
    "encode_data_packets",
    "encode_response",
    "encode_status_packet",
    "samples_per_packet",
]

logger = logging.getLogger(__name__)

#: Device counter at power-on (µs). Not zero and near the wrap on purpose: the first wrap
#: comes 19 minutes in, so every simulated session of half an hour exercises it.
DEFAULT_CLOCK_OFFSET_US: Final = 3_141_592_653
#: Seconds between status notifications: often enough to see lead-off within a cramp's
#: minimum duration, rare enough to cost nothing.
STATUS_PERIOD_S: Final = 10.0
#: Battery drain while powered (%/h): a 300 mAh cell at ~6 mA streaming lasts two nights.
BATTERY_DRAIN_PERCENT_PER_H: Final = 2.0
#: Status flag "battery low" at or below this level (%).
BATTERY_LOW_PERCENT: Final = 15
#: Simulated skin temperature: a calf under a blanket (°C), with a slow one-hour wave.
SKIN_TEMP_MEAN_C: Final = 32.5
SKIN_TEMP_SWING_C: Final = 0.5
SKIN_TEMP_PERIOD_S: Final = 3600.0
#: The source is read this many seconds at a time and buffered.
SOURCE_BLOCK_S: Final = 1.0
#: Bluetooth SIG company identifier 0xFFFF is reserved for tests and internal use: the band
#: puts ``b"CS" + placement code`` there, so a scan shows which calf it is meant for.
MANUFACTURER_ID: Final = 0xFFFF
#: Placement code in the advertisement's manufacturer data.
PLACEMENT_CODES: Final = {
    "other": 0, "left-calf": 1, "right-calf": 2, "left-shin": 3, "right-shin": 4,
}
#: Earliest and latest Unix time SET_TIME accepts (µs): 2020-01-01 and 2100-01-01.
_MIN_UNIX_US: Final = 1_577_836_800 * 10**6
_MAX_UNIX_US: Final = 4_102_444_800 * 10**6
_START_LEN: Final = 6
_SET_TIME_LEN: Final = 10
_BARE_LEN: Final = 2



# ------------------------------------------------------------------ the wire (firmware side)
# Written from docs/reference-band.md (sections 4-7), not with the host's codec in
# crampsense.devices.reference_band: a simulator that borrowed the decoder's codec could not
# catch a codec bug. Only spec constants (UUIDs, opcodes, flags, scales) are shared.

#: Every data packet's header: version/stream, u16 sequence, u32 device time (µs), flags, n.
_HEADER: Final = struct.Struct("<BHIBB")
#: Status body after the header: u8 battery percent, i16 skin temperature (0.01 °C).
_STATUS: Final = struct.Struct("<Bh")
#: GET_CONFIG payload after the status byte: firmware major/minor/patch, state, EMG rate, IMU
#: rate, EMG nV per count, accelerometer ±g; the channel names follow.
_CONFIG: Final = struct.Struct("<BBBBHHHB")
_I16_MIN: Final = -(2**15)
_I16_MAX: Final = 2**15 - 1
#: The ATT minimum MTU every LE link supports; n is a u8.
_MIN_MTU: Final = 23
_MAX_SAMPLES: Final = 255
_STREAM_CHANNELS: Final = {StreamId.EMG: len(EMG_CHANNELS), StreamId.ACC: len(ACC_CHANNELS)}


def samples_per_packet(mtu: int, n_channels: int) -> int:
    """As many samples as fit one notification: ``(MTU − 3 − 9) / (2·c)``, 1-255.

    Examples
    --------
    >>> samples_per_packet(23, 2), samples_per_packet(247, 2), samples_per_packet(247, 3)
    (2, 58, 39)
    """
    room = max(mtu, _MIN_MTU) - ATT_HEADER_BYTES - _HEADER.size
    return max(1, min(_MAX_SAMPLES, room // (2 * n_channels)))


def _to_counts(
    values: npt.ArrayLike, unit_per_count: float
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    """Counts rounded and clipped to i16 (NaN sent as 0), and per sample whether any channel
    was clipped."""
    scaled = np.nan_to_num(
        np.rint(np.asarray(values, dtype=np.float64) / unit_per_count),
        nan=0.0, posinf=_I16_MAX, neginf=_I16_MIN,
    )
    clipped = (scaled < _I16_MIN) | (scaled > _I16_MAX)
    saturated = np.asarray(clipped.any(axis=0) if clipped.ndim == 2 else clipped, dtype=np.bool_)
    return np.clip(scaled, _I16_MIN, _I16_MAX).astype(np.int16), saturated


def emg_uv_to_counts(
    emg_uv: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    """EMG (µV, shape (channels, n)) to i16 counts of 0.25 µV, and the per-sample saturation."""
    return _to_counts(emg_uv, EMG_UV_PER_LSB)


def acc_mg_to_counts(
    acc_mg: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    """Acceleration (mg, shape (3, n)) to i16 counts of 8000/32768 mg (±8 g), clipping."""
    return _to_counts(acc_mg, ACC_MG_PER_LSB)


def encode_data_packets(
    stream: StreamId,
    sequences: npt.ArrayLike,
    device_ticks: npt.ArrayLike,
    flags: npt.ArrayLike,
    counts: npt.NDArray[np.int16],
    *,
    samples_per_packet: int,
) -> list[bytes]:
    """EMG or accelerometer packets, ``samples_per_packet`` samples each, all at once.

    ``counts`` (channels, packets × samples_per_packet) holds consecutive packets back to
    back; sequences, device times and flags (one per packet) are reduced modulo their fields.
    """
    n_ch = _STREAM_CHANNELS.get(stream)
    if n_ch is None:
        msg = f"stream {stream!r} has no int16 samples; use encode_status_packet for status"
        raise DecodeError(msg, offset=0, field="stream")
    seq = np.asarray(sequences, dtype=np.int64).ravel()
    n_pk, spp = seq.size, int(samples_per_packet)
    arr = np.asarray(counts)
    if not 1 <= spp <= _MAX_SAMPLES or arr.shape != (n_ch, n_pk * spp):
        msg = (
            f"counts of shape {arr.shape} do not fill {n_pk} packets of {spp} samples × "
            f"{n_ch} channels; pass shape ({n_ch}, {n_pk * spp}) and 1-255 samples per packet"
        )
        raise DecodeError(msg, offset=_HEADER.size, field="samples")
    head = np.zeros(n_pk, dtype=[("vs", "u1"), ("seq", "<u2"), ("ticks", "<u4"),
                                 ("flags", "u1"), ("n", "u1")])
    head["vs"] = PROTOCOL_VERSION << 4 | stream
    head["seq"] = seq % 2**16
    head["ticks"] = np.asarray(device_ticks, dtype=np.int64).ravel() % TICK_MODULO
    head["flags"] = np.asarray(flags, dtype=np.int64).ravel() % 256
    head["n"] = spp
    # samples interleaved within a packet: s0c0 s0c1 ... s1c0 s1c1 ...
    body = arr.reshape(n_ch, n_pk, spp).transpose(1, 2, 0).astype("<i2").reshape(n_pk, -1)
    rows = np.concatenate(
        [head.view(np.uint8).reshape(n_pk, _HEADER.size), body.view(np.uint8)], axis=1
    )
    return [row.tobytes() for row in rows]


def encode_data_packet(
    stream: StreamId,
    sequence: int,
    device_ticks: int,
    flags: int,
    counts: npt.NDArray[np.int16],
) -> bytes:
    """One EMG or accelerometer packet from i16 ``counts`` of shape (channels, n).

    Examples
    --------
    The profile's first worked example (EMG at MTU 23, 1 ms before the timestamp wraps):

    >>> c = np.array([[400, 404], [-201, -200]], dtype=np.int16)
    >>> encode_data_packet(StreamId.EMG, 513, 4294966296, 0, c).hex(" ")
    '11 01 02 18 fc ff ff 00 02 90 01 37 ff 94 01 38 ff'
    """
    arr = np.asarray(counts)
    n = arr.shape[1] if arr.ndim == 2 else 0
    (packet,) = encode_data_packets(
        stream, [sequence], [device_ticks], [flags], arr, samples_per_packet=n
    )
    return packet


def encode_status_packet(
    sequence: int, device_ticks: int, flags: int, battery_percent: int, skin_temp_c: float
) -> bytes:
    """A status packet (12 bytes): header with n = 1, battery (0-100 %), skin temperature.

    Examples
    --------
    >>> encode_status_packet(7, 10_000_000, FLAG_LEAD_OFF_GM, 87, 32.5).hex(" ")
    '13 07 00 80 96 98 00 01 01 57 b2 0c'
    """
    head = _HEADER.pack(PROTOCOL_VERSION << 4 | StreamId.STATUS, sequence % 2**16,
                        device_ticks % TICK_MODULO, flags & 0xFF, 1)
    battery = min(max(int(battery_percent), 0), 100)
    temp = int(np.clip(np.rint(skin_temp_c / SKIN_TEMP_C_PER_LSB), _I16_MIN, _I16_MAX))
    return head + _STATUS.pack(battery, temp)


def encode_response(opcode: int, status: Status, payload: bytes = b"") -> bytes:
    """A control indication ``[version][0x80 | opcode][status][payload]``."""
    return bytes([PROTOCOL_VERSION, RESPONSE_BIT | opcode & 0x7F, status]) + payload


def encode_config_response(cfg: BandConfig) -> bytes:
    """The GET_CONFIG OK response (19 bytes with the default channel names ``gm,gl``).

    Raises
    ------
    DecodeError
        A firmware string that is not ``major.minor.patch`` of 0-255 each, or a rate that
        does not fit its u16.
    """
    state = (0x01 if cfg.streaming else 0) | (0x02 if cfg.clock_set else 0)
    try:
        major, minor, patch = (int(p) for p in cfg.firmware.split("."))
        body = _CONFIG.pack(major, minor, patch, state, cfg.emg_fs_hz, cfg.imu_fs_hz,
                            round(cfg.emg_uv_per_lsb * 1000), cfg.acc_range_g)
    except (ValueError, struct.error) as exc:
        msg = f"firmware {cfg.firmware!r} or a rate does not fit GET_CONFIG; use e.g. '1.0.0'"
        raise DecodeError(msg, offset=3, field="firmware") from exc
    return encode_response(Opcode.GET_CONFIG, Status.OK, body + ",".join(cfg.channels).encode())


class _Buffered:
    """Reads a source function ``read(start, n)`` in blocks and serves arbitrary indices."""

    def __init__(
        self,
        read: Callable[[int, int], npt.NDArray[np.generic]],
        total: int,
        block: int,
    ) -> None:
        self._read = read
        self.total = total
        self._block = max(1, block)
        self._b0 = 0
        self._buf: npt.NDArray[np.generic] | None = None

    def get(self, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.generic]:
        """Samples at ``idx`` (non-decreasing, within ``[0, total)``), last axis indexed."""
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        buf = self._buf
        if buf is None or lo < self._b0 or hi > self._b0 + buf.shape[-1]:
            n = min(max(hi - lo, self._block), self.total - lo)
            buf = np.asarray(self._read(lo, n))
            self._buf, self._b0 = buf, lo
        return buf[..., idx - self._b0]


class _Stream:
    """State of one streaming characteristic between START and STOP."""

    def __init__(self, fs_hz: int, spp: int, start_us: int, src0: int, src_fs_hz: float) -> None:
        self.fs_hz = fs_hz
        self.spp = spp
        self.start_us = start_us  # unwrapped device counter of sample 0
        self.src0 = src0  # source index of sample 0
        self.src_fs_hz = src_fs_hz
        self.sent = 0  # samples already packed (a multiple of spp)
        self.seq = 0
        self.available: int | None = None  # samples before the source ends (computed once)

    def source_index(self, k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        if self.src_fs_hz == self.fs_hz:
            return self.src0 + k
        scaled: npt.NDArray[np.int64] = np.floor(k * (self.src_fs_hz / self.fs_hz)).astype(
            np.int64
        )
        return self.src0 + scaled

    def ticks(self, k: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self.start_us + (k * 1_000_000) // self.fs_hz


class ReferenceBand(SimulatedPeripheral):
    """The reference band's firmware.

    Parameters
    ----------
    address : str
        Bluetooth address.
    source : SignalSource
        What the sensors measure.
    name : str
        Advertised name (starts with ``crampsense``).
    placement_hint : str
        Where the band is meant to be worn (advertised as a placement code).
    firmware : str
        ``major.minor.patch``.
    battery_percent : int
        Battery at power-on (%).
    clock_offset_us : int
        Device counter at power-on (µs).
    drift_ppm : float
        Device clock rate error relative to the simulated clock (ppm, positive = fast).

    Notes
    -----
    Simulated monotonic time 0 is power-on. :meth:`power_cycle` restarts the device counter
    at 0 (a clock reset) and forgets the clock setting.
    """

    preferred_mtu = 247

    def __init__(
        self,
        address: str,
        source: SignalSource,
        *,
        name: str = "crampsense band L",
        placement_hint: str = "left-calf",
        firmware: str = "1.0.0",
        battery_percent: int = 90,
        clock_offset_us: int = DEFAULT_CLOCK_OFFSET_US,
        drift_ppm: float = 20.0,
    ) -> None:
        super().__init__(address, name)
        self.source = source
        self.placement_hint = placement_hint
        self.firmware = firmware
        self.initial_battery_percent = int(battery_percent)
        self.drift_ppm = float(drift_ppm)
        self._counter_base_us = int(clock_offset_us)
        self._boot_ns = 0
        self._clock_set = False
        self._unix_at_counter: tuple[int, int] | None = None
        self.emg_fs_hz = 1000
        self.imu_fs_hz = 50
        self._emg: _Stream | None = None
        self._acc: _Stream | None = None
        self._status_seq = 0
        self._next_status_ns: int | None = None
        self._last_now_ns = 0
        self._last_link: Link | None = None
        n_emg = math.floor(source.duration_s * source.emg_fs_hz)
        n_acc = math.floor(source.duration_s * source.acc_fs_hz)
        self._emg_src = _Buffered(
            source.emg_uv, n_emg, round(SOURCE_BLOCK_S * source.emg_fs_hz)
        )
        self._lead_src = _Buffered(
            source.lead_off, n_emg, round(SOURCE_BLOCK_S * source.emg_fs_hz)
        )
        self._acc_src = _Buffered(
            source.acc_mg, n_acc, round(SOURCE_BLOCK_S * source.acc_fs_hz)
        )
        self.packets_sent = 0

    # ------------------------------------------------------------------ clock

    def device_counter_us(self, now_ns: int) -> int:
        """The unwrapped device counter (µs since power-on plus the offset) at ``now_ns``."""
        elapsed_ns = max(0, now_ns - self._boot_ns)
        return self._counter_base_us + math.floor(elapsed_ns * (1.0 + self.drift_ppm * 1e-6) / 1000)

    def power_cycle(self, now_ns: int) -> None:
        """Reboot: the counter restarts at 0, the clock is unset, streaming stops."""
        self._boot_ns = now_ns
        self._counter_base_us = 0
        self._clock_set = False
        self._unix_at_counter = None
        self._emg = self._acc = None

    @property
    def streaming(self) -> bool:
        return self._emg is not None or self._acc is not None

    @property
    def clock_set(self) -> bool:
        return self._clock_set

    def battery_percent(self, now_ns: int) -> int:
        drained = BATTERY_DRAIN_PERCENT_PER_H * max(0, now_ns) / 3.6e12
        return max(0, math.floor(self.initial_battery_percent - drained))

    # ------------------------------------------------------------------ GATT

    def gatt(self) -> tuple[ServiceDef, ...]:
        return (
            ServiceDef(
                SERVICE_UUID,
                (
                    CharDef(CONTROL_UUID, ("write", "indicate"), "control point"),
                    CharDef(EMG_UUID, ("notify",), "EMG data"),
                    CharDef(IMU_UUID, ("notify",), "accelerometer data"),
                    CharDef(STATUS_UUID, ("read", "notify"), "status"),
                ),
            ),
            ServiceDef(BATTERY_SERVICE_UUID, (CharDef(BATTERY_LEVEL_UUID, ("read",), "battery"),)),
            ServiceDef(
                DEVICE_INFORMATION_SERVICE_UUID,
                tuple(
                    CharDef(DEVICE_INFORMATION_UUIDS[k], ("read",), k)
                    for k in ("manufacturer", "model", "hardware", "firmware")
                ),
            ),
        )

    def advertisement(self) -> Advertisement:
        code = PLACEMENT_CODES.get(self.placement_hint, 0)
        return Advertisement(
            local_name=self.name,
            service_uuids=(SERVICE_UUID,),
            manufacturer_data={MANUFACTURER_ID: b"CS" + bytes([code])},
        )

    def on_connect(self, link: Link) -> None:
        super().on_connect(link)
        self._last_link = link
        self._status_seq = 0
        self._next_status_ns = None

    def on_disconnect(self) -> None:
        self._emg = self._acc = None
        self._next_status_ns = None
        super().on_disconnect()

    def read(self, char_uuid: str) -> bytes:
        uuid = char_uuid.lower()
        now_ns = self.link.now_ns() if self.link is not None else self._last_now_ns
        if uuid == STATUS_UUID:
            return self._status_packet(now_ns, advance=False)
        if uuid == BATTERY_LEVEL_UUID:
            return bytes([self.battery_percent(now_ns)])
        info = {
            DEVICE_INFORMATION_UUIDS["manufacturer"]: "crampsense DIY",
            DEVICE_INFORMATION_UUIDS["model"]: "crampsense reference band",
            DEVICE_INFORMATION_UUIDS["hardware"]: "A",
            DEVICE_INFORMATION_UUIDS["firmware"]: self.firmware,
        }
        if uuid in info:
            return info[uuid].encode("utf-8")
        if uuid in (CONTROL_UUID, EMG_UUID, IMU_UUID):
            raise AttError(ATT_READ_NOT_PERMITTED, f"{uuid} is not readable")
        raise AttError(ATT_ATTRIBUTE_NOT_FOUND, f"no characteristic {uuid}")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        uuid = char_uuid.lower()
        if uuid != CONTROL_UUID:
            known = {c.uuid for s in self.gatt() for c in s.characteristics}
            if uuid in known:
                raise AttError(ATT_WRITE_NOT_PERMITTED, f"{uuid} is not writable")
            raise AttError(ATT_ATTRIBUTE_NOT_FOUND, f"no characteristic {uuid}")
        if not with_response:
            raise AttError(ATT_WRITE_NOT_PERMITTED, "the control point needs write with response")
        self._indicate(self.handle_command(bytes(data)))

    def _indicate(self, response: bytes) -> None:
        if self.link is not None and CONTROL_UUID in self.subscribed:
            self.link.notify(CONTROL_UUID, response)

    # ------------------------------------------------------------------ control point

    def handle_command(self, data: bytes) -> bytes:
        """The control-point state machine: one command in, its response out (never raises)."""
        opcode = data[1] if len(data) >= _BARE_LEN else 0
        if len(data) < _BARE_LEN:
            return encode_response(opcode, Status.BAD_LENGTH)
        if data[0] != PROTOCOL_VERSION:
            return encode_response(opcode, Status.BAD_VERSION)
        if opcode not in Opcode._value2member_map_:
            return encode_response(opcode, Status.UNKNOWN_OPCODE)
        op = Opcode(opcode)
        now_ns = self.link.now_ns() if self.link is not None else self._last_now_ns
        if op == Opcode.START:
            return self._start(data, now_ns)
        if op == Opcode.STOP:
            if len(data) != _BARE_LEN:
                return encode_response(op, Status.BAD_LENGTH)
            if not self.streaming:
                return encode_response(op, Status.NOT_STREAMING)
            self._emg = self._acc = None
            return encode_response(op, Status.OK)
        if op == Opcode.SET_TIME:
            if len(data) != _SET_TIME_LEN:
                return encode_response(op, Status.BAD_LENGTH)
            (unix_us,) = struct.unpack_from("<Q", data, 2)
            if not _MIN_UNIX_US <= unix_us < _MAX_UNIX_US:
                return encode_response(op, Status.INVALID_TIME)
            counter = self.device_counter_us(now_ns)
            self._clock_set = True
            self._unix_at_counter = (unix_us, counter)
            return encode_response(op, Status.OK, struct.pack("<Q", counter))
        if len(data) != _BARE_LEN:
            return encode_response(op, Status.BAD_LENGTH)
        return encode_config_response(self.config())

    def config(self) -> BandConfig:
        """What GET_CONFIG reports now."""
        return BandConfig(
            firmware=self.firmware,
            streaming=self.streaming,
            clock_set=self._clock_set,
            emg_fs_hz=self.emg_fs_hz,
            imu_fs_hz=self.imu_fs_hz,
            channels=EMG_CHANNELS,
        )

    def _start(self, data: bytes, now_ns: int) -> bytes:
        if len(data) != _START_LEN:
            return encode_response(Opcode.START, Status.BAD_LENGTH)
        if self.streaming:
            return encode_response(Opcode.START, Status.ALREADY_STREAMING)
        emg_fs, imu_fs = struct.unpack_from("<HH", data, 2)
        if (
            (emg_fs != 0 and emg_fs not in EMG_RATES_HZ)
            or (imu_fs != 0 and imu_fs not in IMU_RATES_HZ)
            or emg_fs == imu_fs == 0
        ):
            return encode_response(Opcode.START, Status.UNSUPPORTED_RATE)
        mtu = self.link.mtu if self.link is not None else 23
        spp_emg = samples_per_packet(mtu, len(EMG_CHANNELS))
        spp_acc = samples_per_packet(mtu, len(ACC_CHANNELS))
        counter = self.device_counter_us(now_ns)
        t_s = now_ns / 1e9
        src = self.source
        self._emg = (
            _Stream(emg_fs, spp_emg, counter, math.ceil(t_s * src.emg_fs_hz), src.emg_fs_hz)
            if emg_fs
            else None
        )
        self._acc = (
            _Stream(imu_fs, spp_acc, counter, math.ceil(t_s * src.acc_fs_hz), src.acc_fs_hz)
            if imu_fs
            else None
        )
        self.emg_fs_hz = emg_fs or self.emg_fs_hz
        self.imu_fs_hz = imu_fs or self.imu_fs_hz
        logger.debug("%s START emg %d Hz imu %d Hz at counter %d µs (MTU %d)",
                     self.address, emg_fs, imu_fs, counter, mtu)
        return encode_response(
            Opcode.START, Status.OK, struct.pack("<HHBB", emg_fs, imu_fs, spp_emg, spp_acc)
        )

    # ------------------------------------------------------------------ streaming

    def tick(self, now_ns: int) -> None:
        """Send every packet due by simulated time ``now_ns``."""
        self._last_now_ns = max(self._last_now_ns, now_ns)
        if self.link is None:
            return
        if self._emg is not None:
            self._emit(self._emg, StreamId.EMG, now_ns)
        if self._acc is not None:
            self._emit(self._acc, StreamId.ACC, now_ns)
        if self._next_status_ns is None:
            self._next_status_ns = now_ns
        period_ns = round(STATUS_PERIOD_S * 1e9)
        while self._next_status_ns <= now_ns and self.link is not None:
            self._send(STATUS_UUID, self._status_packet(self._next_status_ns, advance=True))
            self._next_status_ns += period_ns

    def _send(self, uuid: str, data: bytes) -> None:
        if self.link is not None and uuid in self.subscribed:
            self.link.notify(uuid, data)
            self.packets_sent += 1

    def _base_flags(self) -> int:
        return 0 if self._clock_set else FLAG_CLOCK_NOT_SET

    def _emit(self, st: _Stream, stream: StreamId, now_ns: int) -> None:
        counter = self.device_counter_us(now_ns)
        if counter < st.start_us:
            return
        taken = (counter - st.start_us) * st.fs_hz // 1_000_000 + 1
        reader = self._emg_src if stream == StreamId.EMG else self._acc_src
        if st.available is None:
            st.available = _available(st, reader.total)
        taken = min(taken, st.available)
        n_pk = taken // st.spp - st.sent // st.spp
        if n_pk <= 0:
            return
        k = np.arange(st.sent, st.sent + n_pk * st.spp, dtype=np.int64)
        idx = st.source_index(k)
        samples = np.asarray(reader.get(idx), dtype=np.float64)
        flags = np.full(n_pk, self._base_flags(), dtype=np.int64)
        if stream == StreamId.EMG:
            if samples.shape[0] < len(EMG_CHANNELS):
                samples = np.vstack([samples, np.zeros((1, samples.shape[1]))])
            counts, sat = emg_uv_to_counts(samples[: len(EMG_CHANNELS)])
            lead = np.asarray(self._lead_src.get(idx), dtype=np.bool_)
            flags |= np.where(
                lead.reshape(n_pk, st.spp).any(axis=1), FLAG_LEAD_OFF_GM | FLAG_LEAD_OFF_GL, 0
            )
        else:
            counts, sat = acc_mg_to_counts(samples[: len(ACC_CHANNELS)])
        flags |= np.where(sat.reshape(n_pk, st.spp).any(axis=1), FLAG_SATURATED, 0)
        first_k = k[:: st.spp]
        ticks = st.ticks(first_k) % TICK_MODULO
        seqs = st.seq + np.arange(n_pk)
        packets = encode_data_packets(
            stream, seqs, ticks, flags, counts, samples_per_packet=st.spp
        )
        st.sent += n_pk * st.spp
        st.seq += n_pk
        uuid = EMG_UUID if stream == StreamId.EMG else IMU_UUID
        for p in packets:
            if self.link is None:  # a callback disconnected us mid-burst
                break
            self._send(uuid, p)

    def _status_packet(self, now_ns: int, *, advance: bool) -> bytes:
        battery = self.battery_percent(now_ns)
        flags = self._base_flags()
        if battery <= BATTERY_LOW_PERCENT:
            flags |= FLAG_BATTERY_LOW
        idx = math.floor(now_ns / 1e9 * self.source.emg_fs_hz)
        if 0 <= idx < self._lead_src.total and bool(
            np.asarray(self.source.lead_off(idx, 1)).any()
        ):
            flags |= FLAG_LEAD_OFF_GM | FLAG_LEAD_OFF_GL
        temp = SKIN_TEMP_MEAN_C + SKIN_TEMP_SWING_C * math.sin(
            2 * math.pi * now_ns / 1e9 / SKIN_TEMP_PERIOD_S
        )
        seq = self._status_seq
        if advance:
            self._status_seq += 1
        return encode_status_packet(seq, self.device_counter_us(now_ns), flags, battery, temp)

    def finished(self) -> bool:
        """True once simulated time has passed the source's duration (connected or not)."""
        now_ns = self._last_now_ns
        if self._last_link is not None:
            now_ns = max(now_ns, self._last_link.now_ns())
        return now_ns >= round(self.source.duration_s * 1e9)


def _available(st: _Stream, total: int) -> int:
    """How many stream samples (from k = 0) have their source sample inside the source."""
    room = total - st.src0
    if room <= 0:
        return 0
    k = math.ceil(room * st.fs_hz / st.src_fs_hz)
    while k > 0 and int(st.source_index(np.array([k - 1]))[0]) >= total:
        k -= 1
    while int(st.source_index(np.array([k]))[0]) < total:
        k += 1
    return k
