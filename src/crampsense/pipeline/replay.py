"""From a recorded session file to a :class:`~crampsense.models.Night`: replay, decode, detect.

Replay goes through exactly the decode path live recording uses: every stored notification is
handed, byte for byte, to its device family's ``decode`` (or, much faster and with the same
result bit for bit, read in column batches and given to the family's vectorised
``decode_batch``, malformed packets still going through ``decode``); the decoded blocks are
put back on a per-stream timeline (sequence numbers and device clocks unwrapped, losses
counted, duplicates dropped); the legs' EMG and accelerometer timelines are aligned on the
night's start and given to the detector.

Memory: the batch path reads one device at a time in chunks of :data:`DECODE_CHUNK_FRAMES`
frames and builds that device's timelines before reading the next, so a replay holds the
timelines built so far plus one device's packets, never every device's packets at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import logging
import operator
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.clock import datetime_from_ns
from crampsense.detection import CrampResults, DetectionParams, LegSignals, detect_cramps
from crampsense.devices.base import DeviceProtocol, PacketBatch
from crampsense.devices.registry import protocol_for
from crampsense.devices.timeline import StreamTimeline, TimelineBuilder
from crampsense.errors import CorruptFileError, DecodeError, ForeignFileError, StorageError
from crampsense.models import (
    CoverageGap,
    DeviceInfo,
    Leg,
    MarkKind,
    Night,
    SampleBlock,
    SleepSummary,
    placement_leg,
)
from crampsense.pipeline.legs import LegSource, choose_leg_sources
from crampsense.storage.salvage import SalvageReport
from crampsense.storage.session_log import FrameBatch, Mark, SessionReader

__all__ = [
    "SessionAnalysis",
    "analyze_session",
    "decode_session",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SessionAnalysis:
    """Everything a replay produced."""

    night: Night
    results: CrampResults
    timelines: dict[tuple[str, str], StreamTimeline]
    frames: int
    undecodable_frames: int
    devices: tuple[DeviceInfo, ...]
    decode_errors: list[str] = field(default_factory=list)
    #: False when the recording has no final "stopped" mark (killed, power loss): up to one
    #: commit interval (at most 1 s) of data before the end may be missing.
    clean_end: bool = True
    #: The session's key (:attr:`~crampsense.storage.session_log.SessionReader.session_key`):
    #: what the night's tables are filed under.
    session_key: str = ""
    #: What was recovered page by page when the file was damaged (``None``: read intact).
    salvage: SalvageReport | None = None


def _protocols(reader: SessionReader) -> dict[str, DeviceProtocol]:
    """Each recorded device's protocol, configured from its stored metadata, by address."""
    return {
        d.address: protocol_for(d.family).from_metadata(reader.device_metadata(d.address))
        for d in reader.devices
    }


#: The progress callback is called each time this many more frames have been read (and once
#: at the end): often enough for a smooth bar, rarely enough to cost nothing.
PROGRESS_EVERY_FRAMES: Final = 50_000
#: Decode errors quoted in the report; the rest are only counted.
MAX_REPORTED_ERRORS: Final = 5
#: Frames of one device read per query and given to one ``decode_batch`` call. A chunk's
#: payloads are at most ~16 MB of bytes objects (notifications are <= 244 bytes), so replay
#: memory does not grow with the length of the night, and the vectorised decoders' working
#: arrays stay small enough for the CPU caches: the Ganglion decodes a night 3.5x faster in
#: 65,536-notification chunks than in one call (benchmarks/bench_ganglion_decode.py), and
#: per-query overhead is already negligible at this size.
DECODE_CHUNK_FRAMES: Final = 65_536
#: Frames at the start of a session counted to choose the order in which devices are
#: replayed: the device with the most frames there goes first, so that its timelines (whose
#: reconstruction needs the most working memory) are built while nothing else is held.
ORDER_SAMPLE_FRAMES: Final = 65_536

_Key = tuple[str, str]


def decode_session(
    reader: SessionReader, *, progress: Progress | None = None, batch: bool = True
) -> tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]:
    """Decode every stored frame into per-(device, stream) timelines.

    Parameters
    ----------
    reader : SessionReader
        An open session.
    progress : callable, optional
        ``progress(frames_read, frames_total)``, every :data:`PROGRESS_EVERY_FRAMES` frames
        and at the end.
    batch : bool
        Decode column batches of frames with the families' vectorised
        :meth:`~crampsense.devices.base.DeviceProtocol.decode_batch` (the default, several
        times faster), or every frame with ``decode`` (the reference path). Both give the same
        timelines, counts and errors, bit for bit.

    Returns
    -------
    timelines : dict
        ``(device_address, stream) -> StreamTimeline``.
    n_frames, n_undecodable : int
        Frames read, and frames whose bytes did not decode (counted, never fatal).
    errors : list of str
        The first few decode errors, for the report.
    """
    if not batch:
        return _decode_per_frame(reader, progress=progress)
    total = reader.frame_count()
    if not reader.salvaging and reader.damage is None:
        try:
            decoded = _decode_by_device(reader, total, progress)
        except CorruptFileError:
            # damage found while reading: the interleaved pass raises exactly the error (and
            # the count of intact frames) that reading the frames in recorded order gives
            logger.debug("%s: damage met reading device by device", reader.path)
            decoded = None
        if decoded is not None:
            return decoded
    return _decode_interleaved(reader, total, progress)


class _ProgressCounter:
    """Calls ``progress(done, total)`` at every multiple of :data:`PROGRESS_EVERY_FRAMES`."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.n = 0

    def advance(self, frames: int) -> None:
        before, self.n = self.n, self.n + frames
        if self.progress is not None:
            for done in range(
                (before // PROGRESS_EVERY_FRAMES + 1) * PROGRESS_EVERY_FRAMES,
                self.n + 1,
                PROGRESS_EVERY_FRAMES,
            ):
                self.progress(done, self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.n, self.total)


def _decode_by_device(
    reader: SessionReader, total: int, progress: Progress | None
) -> tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]] | None:
    """Replay one device at a time, in chunks of :data:`DECODE_CHUNK_FRAMES` of its frames,
    building its timelines (and letting go of its packets) before the next device is read.

    Memory then holds the timelines built so far plus one device's packets, instead of every
    device's packets at once. The results are those of the interleaved pass: each device's
    frames reach its (stateful) decoders and builders in recorded order, the timelines come
    out in the order their first frames were recorded, and the reported errors are the first
    ones in recorded order, numbered by position. ``None`` when the frames are not all
    accounted for (rows of unknown devices: damage, which the interleaved pass reports).
    """
    decoder = _BatchDecoder(_protocols(reader), keyed_by_id=True)
    counter = _ProgressCounter(progress, total)
    sample = reader.frame_counts(limit=ORDER_SAMPLE_FRAMES)
    addresses = sorted(reader.frame_addresses, key=lambda a: -sample.get(a, 0))
    with _cyclic_gc_paused():
        for address in addresses:
            for frames in reader.frame_batches(
                device_address=address, batch_size=DECODE_CHUNK_FRAMES
            ):
                decoder.add(frames)
                counter.advance(len(frames))
            decoder.build_device(address)
    if counter.n != total:
        logger.debug("%s: %d of %d frames belong to known devices; reading in order",
                     reader.path, counter.n, total)
        return None
    counter.finish()
    errors = [
        f"frame {reader.frame_position(frame_id)} from {address}: {text}"
        for frame_id, address, text in decoder.errors
    ]
    return decoder.timelines(), counter.n, decoder.bad, errors


def _decode_interleaved(
    reader: SessionReader, total: int, progress: Progress | None
) -> tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]:
    """Replay every device's frames together, in recorded order (damaged or salvaged files,
    whose readable frames are a prefix in that order)."""
    decoder = _BatchDecoder(_protocols(reader))
    counter = _ProgressCounter(progress, total)
    with _cyclic_gc_paused():
        for frames in reader.frame_batches(batch_size=DECODE_CHUNK_FRAMES):
            decoder.add(frames)
            counter.advance(len(frames))
        counter.finish()
        timelines = decoder.timelines()
    errors = [f"frame {n} from {address}: {text}" for n, address, text in decoder.errors]
    return timelines, counter.n, decoder.bad, errors


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (reference counting still frees everything).

    Reading a night allocates millions of short-lived row tuples, which makes the collector
    walk the whole heap (~50 ms with numpy, scipy and polars loaded) a dozen times: about a
    fifth of the replay. Replay itself creates no reference cycles; any that appear meanwhile
    (in a progress callback) are collected once the collector is back on, which it is (if it
    was on) however the block ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decode_per_frame(
    reader: SessionReader, *, progress: Progress | None = None
) -> tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]:
    """The reference path: one ``decode`` and one ``TimelineBuilder.add`` per frame."""
    protocols = _protocols(reader)
    builders: dict[tuple[str, str], TimelineBuilder] = {}
    total = reader.frame_count()
    n = bad = 0
    errors: list[str] = []
    for frame in reader.frames():
        n += 1
        protocol = protocols.get(frame.device_address)
        if protocol is None:
            bad += 1
            continue
        try:
            blocks = protocol.decode(frame)
        except DecodeError as exc:
            bad += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(f"frame {n} from {frame.device_address}: {exc}")
            continue
        for block in blocks:
            key = (frame.device_address, block.stream)
            builder = builders.get(key)
            if builder is None:
                builder = protocol.timeline_builder(block.stream)
                if builder is None:
                    continue
                builders[key] = builder
            builder.add(block, frame.host_time_ns)
        if progress is not None and n % PROGRESS_EVERY_FRAMES == 0:
            progress(n, total)
    if progress is not None:
        progress(n, total)
    return {k: b.build() for k, b in builders.items()}, n, bad, errors


@dataclass(frozen=True, slots=True, eq=False)
class _Piece:
    """Packets of one (device, stream) from one batch, at frame positions ``pos`` (sorted)."""

    pos: npt.NDArray[np.int64]
    channels: tuple[str, ...]
    unit: str
    values: npt.NDArray[np.floating]
    n: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    ticks: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int64]
    host: npt.NDArray[np.int64]

    @classmethod
    def from_batch(
        cls, b: PacketBatch, pos: npt.NDArray[np.int64], host: npt.NDArray[np.int64]
    ) -> _Piece:
        return cls(pos, b.channels, b.unit, b.values, b.n_samples, b.sequence, b.device_ticks,
                   b.flags, host)

    @classmethod
    def from_block(cls, b: SampleBlock, pos: int, host_ns: int) -> _Piece:
        def one(v: int | None) -> npt.NDArray[np.int64]:
            return np.array([-1 if v is None else v], dtype=np.int64)

        return cls(one(pos), tuple(b.channels), b.unit, b.values, one(b.values.shape[1]),
                   one(b.sequence), one(b.device_ticks), one(b.flags), one(host_ns))

    def feed(self, builder: TimelineBuilder, stream: str) -> None:
        builder.add_many(
            stream=stream, channels=self.channels, unit=self.unit, values=self.values,
            n_samples=self.n, sequence=self.seq, device_ticks=self.ticks, flags=self.flags,
            host_time_ns=self.host,
        )


def _merge(pieces: list[_Piece]) -> list[_Piece]:
    """Pieces in frame order (stable: blocks of one frame keep their order), merged into one
    when their channels agree; otherwise one piece per packet, in order, so the builder sees
    (and rejects) exactly the sequence of blocks the per-frame path gives it."""
    if len(pieces) == 1:
        return pieces
    pos = np.concatenate([p.pos for p in pieces])
    n = np.concatenate([p.n for p in pieces])
    order = np.argsort(pos, kind="stable")
    which = np.repeat(np.arange(len(pieces)), [p.pos.size for p in pieces])[order]
    layouts = {(p.channels, p.values.ndim, p.values.shape[0]) for p in pieces}
    if len(layouts) > 1 or pieces[0].values.ndim != 2:  # pragma: no cover - broken families
        within = np.concatenate([np.arange(p.pos.size) for p in pieces])[order]
        out: list[_Piece] = []
        for w, j in zip(which.tolist(), within.tolist(), strict=True):
            p = pieces[w]
            a = int(np.sum(p.n[:j]))
            out.append(_Piece(p.pos[j : j + 1], p.channels, p.unit,
                              p.values[:, a : a + int(p.n[j])], p.n[j : j + 1],
                              p.seq[j : j + 1], p.ticks[j : j + 1], p.flags[j : j + 1],
                              p.host[j : j + 1]))
        return out
    values = np.concatenate([p.values for p in pieces], axis=1)
    seq, ticks, flags, host = (
        np.concatenate([getattr(p, name) for p in pieces])
        for name in ("seq", "ticks", "flags", "host")
    )
    if bool(np.any(order != np.arange(order.size))):
        starts = np.cumsum(n) - n
        n_sorted = n[order]
        new_starts = np.cumsum(n_sorted) - n_sorted
        columns = np.repeat(starts[order] - new_starts, n_sorted) + np.arange(int(n.sum()))
        values = values[:, columns]
        pos, n, seq, ticks, flags, host = (
            a[order] for a in (pos, n, seq, ticks, flags, host)
        )
    first = pieces[int(which[0])]
    return [_Piece(pos, first.channels, first.unit, values, n, seq, ticks, flags, host)]


class _BatchDecoder:
    """Decode :class:`FrameBatch`\\ es per (device, characteristic) and feed the builders in
    arrival order; counts and errors exactly as the per-frame path.

    Frames are told apart by a key that grows in recorded order: their 1-based position
    (batches of all frames in order) or, with ``keyed_by_id``, their row id (batches of one
    device at a time, whose positions are only known to the reader). :attr:`errors` holds the
    first :data:`MAX_REPORTED_ERRORS` decode errors by key, as ``(key, address, message)``.
    """

    def __init__(
        self, protocols: dict[str, DeviceProtocol], *, keyed_by_id: bool = False
    ) -> None:
        self.protocols = protocols
        self.keyed_by_id = keyed_by_id
        self.builders: dict[_Key, TimelineBuilder] = {}
        #: (key of the first frame, creation order) per stream: the order of the result
        self.first: dict[_Key, tuple[int, int]] = {}
        self.built: dict[_Key, StreamTimeline] = {}
        self.no_grid: set[_Key] = set()  # streams whose family gives no timeline builder
        self.bad = 0
        self.errors: list[tuple[int, str, str]] = []

    def _frame_keys(self, frames: FrameBatch) -> npt.NDArray[np.int64]:
        if self.keyed_by_id:
            if frames.frame_ids is None:  # pragma: no cover - the reader always sets them
                msg = "frame batches without frame ids cannot be replayed device by device"
                raise StorageError(msg)
            return frames.frame_ids
        return np.arange(frames.start + 1, frames.start + len(frames) + 1, dtype=np.int64)

    def add(self, frames: FrameBatch) -> None:
        pieces: dict[_Key, list[_Piece]] = {}
        errors: list[tuple[int, str, str]] = []
        frame_keys = self._frame_keys(frames)
        pair = (frames.device_ids << 32) | frames.char_ids
        keys = np.unique(pair).tolist()
        for key in keys:
            idx = (
                np.arange(pair.size, dtype=np.int64)
                if len(keys) == 1
                else np.flatnonzero(pair == key)
            )
            address = frames.addresses[key >> 32]
            protocol = self.protocols.get(address)
            if protocol is None:
                self.bad += int(idx.size)
                continue
            self._decode_group(
                frames, idx, address=address, char_uuid=frames.characteristics[key & 0xFFFFFFFF],
                protocol=protocol, pieces=pieces, errors=errors, frame_keys=frame_keys,
            )
        if errors:
            self.errors = sorted([*self.errors, *errors])[: max(MAX_REPORTED_ERRORS, 0)]
        first_pos = {k: int(min(p.pos[0] for p in ps)) for k, ps in pieces.items()}
        for k in sorted(pieces, key=first_pos.__getitem__):
            builder = self.builders.get(k)
            if builder is None:
                if k in self.built:  # pragma: no cover - a device's frames come in one run
                    msg = f"frames of {k[0]} arrived after its timelines were built"
                    raise StorageError(msg)
                made = self.protocols[k[0]].timeline_builder(k[1])
                if made is None:
                    self.no_grid.add(k)
                    continue
                builder = self.builders[k] = made
                self.first[k] = (int(frame_keys[first_pos[k]]), len(self.first))
            for piece in _merge(pieces[k]):
                piece.feed(builder, k[1])

    def _decode_group(
        self,
        frames: FrameBatch,
        idx: npt.NDArray[np.int64],
        *,
        address: str,
        char_uuid: str,
        protocol: DeviceProtocol,
        pieces: dict[_Key, list[_Piece]],
        errors: list[tuple[int, str, str]],
        frame_keys: npt.NDArray[np.int64],
    ) -> None:
        """Decode the frames at ``idx`` (one device and characteristic) into ``pieces``."""
        positions = idx.tolist()
        all_payloads = frames.payloads
        payloads: Sequence[bytes]
        if len(positions) == len(all_payloads):
            payloads = all_payloads
        elif len(positions) == 1:
            payloads = (all_payloads[positions[0]],)
        else:
            payloads = operator.itemgetter(*positions)(all_payloads)
        host = frames.host_time_ns[idx]
        try:
            batches = protocol.decode_batch(char_uuid, payloads, host)
        except DecodeError:  # the contract says never; decode then says what is wrong
            logger.debug("%s decode_batch raised; decoding frame by frame", protocol.family)
            batches = None
        rest = positions
        if batches:
            covered = np.zeros(idx.size, dtype=np.bool_)
            for b in batches:
                covered[b.index] = True
                key = (address, b.stream)
                if key not in self.no_grid:
                    pieces.setdefault(key, []).append(
                        _Piece.from_batch(b, idx[b.index], host[b.index])
                    )
            rest = idx[~covered].tolist()
        for i in rest:
            frame = frames.frame(i)
            try:
                blocks = protocol.decode(frame)
            except DecodeError as exc:
                self.bad += 1
                errors.append((int(frame_keys[i]), address, str(exc)))
                continue
            for block in blocks:
                key = (address, block.stream)
                if key not in self.no_grid:
                    pieces.setdefault(key, []).append(
                        _Piece.from_block(block, i, frame.host_time_ns)
                    )

    def build_device(self, address: str) -> None:
        """Build the timelines of ``address``, letting go of each builder's packets once it is
        built (the packets of a night's EMG stream are as large as its timeline)."""
        for key in [k for k in self.builders if k[0] == address]:
            self.built[key] = self.builders.pop(key).build()

    def timelines(self) -> dict[_Key, StreamTimeline]:
        """Every timeline (building those not built yet, in creation order), in the order
        their streams' first frames were recorded (ties: the order they were decoded in)."""
        while self.builders:
            key = next(iter(self.builders))
            self.built[key] = self.builders.pop(key).build()
        return {k: self.built[k] for k in sorted(self.built, key=self.first.__getitem__)}


def _grid_offset(tl: StreamTimeline, start_ns: int) -> int:
    """Index on the night's grid (sample 0 = night start) of the timeline's first sample."""
    return round((tl.t0_host_ns - start_ns) * tl.fs_hz / 1e9)


def _on_grid(
    tl: StreamTimeline, start_ns: int, n_total: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Place a timeline on the night's grid (sample 0 = night start); outside = invalid."""
    offset = _grid_offset(tl, start_ns)
    if offset == 0 and tl.values.shape[1] == n_total:
        return tl.values, tl.valid  # already on the grid: no 100-MB copy
    n_ch = tl.values.shape[0]
    values = np.zeros((n_ch, n_total), dtype=np.float32)
    valid = np.zeros(n_total, dtype=np.bool_)
    src_a = max(0, -offset)
    dst_a = max(0, offset)
    length = min(tl.values.shape[1] - src_a, n_total - dst_a)
    if length > 0:
        values[:, dst_a : dst_a + length] = tl.values[:, src_a : src_a + length]
        valid[dst_a : dst_a + length] = tl.valid[src_a : src_a + length]
    return values, valid


def _release_freed_heap() -> None:
    """Hand memory that is free but still mapped in the C heap back to the OS (glibc only).

    Building the timelines frees hundreds of MB of working arrays of a few MB to tens of MB
    each; glibc keeps much of that mapped (its dynamic mmap threshold grows past those
    sizes), and the grid copies that follow are separate mappings that cannot reuse it.
    ``malloc_trim(0)`` returns those pages (~100-200 MB on an 8-h night of every family)
    before the grids are made; it changes no data. Elsewhere it is a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)


def _placed(
    timelines: dict[_Key, StreamTimeline],
    key: _Key,
    start_ns: int,
    duration_s: float,
    placed: dict[_Key, tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Timeline ``key`` on the night's grid (:func:`_on_grid`), placed once per replay.

    When the grid is a copy that holds the whole timeline (it starts at or after the night
    start and ends by the night's end, the usual case), the timeline in ``timelines`` is
    replaced by one whose ``values`` and ``valid`` are views of the grid: the same numbers,
    held once instead of twice (an 8-h 1-kHz EMG stream is ~260 MB).
    """
    if key in placed:
        return placed[key]
    tl = timelines[key]
    n_total = int(duration_s * tl.fs_hz)
    values, valid = _on_grid(tl, start_ns, n_total)
    offset, n = _grid_offset(tl, start_ns), tl.n_samples
    if values is not tl.values and offset >= 0 and offset + n <= n_total:
        timelines[key] = replace(
            tl, values=values[:, offset : offset + n], valid=valid[offset : offset + n]
        )
    placed[key] = (values, valid)
    return values, valid




def _legs(
    timelines: dict[tuple[str, str], StreamTimeline],
    start_ns: int,
    duration_s: float,
    chosen: Sequence[LegSource],
) -> list[LegSignals]:
    """One :class:`LegSignals` per leg with a chosen source (see ``pipeline.legs``)."""
    legs: list[LegSignals] = []
    placed: dict[_Key, tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]] = {}
    _release_freed_heap()
    leg: Leg
    for leg in ("left", "right"):
        emg_src = next((s for s in chosen if s.leg == leg and s.stream == "emg"), None)
        acc_src = next((s for s in chosen if s.leg == leg and s.stream == "acc"), None)
        if emg_src is None and acc_src is None:
            continue
        emg_v = emg_ok = acc_v = acc_ok = None
        emg_fs: float | None = None
        emg_channels: tuple[str, ...] = ()
        if emg_src is not None:
            emg_v, emg_ok = _placed(timelines, (emg_src.address, "emg"), start_ns, duration_s,
                                    placed)
            emg = timelines[(emg_src.address, "emg")]
            rows = list(emg_src.channels)
            if len(rows) != emg_v.shape[0]:
                ranged = rows == list(range(rows[0], rows[0] + len(rows)))
                # adjacent rows as a view (the same values, no copy of the night's EMG)
                emg_v = emg_v[rows[0] : rows[0] + len(rows)] if ranged else emg_v[rows]
            emg_fs = emg.fs_hz
            emg_channels = tuple(emg.channels[i] for i in emg_src.channels)
        acc_fs: float | None = None
        if acc_src is not None:
            acc_v, acc_ok = _placed(timelines, (acc_src.address, "acc"), start_ns, duration_s,
                                    placed)
            acc_fs = timelines[(acc_src.address, "acc")].fs_hz
        legs.append(
            LegSignals(
                leg=leg,
                emg_uv=emg_v,
                emg_fs_hz=emg_fs,
                emg_channels=emg_channels,
                emg_valid=emg_ok,
                acc_mg=acc_v,
                acc_fs_hz=acc_fs,
                acc_valid=acc_ok,
            )
        )
    return legs


#: Coverage is reported at one-second resolution: a second counts as uncovered when any of
#: its samples is missing or flagged. Finer spans would only add noise to the summary.
COVERAGE_RESOLUTION_S = 1.0
_OK, _FLAGGED, _MISSING = 0, 1, 2
_REASONS = {_FLAGGED: "lead-off", _MISSING: "no data"}
#: A disconnect mark is written when the recorder notices the drop, up to one watchdog period
#: (1 s) after the last packet arrived; it still explains a gap that starts that much earlier.
DROP_MARK_SLACK_S = 2.0


def _seconds_covered_by(
    n_sec: int, starts_s: npt.NDArray[np.float64], ends_s: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Which of ``n_sec`` coverage bins intersect any span ``[start, end)`` (vectorised)."""
    first = np.clip(np.floor(starts_s / COVERAGE_RESOLUTION_S), 0, n_sec).astype(np.int64)
    last = np.clip(np.ceil(ends_s / COVERAGE_RESOLUTION_S), 0, n_sec).astype(np.int64)
    keep = last > first
    delta = np.zeros(n_sec + 1, dtype=np.int64)
    np.add.at(delta, first[keep], 1)
    np.add.at(delta, last[keep], -1)
    return np.cumsum(delta[:-1]) > 0


def _false_runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], ...]:
    """Start and end indices of the runs of False in ``mask``."""
    padded = np.concatenate(([True], mask, [True])).view(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return edges[0::2], edges[1::2]


def _coverage_gaps(
    devices: tuple[DeviceInfo, ...],
    timelines: dict[tuple[str, str], StreamTimeline],
    start_ns: int,
    duration_s: float,
    *,
    sources: Sequence[LegSource],
    drops: set[tuple[str, float]] | frozenset[tuple[str, float]] = frozenset(),
) -> list[tuple[Leg, float, float, str]]:
    """Uncovered spans per leg: ``"link dropped"`` (nothing received, and the recorder marked
    a disconnect or stall of that device within the span, see ``drops``: (address, seconds
    from start)), ``"no data"`` (nothing received otherwise: out of range, lost packets) or
    ``"lead-off"`` (received, but the device flagged the electrodes off or the signal
    saturated). Time is never called cramp-free where it is uncovered. Per leg, the span is
    that of its chosen EMG source (``sources``, see
    :func:`~crampsense.pipeline.legs.choose_leg_sources`) if it has one, else of its
    accelerometer.

    Works on runs, not samples: the only per-sample pass is finding the runs of invalid
    samples."""
    n_sec = max(1, int(duration_s // COVERAGE_RESOLUTION_S))
    out: list[tuple[Leg, float, float, str]] = []
    by_address = {d.address: d for d in devices}
    picks: list[tuple[Leg, DeviceInfo, StreamTimeline]] = []
    leg_of: Leg
    for leg_of in ("left", "right"):
        mine = [s for s in sources if s.leg == leg_of]
        src = next((s for s in mine if s.stream == "emg"), mine[0] if mine else None)
        if src is not None:
            picks.append((leg_of, by_address[src.address], timelines[(src.address, src.stream)]))
    for leg, device, tl in picks:
        # the same whole-sample placement as the detector's grid (see _on_grid)
        t0_s = _grid_offset(tl, start_ns) / tl.fs_hz
        n = tl.valid.size
        gaps = np.asarray(tl.gaps, dtype=np.float64).reshape(-1, 2)
        # missing: before the first sample, after the last, and in the timeline's gaps
        missing_a = np.concatenate(([-1.0, t0_s + n / tl.fs_hz], t0_s + gaps[:, 0] / tl.fs_hz))
        missing_b = np.concatenate(([t0_s, duration_s + 1.0], t0_s + gaps[:, 1] / tl.fs_hz))
        missing = _seconds_covered_by(n_sec, missing_a, missing_b)
        run_a, run_b = _false_runs(tl.valid)
        flagged = _seconds_covered_by(
            n_sec, t0_s + run_a / tl.fs_hz, t0_s + run_b / tl.fs_hz
        )
        worst = np.where(missing, _MISSING, np.where(flagged, _FLAGGED, _OK)).astype(np.int8)
        change = np.flatnonzero(np.diff(worst)) + 1
        bounds = np.concatenate(([0], change, [n_sec]))
        for a, b in itertools.pairwise(bounds.tolist()):
            code = int(worst[a])
            if code == _OK:
                continue
            a_s, b_s = a * COVERAGE_RESOLUTION_S, min(b * COVERAGE_RESOLUTION_S, duration_s)
            reason = _REASONS[code]
            if code == _MISSING and any(
                address == device.address and a_s - DROP_MARK_SLACK_S <= t_s <= b_s
                for address, t_s in drops
            ):
                reason = "link dropped"
            out.append((leg, a_s, b_s, reason))
    return out


def _silent_legs(
    devices: Sequence[DeviceInfo], covered: set[Leg], marks: Sequence[Mark]
) -> dict[Leg, str]:
    """Legs with a paired device worn on them but no leg signal in the session, and why:
    ``"never connected"`` (no device on that leg ever connected) or ``"no data"``."""
    connected = {m.device_address for m in marks if m.kind == MarkKind.CONNECTED}
    out: dict[Leg, str] = {}
    for d in devices:
        leg = placement_leg(d.placement)
        if leg is None or leg in covered:
            continue
        if d.address in connected or out.get(leg) == "no data":
            out[leg] = "no data"
        else:
            out[leg] = "never connected"
    return out


def analyze_session(
    path: Path,
    *,
    params: DetectionParams | None = None,
    progress: Progress | None = None,
) -> SessionAnalysis:
    """Replay a session file through decode and detection.

    A damaged file is read again page by page (``SessionReader(path, salvage=True)``): every
    intact frame is replayed and :attr:`SessionAnalysis.salvage` says what was lost where.

    Raises
    ------
    ForeignFileError, CorruptFileError
        Not a session file, or damaged so that no frame could be recovered.
    StorageError
        The session holds no decodable leg signal.
    """
    try:
        return _analyze(path, params=params, progress=progress, salvage=False)
    except (CorruptFileError, ForeignFileError) as exc:
        try:
            return _analyze(path, params=params, progress=progress, salvage=True)
        except ForeignFileError:
            raise exc from None  # not a damaged session after all: the first word stands


def _analyze(
    path: Path, *, params: DetectionParams | None, progress: Progress | None, salvage: bool
) -> SessionAnalysis:
    with SessionReader(path, salvage=salvage) as reader:
        salvaged = reader.salvage_report
        devices = tuple(reader.devices)
        timelines, n, bad, errors = decode_session(reader, progress=progress)
        metadata = {d.address: dict(reader.device_metadata(d.address)) for d in devices}
        first_ns, last_ns = reader.time_span_ns()
        marks = reader.marks()
        clean_end = bool(marks) and marks[-1].kind == "stopped"
        start_ns = int(reader.metadata.get("start_ns", first_ns))
        session_key = reader.session_key
    # The night ends with the last sample any leg sensor delivered (not the last mark, which
    # the recorder writes a moment after stopping); without leg samples, the last record.
    sources = choose_leg_sources(devices, timelines, metadata)
    leg_ends = [
        tl.t0_host_ns + round(tl.values.shape[1] * 1e9 / tl.fs_hz)
        for (address, stream), tl in timelines.items()
        if any(s.address == address and s.stream == stream for s in sources)
    ]
    end_ns = max(max(leg_ends, default=last_ns), start_ns)
    duration_s = (end_ns - start_ns) / 1e9
    drops = {
        (m.device_address, (m.host_time_ns - start_ns) / 1e9)
        for m in marks
        if m.kind in ("disconnected", "stall") and m.device_address is not None
    }
    legs = _legs(timelines, start_ns, duration_s, sources)
    silent = _silent_legs(devices, {lg.leg for lg in legs}, marks)
    if not legs:
        named = "; ".join(f"{leg} leg: {why}" for leg, why in silent.items())
        raise StorageError(
            f"{path} holds no EMG or accelerometer data from a device worn on a leg "
            f"({n} frames, {bad} undecodable{'; ' + named if named else ''}); pair a band "
            "with --placement left-calf or right-calf, check that it is charged and in "
            "range, and record again",
            path=str(path),
        )
    start = datetime_from_ns(start_ns)
    results = detect_cramps(legs, start=start, params=params)
    gaps = tuple(
        CoverageGap(
            start=start + timedelta(seconds=a_s),
            end=start + timedelta(seconds=b_s),
            leg=leg,
            reason=reason,
        )
        for leg, a_s, b_s, reason in _coverage_gaps(
            devices, timelines, start_ns, duration_s, sources=sources, drops=drops
        )
    )
    # a leg whose paired sensor never delivered is monitored and uncovered all night: named
    # in the summary ("never connected"), never silently left out
    gaps += tuple(
        CoverageGap(start=start, end=start + timedelta(seconds=duration_s), leg=leg,
                    reason=why)
        for leg, why in silent.items()
    )
    monitored: tuple[Leg, ...] = tuple(sorted({lg.leg for lg in legs} | set(silent)))
    night = Night(
        start=start,
        end=start + timedelta(seconds=duration_s),
        devices=devices,
        events=tuple(results.to_events()),
        gaps=gaps,
        legs=monitored,
        session_path=str(path),
        lost_frames=sum(t.lost_packets for t in timelines.values()),
        sleep=tuple(
            SleepSummary(
                leg=leg,
                onset=None if sp.onset_s is None else start + timedelta(seconds=sp.onset_s),
                offset=None if sp.offset_s is None else start + timedelta(seconds=sp.offset_s),
                sleep_s=sp.sleep_s,
                wake_bouts=sp.wake_bouts.height,
                wake_s=float((sp.wake_bouts["end_s"] - sp.wake_bouts["start_s"]).sum()),
            )
            for leg in monitored
            if (sp := results.sleep.get(leg)) is not None
        ),
    )
    return SessionAnalysis(
        night=night,
        results=results,
        timelines=timelines,
        frames=n,
        undecodable_frames=bad,
        devices=devices,
        decode_errors=errors,
        clean_end=clean_end,
        session_key=session_key,
        salvage=salvaged,
    )
