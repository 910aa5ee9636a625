"""Decoded packets of one stream back onto a continuous, regular time grid.

A night arrives as hundreds of thousands of small :class:`~crampsense.models.SampleBlock`\\ s,
each with the device's own wrapping timestamp (``device_ticks``), a wrapping ``sequence`` number
and the host's receive time. :class:`TimelineBuilder` collects them (cheaply, in arrival order)
and :meth:`TimelineBuilder.build` reconstructs one :class:`StreamTimeline`: the samples on a
regular grid at the nominal rate, gaps marked invalid and counted, and every sample's host time
given by a device-clock model anchored to host time.

How it works (all vectorised; RELIABILITY.md, section "Time")
---------------------------------------------------------------
1. **Unwrap and segment.** For consecutive arrivals, the tick difference is read modulo the
   tick wrap as the signed value nearest zero, and the sequence difference likewise modulo the
   sequence wrap. The two agree (``Δsamples == Δsequence × samples per packet``) for lost,
   duplicated and reordered packets alike; where they disagree (the sequence restarted after a
   reconnect, the device rebooted) a new *segment* starts.
2. **Epochs.** At a segment start the tick difference is unwrapped instead by the host's elapsed
   time (so a disconnect longer than half a tick wrap is still unwrapped right). If the device's
   elapsed time then agrees with the host's, the device clock ran on: the segment stays in the
   same *epoch* and its samples are placed by device time, so a reconnect gap has exact bounds.
   Otherwise the device clock was reset: a new epoch starts, placed by host time.
3. **Clock model.** Per epoch, host receive time minus device time is a line (offset and drift)
   plus a non-negative, jittery latency. The line is fitted to the per-window *minima* (the
   lower envelope, where latency is least) with outliers rejected by their median absolute
   deviation, after removing host wall-clock steps (an NTP step or a manual change shows as a
   jump of the envelope; the longest stretch without jumps is kept as the anchor), so a wall
   clock jump never changes an interval: intervals always come from the device clock.
4. **Grid.** Sample ``k`` of the result is at host time
   ``t0_host_ns + k × 1e9 / fs_hz × (1 + drift)``; positions inside an epoch are exact device
   sample counts; duplicates are dropped (first arrival wins); loss is counted per segment from
   unwrapped sequence numbers (from device time for streams without them), never negative.

Limits: a host wall-clock step that coincides with a reconnect *and* a sequence restart cannot
be told apart from a device clock reset, and is placed by host time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.errors import ConfigError, DecodeError
from crampsense.models import SampleBlock

__all__ = [
    "EPOCH_TOLERANCE_PPM",
    "EPOCH_TOLERANCE_S",
    "FIT_WINDOW_S",
    "MAX_SPAN_S",
    "MIN_DRIFT_SPAN_S",
    "SEQLESS_GAP_S",
    "WALL_STEP_S",
    "StreamTimeline",
    "TimelineBuilder",
]

logger = logging.getLogger(__name__)

#: Device-time window whose minimum host-minus-device residual is one point of the lower
#: envelope (s). 30 s holds tens to hundreds of packets, so the minimum is close to the least
#: latency, while drift moves the line by at most 15 ms (500 ppm) inside one window.
FIT_WINDOW_S: Final = 30.0
#: An epoch must span at least this much device time to estimate its own drift (s); 5 min
#: at ~1 ms envelope noise bounds the slope error to a few ppm. Shorter epochs take the
#: span-weighted drift of the longer ones and fit only their offset.
MIN_DRIFT_SPAN_S: Final = 300.0
#: A jump of the detrended lower envelope between neighbouring windows larger than this is a
#: host wall-clock step (s). Latency minima move by milliseconds; NTP steps and time-zone
#: mistakes by seconds to hours.
WALL_STEP_S: Final = 1.0
#: Envelope points further than this many (normal-consistent) MADs from the line are dropped.
OUTLIER_MADS: Final = 4.0
#: Refit rounds of the outlier rejection (it converges in one or two).
OUTLIER_ITERATIONS: Final = 4
#: Smallest residual spread the outlier rule uses (s), so a perfect line rejects nothing.
MIN_RESIDUAL_S: Final = 1e-4
#: Across a segment start, the device clock counts as having run on when its elapsed time
#: agrees with the host's within this (s): receive latency and its jitter stay well below 2 s,
#: while a rebooted device clock lands anywhere in its range.
EPOCH_TOLERANCE_S: Final = 2.0
#: ...plus this rate difference over the gap (ppm): cheap crystals are within ±100 ppm.
EPOCH_TOLERANCE_PPM: Final = 1000.0
#: Streams without sequence numbers start a new segment after this much host silence (s).
SEQLESS_GAP_S: Final = 2.0
#: Longest timeline built (s): a grid past two days means a broken clock, not a night.
MAX_SPAN_S: Final = 48 * 3600.0
#: Sequence gaps beyond a quarter of the wrap are not trusted to be within one segment.
_SEQ_TRUST_FRACTION: Final = 4
#: Normal-consistency factor of the median absolute deviation.
_MAD_TO_SIGMA: Final = 1.4826
#: Wrap periods above this are treated as "never wraps" (keeps int64 arithmetic exact).
_NO_WRAP_MODULO: Final = 2**62
#: Keys of (segment, unwrapped sequence) pairs are ``segment << _KEY_SHIFT | offset``.
_KEY_SHIFT: Final = 40
#: Fields kept per packet: sequence, ticks, samples, flags, host time, value chunk, offset.
_PACKET_FIELDS: Final = 7


@dataclass(frozen=True, eq=False)
class StreamTimeline:
    """One stream of one device, reconstructed on a regular grid.

    Attributes
    ----------
    stream : str
        ``"emg"``, ``"acc"``, ...
    channels : tuple of str
        One per row of ``values``.
    unit : str
        Unit of ``values``.
    fs_hz : float
        Nominal sample rate (Hz, in device time): the grid has one sample per ``1/fs_hz``
        device seconds.
    t0_host_ns : int
        Host Unix time of sample 0 (ns), from the fitted clock model.
    values : ndarray of float32, shape (n_channels, n)
        Samples; 0 where nothing was received.
    valid : ndarray of bool, shape (n,)
        False in gaps (lost packets, disconnects) and where the device flagged the packet
        (lead-off, saturation: the builder's ``lead_off_mask``).
    lost_packets : int
        Packets missing inside segments, from sequence numbers (device time for streams
        without them); never negative. Disconnect gaps between segments are in ``gaps``.
    duplicate_packets : int
        Packets received more than once (dropped).
    gaps : list of (int, int)
        Sample index ranges ``[a, b)`` that were not received.
    drift_ppm : float
        Device clock rate relative to the host clock, minus one, in ppm (positive: the device
        clock runs fast).
    segments : int
        Runs of consistent sequence numbers (one per connection, typically).
    clock_resets : int
        Times the device clock restarted (new epochs placed by host time).
    """

    stream: str
    channels: tuple[str, ...]
    unit: str
    fs_hz: float
    t0_host_ns: int
    values: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    lost_packets: int
    duplicate_packets: int
    gaps: list[tuple[int, int]] = field(default_factory=list)
    drift_ppm: float = 0.0
    segments: int = 0
    clock_resets: int = 0

    @property
    def n_samples(self) -> int:
        return int(self.valid.shape[0])

    @property
    def sample_period_ns(self) -> float:
        """Host nanoseconds between grid samples (the nominal period stretched by drift)."""
        return 1e9 / self.fs_hz / (1.0 + self.drift_ppm * 1e-6)

    def sample_time_ns(self, index: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Host Unix time (ns) of grid sample(s) ``index``."""
        idx = np.asarray(index, dtype=np.float64)
        return self.t0_host_ns + np.rint(idx * self.sample_period_ns).astype(np.int64)


class TimelineBuilder:
    """Collect one stream's blocks in arrival order; :meth:`build` reconstructs the timeline.

    Parameters
    ----------
    stream : str
        Only blocks of this stream are accepted.
    fs_hz : float
        Nominal sample rate (Hz).
    tick_hz : float
        Device timestamp units per second (10**6 for µs).
    seq_modulo : int
        Sequence numbers wrap at this (65536 for u16).
    tick_modulo : int
        Device timestamps wrap at this (2**32 for u32).
    lead_off_mask : int
        Block flag bits that make its samples invalid (lead-off, saturation; 0 = none).

    Raises
    ------
    ConfigError
        A rate or modulus that is not positive.

    Notes
    -----
    :meth:`add` only appends (amortised O(1) per block plus the samples); all the work is in
    :meth:`build`, which is vectorised and takes about a second per night of packets.
    """

    def __init__(  # noqa: PLR0917 - the documented positional signature
        self,
        stream: str,
        fs_hz: float,
        tick_hz: float,
        seq_modulo: int,
        tick_modulo: int,
        lead_off_mask: int = 0,
    ) -> None:
        for key, value in (
            ("fs_hz", fs_hz),
            ("tick_hz", tick_hz),
            ("seq_modulo", seq_modulo),
            ("tick_modulo", tick_modulo),
        ):
            if not value > 0:
                msg = f"timeline {key} must be > 0, got {value!r}; pass the device's nominal value"
                raise ConfigError(msg, key=key)
        if int(seq_modulo) < 2 * _SEQ_TRUST_FRACTION:
            msg = f"timeline seq_modulo {seq_modulo!r} is too small to unwrap; use e.g. 65536"
            raise ConfigError(msg, key="seq_modulo")
        self.stream = stream
        self.fs_hz = float(fs_hz)
        self.tick_hz = float(tick_hz)
        self.seq_modulo = int(seq_modulo)
        self.tick_modulo = int(tick_modulo)
        self.lead_off_mask = int(lead_off_mask)
        self._channels: tuple[str, ...] | None = None
        self._unit = ""
        # Per packet: sequence, ticks, samples, flags, host time, and where its samples are:
        # values are kept as the chunks they arrived in (one block from add, many packets
        # from add_many), packet i's at _values[chunk[i]][:, offset[i] : offset[i] + n[i]].
        # add appends to the lists; add_many (and build) first move those into _parts, arrays
        # of shape (_PACKET_FIELDS, k), so a night's packets are a few arrays, not millions
        # of list entries for the garbage collector to walk.
        self._seq: list[int] = []
        self._ticks: list[int] = []
        self._n: list[int] = []
        self._flags: list[int] = []
        self._host: list[int] = []
        self._chunk: list[int] = []
        self._offset: list[int] = []
        self._parts: list[npt.NDArray[np.int64]] = []
        self._values: list[npt.NDArray[np.float32]] = []

    def __len__(self) -> int:
        """Blocks added so far."""
        return len(self._n) + sum(int(part.shape[1]) for part in self._parts)

    def _flush(self) -> None:
        """Move the packets :meth:`add` listed into ``_parts``."""
        if self._n:
            self._parts.append(
                np.array(
                    [self._seq, self._ticks, self._n, self._flags, self._host, self._chunk,
                     self._offset],
                    dtype=np.int64,
                )
            )
            for column in (self._seq, self._ticks, self._n, self._flags, self._host,
                           self._chunk, self._offset):
                column.clear()

    def _packets(self) -> npt.NDArray[np.int64]:
        """Every packet's fields, shape (_PACKET_FIELDS, n_packets), in arrival order."""
        self._flush()
        parts = self._parts
        if len(parts) > 1:
            # joined part by part, letting each go once copied: the night's packets are held
            # once plus one part, not twice (np.concatenate would hold every part meanwhile)
            joined = np.empty((_PACKET_FIELDS, sum(int(p.shape[1]) for p in parts)), np.int64)
            parts.reverse()
            at = 0
            while parts:
                part = parts.pop()
                joined[:, at : at + part.shape[1]] = part
                at += int(part.shape[1])
                del part
            parts.append(joined)
        return parts[0] if parts else np.zeros((_PACKET_FIELDS, 0), np.int64)

    def add(self, block: SampleBlock, host_time_ns: int) -> None:
        """Append one decoded block and the host receive time of its frame (Unix ns).

        Raises
        ------
        DecodeError
            A block of another stream, or with other channels than the first one.
        """
        if block.stream != self.stream:
            msg = (
                f"{block.stream!r} block given to the {self.stream!r} timeline; build one "
                "TimelineBuilder per stream"
            )
            raise DecodeError(msg, offset=0, field="stream")
        values = block.values
        if values.ndim != 2:
            msg = f"block values have {values.ndim} dimensions; expected (n_channels, n)"
            raise DecodeError(msg, offset=0, field="values")
        if self._channels is None:
            self._channels = tuple(block.channels)
            self._unit = block.unit
        elif tuple(block.channels) != self._channels or values.shape[0] != len(self._channels):
            msg = (
                f"block channels {block.channels} differ from the stream's {self._channels}; "
                "a device changed its channel map mid-stream: start a new timeline"
            )
            raise DecodeError(msg, offset=0, field="channels")
        n = int(values.shape[1])
        if n == 0:
            return
        self._seq.append(-1 if block.sequence is None else int(block.sequence))
        self._ticks.append(-1 if block.device_ticks is None else int(block.device_ticks))
        self._n.append(n)
        self._flags.append(int(block.flags))
        self._host.append(int(host_time_ns))
        self._chunk.append(len(self._values))
        self._offset.append(0)
        self._values.append(values)

    def add_many(
        self,
        *,
        stream: str,
        channels: tuple[str, ...],
        unit: str,
        values: npt.NDArray[np.float32],
        n_samples: npt.ArrayLike,
        sequence: npt.ArrayLike | None,
        device_ticks: npt.ArrayLike | None,
        flags: npt.ArrayLike,
        host_time_ns: npt.ArrayLike,
    ) -> None:
        """Append many packets at once; the same as :meth:`add` for each packet in order.

        Parameters
        ----------
        stream : str
            Stream of every packet (must be this builder's).
        channels : tuple of str
            Channel labels, one per row of ``values``.
        unit : str
            Unit of ``values``.
        values : ndarray of float32, shape (n_channels, sum(n_samples))
            The packets' samples back to back, in arrival order. Kept by reference (not
            copied): do not modify it afterwards.
        n_samples : array_like of int, shape (n_packets,)
            Samples per packet; packets with 0 samples are skipped, as :meth:`add` skips them.
        sequence, device_ticks : array_like of int, shape (n_packets,), or None
            As sent; ``None`` or negative entries where the device sends none.
        flags : array_like of int, shape (n_packets,)
            Device status bits per packet.
        host_time_ns : array_like of int, shape (n_packets,)
            Host receive time of each packet's frame (Unix ns).

        Raises
        ------
        DecodeError
            Another stream, other channels than the first block's, or arrays whose shapes do
            not agree.
        """
        if stream != self.stream:
            msg = (
                f"{stream!r} packets given to the {self.stream!r} timeline; build one "
                "TimelineBuilder per stream"
            )
            raise DecodeError(msg, offset=0, field="stream")
        if values.ndim != 2:
            msg = f"packet values have {values.ndim} dimensions; expected (n_channels, n)"
            raise DecodeError(msg, offset=0, field="values")
        counts = np.asarray(n_samples, dtype=np.int64).ravel()
        k = counts.size
        minus_one = np.full(k, -1, dtype=np.int64)
        per_packet = {
            "sequence": minus_one if sequence is None else np.asarray(sequence, np.int64).ravel(),
            "device_ticks": (
                minus_one if device_ticks is None else np.asarray(device_ticks, np.int64).ravel()
            ),
            "flags": np.asarray(flags, dtype=np.int64).ravel(),
            "host_time_ns": np.asarray(host_time_ns, dtype=np.int64).ravel(),
        }
        for key, arr in per_packet.items():
            if arr.size != k:
                msg = (
                    f"{key} has {arr.size} entries for {k} packets; pass one per packet "
                    "(n_samples gives the packet count)"
                )
                raise DecodeError(msg, offset=0, field=key)
        if bool(np.any(counts < 0)) or int(counts.sum()) != values.shape[1]:
            msg = (
                f"n_samples (sum {int(counts.sum())}) does not match the {values.shape[1]} "
                "value columns; pass non-negative counts that add up to values.shape[1]"
            )
            raise DecodeError(msg, offset=0, field="n_samples")
        if k == 0:
            return
        if self._channels is None:
            self._channels = tuple(channels)
            self._unit = unit
        if tuple(channels) != self._channels or values.shape[0] != len(self._channels):
            msg = (
                f"block channels {channels} differ from the stream's {self._channels}; "
                "a device changed its channel map mid-stream: start a new timeline"
            )
            raise DecodeError(msg, offset=0, field="channels")
        offsets = np.cumsum(counts) - counts
        nonempty = counts > 0
        if not nonempty.all():
            counts, offsets = counts[nonempty], offsets[nonempty]
            per_packet = {key: arr[nonempty] for key, arr in per_packet.items()}
        if counts.size == 0:
            return
        self._flush()
        self._parts.append(
            np.stack(
                [
                    np.maximum(per_packet["sequence"], -1),
                    np.maximum(per_packet["device_ticks"], -1),
                    counts,
                    per_packet["flags"],
                    per_packet["host_time_ns"],
                    np.full(counts.size, len(self._values), dtype=np.int64),
                    offsets,
                ]
            )
        )
        self._values.append(values)

    # ------------------------------------------------------------------ build

    def build(self) -> StreamTimeline:
        """Reconstruct the timeline from everything added so far.

        Raises
        ------
        DecodeError
            The blocks would span more than :data:`MAX_SPAN_S` (a broken clock).
        """
        channels = self._channels or ()
        packets = self._packets()
        count = int(packets.shape[1])
        if count == 0:
            return StreamTimeline(
                self.stream, channels, self._unit, self.fs_hz, 0,
                np.zeros((len(channels), 0), np.float32), np.zeros(0, np.bool_), 0, 0, [],
            )
        # Working memory: a night holds millions of packets, so every per-packet array is
        # dropped (del) as soon as it is dead and arithmetic is done in place where that gives
        # the same numbers; the rows of ``packets`` are views, not copies.
        seq, ticks, n, flags, host, chunk, chunk_offset = packets
        has_seq = bool(np.all(seq >= 0))
        tick_hz, modulo = self.tick_hz, self.tick_modulo
        if not np.all(ticks >= 0):
            # no device clock: the host's receive times stand in for it (no wrap)
            t_f = (host - host[0]) * (tick_hz / 1e9)
            np.rint(t_f, out=t_f)
            ticks = t_f.astype(np.int64)
            del t_f
            modulo = _NO_WRAP_MODULO + 1
        samples_per_tick = self.fs_hz / tick_hz

        # 1-2. unwrap, segments and epochs (pairs of consecutive arrivals)
        dh_s = np.diff(host) / 1e9
        if modulo <= _NO_WRAP_MODULO:
            raw = np.diff(ticks)
            np.mod(raw, modulo, out=raw)
            dt_near = raw.copy()
            dt_near[raw >= modulo // 2] -= modulo
            wraps_f = dh_s * tick_hz
            wraps_f -= raw
            wraps_f /= modulo
            np.rint(wraps_f, out=wraps_f)
            dt_host = wraps_f.astype(np.int64)
            del wraps_f
            dt_host *= modulo
            dt_host += raw
            del raw
        else:
            dt_near = dt_host = np.diff(ticks)
        del ticks
        n_prev = n[:-1]
        dq: npt.NDArray[np.int64] | None = None
        if has_seq:
            sm = self.seq_modulo
            dq = np.diff(seq)
            np.mod(dq, sm, out=dq)
            dq[dq >= sm // 2] -= sm
            mismatch = dt_near * samples_per_tick
            mismatch -= dq * n_prev
            np.abs(mismatch, out=mismatch)
            tolerance = 0.5 * n_prev
            np.maximum(1.0, tolerance, out=tolerance)
            same = mismatch <= tolerance
            del mismatch, tolerance
            same &= np.abs(dq) < sm // _SEQ_TRUST_FRACTION
        else:
            apart = dt_near / tick_hz
            apart -= dh_s
            np.abs(apart, out=apart)
            same = (dh_s <= SEQLESS_GAP_S) & (apart <= EPOCH_TOLERANCE_S)
            del apart
        mismatch_s = dt_host / tick_hz
        mismatch_s -= dh_s
        np.abs(mismatch_s, out=mismatch_s)
        np.abs(dh_s, out=dh_s)
        dh_s *= EPOCH_TOLERANCE_PPM * 1e-6
        dh_s += EPOCH_TOLERANCE_S
        runs_on = mismatch_s <= dh_s
        del mismatch_s, dh_s
        seg_break = ~same
        epoch_break = seg_break & ~runs_on
        del runs_on
        seg = np.concatenate(([0], np.cumsum(seg_break)))
        n_segments = int(seg[-1]) + 1
        seg_first = np.flatnonzero(np.concatenate(([True], seg_break)))
        u = np.empty(count, dtype=np.int64)
        u[0] = 0
        np.copyto(u[1:], dt_host)
        np.copyto(u[1:], dt_near, where=same)
        del dt_near, dt_host, same
        u[1:][epoch_break] = 0
        np.cumsum(u, out=u)
        epoch_first = np.flatnonzero(np.concatenate(([True], epoch_break)))
        del epoch_break
        epoch_len = np.diff(np.concatenate((epoch_first, [count])))
        u -= np.repeat(u[epoch_first], epoch_len)
        pos_f = u * samples_per_tick
        np.rint(pos_f, out=pos_f)
        pos = pos_f.astype(np.int64)
        del pos_f
        lost = 0
        if dq is not None:
            # loss from sequence numbers, now, so the per-packet arrays it needs can go
            dq[seg_break] = 0
            q = np.concatenate(([0], np.cumsum(dq)))
            del dq
            lost = _lost_by_sequence(q, seg, seg_first)
            del q, seg
        del seg_break

        # 3. clock model per epoch
        host_ref = int(host[0])
        x_s = (n - 1) / samples_per_tick
        np.add(u, x_s, out=x_s)
        del u
        x_s /= tick_hz
        since_s = np.repeat(host[epoch_first], epoch_len)
        np.subtract(host, since_s, out=since_s)
        y_s = since_s / 1e9
        del since_s
        y_s -= x_s
        fits = [
            _envelope_fit(x_s[a : a + k], y_s[a : a + k])
            for a, k in zip(epoch_first.tolist(), epoch_len.tolist(), strict=True)
        ]
        del x_s, y_s
        spans = np.array([f.span_s if f.reliable else 0.0 for f in fits])
        slopes = np.array([f.slope for f in fits])
        slope_all = float(np.sum(spans * slopes) / np.sum(spans)) if spans.sum() > 0 else 0.0
        drift_ppm = (1.0 / (1.0 + slope_all) - 1.0) * 1e6

        # 4. place epochs on one grid
        period_ns = 1e9 / self.fs_hz * (1.0 + slope_all)
        n_ep = len(fits)
        pmin = np.minimum.reduceat(pos, epoch_first)
        pend = np.maximum.reduceat(pos + n, epoch_first)
        start_ns = np.empty(n_ep)  # host time of each epoch's first sample, relative to host_ref
        for e, f in enumerate(fits):
            slope = f.slope if f.reliable else slope_all
            offset = f.offset_s if f.reliable else f.offset_at(slope)
            ref_ns = float(host[epoch_first[e]] - host_ref)
            start_ns[e] = ref_ns + 1e9 * (offset + (1.0 + slope) * pmin[e] / self.fs_hz)
        order = np.argsort(start_ns, kind="stable")
        t0_rel_ns = float(start_ns[order[0]])
        k_start = np.zeros(n_ep, dtype=np.int64)
        end = 0
        max_samples = self.fs_hz * MAX_SPAN_S
        for e in order.tolist():
            k = round((start_ns[e] - t0_rel_ns) / period_ns)
            if k > max_samples:
                msg = (
                    f"{self.stream} blocks span {k / self.fs_hz / 3600:.1f} h, more than "
                    f"{MAX_SPAN_S / 3600:.0f} h: a device or host clock is broken; split the "
                    "recording per night"
                )
                raise DecodeError(msg, offset=int(epoch_first[e]), field="host_time_ns")
            k_start[e] = max(k, end)
            end = int(k_start[e] + pend[e] - pmin[e])
        gpos = np.repeat(k_start - pmin, epoch_len)
        gpos += pos
        del pos

        # duplicates (first arrival wins), loss per segment
        order = np.argsort(gpos, kind="stable")  # nearly sorted already; ties keep arrival order
        g_sorted = gpos[order]
        first_at = np.concatenate(([True], g_sorted[1:] != g_sorted[:-1]))
        del g_sorted
        keep = order[first_at]
        del order, first_at
        duplicates = count - int(keep.size)
        if not has_seq:
            lost = _lost_by_time(gpos, n, seg, seg_first, keep)
            del seg
        g_kept = gpos[keep]
        del gpos

        values, valid, gaps = self._fill(
            g=g_kept, n=n, flags=flags, keep=keep, length=int(end), n_ch=len(channels),
            chunk=chunk, chunk_offset=chunk_offset,
        )
        if lost or duplicates or n_ep > 1:
            logger.debug(
                "%s timeline: %d lost, %d duplicate packets, %d segments, %d clock resets",
                self.stream, lost, duplicates, n_segments, n_ep - 1,
            )
        return StreamTimeline(
            stream=self.stream,
            channels=channels,
            unit=self._unit,
            fs_hz=self.fs_hz,
            t0_host_ns=host_ref + round(t0_rel_ns),
            values=values,
            valid=valid,
            lost_packets=lost,
            duplicate_packets=duplicates,
            gaps=gaps,
            drift_ppm=float(drift_ppm),
            segments=n_segments,
            clock_resets=n_ep - 1,
        )

    def _fill(
        self,
        *,
        g: npt.NDArray[np.int64],
        n: npt.NDArray[np.int64],
        flags: npt.NDArray[np.int64],
        keep: npt.NDArray[np.int64],
        length: int,
        n_ch: int,
        chunk: npt.NDArray[np.int64],
        chunk_offset: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], list[tuple[int, int]]]:
        """Copy the kept packets (``keep``, at grid positions ``g``, sorted) onto the grid.

        Packets that are consecutive both in arrival and on the grid are copied as one run
        straight into the output (no per-sample index arrays), so a night costs one pass.
        Returns the values, the valid mask and the gaps between the runs.
        """
        nk = n[keep]
        brk = np.diff(keep) != 1
        brk |= np.diff(g) != nk[:-1]
        run_first = np.flatnonzero(np.concatenate(([True], brk)))
        del brk
        run_last = np.concatenate((run_first[1:] - 1, [keep.size - 1]))
        values = np.zeros((n_ch, length), dtype=np.float32)
        received = np.zeros(length, dtype=np.bool_)
        chunks = self._values
        for a, b in zip(run_first.tolist(), run_last.tolist(), strict=True):
            lo = int(g[a])
            hi = int(g[b] + nk[b])
            first, last = int(keep[a]), int(keep[b])
            c_first, c_last = int(chunk[first]), int(chunk[last])
            start, stop = int(chunk_offset[first]), int(chunk_offset[last] + n[last])
            if c_first == c_last:
                np.copyto(values[:, lo:hi], chunks[c_first][:, start:stop], casting="same_kind")
            else:
                blocks = [
                    chunks[c_first][:, start:],
                    *chunks[c_first + 1 : c_last],
                    chunks[c_last][:, :stop],
                ]
                np.concatenate(blocks, axis=1, out=values[:, lo:hi], casting="same_kind")
            received[lo:hi] = True
        bad = (flags[keep] & self.lead_off_mask) != 0
        valid = received & ~_cover(g[bad], nk[bad], length) if bad.any() else received
        lo_runs = g[run_first]
        hi_runs = np.maximum.accumulate(g[run_last] + nk[run_last])
        between = np.flatnonzero(lo_runs[1:] > hi_runs[:-1])
        gaps = [
            (int(a), int(b))
            for a, b in zip(hi_runs[between].tolist(), lo_runs[between + 1].tolist(), strict=True)
        ]
        return values, valid, gaps


def _cover(
    start: npt.NDArray[np.int64], n: npt.NDArray[np.int64], length: int
) -> npt.NDArray[np.bool_]:
    """Boolean mask of length ``length``, True inside every ``[start, start + n)`` (n >= 1).

    The intervals are merged first, so the work beyond one int8 pass over the grid is in the
    number of flagged packets, not in the grid's length.
    """
    order = np.argsort(start, kind="stable")  # sorted already when called from _fill
    s = start[order]
    e = np.maximum.accumulate((start + n)[order])
    first = np.flatnonzero(np.concatenate(([True], s[1:] > e[:-1])))
    last = np.concatenate((first[1:] - 1, [s.size - 1]))
    edges = np.zeros(length + 1, dtype=np.int8)
    edges[np.minimum(s[first], length)] += 1
    edges[np.minimum(e[last], length)] -= 1
    covered: npt.NDArray[np.bool_] = np.cumsum(edges[:length], dtype=np.int8) > 0
    return covered


@dataclass(frozen=True, slots=True)
class _Fit:
    """Lower-envelope line ``host - device = offset + slope × device`` of one epoch (s)."""

    x_s: npt.NDArray[np.float64]
    y_s: npt.NDArray[np.float64]
    offset_s: float
    slope: float
    span_s: float
    reliable: bool

    def offset_at(self, slope: float) -> float:
        """Offset of the envelope for a given slope (for epochs too short for their own)."""
        return float(np.median(self.y_s - slope * self.x_s))


def _envelope_fit(x_s: npt.NDArray[np.float64], y_s: npt.NDArray[np.float64]) -> _Fit:
    """Fit the lower envelope of residuals ``y_s`` (host minus device, s) over device ``x_s``."""
    win_f = x_s - x_s.min()
    win_f /= FIT_WINDOW_S
    np.floor(win_f, out=win_f)
    win = win_f.astype(np.int64)
    del win_f
    order = np.lexsort((y_s, win))
    w_sorted = win[order]
    del win
    first = np.flatnonzero(np.concatenate(([True], w_sorted[1:] != w_sorted[:-1])))
    del w_sorted
    xm = x_s[order[first]]
    ym = y_s[order[first]]
    del order
    weight = np.diff(np.concatenate((first, [x_s.size]))).astype(np.float64)
    by_x = np.argsort(xm)
    xm, ym, weight = xm[by_x], ym[by_x], weight[by_x]
    if xm.size > 1:
        ym = _remove_wall_steps(xm, ym, weight)
    span = float(xm.max() - xm.min())
    if xm.size < 3 or span < MIN_DRIFT_SPAN_S:
        return _Fit(xm, ym, float(np.median(ym)), 0.0, span, reliable=False)
    keep = np.ones(xm.size, dtype=np.bool_)
    slope, offset = 0.0, float(np.median(ym))
    for _ in range(OUTLIER_ITERATIONS):
        slope, offset = (float(c) for c in np.polyfit(xm[keep], ym[keep], 1))
        resid = ym - (offset + slope * xm)
        centre = np.median(resid[keep])
        spread = _MAD_TO_SIGMA * float(np.median(np.abs(resid[keep] - centre)))
        new_keep = np.abs(resid - centre) <= OUTLIER_MADS * max(spread, MIN_RESIDUAL_S)
        if np.array_equal(new_keep, keep) or new_keep.sum() < 3:
            break
        keep = new_keep
    return _Fit(xm, ym, offset, slope, span, reliable=True)


def _remove_wall_steps(
    xm: npt.NDArray[np.float64], ym: npt.NDArray[np.float64], weight: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Undo host wall-clock steps in the envelope, keeping the heaviest step-free stretch."""
    dx = np.diff(xm)
    dy = np.diff(ym)
    ok = dx > 0
    slope = float(np.median(dy[ok] / dx[ok])) if ok.any() else 0.0
    jump = dy - slope * dx
    is_step = np.abs(jump) > WALL_STEP_S
    if not is_step.any():
        return ym
    piece = np.concatenate(([0], np.cumsum(is_step)))
    correction = np.concatenate(([0.0], np.cumsum(np.where(is_step, jump, 0.0))))
    heaviest = int(np.argmax(np.bincount(piece, weights=weight)))
    anchor = float(correction[piece == heaviest][0])
    logger.debug("host wall clock stepped %d time(s); anchored to the longest stretch",
                 int(is_step.sum()))
    return ym - correction + anchor


def _lost_by_sequence(
    q: npt.NDArray[np.int64], seg: npt.NDArray[np.int64], seg_first: npt.NDArray[np.int64]
) -> int:
    """Packets missing between the first and last unwrapped sequence of each segment."""
    qmin = np.minimum.reduceat(q, seg_first)
    qmax = np.maximum.reduceat(q, seg_first)
    keys = q - qmin[seg]
    keys |= seg << _KEY_SHIFT
    keys.sort(kind="stable")  # nearly sorted
    distinct = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    unique_per_seg = np.bincount(distinct >> _KEY_SHIFT, minlength=seg_first.size)
    return int(np.sum(np.maximum(qmax - qmin + 1 - unique_per_seg, 0)))


def _lost_by_time(
    gpos: npt.NDArray[np.int64],
    n: npt.NDArray[np.int64],
    seg: npt.NDArray[np.int64],
    seg_first: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int64],
) -> int:
    """Packets missing inside each segment, from device time, in typical packet sizes
    (``idx``: the packets at distinct grid positions, duplicates left out)."""
    first = np.minimum.reduceat(gpos, seg_first)
    last = np.maximum.reduceat(gpos + n, seg_first)
    covered = np.bincount(seg[idx], weights=n[idx], minlength=seg_first.size)
    missing = np.maximum(last - first - covered, 0.0)
    typical = float(np.median(n))
    return int(np.sum(np.rint(missing / typical)))
