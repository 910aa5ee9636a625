"""Movesense sensors through the GATT SensorData Protocol (GSP): accelerometer and IMU6.

Wire format (``shared/design/PROTOCOLS.md`` section 3)::

    service 34802252-7185-4d5d-b431-630e7050e8f0
    write   34800001-...  command  [cmd u8][client reference u8, not 0][data]
                          HELLO 0: no data;  SUBSCRIBE 1: resource path, UTF-8, e.g.
                          "/Meas/Acc/52", "/Meas/IMU6/104";  UNSUBSCRIBE 2: no data
    notify  34800002-...  [type u8][reference u8][...]
                          type 1 response: [status u16]  (HELLO answers "Hello")
                          type 2 data: [timestamp u32 ms][samples]
                          type 3 data continuation: the rest of the previous type-2 message
    Acc:  N × (x, y, z) float32 m/s²                   (12 N bytes)
    IMU6: N × acc (x, y, z), then N × gyro (x, y, z)    (24 N bytes; gyro in deg/s)

Values are converted to milli-g with standard gravity g0 = 9.80665 m/s² (the CGPM 1901
conventional value): ``mg = m/s² / 9.80665 × 1000``. Numbers are little-endian.

What was verified, and how
--------------------------
Checked against the official page movesense.com/docs/esw/gatt_sensordata_protocol (its
opening, as stored by the search index: the service and the two characteristic UUIDs, write
for commands, notify for responses and data, the client-chosen 8-bit reference tying
commands to responses, "GSP version 1") and against the sample firmware
``GATTSensorDataClient.cpp`` (movesense-device-lib ``gatt_sensordata_app``: commands HELLO 0,
SUBSCRIBE 1 with the resource path as the data, UNSUBSCRIBE 2 with no data and the
subscription's reference; notification byte 0 = 1 command result / 2 data, byte 1 the
reference; HELLO answered ``[1][ref]"Hello"``) and its Python client (data type 3
"DATA_PART2" appended without its own 2-byte header to the pending type-2 message; the
u32 timestamp at byte 2; IMU arrays as whole per-sensor blocks of xyz float32, not
interleaved per sample; paths written with a leading slash and no terminator).

Not verified (the full page text was not available): the byte order of the response status
(the early sample firmware wrote 507 as bytes ``01 FB``, big-endian, while client code reads a
little-endian u16; :func:`parse_response` accepts either, taking the reading that is an HTTP
status 100-599, which is never ambiguous), whether success is answered at all (the simulator
answers ``200``), whether the timestamp is that of the first sample (client code
interpolates forward from it, which is assumed here), the number of samples per message
(the simulator sends ``rate/13`` capped at 8) and where a long message is split (the simulator
fills the first notification).

Decode state: continuations
---------------------------
A type-3 notification is meaningless without the type-2 part before it, so
:class:`MovesenseProtocol` keeps, per device and reference, the last *incomplete* type-2 part
(one whose sample bytes are not a whole number of samples). Complete type-2 messages neither
read nor change that state, which is why :meth:`~MovesenseProtocol.decode_batch` can decode
them vectorised and leave the parts to :meth:`~MovesenseProtocol.decode` (called afterwards,
in order) with results identical to decoding every frame in order. Limitation: a first part
that happens to end on a whole sample is taken as complete (it cannot happen at the MTUs
Movesense uses, 158-161, nor at 23 or 247).
"""

from __future__ import annotations

import enum
import logging
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.base import Capability, DeviceProtocol, GattWrite, PacketBatch
from crampsense.devices.timeline import TimelineBuilder
from crampsense.errors import ConfigError, DecodeError, ProtocolError
from crampsense.models import ACC_UNIT, G_MG, Frame, SampleBlock

__all__ = [
    "ACC_CHANNELS",
    "ACC_RATES_HZ",
    "ACC_REFERENCE",
    "GYRO_CHANNELS",
    "HELLO_REFERENCE",
    "IMU_REFERENCE",
    "MPS2_PER_G",
    "NAME_PREFIX",
    "NOTIFY_UUID",
    "SERVICE_UUID",
    "TICK_HZ",
    "TICK_MODULO",
    "WRITE_UUID",
    "Command",
    "MovesenseProtocol",
    "NotificationType",
    "Resource",
    "Response",
    "encode_command",
    "encode_hello",
    "encode_subscribe",
    "encode_unsubscribe",
    "mps2_to_mg",
    "parse_resource",
    "parse_response",
]

logger = logging.getLogger(__name__)

SERVICE_UUID: Final = "34802252-7185-4d5d-b431-630e7050e8f0"
WRITE_UUID: Final = "34800001-7185-4d5d-b431-630e7050e8f0"
NOTIFY_UUID: Final = "34800002-7185-4d5d-b431-630e7050e8f0"
#: Movesense sensors advertise names like "Movesense 174630000192".
NAME_PREFIX: Final = "movesense"


class Command(enum.IntEnum):
    HELLO = 0
    SUBSCRIBE = 1
    UNSUBSCRIBE = 2


class NotificationType(enum.IntEnum):
    RESPONSE = 1
    DATA = 2
    DATA_PART2 = 3


#: Client references crampsense uses (any non-zero byte works; fixed ones make recordings
#: self-describing): HELLO, the accelerometer/IMU subscription.
HELLO_REFERENCE: Final = 1
ACC_REFERENCE: Final = 0x41
IMU_REFERENCE: Final = 0x49
#: Output data rates the Movesense accelerometer offers (Hz).
ACC_RATES_HZ: Final = (13, 26, 52, 104, 208, 416, 833, 1666)
#: Standard gravity (m/s² per g), the CGPM 1901 conventional value.
MPS2_PER_G: Final = 9.80665
#: Timestamps are u32 milliseconds of the sensor's clock (wraps every 49.7 days).
TICK_HZ: Final = 1000
TICK_MODULO: Final = 2**32
#: The timeline needs a sequence modulus although GSP has no sequence numbers.
_SEQ_MODULO: Final = 2**16
_HEADER: Final = 2
_TIMESTAMP: Final = struct.Struct("<I")
_FLOAT_BYTES: Final = 4
_STATUS_MIN: Final = 100
_STATUS_MAX: Final = 599
_STATUS_ERROR: Final = 400

ACC_CHANNELS: Final = ("x", "y", "z")
GYRO_CHANNELS: Final = ("gx", "gy", "gz")
_RESOURCE_RE: Final = re.compile(r"^/Meas/(Acc|IMU6)/(\d+)$")


@dataclass(frozen=True, slots=True)
class Resource:
    """A subscribable measurement: ``kind`` "Acc" or "IMU6" at ``rate_hz``."""

    kind: str
    rate_hz: int

    @property
    def path(self) -> str:
        return f"/Meas/{self.kind}/{self.rate_hz}"

    @property
    def floats_per_sample(self) -> int:
        return 3 if self.kind == "Acc" else 6

    @property
    def sample_bytes(self) -> int:
        return self.floats_per_sample * _FLOAT_BYTES


def parse_resource(path: str) -> Resource:
    """Parse ``"/Meas/Acc/52"`` or ``"/Meas/IMU6/104"``.

    Raises
    ------
    ConfigError
        Another resource or an unsupported rate.
    """
    m = _RESOURCE_RE.match(path.strip())
    if m is None or int(m.group(2)) not in ACC_RATES_HZ:
        msg = (
            f"Movesense resource {path!r} is not supported; use /Meas/Acc/<rate> or "
            f"/Meas/IMU6/<rate> with a rate in {ACC_RATES_HZ}"
        )
        raise ConfigError(msg, key="resource")
    return Resource(m.group(1), int(m.group(2)))


def mps2_to_mg(values: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """m/s² (float32 as sent) to milli-g as float32 (one formula for every decode path)."""
    # A corrupted packet can carry NaN (signalling NaNs warn when cast) or values near the
    # float32 limit (which become ±inf): both pass through quietly as non-finite samples,
    # which detection treats as invalid, like a gap.
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(values, dtype=np.float64)
        out: npt.NDArray[np.float32] = (v * (G_MG / MPS2_PER_G)).astype(np.float32)
    return out


# --------------------------------------------------------------------------- commands


def encode_command(command: Command, reference: int, data: bytes = b"") -> bytes:
    """``[command][reference][data]``.

    Raises
    ------
    DecodeError
        A reference outside 1-255 (0 is reserved by the sample firmware's free-slot marker).
    """
    if not 1 <= reference <= 255:
        msg = f"GSP client reference {reference} must be 1-255; pick a non-zero byte"
        raise DecodeError(msg, offset=1, field="reference")
    return bytes([int(command), reference]) + data


def encode_hello(reference: int = HELLO_REFERENCE) -> bytes:
    return encode_command(Command.HELLO, reference)


def encode_subscribe(reference: int, path: str) -> bytes:
    """SUBSCRIBE: the resource path as UTF-8, no terminator.

    Examples
    --------
    >>> encode_subscribe(0x41, "/Meas/Acc/52").hex(" ")
    '01 41 2f 4d 65 61 73 2f 41 63 63 2f 35 32'
    """
    return encode_command(Command.SUBSCRIBE, reference, path.encode("utf-8"))


def encode_unsubscribe(reference: int) -> bytes:
    return encode_command(Command.UNSUBSCRIBE, reference)


@dataclass(frozen=True, slots=True)
class Response:
    """A type-1 notification: ``status`` (HTTP code) or ``text`` (HELLO's answer)."""

    reference: int
    status: int | None
    text: str


def parse_response(payload: bytes) -> Response:
    """Parse a type-1 notification.

    Raises
    ------
    DecodeError
        Not a response or shorter than 3 bytes.
    """
    if len(payload) < _HEADER + 1 or payload[0] != NotificationType.RESPONSE:
        msg = f"GSP response {payload.hex(' ') or '(empty)'} is not [1][ref][status]"
        raise DecodeError(msg, offset=0, field="packet_type")
    body = payload[_HEADER:]
    status = None
    if len(body) == 2:
        little, big = struct.unpack("<H", body)[0], struct.unpack(">H", body)[0]
        status = next(
            (v for v in (little, big) if _STATUS_MIN <= v <= _STATUS_MAX), None
        )
    text = body.decode("ascii", errors="replace") if status is None else ""
    return Response(payload[1], status, text)


# --------------------------------------------------------------------------- protocol


class MovesenseProtocol(DeviceProtocol):
    """A Movesense sensor streaming one accelerometer or IMU6 resource over GSP.

    Parameters
    ----------
    resource : str
        ``"/Meas/Acc/52"`` (default: 52 Hz resolves movement and posture, costs little) or
        ``"/Meas/IMU6/104"`` etc.

    Raises
    ------
    ConfigError
        An unsupported resource.
    """

    family = "movesense"
    display_name = "Movesense (GATT SensorData Protocol)"

    def __init__(self, resource: str = "/Meas/Acc/52") -> None:
        self.resource = parse_resource(resource)
        self.reference = ACC_REFERENCE if self.resource.kind == "Acc" else IMU_REFERENCE
        self._pending: dict[tuple[str, int], bytes] = {}
        # Smallest MTU at which one message fits two notifications (GSP has one continuation
        # type; the simulator's message size).
        size = _HEADER + _TIMESTAMP.size + self.samples_per_message() * self.resource.sample_bytes
        self.min_mtu = max(23, -(-(size + _HEADER) // 2) + 3)

    def samples_per_message(self) -> int:
        """Samples per data message as the simulator sends them (``rate / 13``, 1-8)."""
        return max(1, min(8, self.resource.rate_hz // 13))

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        uuids = {u.lower() for u in service_uuids}
        if SERVICE_UUID in uuids or "0000fdf3-0000-1000-8000-00805f9b34fb" in uuids:
            return True
        return (local_name or "").lower().startswith(NAME_PREFIX)

    def capabilities(self) -> tuple[Capability, ...]:
        fs = float(self.resource.rate_hz)
        caps = [Capability("acc", ACC_CHANNELS, ACC_UNIT, fs)]
        if self.resource.kind == "IMU6":
            caps.append(Capability("gyro", GYRO_CHANNELS, "dps", fs))
        return tuple(caps)

    def control_uuids(self) -> tuple[str, ...]:
        """None: responses arrive on the data characteristic and are recorded as frames."""
        return ()

    def data_uuids(self) -> tuple[str, ...]:
        return (NOTIFY_UUID,)

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        """HELLO, then SUBSCRIBE; sent on every connect (the sensor ends every subscription
        when the link drops, as the sample firmware does)."""
        del device_time_ns  # GSP v1 has no time setting
        return (
            GattWrite(WRITE_UUID, encode_hello()),
            GattWrite(WRITE_UUID, encode_subscribe(self.reference, self.resource.path)),
        )

    def stop_commands(self) -> tuple[GattWrite, ...]:
        return (GattWrite(WRITE_UUID, encode_unsubscribe(self.reference)),)

    def check_response(self, char_uuid: str, payload: bytes) -> None:
        """Raise :class:`~crampsense.errors.ProtocolError` for a type-1 error status (>= 400)."""
        if char_uuid.lower() != NOTIFY_UUID or not payload:
            return
        if payload[0] != NotificationType.RESPONSE:
            return
        try:
            resp = parse_response(payload)
        except DecodeError as exc:
            raise ProtocolError(str(exc)) from exc
        if resp.status is not None and resp.status >= _STATUS_ERROR:
            msg = (
                f"Movesense refused reference {resp.reference} with status {resp.status}; "
                f"check that the sensor firmware has the GSP app and offers {self.resource.path}"
            )
            raise ProtocolError(msg)

    def reset(self) -> None:
        """Forget pending first parts (decode a recording again from its start)."""
        self._pending.clear()

    # ------------------------------------------------------------------ decoding

    def _blocks(
        self, address: str, message: bytes
    ) -> list[SampleBlock]:
        """Blocks of one whole data message (type 2, header included)."""
        ticks, values = self._values(message)
        fs = float(self.resource.rate_hz)
        out = [
            SampleBlock(address, "acc", ACC_CHANNELS, ACC_UNIT, fs, mps2_to_mg(values[:, :3].T),
                        device_ticks=ticks)
        ]
        if self.resource.kind == "IMU6":
            gyro = values[:, 3:].T.astype(np.float32)
            out.append(SampleBlock(address, "gyro", GYRO_CHANNELS, "dps", fs, gyro,
                                   device_ticks=ticks))
        return out

    def _values(self, message: bytes) -> tuple[int, npt.NDArray[np.float32]]:
        if len(message) < _HEADER + _TIMESTAMP.size:
            msg = f"GSP data message of {len(message)} bytes has no u32 timestamp"
            raise DecodeError(msg, offset=len(message), field="timestamp")
        (ticks,) = _TIMESTAMP.unpack_from(message, _HEADER)
        body = message[_HEADER + _TIMESTAMP.size :]
        stride = self.resource.sample_bytes
        if not body or len(body) % stride:
            msg = (
                f"{len(body)} sample bytes are not a whole number of {stride}-byte "
                f"{self.resource.kind} samples; the message was cut or belongs to another "
                "resource"
            )
            raise DecodeError(msg, offset=_HEADER + _TIMESTAMP.size + len(body) // stride * stride,
                              field="samples")
        n = len(body) // stride
        raw = np.frombuffer(body, dtype="<f4")
        if self.resource.kind == "Acc":
            values = raw.reshape(n, 3)
        else:
            values = np.concatenate([raw[: 3 * n].reshape(n, 3), raw[3 * n :].reshape(n, 3)], 1)
        return int(ticks), values

    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode one notification: data → ``acc`` (and ``gyro``) blocks, responses → ``[]``.

        Raises
        ------
        DecodeError
            Another characteristic, an unknown type or reference, a continuation without a
            first part, or sample bytes that are not whole samples.
        """
        if frame.characteristic_uuid.lower() != NOTIFY_UUID:
            msg = (
                f"characteristic {frame.characteristic_uuid} is not the GSP notify "
                f"characteristic {NOTIFY_UUID}; record only data_uuids()"
            )
            raise DecodeError(msg, offset=0, field="characteristic_uuid")
        p = bytes(frame.payload)
        if len(p) < _HEADER:
            msg = f"GSP notification of {len(p)} bytes has no [type][reference] header"
            raise DecodeError(msg, offset=len(p), field="packet_type")
        kind, ref = p[0], p[1]
        if kind == NotificationType.RESPONSE:
            parse_response(p)
            return []
        if kind not in (NotificationType.DATA, NotificationType.DATA_PART2):
            msg = f"GSP notification type {kind} is unknown (1 response, 2 data, 3 continuation)"
            raise DecodeError(msg, offset=0, field="packet_type")
        if ref != self.reference:
            msg = (
                f"GSP data for reference {ref}, but this recording subscribed "
                f"{self.resource.path} as reference {self.reference}"
            )
            raise DecodeError(msg, offset=1, field="reference")
        key = (frame.device_address, ref)
        if kind == NotificationType.DATA and len(p) < _HEADER + _TIMESTAMP.size:
            msg = f"GSP data message of {len(p)} bytes has no u32 timestamp"
            raise DecodeError(msg, offset=len(p), field="timestamp")
        if kind == NotificationType.DATA:
            if self._complete(len(p)):
                return self._blocks(frame.device_address, p)
            self._pending[key] = p
            return []
        first = self._pending.pop(key, None)
        if first is None:
            msg = "GSP continuation without its first part (lost notification); skip it"
            raise DecodeError(msg, offset=0, field="continuation")
        whole = first + p[_HEADER:]
        if not self._complete(len(whole)):
            body = len(whole) - _HEADER - _TIMESTAMP.size
            msg = (
                f"first part and continuation hold {body} sample bytes, not a whole number of "
                f"{self.resource.sample_bytes}-byte {self.resource.kind} samples; a part was "
                "lost or cut"
            )
            raise DecodeError(msg, offset=len(p), field="samples")
        return self._blocks(frame.device_address, whole)

    def _complete(self, length: int) -> bool:
        body = length - _HEADER - _TIMESTAMP.size
        return body > 0 and body % self.resource.sample_bytes == 0

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode complete single-notification data messages at once (grouped by length);
        responses, first parts, continuations and malformed notifications are left for
        :meth:`decode`. Values are bit for bit those of :meth:`decode`."""
        del host_time_ns  # data carry the sensor's timestamps
        if char_uuid.lower() != NOTIFY_UUID:
            return None
        total = len(payloads)
        if total == 0:
            return []
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=total)
        stride = self.resource.sample_bytes
        body = lengths - _HEADER - _TIMESTAMP.size
        out: list[PacketBatch] = []
        candidates = (body > 0) & (body % stride == 0)
        for length in np.unique(lengths[candidates]).tolist():
            idx = np.flatnonzero(lengths == length).astype(np.int64)
            rows = np.frombuffer(
                b"".join([payloads[i] for i in idx.tolist()]), dtype=np.uint8
            ).reshape(idx.size, length)
            ok = (rows[:, 0] == NotificationType.DATA) & (rows[:, 1] == self.reference)
            idx, rows = idx[ok], rows[ok]
            if idx.size == 0:
                continue
            out.extend(self._group(rows, idx))
        return out

    def _group(self, rows: npt.NDArray[np.uint8], idx: npt.NDArray[np.int64]) -> list[PacketBatch]:
        k, length = rows.shape
        n = (length - _HEADER - _TIMESTAMP.size) // self.resource.sample_bytes
        ticks = np.ascontiguousarray(rows[:, 2:6]).view("<u4").ravel().astype(np.int64)
        floats = np.ascontiguousarray(rows[:, 6:]).view("<f4").reshape(k, -1)
        if self.resource.kind == "Acc":
            acc = floats.reshape(k, n, 3)
            gyro = None
        else:
            acc = floats[:, : 3 * n].reshape(k, n, 3)
            gyro = floats[:, 3 * n :].reshape(k, n, 3)
        fs = float(self.resource.rate_hz)
        none = np.full(k, -1, np.int64)
        counts = np.full(k, n, np.int64)
        zeros = np.zeros(k, np.int64)

        def batch(stream: str, chans: tuple[str, ...], unit: str, v: npt.NDArray[np.float32]) -> (
            PacketBatch
        ):
            return PacketBatch(stream=stream, channels=chans, unit=unit, fs_hz=fs, index=idx,
                               values=v, n_samples=counts, sequence=none, device_ticks=ticks,
                               flags=zeros)

        out = [batch("acc", ACC_CHANNELS, ACC_UNIT, mps2_to_mg(acc.reshape(k * n, 3).T))]
        if gyro is not None:
            out.append(batch("gyro", GYRO_CHANNELS, "dps",
                             gyro.reshape(k * n, 3).T.astype(np.float32)))
        return out

    def timeline_builder(self, stream: str) -> TimelineBuilder | None:
        if stream in ("acc", "gyro"):
            return TimelineBuilder(stream, float(self.resource.rate_hz), float(TICK_HZ),
                                   _SEQ_MODULO, TICK_MODULO)
        return None

    def metadata(self) -> Mapping[str, str]:
        return {
            "family": self.family,
            "resource": self.resource.path,
            "reference": str(self.reference),
            "fs_hz": str(self.resource.rate_hz),
            "acc_unit_on_wire": "m/s^2 float32",
            "mps2_per_g": repr(MPS2_PER_G),
            "tick_hz": str(TICK_HZ),
            "tick_modulo": str(TICK_MODULO),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> MovesenseProtocol:
        """Rebuild from :meth:`metadata` (``resource``; default ``/Meas/Acc/52``).

        Raises
        ------
        ConfigError
            A stored resource that is not supported.
        """
        return cls(metadata.get("resource", "/Meas/Acc/52"))
