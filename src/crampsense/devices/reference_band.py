"""The crampsense reference band: an open GATT profile for a do-it-yourself calf band.

A BLE microcontroller with a two-channel surface-EMG front end (medial and lateral
gastrocnemius, ``gm``/``gl``), a 6-axis IMU of which the accelerometer is streamed, skin
temperature, electrode-contact (lead-off) sensing and a battery. The full profile, with byte
tables and worked examples, is ``docs/reference-band.md``; this module is its executable form:
host side only: UUIDs, command encoders, decoders, and the :class:`ReferenceBandProtocol` the
transport drives. The band's side (data, status and response packets) is encoded by
``firmware_sims/reference_band.py``, written apart from these decoders.

Wire summary (little-endian; protocol version 1)::

    data packet (emg c7a30002, imu c7a30003, status c7a30004; notify)
    byte 0     version << 4 | stream id (1 emg, 2 acc, 3 status)     0x11 / 0x12 / 0x13
    1-2        u16 sequence, per stream, from 0 at each START, wraps at 65536
    3-6        u32 device time of the first sample, µs of the free-running device counter
               (wraps every 2**32 µs = 71.6 min)
    7          flags: bit0 lead-off gm, bit1 lead-off gl, bit2 saturated, bit3 clock not set,
               bit4 battery low, bits 5-7 reserved (sent 0, ignored)
    8          n, samples (per channel) in this packet, >= 1
    9-         emg/acc: n × channels × int16, interleaved by sample
               status (n = 1): u8 battery %, int16 skin temperature in 0.01 °C

    control (c7a30001; write with response + indicate)
    command    [version][opcode][parameters]
    response   [version][0x80 | opcode][status][payload]

Scales: EMG 0.25 µV per count (±8.19 mV), accelerometer ±8 g at 8000/32768 = 0.244140625 mg
per count, skin temperature 0.01 °C per count.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.base import Capability, DeviceProtocol, GattWrite, PacketBatch
from crampsense.devices.gatt import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    DEVICE_INFORMATION_UUIDS,
)
from crampsense.devices.timeline import TimelineBuilder
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import ACC_UNIT, EMG_UNIT, G_MG, Frame, SampleBlock

__all__ = [
    "ACC_CHANNELS",
    "ACC_INVALID_FLAGS",
    "ACC_MG_PER_LSB",
    "ACC_RANGE_G",
    "BATTERY_LEVEL_UUID",
    "BATTERY_SERVICE_UUID",
    "CONTROL_UUID",
    "DATA_HEADER",
    "DEVICE_INFORMATION_SERVICE_UUID",
    "DEVICE_INFORMATION_UUIDS",
    "EMG_CHANNELS",
    "EMG_INVALID_FLAGS",
    "EMG_NV_PER_LSB",
    "EMG_RATES_HZ",
    "EMG_UUID",
    "EMG_UV_PER_LSB",
    "FLAG_BATTERY_LOW",
    "FLAG_CLOCK_NOT_SET",
    "FLAG_LEAD_OFF_GL",
    "FLAG_LEAD_OFF_GM",
    "FLAG_SATURATED",
    "IMU_RATES_HZ",
    "IMU_UUID",
    "NAME_PREFIX",
    "PROTOCOL_VERSION",
    "RESPONSE_BIT",
    "SEQ_MODULO",
    "SERVICE_UUID",
    "SKIN_TEMP_C_PER_LSB",
    "STATUS_CHANNELS",
    "STATUS_UUID",
    "TICK_HZ",
    "TICK_MODULO",
    "BandConfig",
    "ControlResponse",
    "Opcode",
    "ReferenceBandProtocol",
    "Status",
    "StreamId",
    "band_uuid",
    "decode_data_packet",
    "encode_get_config",
    "encode_set_time",
    "encode_start",
    "encode_stop",
    "parse_config",
    "parse_response",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- identifiers

#: Base of the band's 128-bit UUIDs; the 16 bits after ``c7a3`` number the attributes.
_UUID_TAIL: Final = "-5e1f-4b8e-9d3a-6f2c1b7e4a90"


def band_uuid(short: int) -> str:
    """The lower-case 128-bit UUID of band attribute ``short`` (0 = the service).

    Examples
    --------
    >>> band_uuid(2)
    'c7a30002-5e1f-4b8e-9d3a-6f2c1b7e4a90'
    """
    return f"c7a3{short:04x}{_UUID_TAIL}"


SERVICE_UUID: Final = band_uuid(0x0000)
CONTROL_UUID: Final = band_uuid(0x0001)
EMG_UUID: Final = band_uuid(0x0002)
IMU_UUID: Final = band_uuid(0x0003)
STATUS_UUID: Final = band_uuid(0x0004)

#: Advertised names start with this (case-insensitive), e.g. ``"crampsense band L"``.
NAME_PREFIX: Final = "crampsense"

#: Version of this profile; the first byte of every command and response, and the high
#: nibble of every data packet's first byte.
PROTOCOL_VERSION: Final = 1


class StreamId(enum.IntEnum):
    """Low nibble of a data packet's first byte."""

    EMG = 1
    ACC = 2
    STATUS = 3


class Opcode(enum.IntEnum):
    """Control-point command opcodes (byte 1 of a command)."""

    START = 0x01
    STOP = 0x02
    SET_TIME = 0x03
    GET_CONFIG = 0x04


#: A response's byte 1 is ``RESPONSE_BIT | opcode``.
RESPONSE_BIT: Final = 0x80


class Status(enum.IntEnum):
    """Control-point response status (byte 2 of a response)."""

    OK = 0x00
    BAD_VERSION = 0x01
    UNKNOWN_OPCODE = 0x02
    BAD_LENGTH = 0x03
    UNSUPPORTED_RATE = 0x04
    ALREADY_STREAMING = 0x05
    NOT_STREAMING = 0x06
    INVALID_TIME = 0x07


FLAG_LEAD_OFF_GM: Final = 0x01
FLAG_LEAD_OFF_GL: Final = 0x02
FLAG_SATURATED: Final = 0x04
FLAG_CLOCK_NOT_SET: Final = 0x08
FLAG_BATTERY_LOW: Final = 0x10
#: Flag bits that make an EMG packet's samples unusable (electrode off, or clipped).
EMG_INVALID_FLAGS: Final = FLAG_LEAD_OFF_GM | FLAG_LEAD_OFF_GL | FLAG_SATURATED
#: Flag bits that make an accelerometer packet's samples unusable (clipped at ±8 g).
ACC_INVALID_FLAGS: Final = FLAG_SATURATED

#: EMG rates the band supports (Hz). All divide 10**6, so sample times are whole µs.
EMG_RATES_HZ: Final = (200, 500, 1000, 2000)
#: Accelerometer rates the band supports (Hz); they divide 10**6 too.
IMU_RATES_HZ: Final = (25, 50, 100, 200, 400)

#: What a user or developer should do about each error status.
_STATUS_ADVICE: Final[Mapping[Status, str]] = {
    Status.BAD_VERSION: "update crampsense or the band firmware so both speak the same version",
    Status.UNKNOWN_OPCODE: "the firmware is older than this crampsense; update the firmware",
    Status.BAD_LENGTH: "the command was cut short or padded; check the MTU and resend",
    Status.UNSUPPORTED_RATE: (
        f"use an EMG rate of {'/'.join(map(str, EMG_RATES_HZ))} Hz and an IMU rate of "
        f"{'/'.join(map(str, IMU_RATES_HZ))} Hz, or 0 to leave a stream off "
        "(band.emg_fs_hz, band.imu_fs_hz)"
    ),
    Status.ALREADY_STREAMING: "send STOP first, or keep the running stream",
    Status.NOT_STREAMING: "nothing to stop; the band was not streaming",
    Status.INVALID_TIME: "the host clock is before 2020 or after 2100; fix the system time",
}

#: EMG scale: 0.25 µV per count gives ±8191.75 µV, above the few mV of a maximal calf
#: contraction, with a step far below the ~2-5 µV noise floor of surface electrodes.
EMG_UV_PER_LSB: Final = 0.25
#: The same scale in nV per count, as GET_CONFIG reports it (an integer).
EMG_NV_PER_LSB: Final = 250
#: Accelerometer full scale (±g): enough for kicks and getting up, finer than ±16 g.
ACC_RANGE_G: Final = 8
#: Accelerometer scale: full scale over the int16 half-range, 0.244140625 mg per count.
ACC_MG_PER_LSB: Final = ACC_RANGE_G * G_MG / 32768.0
#: Skin temperature scale (°C per count of the int16 field).
SKIN_TEMP_C_PER_LSB: Final = 0.01

#: Device timestamps are µs of a free-running counter.
TICK_HZ: Final = 1_000_000
#: The u32 timestamp wraps every 2**32 µs (71.6 min): about 6.7 times in an 8-hour night.
TICK_MODULO: Final = 2**32
#: The u16 sequence number wraps every 65536 packets.
SEQ_MODULO: Final = 2**16

EMG_CHANNELS: Final = ("gm", "gl")
ACC_CHANNELS: Final = ("x", "y", "z")
#: Status "samples": one value per channel, unit named in the channel (block unit "mixed").
STATUS_CHANNELS: Final = ("battery_percent", "skin_temp_c", "lead_off_gm", "lead_off_gl")

_EMG_SCALE_F32: Final = np.float32(EMG_UV_PER_LSB)
_ACC_SCALE_F32: Final = np.float32(ACC_MG_PER_LSB)
#: ``version/stream, sequence, device time, flags, sample count``: 9 bytes.
DATA_HEADER: Final = struct.Struct("<BHIBB")
#: Status payload after the header: battery %, skin temperature (0.01 °C).
_STATUS_BODY: Final = struct.Struct("<Bh")
#: Sample count is a u8.
_MAX_SAMPLES_PER_PACKET: Final = 255
#: Times SET_TIME accepts (Unix µs): 2020-01-01 to 2100-01-01; anything else is a broken clock.
_MIN_UNIX_US: Final = 1_577_836_800 * 10**6
_MAX_UNIX_US: Final = 4_102_444_800 * 10**6
_BATTERY_MAX_PERCENT: Final = 100

_CHANNELS_BY_STREAM: Final[Mapping[StreamId, tuple[str, ...]]] = {
    StreamId.EMG: EMG_CHANNELS,
    StreamId.ACC: ACC_CHANNELS,
    StreamId.STATUS: STATUS_CHANNELS,
}
_STREAM_BY_UUID: Final[Mapping[str, StreamId]] = {
    EMG_UUID: StreamId.EMG,
    IMU_UUID: StreamId.ACC,
    STATUS_UUID: StreamId.STATUS,
}


# --------------------------------------------------------------------------- data packets


def _packet_dtype(n_values: int) -> np.dtype[np.void]:
    return np.dtype(
        [
            ("vs", "u1"),
            ("seq", "<u2"),
            ("ticks", "<u4"),
            ("flags", "u1"),
            ("count", "u1"),
            ("samples", "<i2", (n_values,)),
        ]
    )


_STREAM_BY_NIBBLE: Final[Mapping[int, StreamId]] = {int(s): s for s in StreamId}


def _decode_header(
    payload: bytes, expected: StreamId | None
) -> tuple[StreamId, int, int, int, int]:
    """``(stream, sequence, device_ticks, flags, count)`` of a data packet."""
    if not payload:
        msg = "empty band packet; a data packet has a 9-byte header"
        raise DecodeError(msg, offset=0, field="version")
    version, stream_nibble = payload[0] >> 4, payload[0] & 0x0F
    if version != PROTOCOL_VERSION:
        msg = (
            f"band packet of protocol version {version} (byte 0x{payload[0]:02X}); this "
            f"crampsense reads version {PROTOCOL_VERSION}: update crampsense or the firmware"
        )
        raise DecodeError(msg, offset=0, field="version")
    stream = _STREAM_BY_NIBBLE.get(stream_nibble)
    if stream is None:
        msg = f"unknown band stream id {stream_nibble}; known are 1 (emg), 2 (acc), 3 (status)"
        raise DecodeError(msg, offset=0, field="stream")
    if expected is not None and stream is not expected:
        msg = (
            f"{stream.name.lower()} packet arrived on the {expected.name.lower()} "
            "characteristic; the firmware mixes up its characteristics"
        )
        raise DecodeError(msg, offset=0, field="stream")
    if len(payload) < DATA_HEADER.size:
        msg = f"band packet of {len(payload)} bytes is shorter than its 9-byte header"
        raise DecodeError(msg, offset=len(payload), field="header")
    _, seq, ticks, flags, count = DATA_HEADER.unpack_from(payload)
    return stream, seq, ticks, flags, count


def decode_data_packet(
    payload: bytes, char_uuid: str | None = None
) -> tuple[StreamId, int, int, int, npt.NDArray[np.float32]]:
    """Decode one band data packet to physical units.

    Parameters
    ----------
    payload : bytes
        The notification value.
    char_uuid : str or None
        The characteristic it arrived on; when given, the packet's stream must match it.

    Returns
    -------
    stream : StreamId
    sequence : int
        u16 as sent.
    device_ticks : int
        u32 µs as sent (it wraps).
    flags : int
    values : ndarray of float32, shape (n_channels, n)
        EMG in µV, acceleration in mg, or status ``(battery %, skin °C, lead-off gm, gl)``
        with ``n = 1``.

    Raises
    ------
    DecodeError
        Wrong version, stream, length or field value (``offset``/``field`` say where).
    """
    payload = bytes(payload)  # no copy when it already is bytes
    expected = None
    if char_uuid is not None:
        expected = _STREAM_BY_UUID.get(char_uuid.lower())
        if expected is None:
            msg = f"characteristic {char_uuid} carries no band samples; decode emg/imu/status"
            raise DecodeError(msg, offset=0, field="characteristic_uuid")
    stream, seq, ticks, flags, count = _decode_header(payload, expected)
    if count == 0:
        msg = "band packet announces 0 samples; the firmware never sends empty packets"
        raise DecodeError(msg, offset=8, field="sample_count")
    if stream is StreamId.STATUS:
        want = DATA_HEADER.size + _STATUS_BODY.size
        if count != 1 or len(payload) != want:
            msg = (
                f"status packet of {len(payload)} bytes with count {count}; a status "
                f"packet is exactly {want} bytes with count 1"
            )
            raise DecodeError(msg, offset=min(len(payload), want), field="status")
        battery, temp = _STATUS_BODY.unpack_from(payload, DATA_HEADER.size)
        if battery > _BATTERY_MAX_PERCENT:
            msg = f"battery level {battery} % is out of range; allowed are 0 to 100"
            raise DecodeError(msg, offset=DATA_HEADER.size, field="battery_percent")
        values = np.array(
            [
                [battery],
                [temp * SKIN_TEMP_C_PER_LSB],
                [float(flags & FLAG_LEAD_OFF_GM != 0)],
                [float(flags & FLAG_LEAD_OFF_GL != 0)],
            ],
            dtype=np.float32,
        )
        return stream, seq, ticks, flags, values
    n_ch = 2 if stream is StreamId.EMG else 3
    want = DATA_HEADER.size + 2 * n_ch * count
    if len(payload) != want:
        field = "samples" if len(payload) < want else "trailing"
        msg = (
            f"{stream.name.lower()} packet of {len(payload)} bytes announces {count} samples "
            f"× {n_ch} channels ({want} bytes); it was truncated (check the MTU) or corrupted"
        )
        raise DecodeError(msg, offset=min(len(payload), want), field=field)
    raw = np.frombuffer(payload, dtype="<i2", offset=DATA_HEADER.size)
    values = raw.reshape(count, n_ch).T.astype(np.float32)
    values *= _EMG_SCALE_F32 if stream is StreamId.EMG else _ACC_SCALE_F32
    return stream, seq, ticks, flags, values


#: Payloads of one length are decoded together only when at least this many share it: below
#: that, numpy's fixed cost per group (tens of µs) is more than decoding them one by one.
_MIN_BATCH_PACKETS: Final = 8
#: A status packet laid out as one record: header, battery %, skin temperature.
_STATUS_DTYPE: Final = np.dtype(
    [
        ("vs", "u1"),
        ("seq", "<u2"),
        ("ticks", "<u4"),
        ("flags", "u1"),
        ("count", "u1"),
        ("battery", "u1"),
        ("temp", "<i2"),
    ]
)


def _decode_status_group(
    joined: bytes, index: npt.NDArray[np.int64]
) -> PacketBatch | None:
    """Status packets of 12 bytes each, back to back in ``joined``: the valid ones."""
    arr = np.frombuffer(joined, dtype=_STATUS_DTYPE)
    ok = (
        (arr["vs"] == (PROTOCOL_VERSION << 4) | StreamId.STATUS)
        & (arr["count"] == 1)
        & (arr["battery"] <= _BATTERY_MAX_PERCENT)
    )
    if not ok.all():
        arr, index = arr[ok], index[ok]
    if index.size == 0:
        return None
    flags = arr["flags"].astype(np.int64)
    values = np.empty((len(STATUS_CHANNELS), index.size), dtype=np.float32)
    values[0] = arr["battery"]
    values[1] = arr["temp"] * SKIN_TEMP_C_PER_LSB  # float64 product rounded to float32
    values[2] = (flags & FLAG_LEAD_OFF_GM) != 0
    values[3] = (flags & FLAG_LEAD_OFF_GL) != 0
    return PacketBatch(
        stream="status", channels=STATUS_CHANNELS, unit="mixed", fs_hz=None, index=index,
        values=values, n_samples=np.ones(index.size, dtype=np.int64),
        sequence=arr["seq"].astype(np.int64), device_ticks=arr["ticks"].astype(np.int64),
        flags=flags,
    )


def _decode_samples_group(
    stream: StreamId,
    joined: bytes,
    length: int,
    index: npt.NDArray[np.int64],
    fs_hz: float,
) -> PacketBatch | None:
    """EMG or accelerometer packets of ``length`` bytes each, back to back: the valid ones.

    A packet is valid exactly when :func:`decode_data_packet` accepts it: the version/stream
    byte matches the characteristic and the sample count fills the packet.
    """
    n_ch = len(_CHANNELS_BY_STREAM[stream])
    body = length - DATA_HEADER.size
    count = body // (2 * n_ch)
    if body <= 0 or body % (2 * n_ch) or count > _MAX_SAMPLES_PER_PACKET:
        return None
    arr = np.frombuffer(joined, dtype=_packet_dtype(count * n_ch))
    ok = (arr["vs"] == (PROTOCOL_VERSION << 4) | stream) & (arr["count"] == count)
    if not ok.all():
        arr, index = arr[ok], index[ok]
    if index.size == 0:
        return None
    # (packets, count * n_ch) interleaved by sample -> (n_ch, packets * count), as decode does;
    # one strided pass from the packet records, no intermediate copy
    raw = arr["samples"].reshape(index.size, count, n_ch).transpose(2, 0, 1)
    values = raw.astype(np.float32, order="C").reshape(n_ch, index.size * count)
    values *= _EMG_SCALE_F32 if stream is StreamId.EMG else _ACC_SCALE_F32
    name, unit = ("emg", EMG_UNIT) if stream is StreamId.EMG else ("acc", ACC_UNIT)
    return PacketBatch(
        stream=name, channels=_CHANNELS_BY_STREAM[stream], unit=unit, fs_hz=fs_hz, index=index,
        values=values, n_samples=np.full(index.size, count, dtype=np.int64),
        sequence=arr["seq"].astype(np.int64), device_ticks=arr["ticks"].astype(np.int64),
        flags=arr["flags"].astype(np.int64),
    )


# --------------------------------------------------------------------------- control point


def _command(opcode: Opcode, params: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    return bytes([version & 0xFF, int(opcode)]) + params


def encode_start(emg_fs_hz: int, imu_fs_hz: int, *, version: int = PROTOCOL_VERSION) -> bytes:
    """START: ``[ver][01][emg_fs_hz u16][imu_fs_hz u16]`` (a rate of 0 leaves a stream off).

    Examples
    --------
    >>> encode_start(1000, 50).hex(" ")
    '01 01 e8 03 32 00'
    """
    return _command(Opcode.START, struct.pack("<HH", emg_fs_hz, imu_fs_hz), version)


def encode_stop(*, version: int = PROTOCOL_VERSION) -> bytes:
    """STOP: ``[ver][02]``."""
    return _command(Opcode.STOP, b"", version)


def encode_set_time(unix_us: int, *, version: int = PROTOCOL_VERSION) -> bytes:
    """SET_TIME: ``[ver][03][Unix time u64 µs]``."""
    return _command(Opcode.SET_TIME, struct.pack("<Q", unix_us % 2**64), version)


def encode_get_config(*, version: int = PROTOCOL_VERSION) -> bytes:
    """GET_CONFIG: ``[ver][04]``."""
    return _command(Opcode.GET_CONFIG, b"", version)


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """A parsed control-point indication.

    Attributes
    ----------
    version : int
        Protocol version the band speaks.
    opcode : int
        The command answered (without the response bit).
    status : int
        A :class:`Status` value (kept as int: a newer firmware may send unknown codes).
    payload : bytes
        Bytes after the status.
    """

    version: int
    opcode: int
    status: int
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.status == Status.OK


def _status_name(status: int) -> str:
    return Status(status).name if status in Status._value2member_map_ else f"0x{status:02X}"


def _opcode_name(opcode: int) -> str:
    return Opcode(opcode).name if opcode in Opcode._value2member_map_ else f"0x{opcode:02X}"


def parse_response(payload: bytes) -> ControlResponse:
    """Parse a control-point indication.

    Raises
    ------
    ProtocolError
        Shorter than 3 bytes, another protocol version, or no response bit.
    """
    payload = bytes(payload)
    if len(payload) < 3:
        msg = (
            f"band control response {payload.hex(' ') or '(empty)'} is shorter than 3 bytes; "
            "the firmware does not follow the profile: update it"
        )
        raise ProtocolError(msg)
    if payload[0] != PROTOCOL_VERSION:
        msg = (
            f"band answered in protocol version {payload[0]}, this crampsense speaks version "
            f"{PROTOCOL_VERSION}; update crampsense or the band firmware"
        )
        raise ProtocolError(msg)
    if not payload[1] & RESPONSE_BIT:
        msg = f"band control indication 0x{payload[1]:02X} lacks the response bit 0x80"
        raise ProtocolError(msg)
    return ControlResponse(payload[0], payload[1] & 0x7F, payload[2], payload[3:])


@dataclass(frozen=True, slots=True)
class BandConfig:
    """What GET_CONFIG reports.

    Attributes
    ----------
    firmware : str
        ``"major.minor.patch"``.
    streaming, clock_set : bool
    emg_fs_hz, imu_fs_hz : int
        Configured rates (the last START, or the power-on defaults).
    emg_uv_per_lsb : float
    acc_range_g : int
    channels : tuple of str
        EMG channel names.
    """

    firmware: str
    streaming: bool
    clock_set: bool
    emg_fs_hz: int
    imu_fs_hz: int
    emg_uv_per_lsb: float = EMG_UV_PER_LSB
    acc_range_g: int = ACC_RANGE_G
    channels: tuple[str, ...] = EMG_CHANNELS

    @property
    def acc_mg_per_lsb(self) -> float:
        return self.acc_range_g * G_MG / 32768.0


#: GET_CONFIG payload after the status: fw major/minor/patch, state, rates, nV/LSB, ±g.
_CONFIG_BODY: Final = struct.Struct("<BBBBHHHB")
_STATE_STREAMING: Final = 0x01
_STATE_CLOCK_SET: Final = 0x02


def parse_config(payload: bytes) -> BandConfig:
    """Parse a GET_CONFIG response (the whole indication).

    Raises
    ------
    ProtocolError
        Not an OK GET_CONFIG response, or its body is malformed.
    """
    resp = parse_response(payload)
    if resp.opcode != Opcode.GET_CONFIG or not resp.ok:
        msg = (
            f"expected an OK GET_CONFIG response, got {_opcode_name(resp.opcode)} with status "
            f"{_status_name(resp.status)}; send GET_CONFIG again"
        )
        raise ProtocolError(msg)
    if len(resp.payload) < _CONFIG_BODY.size:
        msg = (
            f"GET_CONFIG body of {len(resp.payload)} bytes is shorter than "
            f"{_CONFIG_BODY.size}; the firmware does not follow the profile"
        )
        raise ProtocolError(msg)
    major, minor, patch, state, emg_fs, imu_fs, nv, rng = _CONFIG_BODY.unpack_from(resp.payload)
    try:
        names = resp.payload[_CONFIG_BODY.size :].decode("ascii")
    except UnicodeDecodeError as exc:
        msg = "GET_CONFIG channel names are not ASCII; the firmware does not follow the profile"
        raise ProtocolError(msg) from exc
    return BandConfig(
        firmware=f"{major}.{minor}.{patch}",
        streaming=bool(state & _STATE_STREAMING),
        clock_set=bool(state & _STATE_CLOCK_SET),
        emg_fs_hz=emg_fs,
        imu_fs_hz=imu_fs,
        emg_uv_per_lsb=nv / 1000.0,
        acc_range_g=rng,
        channels=tuple(names.split(",")) if names else (),
    )


# --------------------------------------------------------------------------- protocol


class ReferenceBandProtocol(DeviceProtocol):
    """The crampsense reference band (see ``docs/reference-band.md``).

    Parameters
    ----------
    emg_fs_hz : int
        EMG rate to request, one of :data:`EMG_RATES_HZ`.
    imu_fs_hz : int
        Accelerometer rate to request, one of :data:`IMU_RATES_HZ`.

    Raises
    ------
    ConfigError
        An unsupported rate.
    """

    family = "crampsense-band"
    display_name = "crampsense reference band"

    def __init__(self, emg_fs_hz: int = 1000, imu_fs_hz: int = 50) -> None:
        if emg_fs_hz not in EMG_RATES_HZ:
            msg = f"band EMG rate {emg_fs_hz!r} Hz is not supported; use one of {EMG_RATES_HZ}"
            raise ConfigError(msg, key="band.emg_fs_hz")
        if imu_fs_hz not in IMU_RATES_HZ:
            msg = f"band IMU rate {imu_fs_hz!r} Hz is not supported; use one of {IMU_RATES_HZ}"
            raise ConfigError(msg, key="band.imu_fs_hz")
        self.emg_fs_hz = int(emg_fs_hz)
        self.imu_fs_hz = int(imu_fs_hz)

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        if any(u.lower() == SERVICE_UUID for u in service_uuids):
            return True
        return bool(local_name) and str(local_name).lower().startswith(NAME_PREFIX)

    def capabilities(self) -> tuple[Capability, ...]:
        return (
            Capability("emg", EMG_CHANNELS, EMG_UNIT, float(self.emg_fs_hz)),
            Capability("acc", ACC_CHANNELS, ACC_UNIT, float(self.imu_fs_hz)),
            Capability("status", STATUS_CHANNELS, "mixed", None),
        )

    def control_uuids(self) -> tuple[str, ...]:
        return (CONTROL_UUID,)

    def data_uuids(self) -> tuple[str, ...]:
        return (EMG_UUID, IMU_UUID, STATUS_UUID)

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        """SET_TIME (host Unix time in µs) then START at the configured rates."""
        return (
            GattWrite(CONTROL_UUID, encode_set_time(device_time_ns // 1000), True, True),
            GattWrite(CONTROL_UUID, encode_start(self.emg_fs_hz, self.imu_fs_hz), True, True),
        )

    def stop_commands(self) -> tuple[GattWrite, ...]:
        return (GattWrite(CONTROL_UUID, encode_stop(), True, True),)

    def check_response(self, char_uuid: str, payload: bytes) -> None:
        """Raise :class:`~crampsense.errors.ProtocolError` on an error status.

        ``NOT_STREAMING`` in answer to STOP is not an error (the goal, stopped, holds).
        """
        if char_uuid.lower() != CONTROL_UUID:
            return
        resp = parse_response(payload)
        if resp.ok or (resp.opcode == Opcode.STOP and resp.status == Status.NOT_STREAMING):
            return
        name = _status_name(resp.status)
        advice = (
            _STATUS_ADVICE[Status(resp.status)]
            if resp.status in Status._value2member_map_
            else "the firmware is newer than this crampsense; update crampsense"
        )
        msg = f"band refused {_opcode_name(resp.opcode)} with status {name}: {advice}"
        raise ProtocolError(msg)

    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode an EMG, IMU or status notification; control indications give ``[]``.

        Raises
        ------
        DecodeError
            Malformed bytes, or a characteristic that is not the band's.
        """
        uuid = frame.characteristic_uuid.lower()
        if uuid == CONTROL_UUID:
            return []
        stream, seq, ticks, flags, values = decode_data_packet(frame.payload, uuid)
        if stream == StreamId.EMG:
            name, unit, fs = "emg", EMG_UNIT, float(self.emg_fs_hz)
        elif stream == StreamId.ACC:
            name, unit, fs = "acc", ACC_UNIT, float(self.imu_fs_hz)
        else:
            return [
                SampleBlock(
                    frame.device_address, "status", STATUS_CHANNELS, "mixed", None, values,
                    device_ticks=ticks, sequence=seq, flags=flags,
                )
            ]
        return [
            SampleBlock(
                frame.device_address, name, _CHANNELS_BY_STREAM[stream], unit, fs, values,
                device_ticks=ticks, sequence=seq, flags=flags,
            )
        ]

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode many EMG, IMU or status notifications at once (vectorised).

        Payloads of one length (the firmware sends fixed-size packets, so nearly all of a
        night's packets on one characteristic share one length) are joined and read as one
        array of packet records; packets whose header does not fit the characteristic and
        length, and lengths shared by fewer than :data:`_MIN_BATCH_PACKETS` packets, are left
        out, for :meth:`decode` to decode (or reject) one by one. The values are bit for bit
        those of :meth:`decode`.

        Returns
        -------
        list of PacketBatch or None
            ``None`` for the control point and foreign characteristics (decode per frame);
            otherwise one batch per decoded packet length.
        """
        del host_time_ns  # device time and sequence numbers are in the packets
        stream = _STREAM_BY_UUID.get(char_uuid.lower())
        if stream is None:
            return None
        total = len(payloads)
        if total == 0:
            return []
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=total)
        if bool(np.all(lengths == lengths[0])):
            groups = [(int(lengths[0]), np.arange(total, dtype=np.int64))]
        else:
            distinct, inverse = np.unique(lengths, return_inverse=True)
            groups = [
                (int(length), np.flatnonzero(inverse == j).astype(np.int64))
                for j, length in enumerate(distinct.tolist())
            ]
        fs_hz = float(self.emg_fs_hz if stream is StreamId.EMG else self.imu_fs_hz)
        out: list[PacketBatch] = []
        for length, index in groups:
            if index.size < _MIN_BATCH_PACKETS:
                continue
            joined = (
                b"".join(payloads)
                if index.size == total
                else b"".join([payloads[i] for i in index.tolist()])
            )
            if stream is StreamId.STATUS:
                batch = (
                    _decode_status_group(joined, index)
                    if length == DATA_HEADER.size + _STATUS_BODY.size
                    else None
                )
            else:
                batch = _decode_samples_group(stream, joined, length, index, fs_hz)
            if batch is not None:
                out.append(batch)
        return out

    def timeline_builder(self, stream: str) -> TimelineBuilder | None:
        """A :class:`TimelineBuilder` for ``"emg"`` or ``"acc"``; ``None`` for status."""
        if stream == "emg":
            fs, mask = self.emg_fs_hz, EMG_INVALID_FLAGS
        elif stream == "acc":
            fs, mask = self.imu_fs_hz, ACC_INVALID_FLAGS
        else:
            return None
        return TimelineBuilder(
            stream, float(fs), float(TICK_HZ), SEQ_MODULO, TICK_MODULO, lead_off_mask=mask
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ReferenceBandProtocol:
        """Rebuild the protocol a session was recorded with from its :meth:`metadata`.

        Missing rates take the defaults (1000 Hz EMG, 50 Hz IMU).

        Raises
        ------
        ConfigError
            A stored rate that is not an integer or not supported.
        """
        rates: dict[str, int] = {}
        for key in ("emg_fs_hz", "imu_fs_hz"):
            if key in metadata:
                try:
                    rates[key] = int(metadata[key])
                except ValueError as exc:
                    msg = (
                        f"session metadata {key}={metadata[key]!r} is not an integer rate; "
                        "the session file is damaged or from another program"
                    )
                    raise ConfigError(msg, key=key) from exc
        return cls(**rates)

    def metadata(self) -> Mapping[str, str]:
        return {
            "family": self.family,
            "protocol_version": str(PROTOCOL_VERSION),
            "emg_fs_hz": str(self.emg_fs_hz),
            "imu_fs_hz": str(self.imu_fs_hz),
            "emg_channels": ",".join(EMG_CHANNELS),
            "emg_uv_per_lsb": repr(EMG_UV_PER_LSB),
            "acc_range_g": str(ACC_RANGE_G),
            "acc_mg_per_lsb": repr(ACC_MG_PER_LSB),
            "skin_temp_c_per_lsb": repr(SKIN_TEMP_C_PER_LSB),
            "tick_hz": str(TICK_HZ),
            "tick_modulo": str(TICK_MODULO),
            "seq_modulo": str(SEQ_MODULO),
        }
