"""Streaming cramp detection: blocks in, final events after a fixed look-ahead, alarms at once.

:class:`StreamingDetector` runs the same per-leg stream state as
:func:`~crampsense.detection.detect_cramps` (which feeds a whole night in one push), so
``finish()`` returns exactly what ``detect_cramps`` returns for the same samples, whatever
the block sizes. While the night runs, ``push`` returns

- **final events**: every value an event depends on lies within a bounded distance of it
  (0.5 s for the envelope, ``floor_window_s / 2`` plus two blocks for the floor, about six
  minutes for the PLM-train, body-movement and getting-up rules), so an event whose span
  ended :attr:`StreamingDetector.lookahead_s` before the newest final hop of every leg can no
  longer change; it is returned once, identical to its row in ``finish().events``;
- **provisional alarms** (:class:`CrampAlarm`) as soon as a tonic contraction of
  ``min_duration_s`` stands above ``on_ratio`` x a causal floor (the ``floor_quantile`` of
  the block medians of the last ``floor_window_s``) and passes the event stage's rules that
  can be decided from the signal so far (unnotched mains hum, PLM train, standing, body
  movement, phasic; see ``_AlarmTracker.update``): seconds after the evidence, not final;
- **retractions** (``StreamUpdate.retracted``): alarms whose span the final event stage has
  since decided without an event over it, so a service can withdraw them.

Memory is bounded by the block size plus the hop-level arrays (10 Hz per channel, ~2.6 MB
per channel-night) and the per-second accelerometer steps.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.detection.detector import (
    LEGS,
    TURN_MARGIN_S,
    _AccSteps,
    _evaluate,
    _events_frame,
    _LegStream,
    _results,
)
from crampsense.detection.emg import (
    FLOOR_MIN_VALID,
    EmgFrontEnd,
    EnvelopeFrontEnd,
    _HumTest,
    hop_envelope,
    hysteresis_spans,
)
from crampsense.detection.params import DetectionParams
from crampsense.detection.results import CrampResults
from crampsense.detection.rules import (
    PEAK_SMOOTH_S,
    PHASIC_LOCAL_S,
    STANDING_FRACTION,
    STRETCH_AFTER_S,
    _quiet_fraction,
)
from crampsense.errors import DetectionError
from crampsense.models import Leg

__all__ = ["CrampAlarm", "StreamLeg", "StreamUpdate", "StreamingDetector"]

logger = logging.getLogger(__name__)

#: Final events are looked for at most once per this much newly final signal (s): the event
#: stage over its window costs tens of ms, so small blocks must not run it every push; 60 s is
#: small beside the ~25-min look-ahead.
FINAL_EVERY_S: Final = 60.0
#: Alarms look back this far (s) for the start of the current contraction: the longest
#: onset ramp (onset_lookback_s = 60 s) plus min_duration_s fits.
ALARM_BACK_S: Final = 90.0
#: An alarm needs this long (s, in total) at or above on_ratio: the 1-s median envelope
#: already ignores spikes; one second more keeps a single noisy crossing from deciding.
ALARM_MIN_ON_S: Final = 1.0
#: Longest wait (s) past the end of the onset window for the accelerometer or the other
#: leg's EMG to arrive before the alarm is decided without them (transport lag).
ALARM_WAIT_S: Final = 10.0
#: A run after a PLM-length burst at a PLM interval is alarmed only when it has outlasted
#: plm_max_burst_s by this much (s): the causal floor differs slightly from the final one,
#: so a span's length does too.
PLM_MARGIN_S: Final = 1.0
#: Completed runs remembered per leg (PLM chain and the other leg's onsets), and for how long
#: (s): one PLM interval back is enough to link the current run to its predecessor.
BURST_HISTORY: Final = 32
BURST_KEEP_S: Final = 200.0


@dataclass(frozen=True, slots=True)
class StreamLeg:
    """What will be streamed from one leg.

    Attributes
    ----------
    leg : {"left", "right"}
    emg_fs_hz : float, optional
        Raw EMG rate (Hz); push ``emg_uv`` blocks.
    emg_channels : tuple of str
        Channel names, one per row of the EMG (or envelope) blocks.
    envelope_fs_hz : float, optional
        Pre-computed envelope rate (Hz) when there is no raw EMG; push ``emg_envelope``.
    acc_fs_hz : float, optional
        Accelerometer rate (Hz); push ``acc_mg`` blocks. Final events wait for every
        configured stream, so configure only what will be pushed.
    emg_full_scale_uv : float, optional
        ADC full scale (µV) for the saturation test; default: running maximum of |x|.
    """

    leg: Leg
    emg_fs_hz: float | None = None
    emg_channels: tuple[str, ...] = ()
    envelope_fs_hz: float | None = None
    acc_fs_hz: float | None = None
    emg_full_scale_uv: float | None = None


@dataclass(frozen=True, slots=True)
class CrampAlarm:
    """A provisional cramp onset, raised while the contraction is still going on.

    Attributes
    ----------
    leg : {"left", "right"}
    onset_s : float
        Start of the contraction (first step at ``off_ratio`` x the causal floor), s from
        the start of the night.
    alarm_s : float
        Signal time at which the evidence was complete (s from the start): the later of
        ``ALARM_MIN_ON_S`` at ``on_ratio`` and ``min_duration_s`` after ``onset_s``, moved
        later when a rule held the alarm (after a PLM-interval burst: ``plm_max_burst_s``
        plus ``PLM_MARGIN_S`` after ``onset_s``; hum or phasic: the newest step of the push
        that released it). The alarm is raised by the first push that holds that time plus
        the 0.5-s envelope half-window, so the wall-clock delay adds up to one block length
        (and transport).
    ratio : float
        Largest envelope / causal floor so far.
    """

    leg: Leg
    onset_s: float
    alarm_s: float
    ratio: float


@dataclass(frozen=True, slots=True, eq=False)
class StreamUpdate:
    """What one :meth:`StreamingDetector.push` produced.

    Attributes
    ----------
    events : polars.DataFrame
        Newly final events, columns as ``CrampResults.events``; each row equals its row in
        ``finish().events``.
    alarms : tuple of CrampAlarm
        Newly raised provisional alarms.
    final_until_s : float
        Events ending before this time (s from the start) have all been returned.
    retracted : tuple of CrampAlarm
        Alarms (raised by earlier pushes) whose span the final event stage has now decided
        without an event overlapping it: withdraw them. Alarms still open at the end of
        the night are decided by :meth:`StreamingDetector.finish` (see
        :attr:`StreamingDetector.retracted`).
    """

    events: pl.DataFrame
    alarms: tuple[CrampAlarm, ...]
    final_until_s: float
    retracted: tuple[CrampAlarm, ...] = ()


@dataclass(slots=True)
class _Run:
    """What the alarm tracker knows of one contraction (absolute hop indices)."""

    start: int  # first hop at off_ratio x the causal floor
    stop: int  # exclusive end as last seen
    onset: int  # walk-back to onset_ratio (the final stage's onset, before extrapolation)
    plm_like: bool = False  # a burst of PLM length at a PLM interval after the previous one


class _AlarmTracker:
    """Provisional onset alarms of one leg from its newest hops and a causal floor.

    Each update looks at the newest hops (at least :data:`ALARM_BACK_S`) over a causal floor,
    finds the run going on at the newest hop and applies the event stage's rules that can be
    decided from the signal so far (see :meth:`update`); a rule that needs more signal holds
    the alarm (it is re-evaluated at the next push), a rule that has decided vetoes the run.
    """

    def __init__(self, leg: Leg, ls: _LegStream, params: DetectionParams) -> None:
        front = ls.front
        if front is None:
            raise DetectionError(f"{leg} leg has no EMG; alarms need EMG or an envelope")
        self.leg = leg
        self.front: EmgFrontEnd | EnvelopeFrontEnd = front
        self.acc = ls.acc
        self.params = params
        hop = front.hop_s
        self.hop = hop
        self.bn = max(1, round(params.floor_block_s / hop))
        self.n_keep = 2 * max(1, round(params.floor_window_s / params.floor_block_s / 2)) + 1
        self.pad = max(round(params.envelope_window_s / hop), 2 * round(
            params.invalid_margin_s / hop)) + 1
        self.merge_n = round(params.merge_gap_s / hop)
        self.medians: list[NDArray[np.float64]] = []  # per complete block, per channel
        self.blocks_done = 0
        self.end = 0  # newest hop (exclusive) of the last update
        self.current: _Run | None = None  # the run going on at the newest hop
        self.rising: int | None = None  # onset hop of activity that has not reached on_ratio
        self.done_until = -1  # absolute end hop of the last alarmed or vetoed run
        self.vetoed: str | None = None  # why the last decided run was vetoed
        self.held = False  # the current run was held at the last update (not by time)
        self.waiting_for: _AlarmTracker | None = None  # other leg's signal is needed
        self.bursts: deque[_Run] = deque(maxlen=BURST_HISTORY)  # recent completed runs
        self.alarms: list[tuple[CrampAlarm, _Run]] = []  # alarms whose outcome is open
        self.hum = _HumTest(front.fs_hz, params) if isinstance(front, EmgFrontEnd) else None
        self.raw_tail = np.empty((front.n_channels, 0))

    def keep_raw(self, x: NDArray[np.floating], valid: NDArray[np.bool_] | None) -> None:
        """Keep the newest hum-test segment of raw EMG (invalid samples as NaN)."""
        if self.hum is None:
            return
        n = self.hum.seg_n
        blk = np.asarray(x[:, -n:], dtype=np.float64)
        if valid is not None:
            blk = np.where(np.asarray(valid, dtype=bool)[-n:][None, :], blk, np.nan)
        self.raw_tail = np.concatenate((self.raw_tail, blk), axis=1)[:, -n:]

    def _unnotched_hum(self) -> bool:
        """Mains lines in the newest raw segment that the front end does not notch yet: the
        hops under them will be marked 'hum' (invalid) up to ``REVISION_S`` later."""
        if self.hum is None or self.raw_tail.shape[1] < self.hum.seg_n:
            return False
        ok = np.asarray(np.isfinite(self.raw_tail).all(axis=1), dtype=bool)
        if not ok.any():
            return False
        hits = self.hum.hits(self.raw_tail[ok])
        notch_hz = self.front.notch_hz if isinstance(self.front, EmgFrontEnd) else ()
        notched = [n for n, good in zip(notch_hz, list(ok), strict=True) if good]
        return any(f not in done for row, done in zip(hits, notched, strict=True)
                   for f, hit in zip(self.hum.lines, row, strict=True) if hit)

    def _floor(self) -> NDArray[np.float64]:
        """Causal floor per channel: quantile of the recent block medians."""
        fe, p = self.front, self.params
        usable = max(0, (fe.n_hops - self.pad) // self.bn)
        if usable > self.blocks_done:
            b0, b1 = self.blocks_done * self.bn, usable * self.bn
            lo = max(0, b0 - self.pad)
            env = hop_envelope(fe.hop_ms_uv2[:, lo:b1 + self.pad],
                               fe.hop_reason[:, lo:b1 + self.pad], self.hop, params=p)
            blk = env.rms_uv[:, b0 - lo:b1 - lo].reshape(fe.n_channels, -1, self.bn)
            n_ok = np.isfinite(blk).sum(axis=2)
            srt = np.sort(blk, axis=2)  # NaN last
            mid = np.clip((n_ok - 1) // 2, 0, self.bn - 1)
            med = np.take_along_axis(srt, mid[..., None], axis=2)[..., 0]
            med = np.where(n_ok >= FLOOR_MIN_VALID * self.bn, med, np.nan)
            self.medians.extend(med.T)
            self.medians = self.medians[-self.n_keep:]
            self.blocks_done = usable
        if not self.medians:
            return np.full(fe.n_channels, np.nan)
        m = np.stack(self.medians, axis=1)
        srt = np.sort(m, axis=1)
        cnt = np.isfinite(m).sum(axis=1)
        q = np.clip(np.floor(p.floor_quantile * (cnt - 1) + 0.5).astype(np.int64), 0, None)
        fl = np.take_along_axis(srt, q[:, None], axis=1)[:, 0]
        out: NDArray[np.float64] = np.where(cnt > 0, fl, np.nan)
        return out

    def _record(self, spans: NDArray[np.int64], ratio: NDArray[np.float64], a: int,
                n: int) -> None:
        """Remember completed runs (ended more than the merge gap before the newest hop)."""
        p, hop = self.params, self.hop
        last = self.bursts[-1].stop if self.bursts else -1
        for s, e in spans.tolist():
            if e > n - self.merge_n - 1 or a + s <= last:
                continue
            run = _Run(a + s, a + e, a + self._walk_back(ratio, s))
            dur = (e - s) * hop
            prev = next((b for b in reversed(self.bursts)
                         if p.plm_min_burst_s <= (b.stop - b.start) * hop
                         <= p.plm_max_burst_s), None)
            if p.plm_min_burst_s <= dur <= p.plm_max_burst_s and prev is not None and (
                    p.plm_min_interval_s <= (run.start - prev.start) * hop
                    <= p.plm_max_interval_s):
                run.plm_like = prev.plm_like = True
            self.bursts.append(run)
            last = run.stop
        while self.bursts and (self.end - self.bursts[0].stop) * hop > BURST_KEEP_S:
            self.bursts.popleft()

    def _walk_back(self, ratio: NDArray[np.float64], s: int) -> int:
        """Window index where the ratio last stood below ``onset_ratio`` before ``s``."""
        lo = max(0, s - round(self.params.onset_lookback_s / self.hop))
        below = np.flatnonzero(~(ratio[lo:s] >= self.params.onset_ratio))
        return lo + int(below[-1]) + 1 if below.size else lo

    def update(self, other: _AlarmTracker | None) -> CrampAlarm | None:
        """Look at the newest hops; return an alarm if the current run passes every rule.

        Rules, in the event stage's order (each decided on the signal so far):
        ``min_duration_s`` at ``off_ratio`` with ``ALARM_MIN_ON_S`` at ``on_ratio``; no
        unnotched mains hum in the newest raw segment (hold); a run that follows a PLM-length
        burst at a PLM interval is held until it outlasts ``plm_max_burst_s`` (a PLM
        member cannot); standing (shank vertical in most of the onset window: veto); both
        legs moving in the onset window, or the other leg's run (reaching ``on_ratio``, not
        PLM-like) starting within ``onset_window_s`` (veto; the other leg's signal up to
        the end of the onset window is waited for, at most ``ALARM_WAIT_S``); phasic over
        the run so far (hold).
        """
        fe, p, hop = self.front, self.params, self.hop
        self.waiting_for = None
        floor = self._floor()
        end = fe.n_hops - self.pad // 2  # newest hop whose envelope window is complete
        if end <= 0 or not np.isfinite(floor).any():
            return None
        back_n = round(ALARM_BACK_S / hop)
        a = max(0, min(end, self.end) - back_n)
        self.end = end
        lo = max(0, a - self.pad)
        env = hop_envelope(fe.hop_ms_uv2[:, lo:end + self.pad // 2],
                           fe.hop_reason[:, lo:end + self.pad // 2], hop, params=p)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.fmax.reduce(env.rms_uv / floor[:, None], axis=0)[a - lo:end - lo]
            step = np.fmax.reduce(np.sqrt(env.hop_ms_uv2) / floor[:, None],
                                  axis=0)[a - lo:end - lo]
        n = ratio.size
        spans = hysteresis_spans(ratio, on=p.on_ratio, off=p.off_ratio,
                                 merge_gap_n=self.merge_n)
        self._record(spans, ratio, a, n)
        self.rising = None
        if spans.shape[0] == 0 or spans[-1, 1] < n:
            self.current = None
            if n and ratio[-1] >= p.off_ratio:  # active, not (yet) at on_ratio
                self.rising = a + self._walk_back(
                    ratio, int(np.flatnonzero(~(ratio >= p.off_ratio))[-1]) + 1
                    if not (ratio >= p.off_ratio).all() else 0)
            self.held = False
            return None  # no contraction going on at the newest hop
        s, e = (int(v) for v in spans[-1])
        prev = self.current
        if s == 0 and a > 0 and prev is not None:
            run = _Run(prev.start, a + e, prev.onset)  # longer than the window
        else:
            run = _Run(a + s, a + e, a + self._walk_back(ratio, s))
        self.current = run
        if run.start <= self.done_until + self.merge_n:
            self.done_until = run.stop
            return None  # the run that was already alarmed or vetoed
        if prev is None or abs(prev.start - run.start) > self.merge_n:
            self.held = False  # a new run
        s = max(0, run.start - a)
        dur_s = (run.stop - run.start) * hop
        on = np.nan_to_num(ratio[s:e], nan=0.0) >= p.on_ratio
        min_on_n = math.ceil(ALARM_MIN_ON_S / hop)
        if dur_s < p.min_duration_s or int(on.sum()) < min_on_n:
            return None
        # the evidence is complete at the later of min_duration_s and ALARM_MIN_ON_S above
        # on_ratio; a hold by a rule that needs time moves it to where that rule is decided
        done = max(s + int(np.flatnonzero(on)[min_on_n - 1]) + 1,
                   s + math.ceil(p.min_duration_s / hop)) + a
        if self._unnotched_hum():
            self.held = True
            return None
        if any(b.plm_like or p.plm_min_interval_s <= (run.start - b.start) * hop
               <= p.plm_max_interval_s for b in self.bursts
               if p.plm_min_burst_s <= (b.stop - b.start) * hop <= p.plm_max_burst_s
               and b.start < run.start):
            need = run.start + math.ceil((p.plm_max_burst_s + PLM_MARGIN_S) / hop)
            if run.stop < need:
                return None  # could be a member of a PLM train: wait until it is longer
            done = max(done, need)
        onset_s, cross_s = run.onset * hop, run.start * hop
        w0, w1 = onset_s - p.onset_window_s, cross_s + p.onset_window_s
        verdict = self._acc_rules(other, w0, w1, end * hop)
        if verdict == "wait":
            return None
        if verdict is None:
            verdict = self._other_leg(other, run, end)
            if verdict == "wait":
                return None
        if verdict is not None:
            logger.debug("no alarm for the %s-leg run at %.1f s: %s", self.leg, cross_s,
                         verdict)
            self.vetoed = verdict
            self.done_until = run.stop
            return None
        if _quiet_fraction(step[s:e], round(PHASIC_LOCAL_S / hop), p) > \
                p.phasic_max_quiet_fraction:
            self.held = True
            return None
        if self.held:
            done = max(done, end)
        self.done_until = run.stop
        self.vetoed = None
        alarm = CrampAlarm(self.leg, cross_s, min(done, end) * hop,
                           float(np.nanmax(ratio[s:e])))
        self.alarms.append((alarm, run))
        return alarm

    def _acc_rules(self, other: _AlarmTracker | None, w0: float, w1: float, now_s: float
                   ) -> str | None:
        """'standing' or 'body_movement' (both legs' accelerometers moving) in the onset
        window ``[w0, w1)``, ``None`` when neither, ``'wait'`` for the accelerometer."""
        p = self.params
        mine = _acc_state(self.acc, w0, w1, now_s, p)
        if isinstance(mine, str):
            return "wait"
        if mine is None:
            return None
        moving, standing = mine
        if standing:
            return "standing"
        if not moving or other is None:
            return None
        theirs = _acc_state(other.acc, w0, w1, now_s, p)
        if isinstance(theirs, str):
            return "wait"
        return "body_movement" if theirs is not None and theirs[0] else None

    def _other_leg(self, other: _AlarmTracker | None, run: _Run, end: int) -> str | None:
        """'body_movement' when the other leg's run started within the onset window."""
        if other is None:
            return None
        p = self.params
        onset_s = run.onset * self.hop
        if other.end * other.hop < onset_s + p.onset_window_s and (
                end * self.hop - onset_s - p.onset_window_s < ALARM_WAIT_S):
            self.waiting_for = other
            return "wait"
        runs = [*other.bursts, *([other.current] if other.current is not None else [])]
        if any(not r.plm_like and abs(r.onset * other.hop - onset_s) <= p.onset_window_s
               for r in runs):
            return "body_movement"
        rising = other.rising
        if rising is not None and abs(rising * other.hop - onset_s) <= p.onset_window_s and (
                end * self.hop - onset_s - p.onset_window_s < ALARM_WAIT_S):
            self.waiting_for = other
            return "wait"  # the other leg is active and may still reach on_ratio
        return None


def _acc_state(acc: _AccSteps | None, w0: float, w1: float, now_s: float,
               p: DetectionParams) -> tuple[bool, bool] | str | None:
    """(moving, standing) of one leg's accelerometer in ``[w0, w1)``; ``None`` without
    one (or without valid steps); ``'wait'`` while its final steps do not cover the window
    yet (at most ``ALARM_WAIT_S`` past it)."""
    if acc is None:
        return None
    if acc.known_s - TURN_MARGIN_S < w1:
        return "wait" if now_s - w1 < ALARM_WAIT_S else None
    f = acc.features()
    w = f.window(w0, w1)
    if not f.valid[w].any():
        return None
    moving = bool(f.moving(p)[w].any())
    vert = f.vertical(p)[w]
    return moving, bool(vert.mean() >= STANDING_FRACTION) if vert.size else False


class StreamingDetector:
    """Cramp detection block by block, for the overnight service.

    Parameters
    ----------
    legs : sequence of StreamLeg
        One per leg (at most one per leg).
    start : datetime
        Timezone-aware time of sample 0 of every stream.
    params : DetectionParams, optional

    Notes
    -----
    ``finish()`` equals :func:`~crampsense.detection.detect_cramps` on the concatenated
    blocks, by construction: both feed the same per-leg state (EMG front end with carried
    filter state, hop-level arrays, accelerometer steps) and run the same hop and event stage
    over the whole night. During the night, the event stage runs over a window that starts
    :attr:`reach_back_s` before the first undecided span; every hop-level value depends only
    on hops within a bounded distance and the window starts on a floor-block boundary, so the
    values used by a span that ended :attr:`lookahead_s` before the newest final hop are the
    whole night's values, and its event is final.

    Examples
    --------
    >>> import numpy as np
    >>> from datetime import UTC, datetime
    >>> det = StreamingDetector([StreamLeg("left", emg_fs_hz=500.0, emg_channels=("gm",))],
    ...                         start=datetime(2026, 1, 1, tzinfo=UTC))
    >>> x = np.random.default_rng(0).normal(0.0, 2.0, (1, 500 * 120)).astype(np.float32)
    >>> for i in range(0, x.shape[1], 30_000):
    ...     update = det.push("left", emg_uv=x[:, i:i + 30_000])
    >>> det.finish().events.height
    0
    """

    def __init__(self, legs: Sequence[StreamLeg], *, start: datetime,
                 params: DetectionParams | None = None) -> None:
        self.params = p = params or DetectionParams()
        if start.tzinfo is None or start.utcoffset() is None:
            raise DetectionError(
                f"start {start.isoformat()} has no time zone; pass an aware datetime (UTC)")
        if not legs:
            raise DetectionError("no legs given; pass at least one StreamLeg")
        self.start = start.astimezone(UTC)
        self._streams: dict[Leg, _LegStream] = {}
        self._alarms: dict[Leg, _AlarmTracker] = {}
        for cfg in legs:
            if cfg.leg not in LEGS:
                raise DetectionError(f"leg {cfg.leg!r} is not 'left' or 'right'; fix the "
                                     "placement")
            if cfg.leg in self._streams:
                raise DetectionError(f"leg {cfg.leg!r} given twice; put all channels of one "
                                     "leg in one StreamLeg")
            has_emg = cfg.emg_fs_hz is not None or cfg.envelope_fs_hz is not None
            if has_emg and not cfg.emg_channels:
                raise DetectionError(f"{cfg.leg} leg streams EMG but has no emg_channels; "
                                     "name one channel per row")
            ls = _LegStream(cfg.leg, cfg.emg_channels if has_emg else (),
                            emg_fs_hz=cfg.emg_fs_hz,
                            envelope_fs_hz=None if cfg.emg_fs_hz else cfg.envelope_fs_hz,
                            acc_fs_hz=cfg.acc_fs_hz, params=p,
                            full_scale_uv=cfg.emg_full_scale_uv)
            self._streams[cfg.leg] = ls
            if ls.front is not None:
                self._alarms[cfg.leg] = _AlarmTracker(cfg.leg, ls, p)
        half_s = max(1, round(p.floor_window_s / p.floor_block_s / 2)) * p.floor_block_s
        floor_reach_s = (half_s + 2 * p.floor_block_s + p.envelope_window_s
                         + p.invalid_margin_s + 2 * p.hop_s)
        plm_chain_s = p.plm_min_count * p.plm_max_interval_s + p.plm_max_burst_s
        #: Signal after a span's end that its event can depend on (s).
        self.lookahead_s: float = floor_reach_s + (
            p.onset_lookback_s + plm_chain_s + p.merge_gap_s + p.onset_window_s
            + p.got_up_after_s + p.got_up_min_s + p.woke_after_s + STRETCH_AFTER_S
            + PEAK_SMOOTH_S)
        #: Signal before a span's start that its event can depend on (s).
        self.reach_back_s: float = floor_reach_s + (
            p.onset_lookback_s + plm_chain_s + p.merge_gap_s + p.onset_window_s
            + PEAK_SMOOTH_S)
        self._decided = dict.fromkeys(self._streams, 0)  # abs hop: the window starts before
        self._open_from = dict.fromkeys(self._streams, 0)  # abs hop: first undecided span
        self._final_hop = dict.fromkeys(self._streams, -1)  # spans ending by it were returned
        self._final_s = 0.0
        self._evaluated_s = -math.inf
        self._finished = False
        self._no_events = _events_frame([], self.start)
        self._retracted: list[CrampAlarm] = []
        # final events (onset_s, offset_s) per leg, kept while an alarm may overlap them
        self._recent: dict[Leg, list[tuple[float, float]]] = {leg: [] for leg in self._streams}

    @property
    def final_until_s(self) -> float:
        """Events ending before this time (s from the start) have all been returned."""
        return self._final_s

    def push(self, leg: Leg, *, emg_uv: NDArray[np.floating] | None = None,
             emg_valid: NDArray[np.bool_] | None = None,
             emg_envelope: NDArray[np.floating] | None = None,
             acc_mg: NDArray[np.floating] | None = None,
             acc_valid: NDArray[np.bool_] | None = None) -> StreamUpdate:
        """Feed the next block(s) of one leg; return newly final events and alarms.

        Parameters
        ----------
        leg : {"left", "right"}
        emg_uv : ndarray, shape (n_channels, n), optional
            Next raw EMG samples (µV), contiguous with the previous block.
        emg_valid : ndarray of bool, shape (n,), optional
            Validity of the EMG (or envelope) samples of this block.
        emg_envelope : ndarray, shape (n_channels, k), optional
            Next pre-computed envelope samples (for legs configured with
            ``envelope_fs_hz``).
        acc_mg : ndarray, shape (3, m), optional
            Next accelerometer samples (mg).
        acc_valid : ndarray of bool, shape (m,), optional

        Returns
        -------
        StreamUpdate
        """
        if self._finished:
            raise DetectionError("push after finish(); start a new StreamingDetector")
        ls = self._streams.get(leg)
        if ls is None:
            raise DetectionError(f"leg {leg!r} was not configured; configure it in StreamLeg")
        if emg_uv is not None or emg_envelope is not None:
            front = ls.front
            want_raw = isinstance(front, EmgFrontEnd)
            if front is None or (emg_uv is not None) != want_raw:
                kind = "emg_uv" if emg_uv is not None else "emg_envelope"
                raise DetectionError(f"{leg} leg got {kind} but was configured without it; "
                                     "set emg_fs_hz (raw) or envelope_fs_hz (envelope)")
            data = emg_uv if emg_uv is not None else emg_envelope
            front.push(np.asarray(data), emg_valid)
            if emg_uv is not None and leg in self._alarms:
                self._alarms[leg].keep_raw(np.asarray(emg_uv), emg_valid)
        if acc_mg is not None:
            if ls.acc is None:
                raise DetectionError(f"{leg} leg got acc_mg but has no acc_fs_hz; configure "
                                     "it in StreamLeg")
            ls.acc.push(acc_mg, acc_valid)
        alarms: list[CrampAlarm] = []
        if leg in self._alarms and (emg_uv is not None or emg_envelope is not None):
            me = self._alarms[leg]
            other = next((t for name, t in self._alarms.items() if name != leg), None)
            alarms.append(me.update(other))  # type: ignore[arg-type]
            if other is not None and other.waiting_for is me:
                alarms.append(other.update(me))  # type: ignore[arg-type]
        alarms = [a for a in alarms if a is not None]
        for alarm in alarms:
            logger.info("provisional cramp alarm on the %s leg at %.1f s (onset %.1f s)",
                        alarm.leg, alarm.alarm_s, alarm.onset_s)
        events = self._final_events()
        return StreamUpdate(events=events, alarms=tuple(alarms),
                            final_until_s=self._final_s, retracted=self._retract(events))

    @property
    def retracted(self) -> tuple[CrampAlarm, ...]:
        """Every alarm retracted so far: its span was decided and no final event overlaps
        it. After :meth:`finish`, this includes alarms decided by the whole night's result
        (those still open at the end of the night)."""
        return tuple(self._retracted)

    def _retract(self, events: pl.DataFrame, *, final: bool = False) -> tuple[CrampAlarm, ...]:
        """Alarms whose run the final event stage has decided without an event over it.

        An alarm's run ``[onset_s, end of the run]`` is decided once every final-stage
        span that starts before its end is decided (``_open_from``); it stands when a final
        event of its leg overlaps it, and is retracted otherwise."""
        for row in events.select("leg", "onset_s", "offset_s").iter_rows():
            self._recent[row[0]].append((row[1], row[2]))
        out: list[CrampAlarm] = []
        for leg, tr in self._alarms.items():
            if not tr.alarms:
                self._recent[leg].clear()
                continue
            keep: list[tuple[CrampAlarm, _Run]] = []
            for alarm, run in tr.alarms:
                going = tr.current is not None and tr.current.start == run.start
                end_s = (tr.done_until if going else run.stop) * tr.hop
                if run.start <= tr.done_until + tr.merge_n and going:
                    run.stop = max(run.stop, tr.done_until)
                if not final and (going or self._open_from[leg] * tr.hop < end_s):
                    keep.append((alarm, run))
                    continue
                if not any(on < end_s and off > alarm.onset_s
                           for on, off in self._recent[leg]):
                    logger.info("provisional alarm on the %s leg at %.1f s retracted: the "
                                "final event stage rejected it", leg, alarm.alarm_s)
                    out.append(alarm)
            tr.alarms = keep
            first = min((a.onset_s for a, _ in keep), default=math.inf)
            self._recent[leg] = [(on, off) for on, off in self._recent[leg] if off >= first]
        self._retracted.extend(out)
        return tuple(out)

    def _final_events(self) -> pl.DataFrame:
        known = min(ls.known_s() for ls in self._streams.values())
        final_s = known - self.lookahead_s
        if final_s - self._evaluated_s < FINAL_EVERY_S or final_s <= 0:
            return self._no_events
        self._evaluated_s = final_s
        t0 = min(self._decided[leg] * _hop_s(ls) for leg, ls in self._streams.items())
        states, decisions = _evaluate(self._streams, t0 - self.reach_back_s, self.params)
        rows: list[dict[str, object]] = []
        for leg, st in states.items():
            final_hop = math.floor(final_s / st.hop_s)
            prev = self._final_hop[leg]
            mine = [d for d in decisions if d.leg == leg]
            # A span that ended by the final hop no longer changes; one that had not ended by
            # the previous final hop has not been returned. (Its start can still move a few
            # steps earlier while the floor around it is not final, so spans are told apart
            # by their end, not their start.)
            rows.extend(d.event for d in mine
                        if prev < d.span[1] <= final_hop and d.event is not None)
            undecided = [d.span[0] for d in mine if d.span[1] > final_hop]
            self._open_from[leg] = min(undecided) if undecided else final_hop
            self._decided[leg] = max(self._decided[leg], self._open_from[leg])
            self._final_hop[leg] = final_hop
        self._final_s = max(self._final_s, final_s)
        return _events_frame(rows, self.start) if rows else self._no_events

    def finish(self) -> CrampResults:
        """End the night: the whole night's results, equal to ``detect_cramps``.

        Returns
        -------
        CrampResults
        """
        self._finished = True
        res = _results(self._streams, start=self.start, params=self.params)
        for leg in self._recent:
            self._recent[leg] = []
        self._retract(res.events, final=True)
        return res


def _hop_s(ls: _LegStream) -> float:
    return ls.front.hop_s if ls.front is not None else 0.1
