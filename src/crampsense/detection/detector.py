"""The cramp detector: leg signals in, a :class:`CrampResults` out (:func:`detect_cramps`).

Pure: arrays and sample rates in, events and coverage out; no I/O, no asyncio. The per-leg
stream state (EMG or envelope front end, accelerometer steps) is shared with the streaming
detector; the event decision rules are in :mod:`crampsense.detection.rules` and the results
object in :mod:`crampsense.detection.results`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.detection.acc import AccFeatures, features_from_steps, step_stats
from crampsense.detection.acc_only import possible_cramps
from crampsense.detection.emg import (
    REASON_NAMES,
    REASON_VALID,
    REVISION_S,
    EmgFrontEnd,
    EnvelopeFrontEnd,
    emg_floor,
    hop_envelope,
)
from crampsense.detection.params import DetectionParams
from crampsense.detection.results import (
    COVERAGE_SCHEMA,
    REJECTED_SCHEMA,
    CrampResults,
    empty_frame,
)
from crampsense.detection.rules import Decision, LegState, candidates, leg_events, spans_of
from crampsense.detection.schema import EVENT_SCHEMA
from crampsense.detection.sleep import (
    AccEpochs,
    SleepPeriod,
    acc_epochs,
    sleep_period,
)
from crampsense.errors import DetectionError
from crampsense.models import MIN_ACC_FS_HZ, Leg

__all__ = ["CrampResults", "LegSignals", "detect_cramps"]

logger = logging.getLogger(__name__)

LEGS: Final[tuple[Leg, ...]] = ("left", "right")
#: same block-wise code the streaming detector uses (bounded temporary memory).
OFFLINE_ACC_BLOCK_S: Final = 600.0
#: Accelerometer step (s) and how many seconds at the end of the steps are provisional: the
#: orientation change of a step needs the steps 2 s after it (acc.TURN_SPAN_S / 2), plus one.
ACC_STEP_S: Final = 1.0
TURN_MARGIN_S: Final = 3.0


@dataclass(frozen=True, slots=True, eq=False)
class LegSignals:
    """Everything recorded from one leg, each stream starting at the recording start.

    Attributes
    ----------
    leg : {"left", "right"}
    emg_uv : ndarray of float32, shape (n_channels, n), or None
        EMG of all channels of this leg (µV); sample 0 at the recording start.
    emg_fs_hz : float or None
        EMG sample rate (Hz), 100 Hz or more.
    emg_channels : tuple of str
        Channel labels; ``("ch0", "ch1", ...)`` when empty.
    emg_valid : ndarray of bool, shape (n,), or None
        False where there is no usable signal (gap, lead-off, saturation).
    acc_mg : ndarray of float32, shape (3, m), or None
        Acceleration (milli-g), x along the shank; sample 0 at the recording start.
    acc_fs_hz : float or None
    acc_valid : ndarray of bool, shape (m,), or None
    emg_envelope : ndarray, shape (n_channels, k), or None
        Pre-computed EMG envelope (analog front end such as MyoWare: rectified and smoothed,
        any unit, zero at rest), used when ``emg_uv`` is None. Resampled to the 0.1-s hop
        grid (mean square per hop) and fed into the same floor/ratio/event stage, so it is
        gain-invariant like raw EMG; see :class:`~crampsense.detection.emg.EnvelopeFrontEnd`.
    envelope_fs_hz : float or None
        Envelope sample rate (Hz), 10 Hz or more.
    """

    leg: Leg
    emg_uv: NDArray[np.float32] | None
    emg_fs_hz: float | None
    emg_channels: tuple[str, ...] = ()
    emg_valid: NDArray[np.bool_] | None = None
    acc_mg: NDArray[np.float32] | None = None
    acc_fs_hz: float | None = None
    acc_valid: NDArray[np.bool_] | None = None
    emg_envelope: NDArray[np.floating] | None = None
    envelope_fs_hz: float | None = None

    def emg_duration_s(self) -> float:
        """Length of the EMG (or, without raw EMG, of the envelope) in seconds."""
        if self.emg_uv is not None and self.emg_fs_hz is not None:
            return float(np.shape(self.emg_uv)[-1]) / self.emg_fs_hz
        if self.emg_envelope is not None and self.envelope_fs_hz is not None:
            return float(np.shape(self.emg_envelope)[-1]) / self.envelope_fs_hz
        return 0.0

    def acc_duration_s(self) -> float:
        """Length of the accelerometer stream in seconds."""
        if self.acc_mg is None or self.acc_fs_hz is None:
            return 0.0
        return float(np.shape(self.acc_mg)[-1]) / self.acc_fs_hz



class _AccSteps:
    """Per-second accelerometer steps of one leg, accumulated block by block."""

    def __init__(self, fs_hz: float) -> None:
        if not math.isfinite(fs_hz) or fs_hz <= 0:
            raise DetectionError(f"accelerometer rate {fs_hz!r} Hz is not a positive number; "
                                 "pass the rate in Hz")
        self.fs_hz = float(fs_hz)
        self.step_n = max(1, round(ACC_STEP_S * fs_hz))
        self.n_samples = 0
        self._tail = np.empty((3, 0))
        self._tail_valid = np.empty(0, dtype=bool)
        self._mean: list[NDArray[np.float64]] = []
        self._motion: list[NDArray[np.float64]] = []
        self._ok: list[NDArray[np.bool_]] = []
        self._epochs: list[AccEpochs] = []
        self._cache: AccFeatures | None = None
        self._n_steps = 0  # total size of self._motion (a running count: pushes are many)

    def push(self, acc_mg: NDArray[np.floating], valid: NDArray[np.bool_] | None) -> None:
        a = np.asarray(acc_mg)
        if a.ndim != 2 or a.shape[0] != 3:
            raise DetectionError(f"accelerometer block has shape {a.shape}; pass (3, n_samples) "
                                 "with x along the shank")
        if valid is not None and np.shape(valid) != (a.shape[1],):
            raise DetectionError(f"acc_valid has shape {np.shape(valid)} but the block has "
                                 f"{a.shape[1]} samples; pass one flag per sample")
        if a.shape[1] == 0:
            return
        self.n_samples += int(a.shape[1])
        v = np.ones(a.shape[1], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        x = np.concatenate((self._tail, np.asarray(a, dtype=np.float64)), axis=1)
        vv = np.concatenate((self._tail_valid, v))
        done = (x.shape[1] // self.step_n) * self.step_n
        if done:
            epoch_t0_s = self.known_s
            _, mean, motion, ok = step_stats(x[:, :done], self.fs_hz, vv[:done])
            self._mean.append(mean)
            self._motion.append(motion)
            self._ok.append(ok)
            self._n_steps += int(motion.size)
            # The same 1-s steps as epochs for the sleep period and accelerometer-only
            # detection (per-epoch features only: block-composable like the steps).
            if self.fs_hz >= MIN_ACC_FS_HZ:  # below it: no sleep period, no acc-only events
                self._epochs.append(acc_epochs(x[:, :done], self.fs_hz, valid=vv[:done],
                                               epoch_s=self.step_n / self.fs_hz,
                                               start_s=epoch_t0_s))
            self._cache = None
        self._tail, self._tail_valid = x[:, done:], vv[done:]

    @property
    def known_s(self) -> float:
        return self._n_steps * self.step_n / self.fs_hz

    def epochs(self) -> AccEpochs | None:
        """The 1-s epochs so far (``None`` before the first whole second)."""
        if not self._epochs:
            return None
        if len(self._epochs) > 1:  # keep one part (bounded list length)
            self._epochs = [AccEpochs.concat(self._epochs)]
        return self._epochs[0]

    def features(self) -> AccFeatures:
        if self._cache is None:
            if len(self._mean) > 1:  # keep one array per kind (bounded list length)
                self._mean = [np.concatenate(self._mean, axis=1)]
                self._motion = [np.concatenate(self._motion)]
                self._ok = [np.concatenate(self._ok)]
            mean = self._mean[0] if self._mean else np.empty((3, 0))
            motion = self._motion[0] if self._motion else np.empty(0)
            ok = self._ok[0] if self._ok else np.empty(0, dtype=bool)
            self._cache = features_from_steps(self.step_n / self.fs_hz, mean, motion, ok)
        return self._cache


class _LegStream:
    """Everything kept for one leg while a night is processed block by block: the EMG (or
    envelope) front end with its hop-level arrays and the accelerometer steps. Both
    :func:`detect_cramps` and :class:`~crampsense.detection.stream.StreamingDetector` feed
    one of these per leg, so the offline result is the streaming result by construction."""

    def __init__(self, leg: Leg, channels: tuple[str, ...], *, emg_fs_hz: float | None,
                 envelope_fs_hz: float | None, acc_fs_hz: float | None,
                 params: DetectionParams, full_scale_uv: float | None = None) -> None:
        self.leg = leg
        self.channels = channels
        self.front: EmgFrontEnd | EnvelopeFrontEnd | None = None
        if emg_fs_hz is not None:
            self.front = EmgFrontEnd(emg_fs_hz, len(channels), params=params,
                                     full_scale_uv=full_scale_uv)
        elif envelope_fs_hz is not None:
            self.front = EnvelopeFrontEnd(envelope_fs_hz, len(channels), params=params)
        self.acc = _AccSteps(acc_fs_hz) if acc_fs_hz is not None else None

    @property
    def emg_duration_s(self) -> float:
        return 0.0 if self.front is None else self.front.n_samples / self.front.fs_hz

    @property
    def acc_duration_s(self) -> float:
        return 0.0 if self.acc is None else self.acc.n_samples / self.acc.fs_hz

    def known_s(self) -> float:
        """Time up to which everything of this leg is final at the hop level (s)."""
        out = math.inf
        if self.front is not None:
            out = self.front.n_hops * self.front.hop_s - REVISION_S
        if self.acc is not None:
            out = min(out, self.acc.known_s - TURN_MARGIN_S)
        return out



def _validate(legs: Sequence[LegSignals], start: datetime) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise DetectionError(
            f"start {start.isoformat()} has no time zone; pass an aware datetime (UTC)")
    if not legs:
        raise DetectionError("no leg signals given; pass at least one LegSignals")
    seen: set[str] = set()
    for sig in legs:
        if sig.leg not in LEGS:
            raise DetectionError(f"leg {sig.leg!r} is not 'left' or 'right'; fix the placement")
        if sig.leg in seen:
            raise DetectionError(
                f"leg {sig.leg!r} given twice; put all channels of one leg in one LegSignals")
        seen.add(sig.leg)
        if sig.emg_uv is not None:
            if sig.emg_fs_hz is None:
                raise DetectionError(f"{sig.leg} leg has EMG but no emg_fs_hz; pass the rate")
            _check_rows(sig.leg, "EMG", np.shape(sig.emg_uv), sig.emg_channels)
        elif sig.emg_envelope is not None:
            if sig.envelope_fs_hz is None:
                raise DetectionError(
                    f"{sig.leg} leg has an EMG envelope but no envelope_fs_hz; pass the rate")
            _check_rows(sig.leg, "envelope", np.shape(sig.emg_envelope), sig.emg_channels)
        if sig.acc_mg is not None and sig.acc_fs_hz is None:
            raise DetectionError(f"{sig.leg} leg has acceleration but no acc_fs_hz; pass it")


def _check_rows(leg: str, what: str, shape: tuple[int, ...], names: tuple[str, ...]) -> None:
    if len(shape) != 2:
        raise DetectionError(f"{leg} leg {what} has shape {shape}; pass (n_channels, n_samples)")
    if names and len(names) != shape[0]:
        raise DetectionError(
            f"{leg} leg has {shape[0]} {what} rows but {len(names)} channel names; pass one "
            "name per row")




def _coverage_rows(st: LegState, ls: _LegStream, duration_s: float
                   ) -> list[tuple[str, float, float, str]]:
    leg = st.leg
    if st.env is None:
        return [(leg, 0.0, duration_s, "no-emg")]
    reason = st.env.reason
    dead = (reason != REASON_VALID).all(axis=0)
    code = np.where(dead, reason.max(axis=0), 0)
    rows: list[tuple[str, float, float, str]] = []
    for value, name in REASON_NAMES.items():
        for a, b in spans_of(code == value):
            rows.append((leg, a * st.hop_s, b * st.hop_s, name))
    end_s = st.env.n_hops * st.hop_s
    tail = ls.emg_duration_s
    if tail - end_s > 0:  # the last partial step
        end_s = tail
    if duration_s - end_s > 1e-9:
        rows.append((leg, end_s, duration_s, "gap"))
    return rows


def _window_leg(ls: _LegStream, t0_s: float, params: DetectionParams) -> LegState:
    """Hop-level stage of one leg from ``t0_s`` (rounded down to a floor block) to the last
    complete hop: envelope, floor, ratios and candidates.

    Every value at a step depends only on steps within a bounded distance, and the window
    starts on a floor-block boundary, so away from the window's start and end the arrays are
    bit-identical to those of the whole night (the streaming detector relies on this)."""
    st = LegState(leg=ls.leg, channels=ls.channels)
    if ls.acc is not None:
        st.acc = ls.acc.features()
    fe = ls.front
    if fe is None:
        return st
    if fe.n_hops == 0:
        raise DetectionError(
            f"{ls.leg} leg EMG has only {fe.n_samples} samples; pass at least "
            f"{params.hop_s:g} s")
    hop = fe.hop_s
    bn = max(1, round(params.floor_block_s / hop))
    h0 = 0 if t0_s <= 0 else min(int(t0_s / hop) // bn, fe.n_hops // bn) * bn
    env = hop_envelope(fe.hop_ms_uv2[:, h0:], fe.hop_reason[:, h0:], hop, params=params,
                       notch_hz=fe.notch_hz, band_hz=fe.band_hz)
    floor = emg_floor(env.rms_uv, hop, params)
    with np.errstate(invalid="ignore", divide="ignore"):
        st.ratio_ch = env.rms_uv / floor
        step = np.sqrt(env.hop_ms_uv2) / floor
    st.env = env
    st.h0 = h0
    dms = fe.hop_dms_uv2
    st.dms = None if dms is None else dms[:, h0:]
    st.ratio = np.fmax.reduce(st.ratio_ch, axis=0)
    st.step_ratio = np.fmax.reduce(step, axis=0)
    candidates(st, params)
    return st



def detect_cramps(legs: Sequence[LegSignals], *, start: datetime,
                  params: DetectionParams | None = None) -> CrampResults:
    """Detect nocturnal leg cramps in one night of leg EMG (and accelerometer) signals.

    Parameters
    ----------
    legs : sequence of LegSignals
        One entry per leg (at most one per leg). A leg with an accelerometer (25 Hz or more)
        and no EMG gets accelerometer-only ``"possible_cramp"`` events
        (:func:`crampsense.detection.acc_only.possible_cramps`); a leg with neither is
        reported as not covered (``"no-emg"``). Every leg with an accelerometer gets a sleep
        period (``CrampResults.sleep``).
    start : datetime
        Timezone-aware time of sample 0 of every stream.
    params : DetectionParams, optional
        Defaults to ``DetectionParams()``.

    Returns
    -------
    CrampResults
        ``events``, ``coverage``, ``rejected``, ``params``, ``start``, ``duration_s``.

    Raises
    ------
    DetectionError
        Naive ``start``, duplicate legs, wrong array shapes, EMG below 100 Hz.

    Notes
    -----
    **Method.** Per channel: Butterworth band-pass 20 Hz - min(450 Hz, 0.45 fs) with a notch
    only at measured mains lines; RMS envelope over 1 s at 10 Hz taken as the median of 0.1-s
    mean squares (gates pops, hypnic jerks, fasciculations, QRS crosstalk); adaptive floor =
    low quantile of 10-s block medians over a centred 30-min window, so the ratio envelope /
    floor is gain-invariant. Per leg the largest channel ratio is used (a cramp may involve
    only part of one muscle head). Hysteresis (``on_ratio`` / ``off_ratio``) with short gaps
    bridged gives candidates. The onset is walked back along the rising ramp to
    ``onset_ratio`` and the ramp's excess amplitude ``sqrt(ratio² - 1)`` is extrapolated
    linearly to zero (the ramp start). If the leg stands up during the event, the event ends
    there. The offset is the end of the plateau, not of the slow decay after it: the plateau
    level is the median of the event's core (up to the last step at or above
    ``offset_plateau_fraction`` x the span's median); the falling edge, measured from the
    level it starts from (a stretch burst at the end included), is fitted with two segments
    (constant, then a straight line) in the log excess amplitude, and the knee is the offset.

    **Decision.** Hard rules: shorter than ``min_duration_s`` (dropped); starting while
    standing (shank vertical in most of the onset window); a plateau above 40x the floor, or
    (at 800 Hz or more) a strong, long rise whose spectrum is as broadband as the amplifier
    floor: not EMG, reported in ``coverage`` as ``"not-emg"``. Every other candidate is
    weighed by a decision model (gradient-boosted trees over physiological evidence, fitted
    on the night generator's tuning world by ``python benchmarks/fit_detector.py``; see
    :mod:`crampsense.detection.model` and :func:`crampsense.detection.rules.event_features`):
    duration, plateau, share of dipping steps (phasic vs one sustained contraction),
    periodic-limb-movement train membership (``plm_*``; WASM 2016) and other rises within
    2 min, the onset ramp, movement of that leg at the onset and after the ramp, the other
    leg's activity and movement, the level before and after and how long the absolute
    envelope stays raised (slow tone changes), the envelope's variability, channel
    agreement. Spans without usable signal are reported in ``coverage`` and never contain
    events. ``CrampResults.rejected`` lists what was not reported and why;
    ``CrampResults.candidates`` every weighed candidate with its features and probability.

    **Context flags.** ``woke``: accelerometer movement (``move_mg``, ``turn_deg``) on that
    leg within ``woke_after_s`` of the onset, before any getting up. ``got_up``: shank
    vertical (``|x| > vertical_mg``) for ``got_up_min_s`` within the event or up to
    ``got_up_after_s`` after it. ``stretched``: the 2-s RMS of the ratio in the last
    ``stretch_window_s`` of the event (or 5 s after) reaches ``stretch_ratio`` x the median
    plateau before that window.

    **Confidence** = the decision model's probability that the candidate is a cramp;
    events are reported from 0.5 (chosen in advance). Mixed evidence gives a middling
    confidence.

    **events columns**

    ============ ================= ===============================================
    onset_s      float64, s        onset, seconds from ``start``
    offset_s     float64, s        offset, seconds from ``start``
    duration_s   float64, s        offset_s - onset_s
    onset        datetime[UTC]     ``start + onset_s``
    offset       datetime[UTC]     ``start + offset_s``
    leg          str               "left" / "right"
    channels     list[str]         channels whose own ratio reached ``on_ratio``
    peak_rel     float64, ratio    largest 3-s RMS of the 1-s envelope / floor
    mean_rel     float64, ratio    mean 1-s envelope / floor within the event
    severity     str               "mild" / "moderate" / "severe" (grade_severity)
    confidence   float64, 0-1      the decision model's probability (0.5-1.0)
    kind         str               "cramp", or "possible_cramp" for accelerometer-only legs
    evidence     str               "emg", "emg+acc" (accelerometer valid during the event)
                                   or "acc" (accelerometer only)
    woke         bool              movement burst after onset
    got_up       bool              stood up during or within 2 min after
    stretched    bool              stronger burst at the end
    ============ ================= ===============================================

    References
    ----------
    .. [1] Berry R.B. et al., The AASM Manual for the Scoring of Sleep and Associated Events,
       v2.5, American Academy of Sleep Medicine, 2018 (leg EMG recording and filters).
    .. [2] Ferri R. et al., World Association of Sleep Medicine (WASM) 2016 standards for
       recording and scoring leg movements in polysomnograms, Sleep Med 26:86-95, 2016.
    .. [3] Minetto M.A. et al., Origin and development of muscle cramps, J Neurophysiol 102,
       2009 (cramp motor-unit firing).
    .. [4] Hallegraeff J. et al., Criteria for diagnosing nocturnal leg cramps, BMC Fam Pract
       2017 (duration, relief by stretching).
    .. [5] Vallat R. & Walker M.P., YASA, eLife 2021 (``compare_detection``: event matching
       by interval overlap).
    """
    params = params or DetectionParams()
    _validate(legs, start)
    streams: dict[Leg, _LegStream] = {}
    for sig in legs:
        ls = _stream_for(sig, params)
        if ls.front is not None:
            if sig.emg_uv is not None:
                ls.front.push(np.asarray(sig.emg_uv), sig.emg_valid)
            else:
                ls.front.push(np.asarray(sig.emg_envelope), sig.emg_valid)
        if ls.acc is not None and sig.acc_mg is not None:
            # In blocks: the features are block-composable, and whole-night float64 copies
            # of the accelerometer would add ~100 MB to the peak memory of an 8-h night.
            n_acc = int(np.shape(sig.acc_mg)[-1])
            step = max(1, round(OFFLINE_ACC_BLOCK_S * ls.acc.fs_hz))
            for a in range(0, n_acc, step):
                ls.acc.push(sig.acc_mg[:, a:a + step],
                            None if sig.acc_valid is None else sig.acc_valid[a:a + step])
        streams[sig.leg] = ls
    return _results(streams, start=start, params=params)


def _stream_for(sig: LegSignals, params: DetectionParams) -> _LegStream:
    """The per-leg stream state that :func:`detect_cramps` feeds one whole night."""
    raw = sig.emg_uv is not None
    env = not raw and sig.emg_envelope is not None
    data = sig.emg_uv if raw else sig.emg_envelope
    rows = int(np.shape(data)[0]) if data is not None else 0
    channels = sig.emg_channels or tuple(f"ch{i}" for i in range(rows))
    return _LegStream(sig.leg, channels, emg_fs_hz=sig.emg_fs_hz if raw else None,
                      envelope_fs_hz=sig.envelope_fs_hz if env else None,
                      acc_fs_hz=sig.acc_fs_hz if sig.acc_mg is not None else None,
                      params=params)


def _evaluate(streams: Mapping[Leg, _LegStream], t0_s: float, params: DetectionParams
              ) -> tuple[dict[Leg, LegState], list[Decision]]:
    """Hop-level and event stage of every leg from ``t0_s`` on (0: the whole night)."""
    states = {leg: _window_leg(ls, t0_s, params) for leg, ls in streams.items()}
    decisions: list[Decision] = []
    for leg, st in states.items():
        other = next((o for name, o in states.items() if name != leg), None)
        # A leg without EMG (accelerometer only) gets no EMG decisions here; the
        # accelerometer-only "possible cramps" are added by their own stage.
        fe = streams[leg].front
        decisions.extend(leg_events(st, other, params, emg_fs_hz=fe.fs_hz if isinstance(
            fe, EmgFrontEnd) else None))
    return states, decisions


def _events_frame(rows: Sequence[Mapping[str, object]], start_utc: datetime) -> pl.DataFrame:
    """Event rows (dicts without ``onset``/``offset``) as a frame with EVENT_SCHEMA."""
    if not rows:
        return empty_frame(EVENT_SCHEMA)
    events = pl.DataFrame(list(rows), schema={k: v for k, v in EVENT_SCHEMA.items()
                                              if k not in ("onset", "offset")})
    return events.with_columns(
        (pl.lit(start_utc) + pl.duration(microseconds=(pl.col("onset_s") * 1e6).round()
                                         .cast(pl.Int64))).dt.cast_time_unit("us")
        .alias("onset"),
        (pl.lit(start_utc) + pl.duration(microseconds=(pl.col("offset_s") * 1e6).round()
                                         .cast(pl.Int64))).dt.cast_time_unit("us")
        .alias("offset"),
    ).select(list(EVENT_SCHEMA)).cast(EVENT_SCHEMA).sort("onset_s", "leg")  # type: ignore[arg-type]


def _results(streams: Mapping[Leg, _LegStream], *, start: datetime,
             params: DetectionParams) -> CrampResults:
    """The whole night's :class:`CrampResults` from the legs' stream states."""
    duration_s = max(max(ls.emg_duration_s, ls.acc_duration_s) for ls in streams.values())
    states, decisions = _evaluate(streams, 0.0, params)
    rows = [d.event for d in decisions if d.event is not None]
    rejected = [d.rejected for d in decisions if d.rejected is not None]
    cand_rows: list[dict[str, object]] = [
        {"leg": d.leg, "onset_s": d.onset_s, "offset_s": d.offset_s,
         "probability": d.probability, "reported": d.event is not None, **(d.features or {})}
        for d in decisions if d.features is not None]
    epochs = {leg: ep for leg, ls in streams.items()
              if ls.acc is not None and (ep := ls.acc.epochs()) is not None and ep.n > 0}
    sleep: dict[str, SleepPeriod] = {leg: _sleep_of(ep) for leg, ep in epochs.items()}
    coverage: list[tuple[str, float, float, str]] = []
    evidence: dict[str, str] = {}
    for leg, st in states.items():
        ls = streams[leg]
        if ls.front is None and leg in epochs:
            # Accelerometer only: "possible cramps" from the leg's movement pattern.
            other = next((ep for name, ep in epochs.items() if name != leg), None)
            acc_cands: list[dict[str, object]] = []
            acc_rows = possible_cramps(epochs[leg], sleep=sleep[leg], leg=leg, other=other,
                                       collect=acc_cands)
            cand_rows.extend(acc_cands)
            rows.extend(acc_rows.to_dicts())
            coverage.extend(_acc_coverage_rows(leg, epochs[leg], sleep[leg], duration_s))
            evidence[leg] = "acc"
        else:
            coverage.extend(_coverage_rows(st, ls, duration_s))
            coverage.extend((leg, a, b, "not-emg") for d in decisions
                            if d.leg == leg and d.uncovered is not None
                            for a, b in (d.uncovered,))
            evidence[leg] = ("none" if ls.front is None else
                             "envelope" if isinstance(ls.front, EnvelopeFrontEnd) else "emg")
    for r in rejected:
        logger.debug("rejected a %s-leg candidate at %.1f s: %s", r[0], r[1], r[3])
    start_utc = start.astimezone(UTC)
    cov = (pl.DataFrame(coverage, schema=dict(COVERAGE_SCHEMA), orient="row")
           .sort("leg", "start_s") if coverage else empty_frame(COVERAGE_SCHEMA))
    rej = (pl.DataFrame(rejected, schema=dict(REJECTED_SCHEMA), orient="row")
           if rejected else empty_frame(REJECTED_SCHEMA))
    return CrampResults(
        events=_events_frame(rows, start_utc), coverage=cov, rejected=rej, params=params,
        start=start_utc, duration_s=duration_s, legs=tuple(states),
        notch_hz={leg: tuple(sorted({f for ch in st.env.notch_hz for f in ch}))
                  for leg, st in states.items() if st.env is not None},
        band_hz={leg: st.env.band_hz for leg, st in states.items()
                 if st.env is not None and not math.isnan(st.env.band_hz[0])},
        sleep=sleep, evidence=evidence,
        candidates=pl.DataFrame(cand_rows) if cand_rows else None,
    )


def _sleep_of(epochs_1s: AccEpochs) -> SleepPeriod:
    """HDCZA sleep period of one leg from its 1-s epochs (merged to 5 s inside)."""
    return sleep_period(epochs_1s)


def _acc_coverage_rows(leg: str, epochs: AccEpochs, sleep: SleepPeriod, duration_s: float
                       ) -> list[tuple[str, float, float, str]]:
    """Spans an accelerometer-only leg did not cover: invalid epochs and non-wear."""
    rows: list[tuple[str, float, float, str]] = []
    es = epochs.epoch_s
    for a, b in spans_of(~epochs.valid):
        rows.append((leg, epochs.start_s + a * es, epochs.start_s + b * es, "gap"))
    for a, b in sleep.nonwear.iter_rows():
        rows.append((leg, float(a), float(b), "non-wear"))
    end_s = epochs.end_s
    if duration_s - end_s > 1e-9:
        rows.append((leg, end_s, duration_s, "gap"))
    return rows
