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
  the block medians of the last ``floor_window_s``): seconds after the evidence, not final,
  and never retracted (the final events are the answer).

Memory is bounded by the block size plus the hop-level arrays (10 Hz per channel, ~2.6 MB
per channel-night) and the per-second accelerometer steps.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.detection.detector import (
    LEGS,
    PEAK_SMOOTH_S,
    PHASIC_LOCAL_S,
    STRETCH_AFTER_S,
    CrampResults,
    _evaluate,
    _events_frame,
    _LegStream,
    _quiet_fraction,
    _results,
)
from crampsense.detection.emg import (
    FLOOR_MIN_VALID,
    EmgFrontEnd,
    EnvelopeFrontEnd,
    hop_envelope,
    hysteresis_spans,
)
from crampsense.detection.params import DetectionParams
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
        Signal time at which the evidence was complete (s from the start): the later of the
        ``on_ratio`` crossing and ``min_duration_s`` after ``onset_s``. The alarm is raised
        by the first push that holds that time plus the 0.5-s envelope half-window, so the
        wall-clock delay adds up to one block length (and transport).
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
    """

    events: pl.DataFrame
    alarms: tuple[CrampAlarm, ...]
    final_until_s: float


class _AlarmTracker:
    """Provisional onset alarms of one leg from its newest hops and a causal floor."""

    def __init__(self, leg: Leg, front: EmgFrontEnd | EnvelopeFrontEnd,
                 params: DetectionParams) -> None:
        self.leg = leg
        self.front = front
        self.params = params
        hop = front.hop_s
        self.hop = hop
        self.bn = max(1, round(params.floor_block_s / hop))
        self.n_keep = 2 * max(1, round(params.floor_window_s / params.floor_block_s / 2)) + 1
        self.pad = max(round(params.envelope_window_s / hop), 2 * round(
            params.invalid_margin_s / hop)) + 1
        self.medians: list[NDArray[np.float64]] = []  # per complete block, per channel
        self.blocks_done = 0
        self.alarmed_until = -1  # absolute hop of the end of the last alarmed run
        self.run_start: int | None = None  # absolute hop of the current run's start

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

    def update(self, other: _AlarmTracker | None) -> CrampAlarm | None:
        fe, p = self.front, self.params
        floor = self._floor()
        end = fe.n_hops - self.pad // 2  # newest hop whose envelope window is complete
        if end <= 0 or not np.isfinite(floor).any():
            return None
        a = max(0, end - round(ALARM_BACK_S / self.hop))
        lo = max(0, a - self.pad)
        env = hop_envelope(fe.hop_ms_uv2[:, lo:end + self.pad // 2],
                           fe.hop_reason[:, lo:end + self.pad // 2], self.hop, params=p)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.fmax.reduce(env.rms_uv / floor[:, None], axis=0)[a - lo:end - lo]
            step = np.fmax.reduce(np.sqrt(env.hop_ms_uv2) / floor[:, None],
                                  axis=0)[a - lo:end - lo]
        spans = hysteresis_spans(ratio, on=p.on_ratio, off=p.off_ratio,
                                 merge_gap_n=round(p.merge_gap_s / self.hop))
        self.run_start = None
        if spans.shape[0] == 0 or spans[-1, 1] < ratio.size:
            return None  # no contraction going on at the newest hop
        s, e = (int(v) for v in spans[-1])
        self.run_start = a + s
        if a + s <= self.alarmed_until + round(p.merge_gap_s / self.hop):
            self.alarmed_until = a + e
            return None  # the run that already raised an alarm
        if (e - s) * self.hop < p.min_duration_s:
            return None
        if _quiet_fraction(step[s:e], round(PHASIC_LOCAL_S / self.hop), p) > \
                p.phasic_max_quiet_fraction:
            return None
        if other is not None and other.run_start is not None and abs(
                other.run_start * other.hop - (a + s) * self.hop) <= p.onset_window_s:
            return None  # both legs started together: body movement
        self.alarmed_until = a + e
        # the evidence was complete at the later of the on_ratio crossing and min_duration_s
        first_on = s + int(np.argmax(np.nan_to_num(ratio[s:e], nan=0.0) >= p.on_ratio))
        done = max(first_on, s + math.ceil(p.min_duration_s / self.hop))
        return CrampAlarm(self.leg, (a + s) * self.hop, (a + done) * self.hop,
                          float(np.nanmax(ratio[s:e])))


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
                self._alarms[cfg.leg] = _AlarmTracker(cfg.leg, ls.front, p)
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
        self._decided = dict.fromkeys(self._streams, 0)  # abs hop: spans before are done
        self._final_s = 0.0
        self._evaluated_s = -math.inf
        self._finished = False
        self._no_events = _events_frame([], self.start)

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
        if acc_mg is not None:
            if ls.acc is None:
                raise DetectionError(f"{leg} leg got acc_mg but has no acc_fs_hz; configure "
                                     "it in StreamLeg")
            ls.acc.push(acc_mg, acc_valid)
        alarms: list[CrampAlarm] = []
        if leg in self._alarms and (emg_uv is not None or emg_envelope is not None):
            other = next((t for name, t in self._alarms.items() if name != leg), None)
            alarm = self._alarms[leg].update(other)
            if alarm is not None:
                logger.info("provisional cramp alarm on the %s leg at %.1f s (onset %.1f s)",
                            alarm.leg, alarm.alarm_s, alarm.onset_s)
                alarms.append(alarm)
        return StreamUpdate(events=self._final_events(), alarms=tuple(alarms),
                            final_until_s=self._final_s)

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
            mine = [d for d in decisions if d.leg == leg
                    and d.span[0] >= self._decided[leg]]
            final_hop = math.floor(final_s / st.hop_s)
            undecided = [d.span[0] for d in mine if d.span[1] > final_hop]
            rows.extend(d.event for d in mine if d.span[1] <= final_hop and d.event is not None)
            self._decided[leg] = max(self._decided[leg],
                                     min(undecided) if undecided else final_hop)
        self._final_s = max(self._final_s, final_s)
        return _events_frame(rows, self.start) if rows else self._no_events

    def finish(self) -> CrampResults:
        """End the night: the whole night's results, equal to ``detect_cramps``.

        Returns
        -------
        CrampResults
        """
        self._finished = True
        return _results(self._streams, start=self.start, params=self.params)


def _hop_s(ls: _LegStream) -> float:
    return ls.front.hop_s if ls.front is not None else 0.1
