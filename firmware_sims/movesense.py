"""Firmware of a Movesense sensor running the GATT SensorData Protocol app, simulated.

Behaviour (bytes from its own encoders below, written from the protocol page, independent of
the host's decoder in :mod:`crampsense.devices.movesense`):

- HELLO answers ``[1][ref]"Hello"``; SUBSCRIBE with ``/Meas/Acc/<rate>`` or
  ``/Meas/IMU6/<rate>`` answers status 200 (little-endian u16) and starts that stream,
  an unknown path 404, a reference already in use 409, more than
  :data:`MAX_SUBSCRIPTIONS` 507; UNSUBSCRIBE answers 200 (404 for an unknown reference);
- data messages carry ``rate / 13`` samples (1-8) and the sensor's u32 millisecond clock at
  the first sample; a message longer than ``mtu - 3`` goes out as a type-2 part filling the
  notification and type-3 continuations;
- samples are taken on the sensor clock (``drift_ppm``, counter starting at
  ``clock_offset_ms``); acceleration from the source's milli-g converted to m/s², the
  gyroscope (IMU6) reads a small constant drift;
- a disconnect ends every subscription (the sample firmware unsubscribes all on disconnect);
  the central subscribes again after reconnecting.

Not verified against hardware: the success answers, the samples per message and the split
point (see :mod:`crampsense.devices.movesense`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.gatt import DEVICE_INFORMATION_SERVICE_UUID, DEVICE_INFORMATION_UUIDS
from crampsense.devices.movesense import (
    ACC_RATES_HZ,
    MPS2_PER_G,
    NOTIFY_UUID,
    SERVICE_UUID,
    WRITE_UUID,
    Command,
    NotificationType,
    Resource,
)
from crampsense.models import G_MG
from firmware_sims.peripheral import (
    ATT_ATTRIBUTE_NOT_FOUND,
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
    "DEFAULT_CLOCK_OFFSET_MS",
    "GYRO_BIAS_DPS",
    "MAX_SUBSCRIPTIONS",
    "Movesense",
    "encode_data_message",
    "encode_response",
    "resource_of_path",
    "split_message",
]

#: Sensor millisecond counter at power-on: near the u32 wrap is not needed (49.7 days), any
#: non-zero start shows that the decoder does not assume 0.
DEFAULT_CLOCK_OFFSET_MS: Final = 123_456
#: Subscriptions the GSP sample app keeps at once.
MAX_SUBSCRIPTIONS: Final = 4
#: Gyroscope reading of a still sensor (deg/s): a typical MEMS zero-rate offset.
GYRO_BIAS_DPS: Final = (0.5, -0.25, 0.125)
_HTTP_OK: Final = 200
_HTTP_NOT_FOUND: Final = 404
_HTTP_CONFLICT: Final = 409
_HTTP_INSUFFICIENT_STORAGE: Final = 507


# ------------------------------------------------------------------ the wire (firmware side)
# Written from the GATT SensorData Protocol page (docs: PROTOCOLS.md section 3), not with the
# host's codec in crampsense.devices.movesense; only UUIDs, command and message type numbers,
# the rates and the Resource record are shared.

_RESOURCE_PATH: Final = re.compile(r"/Meas/(Acc|IMU6)/(\d+)")


def resource_of_path(path: str) -> Resource | None:
    """The measurement a SUBSCRIBE path names (``/Meas/Acc/<rate>``, ``/Meas/IMU6/<rate>``
    at a rate the accelerometer offers), or ``None`` (the sensor answers 404)."""
    m = _RESOURCE_PATH.fullmatch(path)
    if m is None or int(m[2]) not in ACC_RATES_HZ:
        return None
    return Resource(m[1], int(m[2]))


def encode_response(reference: int, status: int) -> bytes:
    """A type-1 response: ``[1][reference]`` and the HTTP status as a little-endian u16."""
    return bytes([NotificationType.RESPONSE, reference]) + status.to_bytes(2, "little")


def encode_data_message(
    reference: int, timestamp_ms: int, samples: npt.ArrayLike, resource: Resource
) -> bytes:
    """A whole type-2 data message: ``[2][reference]``, the u32 sensor time (ms) of the first
    sample, then float32 samples: x, y, z per sample (m/s²) for Acc; for IMU6 all the
    accelerometer triples, then all the gyroscope ones (deg/s)."""
    per_sample = 3 if resource.kind == "Acc" else 6
    s = np.asarray(samples, dtype="<f4").reshape(-1, per_sample)
    body = s[:, :3].tobytes() + s[:, 3:].tobytes()
    stamp = (timestamp_ms % 2**32).to_bytes(4, "little")
    return bytes([NotificationType.DATA, reference]) + stamp + body


def split_message(message: bytes, max_payload: int) -> list[bytes]:
    """A message as notifications of at most ``max_payload`` bytes: the first part as is
    (type 2), every further part ``[3][reference]`` and the next bytes."""
    room = max(1, max_payload - 2)
    rest = message[max_payload:]
    tail = [bytes([NotificationType.DATA_PART2, message[1]]) + rest[i : i + room]
            for i in range(0, len(rest), room)]
    return [message[:max_payload], *tail]


@dataclass(slots=True)
class _Sub:
    resource: Resource
    start_ms: float  # sensor clock at sample 0 (unwrapped, fractional)
    src0: int  # source index of sample 0
    sent: int = 0  # samples sent

    @property
    def per_message(self) -> int:
        return max(1, min(8, self.resource.rate_hz // 13))


class Movesense(SimulatedPeripheral):
    """A Movesense sensor with the GSP app.

    Parameters
    ----------
    address : str
    source : SignalSource
        Supplies ``acc_mg`` (3 × n at ``acc_fs_hz``).
    name : str
        Advertised name (``"Movesense <serial>"``).
    clock_offset_ms : int
        Sensor clock at power-on (ms).
    drift_ppm : float
        Sensor clock rate error (ppm).
    """

    preferred_mtu = 161  # the Movesense stack's MTU (GSP sample firmware comment)

    def __init__(
        self,
        address: str,
        source: SignalSource,
        *,
        name: str = "Movesense 174630000192",
        clock_offset_ms: int = DEFAULT_CLOCK_OFFSET_MS,
        drift_ppm: float = 0.0,
    ) -> None:
        super().__init__(address, name)
        self.source = source
        self.clock_offset_ms = int(clock_offset_ms)
        self.drift_ppm = float(drift_ppm)
        self.subs: dict[int, _Sub] = {}
        self.packets_sent = 0
        self._now_ns = 0
        self._last_link: Link | None = None

    def clock_ms(self, now_ns: int) -> float:
        """Unwrapped sensor clock (ms, fractional) at simulated time ``now_ns``."""
        return self.clock_offset_ms + now_ns / 1e6 * (1.0 + self.drift_ppm * 1e-6)

    def gatt(self) -> tuple[ServiceDef, ...]:
        return (
            ServiceDef(
                SERVICE_UUID,
                (
                    CharDef(WRITE_UUID, ("write", "write-without-response"), "GSP command"),
                    CharDef(NOTIFY_UUID, ("notify",), "GSP data"),
                ),
            ),
            ServiceDef(
                DEVICE_INFORMATION_SERVICE_UUID,
                tuple(
                    CharDef(DEVICE_INFORMATION_UUIDS[k], ("read",), k)
                    for k in ("manufacturer", "model", "serial", "firmware")
                ),
            ),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(local_name=self.name, service_uuids=(SERVICE_UUID,))

    def read(self, char_uuid: str) -> bytes:
        info = {
            "manufacturer": "Movesense",
            "model": "Movesense MD",
            "serial": self.name.rsplit(" ", 1)[-1],
            "firmware": "2.2.0",
        }
        for key, uuid in DEVICE_INFORMATION_UUIDS.items():
            if char_uuid.lower() == uuid and key in info:
                return info[key].encode("utf-8")
        if char_uuid.lower() in (WRITE_UUID, NOTIFY_UUID):
            raise AttError(ATT_READ_NOT_PERMITTED, f"{char_uuid} is not readable")
        raise AttError(ATT_ATTRIBUTE_NOT_FOUND, f"no characteristic {char_uuid}")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        del with_response
        if char_uuid.lower() != WRITE_UUID:
            raise AttError(ATT_WRITE_NOT_PERMITTED, f"{char_uuid} is not writable")
        self.handle_command(bytes(data))

    def handle_command(self, data: bytes) -> None:
        """Execute one GSP command; answers go out as notifications (ignored if malformed)."""
        if len(data) < 2 or data[1] == 0:
            return
        cmd, ref = data[0], data[1]
        now_ns = self.link.now_ns() if self.link is not None else self._now_ns
        if cmd == Command.HELLO:
            self._send(bytes([NotificationType.RESPONSE, ref]) + b"Hello")
        elif cmd == Command.SUBSCRIBE:
            self._send(encode_response(ref, self._subscribe(ref, data[2:], now_ns)))
        elif cmd == Command.UNSUBSCRIBE:
            found = self.subs.pop(ref, None) is not None
            self._send(encode_response(ref, _HTTP_OK if found else _HTTP_NOT_FOUND))

    def _subscribe(self, ref: int, path_bytes: bytes, now_ns: int) -> int:
        try:
            resource = resource_of_path(path_bytes.decode("utf-8"))
        except UnicodeDecodeError:
            return _HTTP_NOT_FOUND
        if resource is None:
            return _HTTP_NOT_FOUND
        if ref in self.subs:
            return _HTTP_CONFLICT
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            return _HTTP_INSUFFICIENT_STORAGE
        src0 = math.ceil(now_ns / 1e9 * self.source.acc_fs_hz)
        self.subs[ref] = _Sub(resource, self.clock_ms(now_ns), src0)
        return _HTTP_OK

    def on_connect(self, link: Link) -> None:
        super().on_connect(link)
        self._last_link = link
        self._now_ns = link.now_ns()

    def on_disconnect(self) -> None:
        self.subs.clear()
        super().on_disconnect()

    def power_cycle(self, now_ns: int) -> None:
        """Reboot: the millisecond clock restarts at 0, subscriptions end."""
        self.clock_offset_ms = -round(now_ns / 1e6)
        self.subs.clear()

    def finished(self) -> bool:
        now_ns = self._now_ns
        if self._last_link is not None:
            now_ns = max(now_ns, self._last_link.now_ns())
        return now_ns >= round(self.source.duration_s * 1e9)

    def connected(self) -> bool:
        """True while a central is connected."""
        return self.link is not None

    def _send(self, data: bytes) -> None:
        if self.link is not None and NOTIFY_UUID in self.subscribed:
            self.link.notify(NOTIFY_UUID, data)
            self.packets_sent += 1

    def tick(self, now_ns: int) -> None:
        """Send every data message due by simulated time ``now_ns``."""
        self._now_ns = max(self._now_ns, now_ns)
        if self.link is None:
            return
        room = self.link.mtu - 3
        for ref, sub in list(self.subs.items()):
            rate = sub.resource.rate_hz
            taken = math.floor((self.clock_ms(now_ns) - sub.start_ms) * rate / 1000 + 1e-9) + 1
            total = math.floor(self.source.duration_s * self.source.acc_fs_hz)
            avail = math.floor((total - sub.src0) * rate / self.source.acc_fs_hz)
            taken = min(taken, max(0, avail))
            per = sub.per_message
            n_msg = taken // per - sub.sent // per
            if n_msg <= 0:
                continue
            k = np.arange(sub.sent, sub.sent + n_msg * per, dtype=np.int64)
            idx = sub.src0 + np.floor(k * (self.source.acc_fs_hz / rate)).astype(np.int64)
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            mg = np.asarray(self.source.acc_mg(lo, hi - lo), dtype=np.float64)[:, idx - lo]
            mps2 = mg.T * (MPS2_PER_G / G_MG)
            if sub.resource.kind == "IMU6":
                gyro = np.broadcast_to(np.asarray(GYRO_BIAS_DPS), mps2.shape)
                mps2 = np.concatenate([mps2, gyro], axis=1)
            for m in range(n_msg):
                first = sub.sent + m * per
                ts = math.floor(sub.start_ms + first * 1000 / rate)
                msg = encode_data_message(ref, ts, mps2[m * per : (m + 1) * per], sub.resource)
                for part in split_message(msg, room):
                    if not self.connected():  # a callback disconnected us mid-burst
                        return
                    self._send(part)
            sub.sent += n_msg * per
