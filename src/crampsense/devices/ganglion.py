"""OpenBCI Ganglion used as a 4-channel surface-EMG amplifier (200 Hz) with an accelerometer.

Wire format (sources: OpenBCI Ganglion firmware ``OpenBCI_Ganglion_Library`` 2.x, read for
``compressData18/19``, ``sendRawPacket`` and ``config_LIS2DH``; BrainFlow
``ganglion_native_v2.cpp``/``ganglion_native_v3.cpp``; OpenBCI "Ganglion Data Format"; see
``shared/design/PROTOCOLS.md`` section 2). Every sample notification is 20 bytes, byte 0 is the
packet ID; 100 packets/s carry 2 samples × 4 channels each::

    firmware 2                                   firmware 3
    ID 0        raw: 4 × int24 big-endian        ID 0-99     18-bit absolute fields (+accel)
                (bytes 1-12, one sample), bytes  ID 100-199  19-bit absolute fields
                13-19 padding "ABCDEFG"
    ID 1-100    18-bit deltas, byte 19 = accel   value = signed field << 6 (18-bit) or << 5
    ID 101-200  19-bit deltas                    (19-bit): the top bits of the 24-bit sample
    ID 201-205  impedance, ASCII digits + "Z" (channel 1-4, 5 = reference)
    ID 206/207  ASCII message part / last part

Fields are packed most-significant bit first: channels 1-4 of the first sample, then of the
second, from bit 8 (byte 1). A firmware-2 delta is ``previous - current`` with the **sign in
bit 0** (the firmware overwrites bit 0 with bit 31 before keeping the low 18/19 bits), so a
field ``f`` decodes as ``f`` when bit 0 is clear and ``f - 2**bits`` when set, and
``sample = previous - delta``. Accelerometer bytes are the high byte of the LIS2DH axis
(int8); firmware 2 puts X/Y/Z in IDs with ``ID % 10`` = 1/2/3, firmware 3 puts Z (inverted),
Y, X in ``ID % 10`` = 0/1/2: one full reading per 10 packets, 10 Hz.

Scale: the MCP3912 ADC's full scale at unit PGA gain is ±VREF/1.5 with VREF = 1.2 V, the
front end adds a gain of 51, and a 24-bit code spans ±(2**23 - 1) counts, so one count is
1.2 V × 10**6 / (8388607 × 1.5 × 51) = 0.0018699 µV (:data:`UV_PER_COUNT`).

Decode design: the delta chain and the packet clock
---------------------------------------------------
Firmware 2 sends absolute values only in packet 0 (after each ``b``); every later sample is
``previous - delta``, and no packet carries a sequence number beyond the ID cycle or a device
time. :class:`GanglionProtocol` therefore **carries chain state per device address between
frames**: the last samples, the last packet ID and host time, and an unwrapped packet counter.
Decoding is a deterministic function of the *sequence* of frames of a device (it does not
depend on how the frames are split into :meth:`~GanglionProtocol.decode` and
:meth:`~GanglionProtocol.decode_batch` calls): both run one vectorised core,
:meth:`GanglionProtocol._chain_decode`, which takes the state, a run of sample packets and
returns the new state. Impedance, message and malformed packets never touch the state, which
is what makes the batch path (malformed packets decoded afterwards by ``decode``) exact.

From the ID cycle and host time the core also gives every packet a synthetic device clock:
``sequence`` is the unwrapped packet counter (lost packets from the ID difference modulo 100,
whole lost cycles from the host gap) and ``device_ticks`` the index of its first sample at
200 Hz. A host gap of at least :data:`RESYNC_GAP_S`, and firmware 2's packet 0, start a new
segment: the counter jumps by half the sequence wrap (so the timeline sees a restart) and the
tick counter advances by the host gap. A packet equal byte for byte to the one before with the
same ID (bleak issue #2002, double callbacks) is a duplicate: it repeats the first one's
values, sequence and ticks and does not advance the chain. Block flags:
:data:`FLAG_UNANCHORED` (firmware 2 chain without a packet 0 yet: values carry an unknown
constant offset per channel) and :data:`FLAG_CHAIN_GAP` (a packet was lost since the last
packet 0, so the offset changed there). Neither invalidates EMG, whose analysis high-passes
the signal; both are recorded.

Call :meth:`GanglionProtocol.reset` (or build a new protocol, as replay does through
:meth:`~GanglionProtocol.from_metadata`) before decoding a recording a second time.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.base import Capability, DeviceProtocol, GattWrite, PacketBatch
from crampsense.devices.gatt import DEVICE_INFORMATION_SERVICE_UUID, DEVICE_INFORMATION_UUIDS
from crampsense.devices.timeline import TimelineBuilder
from crampsense.errors import ConfigError, DecodeError
from crampsense.models import ACC_UNIT, EMG_UNIT, G_MG, PLACEMENTS, Frame, SampleBlock

__all__ = [
    "ACC_CHANNELS",
    "ACC_G_PER_COUNT_CHOICES",
    "CMD_ACCEL_OFF",
    "CMD_ACCEL_ON",
    "CMD_IMPEDANCE_START",
    "CMD_IMPEDANCE_STOP",
    "CMD_SOFT_RESET",
    "CMD_START",
    "CMD_STOP",
    "DEFAULT_ACC_G_PER_COUNT",
    "DEFAULT_CHANNEL_MAP",
    "DEVICE_INFORMATION_SERVICE_UUID",
    "DISCONNECT_UUID",
    "EMG_CHANNELS",
    "FLAG_CHAIN_GAP",
    "FLAG_UNANCHORED",
    "FS_HZ",
    "NAME_PREFIXES",
    "PACKETS_PER_S",
    "PACKET_BYTES",
    "RECEIVE_UUID",
    "RESYNC_GAP_S",
    "SEND_UUID",
    "SERVICE_UUID",
    "SOFTWARE_REVISION_UUID",
    "UV_PER_COUNT",
    "ChannelMap",
    "GanglionProtocol",
    "bits_for_id",
    "decode_deltas",
    "decode_fields",
    "firmware_from_software_revision",
    "parse_channel_map",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- identifiers

SERVICE_UUID: Final = "0000fe84-0000-1000-8000-00805f9b34fb"
#: Notifications from the board (samples, impedance, messages).
RECEIVE_UUID: Final = "2d30c082-f39f-4ce6-923f-3484ea480596"
#: One-byte ASCII commands to the board (written without response, as BrainFlow does).
SEND_UUID: Final = "2d30c083-f39f-4ce6-923f-3484ea480596"
#: Writing here asks the board to drop the link.
DISCONNECT_UUID: Final = "2d30c084-f39f-4ce6-923f-3484ea480596"
#: Device Information "Software Revision String": first character ``3`` means firmware 3.
SOFTWARE_REVISION_UUID: Final = DEVICE_INFORMATION_UUIDS["software"]
#: Advertised names (BrainFlow accepts both; the Simblee module sometimes advertises its own).
NAME_PREFIXES: Final = ("ganglion", "simblee")

CMD_START: Final = b"b"
CMD_STOP: Final = b"s"
CMD_ACCEL_ON: Final = b"n"
CMD_ACCEL_OFF: Final = b"N"
CMD_IMPEDANCE_START: Final = b"z"
CMD_IMPEDANCE_STOP: Final = b"Z"
CMD_SOFT_RESET: Final = b"v"

# --------------------------------------------------------------------------- numbers

#: Sample rate (Hz): 100 packets/s of 2 samples (BLE caps the board at ~100 packets/s).
FS_HZ: Final = 200
PACKETS_PER_S: Final = 100
SAMPLES_PER_PACKET: Final = 2
N_CHANNELS: Final = 4
#: Every sample packet is exactly this long (fits the default MTU of 23).
PACKET_BYTES: Final = 20
#: The ID cycle: 100 packets (1-100, 101-200, 0-99 or 100-199), one second of data.
ID_CYCLE: Final = 100
#: µV per ADC count: 1.2 V × 1e6 / (8388607 × 1.5 × 51), see the module docstring.
UV_PER_COUNT: Final = 1.2e6 / (8388607.0 * 1.5 * 51.0)
#: Accelerometer g per count of the int8 high byte. The firmware configures the LIS2DH at
#: ±2 g (CTRL_REG4 = 0x08), whose high byte steps by 4 g / 256 = 15.6 mg, and BrainFlow and
#: the later OpenBCI JavaScript constants use 0.016; older JavaScript constants used 0.032
#: (the ±4 g step). 0.016 is the default; a profile may choose 0.032.
DEFAULT_ACC_G_PER_COUNT: Final = 0.016
ACC_G_PER_COUNT_CHOICES: Final = (0.016, 0.032)
ACC_FS_HZ: Final = 10
#: Impedance and message packet IDs.
IMPEDANCE_IDS: Final = range(201, 206)
MESSAGE_PART_ID: Final = 206
MESSAGE_END_ID: Final = 207
#: A host gap at least this long starts a new segment: beyond one ID cycle (1 s) the ID
#: alone cannot count lost packets, and on a healthy link packets arrive within tens of ms.
RESYNC_GAP_S: Final = 1.0
#: Sequence numbers handed to the timeline wrap at 2**16; a segment restart jumps by half the
#: wrap, which the timeline always reads as a restart (it trusts jumps below a quarter).
SEQ_MODULO: Final = 2**16
_SEQ_RESTART_JUMP: Final = 2**15
#: The synthetic tick counter (200 Hz samples) never wraps within a night; 2**48 keeps the
#: timeline's modular arithmetic exact.
TICK_MODULO: Final = 2**48

FLAG_UNANCHORED: Final = 0x01
FLAG_CHAIN_GAP: Final = 0x02

EMG_CHANNELS: Final = ("ch1", "ch2", "ch3", "ch4")
ACC_CHANNELS: Final = ("x", "y", "z")
_I24_MAX: Final = 2**23 - 1

# --------------------------------------------------------------------------- channel map

#: (channel, placement, muscle) per EMG channel: two bipolar pairs per calf, medial and
#: lateral gastrocnemius (``gm``/``gl``), left on channels 1-2, right on 3-4.
ChannelMap = tuple[tuple[str, str, str], ...]
DEFAULT_CHANNEL_MAP: Final[ChannelMap] = (
    ("ch1", "left-calf", "gm"),
    ("ch2", "left-calf", "gl"),
    ("ch3", "right-calf", "gm"),
    ("ch4", "right-calf", "gl"),
)


def _format_channel_map(cmap: ChannelMap) -> str:
    return ";".join(":".join(entry) for entry in cmap)


def parse_channel_map(text: str) -> ChannelMap:
    """Parse ``"ch1:left-calf:gm;ch2:left-calf:gl;..."`` (as stored in :meth:`metadata`).

    Raises
    ------
    ConfigError
        Not four ``channel:placement:muscle`` entries for ch1-ch4, or an unknown placement.

    Examples
    --------
    >>> parse_channel_map("ch1:left-calf:gm;ch2:left-calf:gl;ch3:right-calf:gm;ch4:other:x")[3]
    ('ch4', 'other', 'x')
    """
    entries = tuple(tuple(part.strip() for part in item.split(":")) for item in text.split(";"))
    if len(entries) != N_CHANNELS or any(len(e) != 3 for e in entries):
        msg = (
            f"ganglion channel map {text!r} is not four 'channel:placement:muscle' entries "
            "separated by ';'; write e.g. 'ch1:left-calf:gm;ch2:left-calf:gl;...'"
        )
        raise ConfigError(msg, key="channel_map")
    cmap = tuple((e[0], e[1], e[2]) for e in entries)
    _check_channel_map(cmap)
    return cmap


def _check_channel_map(cmap: ChannelMap) -> None:
    if tuple(c for c, _, _ in cmap) != EMG_CHANNELS:
        msg = f"ganglion channel map must list {EMG_CHANNELS} in order, got {cmap!r}"
        raise ConfigError(msg, key="channel_map")
    for channel, placement, _ in cmap:
        if placement not in PLACEMENTS:
            msg = (
                f"ganglion {channel} placement {placement!r} is unknown; use one of "
                f"{', '.join(PLACEMENTS)}"
            )
            raise ConfigError(msg, key="channel_map")


# --------------------------------------------------------------------------- bit fields


def bits_for_id(packet_id: int, firmware: int) -> int:
    """Field width of a sample packet: 18, 19, or 24 for firmware 2's raw packet 0.

    Raises
    ------
    DecodeError
        Not a sample packet ID of that firmware (field ``packet_id``).

    Examples
    --------
    >>> bits_for_id(106, 2), bits_for_id(5, 3), bits_for_id(0, 2)
    (19, 18, 24)
    """
    if firmware == 2:
        if packet_id == 0:
            return 24
        if 1 <= packet_id <= 100:
            return 18
        if 101 <= packet_id <= 200:
            return 19
    elif 0 <= packet_id <= 99:
        return 18
    elif 100 <= packet_id <= 199:
        return 19
    msg = (
        f"packet ID {packet_id} is not a firmware-{firmware} sample packet; if the board "
        "runs the other firmware, pair it again so its software revision is read"
    )
    raise DecodeError(msg, offset=0, field="packet_id")


def _field_layout(bits: int) -> list[tuple[int, int, int]]:
    """(byte, right shift within a 32-bit big-endian window, mask) of the 8 fields."""
    out = []
    for f in range(2 * N_CHANNELS):
        start = 8 + f * bits
        out.append((start // 8, 32 - start % 8 - bits, (1 << bits) - 1))
    return out


def decode_fields(rows: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.int64]:
    """The 8 unsigned ``bits``-wide fields of packets ``rows`` (MSB first, from byte 1).

    Parameters
    ----------
    rows : ndarray of uint8, shape (n_packets, 20)
    bits : {18, 19}

    Returns
    -------
    ndarray of int64, shape (n_packets, 8)
        Channels 1-4 of the first sample, then of the second, as unsigned integers.
    """
    k = rows.shape[0]
    padded = np.zeros((k, PACKET_BYTES + 1), dtype=np.uint8)
    padded[:, :PACKET_BYTES] = rows[:, :PACKET_BYTES]
    out = np.empty((k, 2 * N_CHANNELS), dtype=np.int64)
    for f, (byte, shift, mask) in enumerate(_field_layout(bits)):
        window = (
            (padded[:, byte].astype(np.int64) << 24)
            | (padded[:, byte + 1].astype(np.int64) << 16)
            | (padded[:, byte + 2].astype(np.int64) << 8)
            | padded[:, byte + 3].astype(np.int64)
        )
        out[:, f] = (window >> shift) & mask
    return out


def _signed_bit0(fields: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
    """Firmware-2 deltas: bit 0 set means negative (sign-extend from ``bits``)."""
    out: npt.NDArray[np.int64] = fields - ((fields & 1) << bits)
    return out


def _signed_msb(fields: npt.NDArray[np.int64], bits: int) -> npt.NDArray[np.int64]:
    """Two's complement with the sign in the top bit of the field."""
    return np.where(fields >= 1 << (bits - 1), fields - (1 << bits), fields)


def decode_deltas(payload: bytes) -> npt.NDArray[np.int64]:
    """The firmware-2 deltas (``previous - current``, counts) of one 18/19-bit packet.

    Returns
    -------
    ndarray of int64, shape (2, 4)
        Row 0: deltas of the first sample (channels 1-4), row 1: of the second.

    Raises
    ------
    DecodeError
        Not 20 bytes, or not a firmware-2 delta packet ID.
    """
    _check_length(payload)
    bits = bits_for_id(payload[0], 2)
    if bits == 24:
        msg = "packet 0 carries raw samples, not deltas; use the raw int24 values instead"
        raise DecodeError(msg, offset=0, field="packet_id")
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(1, PACKET_BYTES)
    return _signed_bit0(decode_fields(rows, bits), bits).reshape(2, N_CHANNELS)


def _check_length(payload: bytes) -> None:
    if len(payload) != PACKET_BYTES:
        msg = (
            f"Ganglion sample packet of {len(payload)} bytes, expected {PACKET_BYTES}; the "
            "notification was truncated or is not from a Ganglion"
        )
        raise DecodeError(msg, offset=min(len(payload), PACKET_BYTES), field="payload_length")


def firmware_from_software_revision(software: str) -> int:
    """3 when the Software Revision string starts with ``3``, else 2 (OpenBCI's rule)."""
    return 3 if software.strip().startswith("3") else 2


# --------------------------------------------------------------------------- chain state


@dataclass(slots=True)
class _Chain:
    """Decoding state of one device between frames (see the module docstring)."""

    count: int = 0  # sample packets seen
    pos: int = 0  # ID cycle position of the last packet (-1 = raw packet 0)
    host_ns: int = 0
    n: int = 0  # samples of the last packet
    payload: bytes = b""
    seq: int = 0  # unwrapped packet counter of the last packet
    tick: int = 0  # first-sample tick of the last packet
    last: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(4, np.int64))
    last_values: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((0, 4), np.int64)
    )
    anchored: bool = False
    gap: bool = False
    # accelerometer history: (axis code, byte, step k, restart) of the last 2 packets
    acc_hist: list[tuple[int, int, int, bool]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, eq=False)
class _Decoded:
    """What the core gives for a run of sample packets (all in arrival order)."""

    n: npt.NDArray[np.int64]  # samples per packet
    counts: npt.NDArray[np.int64]  # (total samples, 4)
    seq: npt.NDArray[np.int64]
    ticks: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int64]
    acc_index: npt.NDArray[np.int64]  # packets completing an accelerometer reading
    acc_counts: npt.NDArray[np.int64]  # (n_acc, 3) x, y, z in int8 counts (signs applied)


class GanglionProtocol(DeviceProtocol):
    """OpenBCI Ganglion as a 4-channel EMG board (stateful decoder: see the module docstring).

    Parameters
    ----------
    firmware : {2, 3}
        Wire format; :meth:`configure` picks it from the Software Revision string.
    acc_g_per_count : float
        Accelerometer scale (g per int8 count), 0.016 (default) or 0.032.
    accelerometer : bool
        Ask for the accelerometer (``n`` before ``b``): 18-bit packets carrying it.
    channel_map : tuple of (channel, placement, muscle)
        Which calf each channel sits on (:data:`DEFAULT_CHANNEL_MAP`).

    Raises
    ------
    ConfigError
        An unknown firmware, scale or channel map.
    """

    family = "openbci-ganglion"
    display_name = "OpenBCI Ganglion (4-channel EMG)"
    min_mtu = 23

    def __init__(
        self,
        firmware: int = 2,
        acc_g_per_count: float = DEFAULT_ACC_G_PER_COUNT,
        *,
        accelerometer: bool = True,
        channel_map: ChannelMap = DEFAULT_CHANNEL_MAP,
    ) -> None:
        if firmware not in (2, 3):
            msg = f"ganglion firmware {firmware!r} is not supported; use 2 or 3"
            raise ConfigError(msg, key="firmware")
        if not any(math.isclose(acc_g_per_count, c) for c in ACC_G_PER_COUNT_CHOICES):
            msg = (
                f"ganglion accelerometer scale {acc_g_per_count!r} g/count is not one the "
                f"sources give; use one of {ACC_G_PER_COUNT_CHOICES}"
            )
            raise ConfigError(msg, key="acc_g_per_count")
        _check_channel_map(tuple(channel_map))
        self.firmware = int(firmware)
        self.acc_g_per_count = float(acc_g_per_count)
        self.accelerometer = bool(accelerometer)
        self.channel_map: ChannelMap = tuple(channel_map)
        self._chains: dict[str, _Chain] = {}

    # ------------------------------------------------------------------ identity

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        if any(u.lower() == SERVICE_UUID or u.lower() == "fe84" for u in service_uuids):
            return True
        name = (local_name or "").lower()
        return any(name.startswith(p) for p in NAME_PREFIXES)

    def capabilities(self) -> tuple[Capability, ...]:
        caps = [Capability("emg", EMG_CHANNELS, EMG_UNIT, float(FS_HZ))]
        if self.accelerometer:
            caps.append(Capability("acc", ACC_CHANNELS, ACC_UNIT, float(ACC_FS_HZ)))
        return tuple(caps)

    def control_uuids(self) -> tuple[str, ...]:
        return ()

    def data_uuids(self) -> tuple[str, ...]:
        return (RECEIVE_UUID,)

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        """Accelerometer on/off, then ``b``; sent on every connect (the board stops streaming
        when the link drops, and ``b`` restarts it with packet 0 on firmware 2)."""
        del device_time_ns  # the board has no clock to set
        accel = CMD_ACCEL_ON if self.accelerometer else CMD_ACCEL_OFF
        return (GattWrite(SEND_UUID, accel, False), GattWrite(SEND_UUID, CMD_START, False))

    def stop_commands(self) -> tuple[GattWrite, ...]:
        return (GattWrite(SEND_UUID, CMD_STOP, False),)

    def configure(self, device_info: Mapping[str, str]) -> GanglionProtocol:
        """A copy (fresh decoding state) for the firmware the Software Revision names."""
        firmware = firmware_from_software_revision(device_info.get("software", ""))
        out = copy.copy(self)
        out.firmware = firmware
        out._chains = {}
        out._bound = ""
        return out

    def reset(self) -> None:
        """Forget every device's chain state (decode a recording again from its start)."""
        self._chains.clear()

    def channel_placements(self) -> dict[str, tuple[str, ...]]:
        """Placement -> EMG channels on it, e.g. ``{"left-calf": ("ch1", "ch2"), ...}``."""
        out: dict[str, tuple[str, ...]] = {}
        for channel, placement, _ in self.channel_map:
            out[placement] = (*out.get(placement, ()), channel)
        return out

    # ------------------------------------------------------------------ metadata

    def metadata(self) -> Mapping[str, str]:
        return {
            "family": self.family,
            "firmware": str(self.firmware),
            "fs_hz": str(FS_HZ),
            "emg_uv_per_count": repr(UV_PER_COUNT),
            "acc_g_per_count": repr(self.acc_g_per_count),
            "accelerometer": "1" if self.accelerometer else "0",
            "channel_map": _format_channel_map(self.channel_map),
            "resync_gap_s": repr(RESYNC_GAP_S),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> GanglionProtocol:
        """Rebuild the protocol a session was recorded with (firmware, scale, channel map).

        Raises
        ------
        ConfigError
            A stored value that is not usable (the message names the key).
        """
        try:
            firmware = int(metadata.get("firmware", "2"))
            scale = float(metadata.get("acc_g_per_count", repr(DEFAULT_ACC_G_PER_COUNT)))
        except ValueError as exc:
            msg = (
                f"session metadata firmware={metadata.get('firmware')!r} / acc_g_per_count="
                f"{metadata.get('acc_g_per_count')!r} is not a number; the file is damaged"
            )
            raise ConfigError(msg, key="firmware") from exc
        cmap = (
            parse_channel_map(metadata["channel_map"])
            if "channel_map" in metadata
            else DEFAULT_CHANNEL_MAP
        )
        return cls(
            firmware,
            scale,
            accelerometer=metadata.get("accelerometer", "1") != "0",
            channel_map=cmap,
        )

    def timeline_builder(self, stream: str) -> TimelineBuilder | None:
        """EMG at 200 Hz and accelerometer at 10 Hz, both on the synthetic 200 Hz tick clock."""
        if stream == "emg":
            return TimelineBuilder("emg", float(FS_HZ), float(FS_HZ), SEQ_MODULO, TICK_MODULO)
        if stream == "acc":
            return TimelineBuilder("acc", float(ACC_FS_HZ), float(FS_HZ), SEQ_MODULO, TICK_MODULO)
        return None

    # ------------------------------------------------------------------ decoding

    def _is_sample_id(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        if self.firmware == 2:
            return ids <= 200
        return ids <= 199

    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode one notification (updating this device's chain state for sample packets).

        Raises
        ------
        DecodeError
            Another characteristic, an empty or truncated packet, an unknown ID, or an
            impedance/message packet whose text does not parse (offset and field given).
        """
        if frame.characteristic_uuid.lower() != RECEIVE_UUID:
            msg = (
                f"characteristic {frame.characteristic_uuid} is not the Ganglion's receive "
                f"characteristic {RECEIVE_UUID}; record only data_uuids()"
            )
            raise DecodeError(msg, offset=0, field="characteristic_uuid")
        payload = bytes(frame.payload)
        if not payload:
            raise DecodeError("empty Ganglion notification", offset=0, field="packet_id")
        pid = payload[0]
        if pid in IMPEDANCE_IDS:
            return [_impedance_block(frame.device_address, payload)]
        if pid in (MESSAGE_PART_ID, MESSAGE_END_ID):
            _check_message(payload)
            return []
        bits_for_id(pid, self.firmware)  # raises for unknown IDs
        _check_length(payload)
        rows = np.frombuffer(payload, dtype=np.uint8).reshape(1, PACKET_BYTES)
        host = np.array([frame.host_time_ns], dtype=np.int64)
        res = self._chain_decode(frame.device_address, rows, host)
        emg_uv = _counts_to_uv(res.counts)
        blocks = [
            SampleBlock(
                frame.device_address, "emg", EMG_CHANNELS, EMG_UNIT, float(FS_HZ), emg_uv,
                device_ticks=int(res.ticks[0]), sequence=int(res.seq[0] % SEQ_MODULO),
                flags=int(res.flags[0]),
            )
        ]
        if res.acc_index.size:
            blocks.append(
                SampleBlock(
                    frame.device_address, "acc", ACC_CHANNELS, ACC_UNIT, float(ACC_FS_HZ),
                    self._acc_mg(res.acc_counts), device_ticks=int(res.ticks[0]),
                    sequence=None, flags=0,
                )
            )
        return blocks

    def _acc_mg(self, acc_counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        scale = self.acc_g_per_count * G_MG
        return (acc_counts.T.astype(np.float64) * scale).astype(np.float32)

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode every 20-byte sample packet of one device at once (vectorised).

        Impedance, message and malformed packets are left out (``decode`` handles them; they
        never touch the chain state), so the result is bit for bit what ``decode`` gives
        frame by frame, however the frames are split into calls.

        The base signature carries no device address: the batch uses the chain of the device
        this protocol is bound to (:meth:`bind`, or the first device it decoded). Replay builds
        one protocol per recorded device, so that is always the right one.
        """
        if char_uuid.lower() != RECEIVE_UUID:
            return None
        total = len(payloads)
        if total == 0:
            return []
        host = np.asarray(host_time_ns, dtype=np.int64)
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=total)
        if bool(np.all(lengths == PACKET_BYTES)):
            rows = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(total, PACKET_BYTES)
            index = np.arange(total, dtype=np.int64)
        else:
            index = np.flatnonzero(lengths == PACKET_BYTES).astype(np.int64)
            joined = b"".join([payloads[i] for i in index.tolist()])
            rows = np.frombuffer(joined, dtype=np.uint8).reshape(index.size, PACKET_BYTES)
        ok = self._is_sample_id(rows[:, 0].astype(np.int64))
        if not bool(ok.all()):
            rows, index = rows[ok], index[ok]
        if index.size == 0:
            return []
        res = self._chain_decode(self._bound, rows, host[index])
        out = [
            PacketBatch(
                stream="emg", channels=EMG_CHANNELS, unit=EMG_UNIT, fs_hz=float(FS_HZ),
                index=index, values=_counts_to_uv(res.counts), n_samples=res.n,
                sequence=res.seq % SEQ_MODULO, device_ticks=res.ticks, flags=res.flags,
            )
        ]
        if res.acc_index.size:
            a = res.acc_index
            out.append(
                PacketBatch(
                    stream="acc", channels=ACC_CHANNELS, unit=ACC_UNIT, fs_hz=float(ACC_FS_HZ),
                    index=index[a], values=self._acc_mg(res.acc_counts),
                    n_samples=np.ones(a.size, np.int64),
                    sequence=np.full(a.size, -1, np.int64), device_ticks=res.ticks[a],
                    flags=np.zeros(a.size, np.int64),
                )
            )
        return out

    #: Device whose chain :meth:`decode_batch` uses (set by :meth:`bind` or the first decode).
    _bound: str = ""

    def bind(self, device_address: str) -> GanglionProtocol:
        """Use ``device_address``'s chain in :meth:`decode_batch`; returns ``self``."""
        self._bound = device_address
        return self

    def _chain(self, address: str) -> _Chain:
        chain = self._chains.get(address)
        if chain is None:
            chain = self._chains[address] = _Chain()
        return chain

    def _chain_decode(
        self, address: str, rows: npt.NDArray[np.uint8], host: npt.NDArray[np.int64]
    ) -> _Decoded:
        """The core shared by ``decode`` and ``decode_batch``: a run of valid sample packets
        of one device in arrival order, state in, state out."""
        if not self._bound:
            self._bound = address
        st = self._chain(address)
        fw2 = self.firmware == 2
        ids = rows[:, 0].astype(np.int64)
        n_pk = ids.size
        if fw2:
            is_raw = ids == 0
            pos = np.where(ids <= 100, ids - 1, ids - 101)
            width = np.where(ids <= 100, 18, 19)
        else:
            is_raw = np.zeros(n_pk, dtype=np.bool_)
            pos = ids % ID_CYCLE
            width = np.where(ids < 100, 18, 19)
        width[is_raw] = 24
        n = np.where(is_raw, 1, SAMPLES_PER_PACKET).astype(np.int64)

        # --- steps relative to the previous packet (the state's for the first one)
        prev_pos = np.concatenate(([st.pos], pos[:-1]))
        prev_host = np.concatenate(([st.host_ns], host[:-1]))
        prev_n = np.concatenate(([st.n], n[:-1]))
        dh = host - prev_host
        dpos = np.mod(pos - prev_pos, ID_CYCLE)
        expected = dh * (PACKETS_PER_S / 1e9)
        whole = np.maximum(0, np.rint((expected - dpos) / ID_CYCLE)).astype(np.int64)
        k = dpos + ID_CYCLE * whole
        same = np.zeros(n_pk, dtype=np.bool_)
        maybe = np.flatnonzero(k == 0)
        if maybe.size:
            prev_rows = np.empty((maybe.size, PACKET_BYTES), dtype=np.uint8)
            inner = maybe > 0
            prev_rows[inner] = rows[maybe[inner] - 1]
            if not inner.all():
                first = np.frombuffer(st.payload.ljust(PACKET_BYTES, b"\0")[:PACKET_BYTES],
                                      dtype=np.uint8)
                prev_rows[~inner] = first if st.count else 255 - rows[0]
            same[maybe] = np.all(prev_rows == rows[maybe], axis=1)
        dup = (k == 0) & same
        if st.count == 0:
            dup[0] = False
        k = np.where((k == 0) & ~dup, ID_CYCLE, k)
        restart = (is_raw | (dh >= round(RESYNC_GAP_S * 1e9))) & ~dup
        if st.count == 0:
            restart[0] = True
        seq_step = np.where(dup, 0, np.where(restart, _SEQ_RESTART_JUMP, k))
        host_ticks = np.rint(dh * (FS_HZ / 1e9)).astype(np.int64)
        tick_step = np.where(
            dup, 0, np.where(restart, np.maximum(prev_n, host_ticks), prev_n + 2 * (k - 1))
        )
        if st.count == 0:
            seq_step[0] = tick_step[0] = 0
        seq = st.seq + np.cumsum(seq_step)
        ticks = st.tick + np.cumsum(tick_step)

        # --- sample values
        total = int(n.sum())
        off = np.cumsum(n) - n
        nondup = ~dup
        counts = np.zeros((total, N_CHANNELS), dtype=np.int64)
        if fw2:
            # per packet 8 increments (-delta), zero for packet 0 and duplicates; packet 0
            # has one sample, so its second row is dropped
            neg = np.zeros((n_pk, 2 * N_CHANNELS), dtype=np.int64)
            for w in (18, 19):
                sel_mask = (width == w) & nondup
                if bool(sel_mask.all()):
                    neg = -_signed_bit0(decode_fields(rows, w), w)
                elif sel_mask.any():
                    sel = np.flatnonzero(sel_mask)
                    neg[sel] = -_signed_bit0(decode_fields(rows[sel], w), w)
            inc = neg.reshape(2 * n_pk, N_CHANNELS)
            if bool(is_raw.any()):
                keep = np.ones(2 * n_pk, dtype=np.bool_)
                keep[2 * np.flatnonzero(is_raw) + 1] = False
                inc = inc[keep]
            raw_pk = np.flatnonzero(is_raw & nondup)
            cum = np.cumsum(inc, axis=0)
            seg = np.zeros(total, dtype=np.int64)
            base = np.empty((raw_pk.size + 1, N_CHANNELS), dtype=np.int64)
            base[0] = st.last
            if raw_pk.size:
                r = rows[raw_pk]
                b = r[:, 1:13].astype(np.int64).reshape(-1, N_CHANNELS, 3)
                a = (b[:, :, 0] << 16) | (b[:, :, 1] << 8) | b[:, :, 2]
                a = np.where(a > _I24_MAX, a - (1 << 24), a)
                base[1:] = a - cum[off[raw_pk]]
                marks = np.zeros(total, dtype=np.int64)
                marks[off[raw_pk]] = 1
                seg = np.cumsum(marks)
            counts = cum + base[seg]
        else:
            for w in (18, 19):
                sel = np.flatnonzero(width == w)
                if sel.size:
                    v = _signed_msb(decode_fields(rows[sel], w), w) << (24 - w)
                    counts[off[sel]] = v[:, :N_CHANNELS]
                    counts[off[sel] + 1] = v[:, N_CHANNELS:]
        dup_pk = np.flatnonzero(dup)
        if dup_pk.size and fw2:
            # a duplicate repeats the values of the last non-duplicate packet before it
            src = np.maximum.accumulate(np.where(nondup, np.arange(n_pk), -1))
            for j in dup_pk.tolist():  # rare: only double-delivered notifications
                s = int(src[j])
                vals = st.last_values if s < 0 else counts[off[s] : off[s] + n[s]]
                if vals.shape[0] == n[j]:
                    counts[off[j] : off[j] + n[j]] = vals

        # --- flags (firmware 2 only)
        flags = np.zeros(n_pk, dtype=np.int64)
        raw_at = np.maximum.accumulate(np.where(is_raw & nondup, np.arange(n_pk), -1))
        if fw2:
            anchored = st.anchored | (raw_at >= 0)
            loss = nondup & ~is_raw & ((k > 1) | restart)
            if st.count == 0:
                loss[0] = False
            lost_so_far = np.cumsum(loss)
            since = lost_so_far - np.where(raw_at >= 0, lost_so_far[np.maximum(raw_at, 0)], 0)
            gap = (since > 0) | ((raw_at < 0) & st.gap)
            flags = (
                np.where(anchored, 0, FLAG_UNANCHORED) | np.where(gap, FLAG_CHAIN_GAP, 0)
            ).astype(np.int64)

        # --- accelerometer: a reading completes on the third axis packet of a decade
        acc_index, acc_counts = self._accelerometer(st, rows, ids, width, k, restart, nondup)

        # --- new state
        last_nd = np.flatnonzero(nondup)
        st.count += n_pk
        st.pos, st.host_ns, st.n = int(pos[-1]), int(host[-1]), int(n[-1])
        if is_raw[-1]:
            st.pos = -1
        st.payload = rows[-1].tobytes()
        st.seq, st.tick = int(seq[-1]), int(ticks[-1])
        if last_nd.size:
            j = int(last_nd[-1])
            st.last = counts[off[j] + n[j] - 1].copy()
            st.last_values = counts[off[j] : off[j] + n[j]].copy()
        if fw2:
            st.anchored = not flags[-1] & FLAG_UNANCHORED
            st.gap = bool(flags[-1] & FLAG_CHAIN_GAP)
        return _Decoded(n, counts, seq, ticks, flags, acc_index, acc_counts)

    def _accelerometer(  # noqa: PLR0917 - private helper of _chain_decode, arrays in order
        self,
        st: _Chain,
        rows: npt.NDArray[np.uint8],
        ids: npt.NDArray[np.int64],
        width: npt.NDArray[np.int64],
        k: npt.NDArray[np.int64],
        restart: npt.NDArray[np.bool_],
        nondup: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Packets completing an X/Y/Z reading and its int8 counts as (x, y, z)."""
        fw2 = self.firmware == 2
        nd = np.flatnonzero(nondup)
        code = np.where(width[nd] == 18, ids[nd] % 10, -1)
        if fw2:
            code = np.where((code >= 1) & (code <= 3), code, -1)
        else:
            code = np.where(code <= 2, code, -1)
        byte = rows[nd, PACKET_BYTES - 1].astype(np.int8).astype(np.int64)
        hist = st.acc_hist
        h_code = np.array([h[0] for h in hist], dtype=np.int64)
        h_byte = np.array([h[1] for h in hist], dtype=np.int64)
        h_k = np.array([h[2] for h in hist], dtype=np.int64)
        h_rs = np.array([h[3] for h in hist], dtype=np.bool_)
        c = np.concatenate((h_code, code))
        bt = np.concatenate((h_byte, byte))
        kk = np.concatenate((h_k, k[nd]))
        rs = np.concatenate((h_rs, restart[nd]))
        first, second, third = (1, 2, 3) if fw2 else (0, 1, 2)
        p = np.arange(2, c.size)
        done = (
            (c[p] == third) & (c[p - 1] == second) & (c[p - 2] == first)
            & (kk[p] == 1) & (kk[p - 1] == 1) & ~rs[p] & ~rs[p - 1]
        )
        hit = p[done]
        if fw2:  # X, Y, Z in IDs ending 1, 2, 3
            xyz = np.stack([bt[hit - 2], bt[hit - 1], bt[hit]], axis=1)
        else:  # Z (inverted), Y, X in IDs ending 0, 1, 2
            xyz = np.stack([bt[hit], bt[hit - 1], -bt[hit - 2]], axis=1)
        keep = c.size
        st.acc_hist = [
            (int(c[i]), int(bt[i]), int(kk[i]), bool(rs[i])) for i in range(max(0, keep - 2), keep)
        ]
        packet_index = nd[hit - h_code.size].astype(np.int64)
        return packet_index, xyz.reshape(-1, 3).astype(np.int64)


def _counts_to_uv(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """(samples, 4) counts to (4, samples) float32 µV (one formula for both paths)."""
    return (counts.T.astype(np.float64) * UV_PER_COUNT).astype(np.float32)


def _impedance_block(address: str, payload: bytes) -> SampleBlock:
    body = payload[1:]
    end = body.find(b"Z")
    digits = body[:end] if end >= 0 else body
    if end < 0 or not digits or not digits.isdigit():
        bad = next((i for i, ch in enumerate(digits) if not chr(ch).isdigit()), len(digits))
        msg = (
            f"impedance packet {payload.hex(' ')} is not ASCII digits ending in 'Z'; the "
            "notification is corrupted"
        )
        raise DecodeError(msg, offset=1 + bad, field="impedance")
    channel = payload[0] - 200
    name = "ref" if channel == 5 else f"ch{channel}"
    return SampleBlock(
        address, "impedance", (name,), "kohm", None,
        np.array([[float(int(digits))]], dtype=np.float32),
    )


def _check_message(payload: bytes) -> None:
    try:
        payload[1:].decode("ascii")
    except UnicodeDecodeError as exc:
        msg = "Ganglion message packet is not ASCII; the notification is corrupted"
        raise DecodeError(msg, offset=1 + exc.start, field="message") from exc
