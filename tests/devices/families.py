"""Contract cases of every device family: what one shared test checks each family against.

A :class:`FamilyCase` says, for one device family, how to build its protocol and a firmware
simulator that measures a *known* signal, which streams it must deliver (unit, channels,
rate, characteristic), what the simulator was given (:class:`Truth`), how to encode packets
directly for round trips, and which malformed packets must be rejected with what field.
``tests/devices/test_device_contract.py`` runs the same checks over every case in :data:`CASES`;
``tests/devices/test_decoder_fuzz.py`` fuzzes every case's decoders with its real packets.

The known signals and the simulators that measure them live in :mod:`firmware_sims.zoo`
(the shipped ``record --simulate --world zoo`` uses them too); this module, a test asset,
adds what the tests check them against. Round-trip packets come from the simulators' own
encoders (``gs``, ``ms``, ``ps``, ``bs``: firmware_sims.ganglion, .movesense, .polar,
.reference_band), written apart from the decoders they test.

:func:`run_firmware` drives a simulator directly through a :class:`HarnessLink` (no bleak, no
event loop): subscribe, read the Device Information strings, configure the protocol, send its
start commands (checking the indications), then tick simulated time and collect every
notification as a :class:`~crampsense.models.Frame`. It is the fastest way to get a family's
real packets; the bleak path is covered by ``tests/test_zoo.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crampsense.devices import ganglion as gd
from crampsense.devices import movesense as mv
from crampsense.devices import polar as pd
from crampsense.devices import reference_band as rb
from crampsense.devices.base import DeviceProtocol
from crampsense.devices.gatt import (
    DEVICE_INFORMATION_UUIDS,
    HEART_RATE_MEASUREMENT_UUID,
    decode_dis_string,
)
from crampsense.devices.heart_rate import RR_TICKS_PER_S, HeartRateProtocol
from crampsense.devices.timeline import StreamTimeline, TimelineBuilder
from crampsense.errors import DecodeError
from crampsense.models import ACC_UNIT, ECG_UNIT, EMG_UNIT, Frame, SampleBlock
from firmware_sims import ganglion as gs
from firmware_sims import movesense as ms
from firmware_sims import polar as ps
from firmware_sims import reference_band as bs
from firmware_sims.ganglion import Ganglion
from firmware_sims.heart_rate import HeartRateStrap, encode_heart_rate_measurement, sleeping_hr_bpm
from firmware_sims.peripheral import ATT_HEADER_BYTES, AttError, SimulatedPeripheral
from firmware_sims.polar import PolarSensor, synthetic_ecg_uv
from firmware_sims.zoo import (
    BAND_EMG_FS_HZ,
    BAND_IMU_FS_HZ,
    MOVESENSE_RESOURCE,
    WALL0,
    WALL0_NS,
    KnownSignal,
    known_band,
    known_ganglion,
    known_hr_strap,
    known_movesense,
    known_polar,
)

__all__ = [
    "CANONICAL_UNITS",
    "CASES",
    "WALL0",
    "WALL0_NS",
    "EncodedRun",
    "FamilyCase",
    "HarnessLink",
    "KnownSignal",
    "Malformed",
    "Recorded",
    "StreamCase",
    "Truth",
    "case",
    "decode_all",
    "decoded_values",
    "fresh",
    "match_irregular",
    "match_timeline",
    "run_firmware",
]

logger = logging.getLogger(__name__)

#: The unit every family must decode each stream into, whatever its wire format: detection
#: and the summary read EMG in µV and acceleration in mg, with no per-family conversions.
CANONICAL_UNITS: Final[Mapping[str, str]] = {
    "emg": EMG_UNIT,
    "ecg": ECG_UNIT,
    "exg": EMG_UNIT,
    "acc": ACC_UNIT,
    "hr": "bpm",
    "rr": "s",
    "ppi": "s",
    "energy": "kJ",
    "battery": "percent",
    "status": "mixed",
}

#: Harness pump step (s): as the world's default, finer than any packet interval that matters.
HARNESS_TICK_S: Final = 0.05
#: MTU the harness negotiates when the simulator asks for more: bleak's usual on BlueZ with
#: an MTU exchange, and enough for Polar's PMD (232).
HARNESS_MTU: Final = 247


# --------------------------------------------------------------------------- case types


@dataclass(frozen=True, slots=True)
class StreamCase:
    """One stream a family must deliver.

    Attributes
    ----------
    stream : str
        ``SampleBlock.stream``.
    unit : str
        Its unit (must be ``CANONICAL_UNITS[stream]``).
    channels : tuple of str
        Channel labels in decoded row order.
    fs_hz : float or None
        Nominal rate with the case's protocol options; ``None`` for irregular streams.
    char_uuid : str
        Characteristic whose notifications carry it.
    tolerance : float
        Largest round-trip error allowed, in ``unit`` (one wire LSB plus float32 rounding).
    truth_tolerance : float or None
        Largest error against what the simulator was given, when larger than ``tolerance``
        (a lossy wire format); ``None``: ``tolerance``.
    offset_after_loss : bool
        Delta-coded without anchors (Ganglion firmware 2): after a lost packet the values
        carry an unknown constant offset until the next absolute packet, so each run of
        samples after a gap is compared up to a constant.
    host_timed : bool
        The device sends no clock (the Ganglion): after a gap its samples are placed by host
        receive time, so each run after a gap is located in the truth on its own (its time
        error must still be within the contract's tolerance).
    timeline : bool
        The family gives a :class:`~crampsense.devices.timeline.TimelineBuilder` for it
        (regular streams): then continuity, gaps and per-sample times are checked.
    """

    stream: str
    unit: str
    channels: tuple[str, ...]
    fs_hz: float | None
    char_uuid: str
    tolerance: float
    timeline: bool = True
    truth_tolerance: float | None = None
    offset_after_loss: bool = False
    host_timed: bool = False

    @property
    def truth_tol(self) -> float:
        """Tolerance against the truth (see ``truth_tolerance``)."""
        return self.tolerance if self.truth_tolerance is None else self.truth_tolerance


@dataclass(frozen=True, slots=True, eq=False)
class Truth:
    """What a simulator was given for one stream.

    Attributes
    ----------
    values : ndarray of float64, shape (n_channels, n)
        Regular streams: sample ``i`` is at simulated time ``i / fs_hz`` (from power-on).
        Irregular streams: the values in the order the device sends them.
    fs_hz : float or None
        Rate of a regular stream; ``None`` for irregular ones.
    """

    values: npt.NDArray[np.float64]
    fs_hz: float | None


@dataclass(frozen=True, slots=True, eq=False)
class EncodedRun:
    """Packets of one stream made with the family's own encoder, and what they carry.

    Attributes
    ----------
    char_uuid : str
    payloads : list of bytes
        Consecutive packets (no loss), as the device would send them.
    values : ndarray of float64, shape (n_channels, sum(n_samples))
        The samples they carry, in the stream's unit, back to back.
    n_samples : ndarray of int64, shape (n_packets,)
    host_time_ns : ndarray of int64, shape (n_packets,)
        Plausible receive times (the last sample's time plus a small latency).
    """

    char_uuid: str
    payloads: list[bytes]
    values: npt.NDArray[np.float64]
    n_samples: npt.NDArray[np.int64]
    host_time_ns: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A packet the decoder must reject: ``DecodeError`` with ``field`` (if given)."""

    char_uuid: str
    payload: bytes
    field: str | None
    why: str


@dataclass(frozen=True, slots=True, eq=False)
class FamilyCase:
    """Everything the shared contract test needs about one device family.

    Attributes
    ----------
    name : str
        Case key (``family`` or ``family-variant``, e.g. ``"polar-pmd-verity-sense"``).
    family : str
        Registry key.
    protocol : callable
        ``() -> DeviceProtocol`` with the options the case's rates assume.
    simulator : callable
        ``(address, duration_s) -> SimulatedPeripheral`` measuring a :class:`KnownSignal`.
    streams : tuple of StreamCase
    truth : callable
        ``(simulator, stream) -> Truth`` after a run.
    encode : callable
        ``(stream, rng, n_packets) -> EncodedRun`` with the family's encoder.
    malformed : callable
        ``() -> list of Malformed``.
    placement : str
        Where the zoo wears it.
    options : mapping
        Protocol constructor options the case uses (what ``pair`` would store).
    """

    name: str
    family: str
    protocol: Callable[[], DeviceProtocol]
    simulator: Callable[[str, float], SimulatedPeripheral]
    streams: tuple[StreamCase, ...]
    truth: Callable[[SimulatedPeripheral, str], Truth]
    encode: Callable[[str, np.random.Generator, int], EncodedRun]
    malformed: Callable[[], list[Malformed]]
    placement: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def stream(self, name: str) -> StreamCase:
        """The :class:`StreamCase` called ``name``."""
        for s in self.streams:
            if s.stream == name:
                return s
        msg = f"{self.name} has no contract stream {name!r}"
        raise KeyError(msg)


# --------------------------------------------------------------------------- harness


class HarnessLink:
    """A :class:`~firmware_sims.peripheral.Link` without bleak: notifications are collected.

    Like a real stack (and :class:`~firmware_sims.world.SimLink`), a notification is cut to
    ``mtu - 3`` bytes and dropped unless the central subscribed to its characteristic.
    """

    def __init__(self, peripheral: SimulatedPeripheral, mtu: int) -> None:
        self.peripheral = peripheral
        self._mtu = mtu
        self.t_ns = 0
        self.sent: list[tuple[str, bytes, int]] = []

    @property
    def mtu(self) -> int:
        return self._mtu

    def now_ns(self) -> int:
        return self.t_ns

    def notify(self, char_uuid: str, data: bytes) -> None:
        uuid = char_uuid.lower()
        if uuid in {u.lower() for u in self.peripheral.subscribed}:
            self.sent.append((uuid, bytes(data[: self._mtu - ATT_HEADER_BYTES]), self.t_ns))


@dataclass(eq=False)
class Recorded:
    """What :func:`run_firmware` collected.

    Attributes
    ----------
    frames : list of Frame
        Notifications on the protocol's data characteristics, kept ones only.
    control : list of (str, bytes)
        Control-point indications (answered commands and unsolicited ones).
    protocol : DeviceProtocol
        The protocol after ``configure`` with the Device Information strings.
    device_info : dict of str to str
        The strings read.
    dropped : int
        Data notifications the ``drop`` predicate removed.
    """

    frames: list[Frame]
    control: list[tuple[str, bytes]]
    protocol: DeviceProtocol
    device_info: dict[str, str]
    dropped: int = 0


def read_device_information(sim: SimulatedPeripheral) -> dict[str, str]:
    """The Device Information strings a simulator answers (absent ones left out)."""
    info: dict[str, str] = {}
    for key, uuid in DEVICE_INFORMATION_UUIDS.items():
        try:
            info[key] = decode_dis_string(sim.read(uuid), key)
        except (AttError, DecodeError):
            continue
    return info


def run_firmware(
    sim: SimulatedPeripheral,
    protocol: DeviceProtocol,
    duration_s: float,
    *,
    mtu: int | None = None,
    tick_s: float = HARNESS_TICK_S,
    drop: Callable[[str, float], bool] | None = None,
    address: str | None = None,
) -> Recorded:
    """Connect to ``sim`` the way the transport does and record ``duration_s`` of it.

    Parameters
    ----------
    sim : SimulatedPeripheral
        A fresh simulator (connected at simulated time 0).
    protocol : DeviceProtocol
        The family's protocol; it is configured with the Device Information strings.
    duration_s : float
        Simulated seconds to record.
    mtu : int, optional
        Link MTU; default ``min(sim.preferred_mtu, 247)``, at least the protocol's
        ``min_mtu``.
    tick_s : float
        Simulated seconds per step.
    drop : callable, optional
        ``drop(char_uuid, t_s) -> bool``: lose that data notification (a radio gap).
    address : str, optional
        Address put in the frames (default ``sim.address``).

    Returns
    -------
    Recorded

    Raises
    ------
    ProtocolError
        The device refused a start command (from ``protocol.check_response``).
    """
    link_mtu = mtu if mtu is not None else max(min(sim.preferred_mtu, HARNESS_MTU),
                                               protocol.min_mtu)
    link = HarnessLink(sim, link_mtu)
    sim.on_connect(link)
    info = read_device_information(sim)
    protocol = protocol.configure(info)
    control = {u.lower() for u in protocol.control_uuids()}
    data = {u.lower() for u in protocol.data_uuids()}
    for uuid in (*protocol.control_uuids(), *protocol.data_uuids()):
        sim.set_subscribed(uuid.lower(), True)
    answers: list[tuple[str, bytes]] = []
    consumed = 0
    for write in protocol.start_commands(WALL0_NS):
        sim.write(write.char_uuid.lower(), write.data, with_response=write.response)
        replies = [(u, p) for u, p, _ in link.sent[consumed:] if u in control]
        if write.expect_indication:
            for uuid, payload in replies:
                protocol.check_response(uuid, payload)
        answers.extend(replies)
        consumed = len(link.sent)
    frames: list[Frame] = []
    dropped = 0
    addr = address or sim.address
    # frames already sent by the commands (a device may start at once)
    steps = math.ceil(duration_s / tick_s)
    for step in range(steps + 1):
        if step:
            link.t_ns = round(step * tick_s * 1e9)
            sim.tick(link.t_ns)
        for uuid, payload, t_ns in link.sent[consumed:]:
            if uuid in control and uuid not in data:
                answers.append((uuid, payload))
                protocol.on_control(uuid, payload)
                continue
            if uuid not in data:
                continue
            if drop is not None and drop(uuid, t_ns / 1e9):
                dropped += 1
                continue
            frames.append(Frame(addr, uuid, payload, WALL0_NS + t_ns, t_ns))
        consumed = len(link.sent)
    return Recorded(frames, answers, protocol, info, dropped)


def fresh(protocol: DeviceProtocol) -> DeviceProtocol:
    """A protocol with ``protocol``'s options and no decoding state (as replay builds one).

    Stateful decoders (the Ganglion's firmware-2 delta chain) must start every pass over a
    recording from a fresh protocol.
    """
    return type(protocol).from_metadata(protocol.metadata())


def decode_all(protocol: DeviceProtocol, frames: Sequence[Frame]) -> list[list[SampleBlock]]:
    """Every frame's blocks, in frame order, the way replay decodes (with a fresh protocol).

    Frames of each characteristic go through ``decode_batch`` first; the frames it leaves
    out are decoded one by one with ``decode`` (frames that raise ``DecodeError`` give no
    blocks). For decoders whose per-frame path is slow (the Ganglion's) this is the fast way
    to decode a contract run; the contract test checks separately that both paths agree.
    """
    protocol = fresh(protocol)
    out: list[list[SampleBlock]] = [[] for _ in frames]
    by_uuid: dict[str, list[int]] = {}
    for i, f in enumerate(frames):
        by_uuid.setdefault(f.characteristic_uuid, []).append(i)
    for uuid, where in by_uuid.items():
        host = np.array([frames[i].host_time_ns for i in where], dtype=np.int64)
        batches = protocol.decode_batch(uuid, [frames[i].payload for i in where], host) or []
        covered = np.zeros(len(where), dtype=np.bool_)
        for b in batches:
            covered[b.index] = True
            stops = np.cumsum(b.n_samples)
            for j, (pos, stop) in enumerate(zip(b.index.tolist(), stops.tolist(), strict=True)):
                n = int(b.n_samples[j])
                f = frames[where[pos]]
                out[where[pos]].append(SampleBlock(
                    f.device_address, b.stream, b.channels, b.unit, b.fs_hz,
                    b.values[:, stop - n : stop],
                    device_ticks=None if b.device_ticks[j] < 0 else int(b.device_ticks[j]),
                    sequence=None if b.sequence[j] < 0 else int(b.sequence[j]),
                    flags=int(b.flags[j]),
                ))
        for pos in np.flatnonzero(~covered).tolist():
            try:
                out[where[pos]] = protocol.decode(frames[where[pos]])
            except DecodeError:
                continue
    return out


def decoded_values(
    protocol: DeviceProtocol, frames: Sequence[Frame], stream: str
) -> tuple[npt.NDArray[np.float64], list[int]]:
    """Values of ``stream`` decoded from ``frames`` back to back, and samples per block
    (with a :func:`fresh` copy of ``protocol``)."""
    chunks: list[npt.NDArray[np.float32]] = []
    counts: list[int] = []
    for blocks in decode_all(protocol, frames):
        for block in blocks:
            if block.stream == stream:
                chunks.append(block.values)
                counts.append(block.n_samples)
    if not chunks:
        return np.zeros((0, 0)), counts
    return np.concatenate(chunks, axis=1).astype(np.float64), counts


def build_timeline(
    protocol: DeviceProtocol, frames: Sequence[Frame], stream: str
) -> StreamTimeline | None:
    """Decode ``frames`` (with a :func:`fresh` copy of ``protocol``) and put ``stream`` on its
    family's timeline (``None``: no builder)."""
    builder: TimelineBuilder | None = fresh(protocol).timeline_builder(stream)
    if builder is None:
        return None
    for frame, blocks in zip(frames, decode_all(protocol, frames), strict=True):
        for block in blocks:
            if block.stream == stream:
                builder.add(block, frame.host_time_ns)
    return builder.build()


@dataclass(frozen=True, slots=True)
class TimelineMatch:
    """Where a decoded timeline sits in the truth.

    Attributes
    ----------
    base : int
        Truth index of timeline sample 0.
    max_error : float
        Largest ``|decoded - truth|`` over valid samples (the stream's unit).
    max_time_error_s : float
        Largest ``|timeline time - truth time|`` over valid samples (s).
    n_valid : int
    """

    base: int
    max_error: float
    max_time_error_s: float
    n_valid: int


def _best_base(
    tl: StreamTimeline, truth: Truth, k: npt.NDArray[np.int64], guess: int, radius: int
) -> int:
    """Truth index of timeline sample 0 that best matches samples ``k`` near ``guess``."""
    bases = guess + np.arange(-radius, radius + 1)
    head = k[: min(k.size, 300)]
    n_truth = truth.values.shape[1]
    idx = bases[:, None] + head[None, :]
    inside = (idx >= 0) & (idx < n_truth)
    got = tl.values[:, head].astype(np.float64)
    want = truth.values[:, np.clip(idx, 0, n_truth - 1)]  # (n_ch, n_bases, n_head)
    diff = want - got[:, None, :]
    diff -= np.median(diff, axis=2, keepdims=True)  # robust to a constant offset per run
    err = np.where(inside[None], np.abs(diff), np.inf).max(axis=(0, 2))
    return int(bases[int(np.argmin(err))])


def match_timeline(
    tl: StreamTimeline,
    truth: Truth,
    *,
    wall0_ns: int = WALL0_NS,
    search_s: float = 1.0,
    offset_per_run: bool = False,
    realign_runs: bool = False,
) -> TimelineMatch:
    """Locate ``tl`` in ``truth`` and measure value and per-sample time errors.

    The timeline's first valid sample's host time gives a first guess of its truth index;
    the offset within ``±search_s`` that best matches the first few hundred valid samples is
    taken, and every valid sample is then compared at that offset (vectorised).

    Parameters
    ----------
    offset_per_run : bool
        Compare each run of valid samples after the first up to a constant per channel (its
        median difference; see ``StreamCase.offset_after_loss``).
    realign_runs : bool
        Locate each run of valid samples on its own (see ``StreamCase.host_timed``): a device
        without a clock has its samples after a gap placed by host receive time, within the
        receive jitter; the time error then says how far off that placement is.
    """
    fs = float(truth.fs_hz or tl.fs_hz)
    k = np.flatnonzero(tl.valid)
    if k.size == 0:
        return TimelineMatch(0, math.inf, math.inf, 0)
    t_s = (tl.sample_time_ns(k) - wall0_ns) / 1e9
    radius = max(1, math.ceil(search_s * fs))
    run = np.concatenate(([0], np.cumsum(np.diff(k) != 1)))
    first = np.flatnonzero(np.concatenate(([True], np.diff(run) != 0)))
    n_truth = truth.values.shape[1]
    base0 = _best_base(tl, truth, k, round(float(t_s[0]) * fs) - int(k[0]), radius)
    max_error = max_time = 0.0
    for r, a in enumerate(first.tolist()):
        sel = run == r
        kr = k[sel]
        base = base0
        if realign_runs and r:
            base = _best_base(tl, truth, kr, round(float(t_s[a]) * fs) - int(kr[0]), radius)
        idx = base + kr
        if idx[0] < 0 or idx[-1] >= n_truth:
            return TimelineMatch(base0, math.inf, math.inf, int(k.size))
        diff = tl.values[:, kr].astype(np.float64) - truth.values[:, idx]
        if offset_per_run and r:
            diff -= np.median(diff, axis=1, keepdims=True)
        max_error = max(max_error, float(np.max(np.abs(diff))))
        max_time = max(max_time, float(np.max(np.abs(t_s[sel] - idx / fs))))
    return TimelineMatch(base0, max_error, max_time, int(k.size))


def match_irregular(decoded: npt.NDArray[np.float64], truth: Truth, tolerance: float) -> int:
    """Index of ``truth`` where ``decoded`` (1 channel) appears as a contiguous run, or -1."""
    d = decoded.reshape(-1)
    t = truth.values.reshape(-1)
    if d.size == 0 or d.size > t.size:
        return -1
    starts = np.flatnonzero(np.abs(t[: t.size - d.size + 1] - d[0]) <= tolerance)
    for s in starts.tolist():
        if np.all(np.abs(t[s : s + d.size] - d) <= tolerance):
            return int(s)
    return -1


# --------------------------------------------------------------------------- helpers


def _host_times(n_samples: npt.NDArray[np.int64], fs_hz: float) -> npt.NDArray[np.int64]:
    """Receive times of consecutive packets: last sample's time plus 5 ms."""
    ends = np.cumsum(n_samples) - 1
    return (WALL0_NS + np.rint(ends / fs_hz * 1e9) + 5_000_000).astype(np.int64)


# --------------------------------------------------------------------------- heart rate


def _hr_case() -> FamilyCase:
    def truth(sim: SimulatedPeripheral, stream: str) -> Truth:
        if not isinstance(sim, HeartRateStrap):
            msg = f"heart-rate truth needs a HeartRateStrap, got {type(sim).__name__}"
            raise TypeError(msg)
        if stream == "rr":
            beats = np.asarray(sim.beats_s, dtype=np.float64)
            rr = np.diff(np.concatenate(([0.0], beats)))
            return Truth((np.rint(rr * RR_TICKS_PER_S) / RR_TICKS_PER_S).reshape(1, -1), None)
        # one notification per second from connect (t = 0); the strap rounds to whole bpm
        t = np.arange(1, int(sim.duration_s or 0) + 2, dtype=np.float64)
        return Truth(np.rint(sleeping_hr_bpm(t, sim.seed)).reshape(1, -1), None)

    def encode(stream: str, rng: np.random.Generator, n_packets: int) -> EncodedRun:
        payloads: list[bytes] = []
        values: list[float] = []
        counts: list[int] = []
        for _ in range(n_packets):
            hr = int(rng.integers(30, 400))
            rr_ticks = rng.integers(200, 2000, int(rng.integers(0, 5))).tolist()
            energy = int(rng.integers(0, 65536)) if rng.random() < 0.2 else None
            payloads.append(encode_heart_rate_measurement(
                hr, contact_detected=bool(rng.random() < 0.8), energy_expended_kj=energy,
                rr_ticks=rr_ticks, hr_u16=bool(rng.random() < 0.3),
            ))
            if stream == "hr":
                values.append(float(hr))
                counts.append(1)
            else:
                values.extend(t / RR_TICKS_PER_S for t in rr_ticks)
                counts.append(len(rr_ticks))
        n = np.asarray(counts, dtype=np.int64)
        host = WALL0_NS + np.arange(n_packets, dtype=np.int64) * 1_000_000_000
        return EncodedRun(HEART_RATE_MEASUREMENT_UUID, payloads,
                          np.asarray(values, dtype=np.float64).reshape(1, -1), n, host)

    def malformed() -> list[Malformed]:
        u = HEART_RATE_MEASUREMENT_UUID
        return [
            Malformed(u, b"", "flags", "empty"),
            Malformed(u, b"\x00", "heart_rate", "flags without a rate"),
            Malformed(u, b"\x01\x48", "heart_rate", "u16 rate cut short"),
            Malformed(u, b"\x08\x48\x01", "energy_expended", "energy cut short"),
            Malformed(u, b"\x10\x48\x37\x04\x07", "rr_interval", "odd RR tail"),
            Malformed(u, b"\x00\x48\x00", "trailing", "bytes after a measurement without RR"),
            Malformed("0000ffff-0000-1000-8000-00805f9b34fb", b"\x00\x48",
                      "characteristic_uuid", "a foreign characteristic"),
        ]

    return FamilyCase(
        name="heart-rate",
        family="heart-rate",
        protocol=HeartRateProtocol,
        simulator=known_hr_strap,
        streams=(
            StreamCase("hr", "bpm", ("hr",), None, HEART_RATE_MEASUREMENT_UUID, 0.0, False),
            StreamCase("rr", "s", ("rr",), None, HEART_RATE_MEASUREMENT_UUID,
                       1.0 / RR_TICKS_PER_S + 1e-6, False),
        ),
        truth=truth,
        encode=encode,
        malformed=malformed,
        placement="chest",
    )


# --------------------------------------------------------------------------- reference band


def _band_case() -> FamilyCase:

    def protocol() -> DeviceProtocol:
        return rb.ReferenceBandProtocol(emg_fs_hz=BAND_EMG_FS_HZ, imu_fs_hz=BAND_IMU_FS_HZ)

    def truth(sim: SimulatedPeripheral, stream: str) -> Truth:
        source = getattr(sim, "source", None)
        if not isinstance(source, KnownSignal):
            msg = "reference band truth needs a band measuring a KnownSignal"
            raise TypeError(msg)
        if stream == "emg":
            n = math.floor(source.duration_s * source.emg_fs_hz)
            vals = source.emg_uv(0, n).astype(np.float64)
            return Truth(vals, source.emg_fs_hz)
        n = math.floor(source.duration_s * source.acc_fs_hz)
        return Truth(source.acc_mg(0, n).astype(np.float64), source.acc_fs_hz)

    def encode(stream: str, rng: np.random.Generator, n_packets: int) -> EncodedRun:
        sid = rb.StreamId.EMG if stream == "emg" else rb.StreamId.ACC
        n_ch = 2 if stream == "emg" else 3
        fs = BAND_EMG_FS_HZ if stream == "emg" else BAND_IMU_FS_HZ
        spp = int(rng.integers(1, 40))
        counts = rng.integers(-32768, 32768, (n_ch, n_packets * spp)).astype(np.int16)
        seq0 = int(rng.integers(0, rb.SEQ_MODULO))
        tick0 = int(rng.integers(0, rb.TICK_MODULO))
        ticks = tick0 + (np.arange(n_packets) * spp * rb.TICK_HZ) // fs
        payloads = bs.encode_data_packets(
            sid, seq0 + np.arange(n_packets), ticks, np.zeros(n_packets), counts,
            samples_per_packet=spp,
        )
        scale = rb.EMG_UV_PER_LSB if stream == "emg" else rb.ACC_MG_PER_LSB
        n = np.full(n_packets, spp, dtype=np.int64)
        uuid = rb.EMG_UUID if stream == "emg" else rb.IMU_UUID
        return EncodedRun(uuid, payloads, counts.astype(np.float64) * scale, n,
                          _host_times(n, fs))

    def malformed() -> list[Malformed]:
        good = bs.encode_data_packet(
            rb.StreamId.EMG, 1, 1000, 0, np.array([[1, 2], [3, 4]], dtype=np.int16)
        )
        return [
            Malformed(rb.EMG_UUID, b"", "version", "empty"),
            Malformed(rb.EMG_UUID, bytes([0x21]) + good[1:], "version", "protocol version 2"),
            Malformed(rb.EMG_UUID, bytes([0x1F]) + good[1:], "stream", "unknown stream id"),
            Malformed(rb.IMU_UUID, good, "stream", "EMG packet on the IMU characteristic"),
            Malformed(rb.EMG_UUID, good[:7], "header", "header cut short"),
            Malformed(rb.EMG_UUID, good[:-1], None, "samples cut short"),
            Malformed(rb.EMG_UUID, good + b"\x00", None, "a byte too many"),
        ]

    return FamilyCase(
        name="crampsense-band",
        family="crampsense-band",
        protocol=protocol,
        simulator=known_band,
        streams=(
            StreamCase("emg", "uV", rb.EMG_CHANNELS, float(BAND_EMG_FS_HZ), rb.EMG_UUID,
                       rb.EMG_UV_PER_LSB),
            StreamCase("acc", "mg", rb.ACC_CHANNELS, float(BAND_IMU_FS_HZ), rb.IMU_UUID,
                       rb.ACC_MG_PER_LSB),
        ),
        truth=truth,
        encode=encode,
        malformed=malformed,
        placement="left-calf",
        options={"emg_fs_hz": BAND_EMG_FS_HZ, "imu_fs_hz": BAND_IMU_FS_HZ},
    )


# --------------------------------------------------------------------------- Polar PMD


#: Wire LSB of Polar ACC (1 mG) and ECG (1 µV) samples; the simulator rounds to it, so the
#: round trip is within half of it (plus float32 rounding of the decoded value).
_POLAR_TOLERANCE: Final = 0.5 + 1e-3
#: PMD device time of the first contract sample (ns since 2000-01-01): January 2025.
_POLAR_T0_NS: Final = (1_736_546_400 - 946_684_800) * 10**9


def _polar_case(model: str) -> FamilyCase:

    spec = pd.MODELS[model]
    acc_fs = float(spec.acc_default_hz)
    with_ecg = spec.has_ecg

    def protocol() -> DeviceProtocol:
        return pd.PolarPmdProtocol(model)

    def simulator(address: str, duration_s: float) -> SimulatedPeripheral:
        return known_polar(address, duration_s, model=model)

    def truth(sim: SimulatedPeripheral, stream: str) -> Truth:
        if not isinstance(sim, PolarSensor) or not isinstance(sim.source, KnownSignal):
            msg = "Polar truth needs a PolarSensor measuring a KnownSignal"
            raise TypeError(msg)
        n = math.floor(sim.source.duration_s * acc_fs) + 1
        if stream == "acc":
            return Truth(sim.source.acc_mg(0, n).astype(np.float64), acc_fs)
        fs = float(spec.ecg_rates_hz[0])
        t = np.arange(math.floor(sim.source.duration_s * fs) + 1) / fs
        return Truth(synthetic_ecg_uv(t, sim.ecg_seed).reshape(1, -1), fs)

    def encode(stream: str, rng: np.random.Generator, n_packets: int) -> EncodedRun:
        if stream == "acc":
            fs, n_ch, lim = acc_fs, 3, 8000
        else:
            fs, n_ch, lim = float(spec.ecg_rates_hz[0]), 1, 2**23 - 1
        # at most 0.3 s per frame: the contract drops 3 frames in a row, and a silence
        # longer than timeline.SEQLESS_GAP_S is a segment break, not a loss, without
        # sequence numbers
        spf = int(rng.integers(2, max(3, round(0.3 * fs))))
        total = n_packets * spf
        walk = np.cumsum(rng.integers(-300, 301, (n_ch, total)), axis=1)
        counts = np.clip(walk, -lim, lim).astype(np.int64)
        period_ns = 1e9 / fs
        ends = np.arange(1, n_packets + 1) * spf - 1
        ts = _POLAR_T0_NS + np.rint(ends * period_ns).astype(np.int64)
        payloads: list[bytes] = []
        for i in range(n_packets):
            chunk = counts[:, i * spf : (i + 1) * spf]
            if stream == "ecg":
                payloads.append(ps.encode_ecg_frame(int(ts[i]), chunk[0]))
            elif spec.acc_frame_type & 0x80:
                payloads.append(ps.encode_delta_frame(pd.MeasurementType.ACC, int(ts[i]), 1,
                                                      chunk))
            else:
                payloads.append(ps.encode_acc_frame(int(ts[i]), chunk))
        n = np.full(n_packets, spf, dtype=np.int64)
        return EncodedRun(pd.DATA_UUID, payloads, counts.astype(np.float64), n,
                          _host_times(n, fs))

    def malformed() -> list[Malformed]:
        acc = ps.encode_acc_frame(_POLAR_T0_NS, [[1, 2], [3, 4], [5, 6]])
        delta = ps.encode_delta_frame(pd.MeasurementType.ACC, _POLAR_T0_NS, 1,
                                      [[1, 2, 3], [3, 4, 5], [5, 6, 9]])
        u = pd.DATA_UUID
        return [
            Malformed(u, b"", "header", "empty"),
            Malformed(u, acc[:9], "header", "header cut short"),
            Malformed(u, bytes([0x05]) + acc[1:], "measurement_type", "GYRO nobody started"),
            Malformed(u, acc[:9] + bytes([0x05]) + acc[10:], "frame_type", "raw frame type 5"),
            Malformed(u, acc[:-1], "samples", "raw samples cut short"),
            Malformed(u, delta[:12], "reference_sample", "reference sample cut short"),
            Malformed(u, delta[:16] + bytes([4, 0]), "sample_count", "a block of 0 samples"),
            Malformed(u, delta[:-1], "deltas", "deltas cut short"),
            Malformed("0000ffff-0000-1000-8000-00805f9b34fb", acc, "characteristic_uuid",
                      "a foreign characteristic"),
        ]

    streams = [StreamCase("acc", "mg", pd.ACC_CHANNELS, acc_fs, pd.DATA_UUID, _POLAR_TOLERANCE)]
    if with_ecg:
        streams.append(StreamCase("ecg", "uV", pd.ECG_CHANNELS, float(spec.ecg_rates_hz[0]),
                                  pd.DATA_UUID, _POLAR_TOLERANCE))
    return FamilyCase(
        name=f"polar-pmd-{model}",
        family="polar-pmd",
        protocol=protocol,
        simulator=simulator,
        streams=tuple(streams),
        truth=truth,
        encode=encode,
        malformed=malformed,
        placement="chest" if model == "h10" else "right-calf",
        options={"model": model},
    )


# --------------------------------------------------------------------------- OpenBCI Ganglion


#: Accelerometer bytes of the Ganglion carry the LIS2DH's high byte: one count is 16 mg at the
#: default scale and the simulator rounds to it (8 mg); the three axes of a reading are taken
#: 10-20 ms apart, which moves the contract's slow signal (< 190 mg/s) by under 4 mg, and the
#: reading's time is its first packet's: one count (16 mg) bounds both.
_GANGLION_ACC_TOLERANCE: Final = 16.0


def _ganglion_case(firmware: int) -> FamilyCase:

    fs = float(gd.FS_HZ)
    lsb = gd.UV_PER_COUNT
    # firmware 3 keeps the top 18 of 24 bits (64 counts); firmware 2 sends exact deltas but
    # with the sign in bit 0, so the rebuilt signal walks by up to a count per sample (open
    # loop); over a contract run that stays far below 0.5 µV for the known signal
    emg_tol = (64 if firmware == 3 else 1) * lsb * 1.001 + 1e-4
    emg_truth_tol = 64 * lsb * 1.001 + 1e-4 if firmware == 3 else 0.5

    def protocol() -> DeviceProtocol:
        return gd.GanglionProtocol(firmware)

    def simulator(address: str, duration_s: float) -> SimulatedPeripheral:
        return known_ganglion(address, duration_s, firmware=firmware)

    def truth(sim: SimulatedPeripheral, stream: str) -> Truth:
        if not isinstance(sim, Ganglion) or not isinstance(sim.left, KnownSignal):
            msg = "Ganglion truth needs a Ganglion measuring KnownSignals"
            raise TypeError(msg)
        n = math.floor((sim.left.duration_s + 1.0) * fs)  # placement by host time may run late
        if stream == "emg":
            right = sim.right
            rows = [
                sim.left.emg_uv(0, n)[:2].astype(np.float64),
                right.emg_uv(0, n)[:2].astype(np.float64) if right is not None
                else np.zeros((2, n)),
            ]
            return Truth(np.concatenate(rows), fs)
        acc_fs = float(gd.ACC_FS_HZ)
        t = np.arange(math.floor((sim.left.duration_s + 1.0) * acc_fs)) / acc_fs
        return Truth(sim.left.acc_at(t), acc_fs)

    def encode(stream: str, rng: np.random.Generator, n_packets: int) -> EncodedRun:
        walk = np.cumsum(rng.integers(-20_000, 20_001, (gd.N_CHANNELS, 2 * n_packets)), axis=1)
        counts = np.clip(walk, -(2**23) + 1, 2**23 - 1).astype(np.int64)
        packets = np.arange(n_packets, dtype=np.int64)
        acc_counts = rng.integers(-127, 128, (3, n_packets // 10 + 1))
        if firmware == 3:
            ids = packets % gd.ID_CYCLE
            digit = ids % 10
            reading = packets // 10
            aux = np.select(
                [digit == 0, digit == 1, digit == 2],
                [-acc_counts[2, reading], acc_counts[1, reading], acc_counts[0, reading]], 0,
            )
            fields, rebuilt = gs.fw3_absolute_fields(counts, 18)
            payloads = gs.encode_sample_packets(ids, fields, firmware=3, aux=aux)
            n = np.full(n_packets, 2, dtype=np.int64)
            emg = rebuilt
        else:
            ids = (packets[1:] - 1) % gd.ID_CYCLE + 1
            digit = ids % 10
            reading = (packets[1:] - 1) // 10
            aux = np.select(
                [digit == 1, digit == 2, digit == 3],
                [acc_counts[0, reading], acc_counts[1, reading], acc_counts[2, reading]], 0,
            )
            first = counts[:, :1]
            fields, rebuilt = gs.fw2_delta_fields(counts[:, 1 : 2 * n_packets - 1], first[:, 0])
            payloads = [gs.encode_raw_packet(first[:, 0]),
                        *gs.encode_sample_packets(ids, fields, firmware=2, aux=aux)]
            n = np.array([1] + [2] * (n_packets - 1), dtype=np.int64)
            emg = np.concatenate([first, rebuilt], axis=1)
        host = _host_times(n, fs)
        if stream == "emg":
            return EncodedRun(gd.RECEIVE_UUID, payloads, emg.astype(np.float64) * lsb, n, host)
        # a reading completes with the packet carrying its last axis
        last_digit = 2 if firmware == 3 else 3
        done = np.flatnonzero((ids % 10) == last_digit)
        readings = (packets[done] // 10) if firmware == 3 else ((packets[1:][done] - 1) // 10)
        scale = gd.DEFAULT_ACC_G_PER_COUNT * 1000.0
        per_packet = np.zeros(n_packets, dtype=np.int64)
        per_packet[done + (0 if firmware == 3 else 1)] = 1
        values = acc_counts[:, readings].astype(np.float64) * scale
        return EncodedRun(gd.RECEIVE_UUID, payloads, values, per_packet, host)

    def malformed() -> list[Malformed]:
        u = gd.RECEIVE_UUID
        good = gs.encode_sample_packets([5], np.zeros((1, 8), np.int64), firmware=firmware)[0]
        bad_id = 220 if firmware == 2 else 200
        return [
            Malformed(u, b"", "packet_id", "empty"),
            Malformed(u, good[:-1], None, "19 bytes"),
            Malformed(u, good + b"\x00", None, "21 bytes"),
            Malformed(u, bytes([bad_id]) + good[1:], "packet_id", "unknown packet id"),
            Malformed("0000ffff-0000-1000-8000-00805f9b34fb", good, "characteristic_uuid",
                      "a foreign characteristic"),
        ]

    return FamilyCase(
        name=f"openbci-ganglion-fw{firmware}",
        family="openbci-ganglion",
        protocol=protocol,
        simulator=simulator,
        streams=(
            StreamCase("emg", "uV", gd.EMG_CHANNELS, fs, gd.RECEIVE_UUID, emg_tol,
                       truth_tolerance=emg_truth_tol, offset_after_loss=firmware == 2,
                       host_timed=True),
            StreamCase("acc", "mg", gd.ACC_CHANNELS, float(gd.ACC_FS_HZ), gd.RECEIVE_UUID,
                       1e-3, truth_tolerance=_GANGLION_ACC_TOLERANCE, host_timed=True),
        ),
        truth=truth,
        encode=encode,
        malformed=malformed,
        placement="left-calf",
        options={"firmware": firmware},
    )


# --------------------------------------------------------------------------- Movesense


#: Movesense sends float32 m/s²; converted to mg the round trip is exact up to float32
#: rounding (~1e-4 mg at 1 g).
_MOVESENSE_TOLERANCE: Final = 0.01


def _movesense_case() -> FamilyCase:

    resource = mv.parse_resource(MOVESENSE_RESOURCE)
    fs = float(resource.rate_hz)

    def protocol() -> DeviceProtocol:
        return mv.MovesenseProtocol(resource.path)

    def truth(sim: SimulatedPeripheral, stream: str) -> Truth:
        source = getattr(sim, "source", None)
        if not isinstance(source, KnownSignal) or stream != "acc":
            msg = "Movesense truth needs a Movesense measuring a KnownSignal (acc only)"
            raise TypeError(msg)
        n = math.floor(source.duration_s * fs) + 1
        return Truth(source.acc_mg(0, n).astype(np.float64), fs)

    def encode(stream: str, rng: np.random.Generator, n_packets: int) -> EncodedRun:
        del stream
        per = int(rng.integers(1, 9))
        mps2 = rng.normal(0.0, 9.8, (n_packets * per, 3)).astype(np.float32)
        t0_ms = int(rng.integers(0, mv.TICK_MODULO))
        ticks = t0_ms + np.rint(np.arange(n_packets) * per * 1000.0 / fs).astype(np.int64)
        payloads = [
            ms.encode_data_message(mv.ACC_REFERENCE, int(ticks[i]),
                                   mps2[i * per : (i + 1) * per], resource)
            for i in range(n_packets)
        ]
        values = mv.mps2_to_mg(mps2.T).astype(np.float64)
        n = np.full(n_packets, per, dtype=np.int64)
        return EncodedRun(mv.NOTIFY_UUID, payloads, values, n, _host_times(n, fs))

    def malformed() -> list[Malformed]:
        u = mv.NOTIFY_UUID
        good = ms.encode_data_message(mv.ACC_REFERENCE, 1000, np.ones((2, 3)), resource)
        return [
            Malformed(u, b"", "packet_type", "empty"),
            Malformed(u, b"\x02", "packet_type", "no reference"),
            Malformed(u, bytes([9]) + good[1:], "packet_type", "unknown notification type"),
            Malformed(u, good[:1] + bytes([7]) + good[2:], "reference", "another reference"),
            Malformed(u, good[:5], "timestamp", "timestamp cut short"),
            Malformed(u, bytes([3, mv.ACC_REFERENCE]) + good[6:], None,
                      "a continuation without a first part"),
            Malformed("0000ffff-0000-1000-8000-00805f9b34fb", good, "characteristic_uuid",
                      "a foreign characteristic"),
        ]

    return FamilyCase(
        name="movesense",
        family="movesense",
        protocol=protocol,
        simulator=known_movesense,
        streams=(
            StreamCase("acc", "mg", mv.ACC_CHANNELS, fs, mv.NOTIFY_UUID, _MOVESENSE_TOLERANCE),
        ),
        truth=truth,
        encode=encode,
        malformed=malformed,
        placement="right-shin",
        options={"resource": resource.path},
    )


# --------------------------------------------------------------------------- registry

#: Every contract case by case name, in the registry's order.
CASES: Final[dict[str, FamilyCase]] = {
    c.name: c
    for c in (
        _band_case(),
        _polar_case("h10"),
        _polar_case("verity-sense"),
        _ganglion_case(2),
        _ganglion_case(3),
        _movesense_case(),
        _hr_case(),
    )
}


def case(name: str) -> FamilyCase:
    """The contract case called ``name`` (or the first case of family ``name``).

    Raises
    ------
    KeyError
        No such case (the family's modules are missing).
    """
    if name in CASES:
        return CASES[name]
    for c in CASES.values():
        if c.family == name:
            return c
    msg = f"no contract case for {name!r}; known: {', '.join(CASES)}"
    raise KeyError(msg)

