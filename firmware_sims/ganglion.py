"""Firmware of an OpenBCI Ganglion (firmware 2 or 3), simulated, as a 4-channel calf EMG board.

It writes the board's packets with its own encoders (``encode_*`` below, written from the
data format, independent of the host's decoder in :mod:`crampsense.devices.ganglion`), with
the board's behaviour:

- one-byte ASCII commands on the send characteristic: ``b`` start, ``s`` stop, ``n``/``N``
  accelerometer on/off, ``z``/``Z`` impedance test on/off, ``v`` soft reset (answers with a
  message); other bytes are ignored, as the board ignores them;
- firmware 2 starts every stream with packet 0 (one raw sample), then 18-bit delta packets
  with IDs 1-100 when the accelerometer is on, 19-bit ones with IDs 101-200 when it is off;
  deltas are computed open loop against the true previous sample, sign in bit 0;
  firmware 3 sends absolute 18-bit (IDs 0-99) or 19-bit (100-199) fields;
- 200 samples/s on the board's own clock (``drift_ppm``), two per packet, a packet leaving
  when its last sample is taken; the accelerometer byte of 18-bit packets carries X/Y/Z
  (firmware 2: IDs ending 1/2/3; firmware 3: Z inverted/Y/X in IDs ending 0/1/2);
- a disconnect stops streaming: a central that reconnects must send ``b`` again (what
  happened meanwhile is lost, and firmware 2 restarts with packet 0);
- the Device Information Software Revision says which firmware runs (``"2.0.1"``/``"3.1.0"``).

Channels 1-2 come from the ``left`` source's first two EMG rows, 3-4 from ``right``'s (zeros
without one); the accelerometer from ``left`` (the board sits on the left calf). The source is
taken at the nearest earlier sample when its rate is not 200 Hz (no anti-alias filter): give a
200 Hz source for faithful signals.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.ganglion import (
    CMD_ACCEL_OFF,
    CMD_ACCEL_ON,
    CMD_IMPEDANCE_START,
    CMD_IMPEDANCE_STOP,
    CMD_SOFT_RESET,
    CMD_START,
    CMD_STOP,
    DEFAULT_ACC_G_PER_COUNT,
    DEVICE_INFORMATION_SERVICE_UUID,
    DISCONNECT_UUID,
    FS_HZ,
    ID_CYCLE,
    N_CHANNELS,
    RECEIVE_UUID,
    SEND_UUID,
    SERVICE_UUID,
    UV_PER_COUNT,
)
from crampsense.devices.gatt import DEVICE_INFORMATION_UUIDS
from crampsense.errors import DecodeError
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
    "IMPEDANCE_PERIOD_S",
    "SIM_IMPEDANCE_KOHM",
    "Ganglion",
    "encode_impedance_packet",
    "encode_message_packets",
    "encode_raw_packet",
    "encode_sample_packets",
    "fw2_delta_fields",
    "fw3_absolute_fields",
    "uv_to_counts",
]

logger = logging.getLogger(__name__)

#: Seconds between impedance packets during a ``z`` test (the board measures one channel at
#: a time, a few per second).
IMPEDANCE_PERIOD_S: Final = 0.5
#: Simulated electrode impedances (kΩ) of channels 1-4 and the reference: good skin prep.
SIM_IMPEDANCE_KOHM: Final = (8, 11, 9, 12, 5)
#: Answer to ``v`` (soft reset), sent as message packets.
RESET_MESSAGE: Final = "OpenBCI Ganglion\nOn Board ADC ready\n$$$"

_I8_MIN: Final = -128
_I8_MAX: Final = 127


# ------------------------------------------------------------------ the wire (firmware side)
# Written from the OpenBCI Ganglion data format (docs: PROTOCOLS.md section 2), not with the
# host's codec in crampsense.devices.ganglion: a simulator that borrowed the decoder's bit
# reader could not catch a codec bug. Only spec constants (UUIDs, commands, rates) are shared.

_PACKET_BYTES: Final = 20
_I24_MIN: Final = -(2**23)
_I24_MAX: Final = 2**23 - 1
#: Firmware 2's packet 0 ends with these seven ASCII bytes after its four int24 samples.
_RAW_TAIL: Final = b"ABCDEFG"
_IMPEDANCE_ID0: Final = 200
_MESSAGE_PART_ID: Final = 206
_MESSAGE_LAST_ID: Final = 207


def uv_to_counts(emg_uv: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """µV to the ADS1299's 24-bit counts (rounded, clipped to int24; NaN sent as 0)."""
    counts = np.rint(np.nan_to_num(np.asarray(emg_uv, dtype=np.float64)) / UV_PER_COUNT)
    return np.clip(counts, _I24_MIN, _I24_MAX).astype(np.int64)


def encode_raw_packet(counts: npt.ArrayLike) -> bytes:
    """Firmware 2's packet 0: ID 0, four int24 big-endian samples, then ``ABCDEFG``.

    Examples
    --------
    >>> encode_raw_packet([1, -1, 256, -8388608]).hex(" ")
    '00 00 00 01 ff ff ff 00 01 00 80 00 00 41 42 43 44 45 46 47'
    """
    c = np.asarray(counts, dtype=np.int64).ravel()
    if c.size != N_CHANNELS:
        msg = f"a raw packet holds {N_CHANNELS} channels, got {c.size}; pass one sample"
        raise DecodeError(msg, offset=1, field="raw_sample")
    big_endian = (c.astype(">i4").view(np.uint8).reshape(N_CHANNELS, 4)[:, 1:]).tobytes()
    return b"\x00" + big_endian + _RAW_TAIL


def fw2_delta_fields(
    counts: npt.ArrayLike, previous: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Firmware 2's delta fields for ``counts`` (4, n even), and what a decoder rebuilds.

    The board sends ``previous - current`` against the *true* previous sample (open loop)
    with bit 0 replaced by the sign (set: negative), so a decoder that subtracts the sent
    deltas walks away from the truth by up to one count per sample.

    Returns
    -------
    fields : ndarray of int64, shape (n // 2, 8)
        Per packet: channels 1-4 of the first sample, then of the second.
    rebuilt : ndarray of int64, shape (4, n)
        The samples a decoder gets starting from ``previous``.
    """
    c = np.asarray(counts, dtype=np.int64)
    before = np.column_stack([np.asarray(previous, dtype=np.int64).ravel(), c[:, :-1]])
    delta = before - c
    sent = (delta & ~np.int64(1)) | (delta < 0)  # bit 0 carries the sign
    rebuilt = before[:, :1] - np.cumsum(sent, axis=1)
    return sent.T.reshape(-1, 2 * N_CHANNELS), rebuilt


def fw3_absolute_fields(
    counts: npt.ArrayLike, bits: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Firmware 3's absolute fields: the top ``bits`` (18 or 19) of each 24-bit count.

    Returns
    -------
    fields : ndarray of int64, shape (n // 2, 8)
    rebuilt : ndarray of int64, shape (4, n)
        What a decoder gets back: the counts rounded down to a multiple of ``2**(24 - bits)``.
    """
    c = np.asarray(counts, dtype=np.int64)
    top = c // 2 ** (24 - bits)
    return top.T.reshape(-1, 2 * N_CHANNELS), top * 2 ** (24 - bits)


def _field_bits(packet_id: int, firmware: int) -> int:
    """Width of a sample packet's fields: firmware 2 IDs 1-100 and firmware 3 IDs 0-99 carry
    18 bits, firmware 2 IDs 101-200 and firmware 3 IDs 100-199 carry 19."""
    first = 1 if firmware == 2 else 0
    if first <= packet_id < first + ID_CYCLE:
        return 18
    if first + ID_CYCLE <= packet_id < first + 2 * ID_CYCLE:
        return 19
    msg = f"packet ID {packet_id} is not an 18/19-bit sample packet of firmware {firmware}"
    raise DecodeError(msg, offset=0, field="packet_id")


def encode_sample_packets(
    packet_ids: npt.ArrayLike,
    fields: npt.ArrayLike,
    *,
    firmware: int,
    aux: npt.ArrayLike | None = None,
) -> list[bytes]:
    """18/19-bit sample packets: the ID, then the 8 fields packed most-significant bit first.

    Packets of 18-bit fields (144 bits, bytes 1-18) carry ``aux`` (an accelerometer byte) in
    byte 19; 19-bit fields fill bytes 1-19.

    Examples
    --------
    The PROTOCOLS.md vector (ID 106, firmware 2, 19-bit deltas, all positive):

    >>> deltas = [[1214, 2700, 624, 5526, 2994, 3596, 3846, 690]]
    >>> encode_sample_packets([106], deltas, firmware=2)[0].hex(" ")
    '6a 00 97 c0 2a 30 01 38 01 59 60 17 64 03 83 00 78 30 02 b2'
    """
    ids = np.asarray(packet_ids, dtype=np.int64).ravel()
    vals = np.asarray(fields, dtype=np.int64).reshape(ids.size, 2 * N_CHANNELS)
    accel = np.zeros(ids.size, np.int64) if aux is None else np.asarray(aux, np.int64).ravel()
    widths = np.array([_field_bits(int(i), firmware) for i in ids.tolist()], dtype=np.int64)
    out = np.zeros((ids.size, _PACKET_BYTES), dtype=np.uint8)
    out[:, 0] = ids
    for bits in (18, 19):
        rows = widths == bits
        if not rows.any():
            continue
        msb_first = (vals[rows, :, None] >> np.arange(bits - 1, -1, -1)) & 1  # (k, 8, bits)
        body = np.packbits(msb_first.reshape(-1, 8 * bits).astype(np.uint8), axis=1)
        out[rows, 1 : 1 + bits] = body
        if bits == 18:
            out[rows, _PACKET_BYTES - 1] = accel[rows] & 0xFF
    return [row.tobytes() for row in out]


def encode_impedance_packet(channel: int, value: int) -> bytes:
    """Impedance of ``channel`` (1-4, 5 = reference): ID 200 + channel, ASCII digits, ``Z``.

    Examples
    --------
    >>> encode_impedance_packet(2, 1234)
    b'\\xca1234Z'
    """
    if not 1 <= channel <= 5 or value < 0:
        msg = f"impedance channel {channel} / value {value} invalid; channels are 1-5, values >= 0"
        raise DecodeError(msg, offset=0, field="impedance")
    return bytes([_IMPEDANCE_ID0 + channel]) + b"%dZ" % value


def encode_message_packets(text: str) -> list[bytes]:
    """An ASCII message in parts of up to 19 characters: ID 206 for each part, 207 for the last."""
    data = text.encode("ascii", errors="replace")
    size = _PACKET_BYTES - 1
    parts = [data[i : i + size] for i in range(0, max(len(data), 1), size)]
    ids = [_MESSAGE_PART_ID] * (len(parts) - 1) + [_MESSAGE_LAST_ID]
    return [bytes([i]) + part for i, part in zip(ids, parts, strict=True)]


class Ganglion(SimulatedPeripheral):
    """The Ganglion's firmware.

    Parameters
    ----------
    address : str
        Bluetooth address.
    left : SignalSource
        Source of channels 1-2 and of the accelerometer.
    right : SignalSource or None
        Source of channels 3-4 (zeros if ``None``).
    name : str
        Advertised name.
    firmware : {2, 3}
    software_revision : str or None
        Device Information string; defaults to ``"2.0.1"`` / ``"3.1.0"``.
    drift_ppm : float
        Sample clock error relative to simulated time (ppm, positive = fast).
    acc_g_per_count : float
        Scale the simulated LIS2DH byte uses (0.016 g per count at ±2 g).

    Attributes
    ----------
    streaming : bool
    accel_on : bool
    packets_sent : int
    starts : int
        ``b`` commands that started a stream.
    """

    preferred_mtu = 23  # 20-byte packets: the board never asks for more

    def __init__(
        self,
        address: str,
        left: SignalSource,
        right: SignalSource | None = None,
        *,
        name: str = "Ganglion-5f3c",
        firmware: int = 2,
        software_revision: str | None = None,
        drift_ppm: float = 0.0,
        acc_g_per_count: float = DEFAULT_ACC_G_PER_COUNT,
    ) -> None:
        super().__init__(address, name)
        if firmware not in (2, 3):
            msg = f"simulated Ganglion firmware must be 2 or 3, got {firmware!r}"
            raise ValueError(msg)
        self.left = left
        self.right = right
        self.firmware = firmware
        self.software_revision = software_revision or ("2.0.1" if firmware == 2 else "3.1.0")
        self.drift_ppm = float(drift_ppm)
        self.acc_g_per_count = float(acc_g_per_count)
        self.streaming = False
        self.accel_on = False
        self.impedance_on = False
        self.packets_sent = 0
        self.starts = 0
        self._start_ns = 0
        self._src0 = 0
        self._packet = 0  # packets of this stream already sent
        self._last_true = np.zeros(N_CHANNELS, dtype=np.int64)
        self._next_z_ns = 0
        self._z_channel = 1
        self._now_ns = 0
        self._last_link: Link | None = None

    # ------------------------------------------------------------------ GATT

    def gatt(self) -> tuple[ServiceDef, ...]:
        dis = tuple(
            CharDef(DEVICE_INFORMATION_UUIDS[k], ("read",), k)
            for k in ("manufacturer", "model", "firmware", "software")
        )
        return (
            ServiceDef(
                SERVICE_UUID,
                (
                    CharDef(RECEIVE_UUID, ("notify",), "receive"),
                    CharDef(SEND_UUID, ("write", "write-without-response"), "send"),
                    CharDef(DISCONNECT_UUID, ("write", "write-without-response"), "disconnect"),
                ),
            ),
            ServiceDef(DEVICE_INFORMATION_SERVICE_UUID, dis),
        )

    def advertisement(self) -> Advertisement:
        return Advertisement(local_name=self.name, service_uuids=(SERVICE_UUID,))

    def device_information(self) -> dict[str, str]:
        return {
            "manufacturer": "OpenBCI",
            "model": "Ganglion",
            "firmware": self.software_revision,
            "software": self.software_revision,
        }

    def read(self, char_uuid: str) -> bytes:
        uuid = char_uuid.lower()
        info = self.device_information()
        for key, dis_uuid in DEVICE_INFORMATION_UUIDS.items():
            if uuid == dis_uuid and key in info:
                return info[key].encode("utf-8")
        if uuid in (RECEIVE_UUID, SEND_UUID, DISCONNECT_UUID):
            raise AttError(ATT_READ_NOT_PERMITTED, f"{uuid} is not readable")
        raise AttError(ATT_ATTRIBUTE_NOT_FOUND, f"no characteristic {uuid}")

    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        del with_response  # the board accepts both
        uuid = char_uuid.lower()
        if uuid == DISCONNECT_UUID:
            self.streaming = False
            return
        if uuid != SEND_UUID:
            if uuid == RECEIVE_UUID:
                raise AttError(ATT_WRITE_NOT_PERMITTED, f"{uuid} is not writable")
            raise AttError(ATT_ATTRIBUTE_NOT_FOUND, f"no characteristic {uuid}")
        for byte in bytes(data):
            self.command(bytes([byte]))

    def command(self, cmd: bytes) -> None:
        """Execute one ASCII command (unknown ones are ignored, as on the board)."""
        now_ns = self.link.now_ns() if self.link is not None else self._now_ns
        if cmd == CMD_START:
            if not self.streaming:
                self._start(now_ns)
        elif cmd == CMD_STOP:
            self.streaming = False
        elif cmd == CMD_ACCEL_ON:
            self.accel_on = True
        elif cmd == CMD_ACCEL_OFF:
            self.accel_on = False
        elif cmd == CMD_IMPEDANCE_START:
            self.streaming = False
            self.impedance_on = True
            self._next_z_ns = now_ns
            self._z_channel = 1
        elif cmd == CMD_IMPEDANCE_STOP:
            self.impedance_on = False
        elif cmd == CMD_SOFT_RESET:
            self.streaming = self.impedance_on = False
            for packet in encode_message_packets(RESET_MESSAGE):
                self._send(packet)

    def on_connect(self, link: Link) -> None:
        super().on_connect(link)
        self._last_link = link
        self._now_ns = link.now_ns()

    def on_disconnect(self) -> None:
        """The link dropped: the board stops streaming (``b`` is needed after reconnecting)."""
        self.streaming = False
        self.impedance_on = False
        super().on_disconnect()

    def power_cycle(self, now_ns: int) -> None:
        """Reboot: streaming, accelerometer and impedance test off."""
        self._now_ns = now_ns
        self.streaming = self.accel_on = self.impedance_on = False

    def finished(self) -> bool:
        now_ns = self._now_ns
        if self._last_link is not None:
            now_ns = max(now_ns, self._last_link.now_ns())
        return now_ns >= round(self.left.duration_s * 1e9)

    # ------------------------------------------------------------------ streaming

    def _start(self, now_ns: int) -> None:
        self.streaming = True
        self.impedance_on = False
        self.starts += 1
        self._start_ns = now_ns
        self._src0 = math.ceil(now_ns / 1e9 * self.left.emg_fs_hz)
        self._packet = 0
        logger.debug("%s: b at %.3f s (firmware %d)", self.address, now_ns / 1e9, self.firmware)

    def _samples_taken(self, now_ns: int) -> int:
        elapsed_s = (now_ns - self._start_ns) / 1e9 * (1.0 + self.drift_ppm * 1e-6)
        return math.floor(elapsed_s * FS_HZ + 1e-9) + 1

    def _first_sample(self, packet: int) -> int:
        """Index (from the start) of a packet's first sample."""
        if self.firmware == 2:
            return 0 if packet == 0 else 2 * packet - 1
        return 2 * packet

    def _n_samples(self, packet: int) -> int:
        return 1 if self.firmware == 2 and packet == 0 else 2

    def _available_samples(self) -> int:
        total = math.floor(self.left.duration_s * self.left.emg_fs_hz)
        room = total - self._src0
        return max(0, math.floor(room * FS_HZ / self.left.emg_fs_hz))

    def tick(self, now_ns: int) -> None:
        """Send every packet due by simulated time ``now_ns``."""
        self._now_ns = max(self._now_ns, now_ns)
        if self.link is None:
            return
        if self.impedance_on:
            period = round(IMPEDANCE_PERIOD_S * 1e9)
            while self._next_z_ns <= now_ns and self.link is not None:
                ch = self._z_channel
                self._send(encode_impedance_packet(ch, SIM_IMPEDANCE_KOHM[ch - 1]))
                self._z_channel = ch % 5 + 1
                self._next_z_ns += period
            return
        if not self.streaming:
            return
        taken = min(self._samples_taken(now_ns), self._available_samples())
        last = self._packet
        while self._first_sample(last) + self._n_samples(last) <= taken:
            last += 1
        if last == self._packet:
            return
        for packet in self._encode(self._packet, last):
            if not self.connected():  # a callback disconnected us mid-burst
                break
            self._send(packet)
        self._packet = last

    def connected(self) -> bool:
        """True while a central is connected."""
        return self.link is not None

    def _send(self, data: bytes) -> None:
        if self.link is not None and RECEIVE_UUID in self.subscribed:
            self.link.notify(RECEIVE_UUID, data)
            self.packets_sent += 1

    def _counts(self, first: int, n: int) -> npt.NDArray[np.int64]:
        """True ADC counts of stream samples ``first .. first+n-1``, shape (4, n)."""
        k = np.arange(first, first + n, dtype=np.int64)
        idx = self._src0 + np.floor(k * (self.left.emg_fs_hz / FS_HZ)).astype(np.int64)
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        rows = np.zeros((N_CHANNELS, n))
        left = np.asarray(self.left.emg_uv(lo, hi - lo), dtype=np.float64)[:, idx - lo]
        rows[: min(2, left.shape[0])] = left[:2]
        if self.right is not None:
            right = np.asarray(self.right.emg_uv(lo, hi - lo), dtype=np.float64)[:, idx - lo]
            rows[2 : 2 + min(2, right.shape[0])] = right[:2]
        return uv_to_counts(rows)

    def _packet_ids(self, packets: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        base = 0 if self.accel_on else ID_CYCLE
        if self.firmware == 2:
            return base + (packets - 1) % ID_CYCLE + 1
        return base + packets % ID_CYCLE

    def _accel_bytes(self, ids: npt.NDArray[np.int64], first_samples: npt.NDArray[np.int64]) -> (
        npt.NDArray[np.int64]
    ):
        src = self.left
        t_s = self._start_ns / 1e9 + first_samples / FS_HZ
        idx = np.clip(np.floor(t_s * src.acc_fs_hz).astype(np.int64), 0, None)
        total = math.floor(src.duration_s * src.acc_fs_hz)
        idx = np.minimum(idx, max(total - 1, 0))
        lo, hi = int(idx.min()), int(idx.max()) + 1
        mg = np.asarray(src.acc_mg(lo, hi - lo), dtype=np.float64)[:, idx - lo]
        counts = np.clip(
            np.rint(mg / (self.acc_g_per_count * G_MG)), _I8_MIN, _I8_MAX
        ).astype(np.int64)
        digit = ids % 10
        if self.firmware == 2:
            pick = {1: counts[0], 2: counts[1], 3: counts[2]}
        else:  # Z inverted, Y, X in IDs ending 0, 1, 2
            pick = {0: -counts[2], 1: counts[1], 2: counts[0]}
        out = np.zeros(ids.size, dtype=np.int64)
        for d, values in pick.items():
            out = np.where(digit == d, values, out)
        return out

    def _encode(self, start: int, stop: int) -> list[bytes]:
        """Packets ``start .. stop-1`` of the current stream."""
        out: list[bytes] = []
        if self.firmware == 2 and start == 0:
            raw = self._counts(0, 1)[:, 0]
            self._last_true = raw.copy()
            out.append(encode_raw_packet(raw))
            start = 1
        if start >= stop:
            return out
        packets = np.arange(start, stop, dtype=np.int64)
        first = self._first_sample(start)
        n = 2 * packets.size
        counts = self._counts(first, n)
        ids = self._packet_ids(packets)
        firsts = np.array([self._first_sample(int(p)) for p in (start,)]) + 2 * (packets - start)
        aux = self._accel_bytes(ids, firsts) if self.accel_on else None
        if self.firmware == 2:
            fields, _ = fw2_delta_fields(counts, self._last_true)
            self._last_true = counts[:, -1].copy()
        else:
            bits = 18 if self.accel_on else 19
            fields, _ = fw3_absolute_fields(counts, bits)
        out.extend(encode_sample_packets(ids, fields, firmware=self.firmware, aux=aux))
        return out
