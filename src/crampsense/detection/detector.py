"""The offline cramp detector: leg signals in, a :class:`CrampResults` out.

Pure: arrays and sample rates in, events and coverage out; no I/O, no asyncio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.detection.acc import AccFeatures, acc_features
from crampsense.detection.emg import (
    REASON_NAMES,
    REASON_VALID,
    Envelope,
    emg_envelope,
    emg_floor,
    hysteresis_spans,
)
from crampsense.detection.params import DetectionParams
from crampsense.errors import DetectionError
from crampsense.models import CrampEvent, Leg, Severity, grade_severity

__all__ = ["CrampResults", "LegSignals", "detect_cramps"]

logger = logging.getLogger(__name__)

LEGS: Final[tuple[Leg, ...]] = ("left", "right")
#: Confidence of an EMG event = CONF_BASE + CONF_SPAN x (weighted evidence in 0..1); an event
#: that passed every rule is more likely a cramp than not, hence the base of 0.4.
CONF_BASE: Final = 0.4
CONF_SPAN: Final = 0.6
#: Weights of plateau height, duration and channel agreement in the evidence score.
CONF_WEIGHTS: Final = (0.45, 0.30, 0.25)
#: Plateau and duration at which their evidence saturates: 2 x on_ratio is a clear plateau;
#: a minute of sustained contraction is unmistakable.
CONF_FULL_DURATION_S: Final = 60.0
#: The stretch burst must last this long (s) and may follow the offset by this much (s).
STRETCH_MIN_S: Final = 1.0
#: peak_rel is the largest RMS of the 1-s envelope ratio over this long (s): the maximum of a
#: raw 1-s envelope over minutes of plateau sits ~10 % above the level (estimation noise);
#: forced stretches, the usual peak, last 2-5 s.
PEAK_SMOOTH_S: Final = 3.0
#: The end-of-event envelope is averaged over this long (s) before it is compared with the
#: plateau: forced stretches last 2-5 s, plateau wobble and estimation noise are shorter.
STRETCH_SMOOTH_S: Final = 2.0
STRETCH_AFTER_S: Final = 5.0
#: The plateau a stretch is compared with is the event without its last this many seconds:
#: forced stretches last 2-5 s and end the cramp (the offset is the end of the plateau or
#: stretch), so the reference is plateau, not stretch; a reference taken only before the
#: last stretch_window_s would be mostly ramp in a short cramp.
STRETCH_MAX_S: Final = 5.0
#: Ramps shorter than this many steps (1 s) are treated as steps: no extrapolation.
RAMP_MIN_STEPS: Final = 10
#: Offset (end of the plateau, see ``_plateau_end``). The decay starts from the level at the
#: end of the plateau, which a forced stretch (2-5 s, 1.3-1.6x) raises: that level is the 0.9
#: quantile of the envelope over the last 8 s up to the last step at the plateau level, long
#: enough to hold a 5-s stretch and the first seconds of its decay.
OFFSET_TAIL_S: Final = 8.0
OFFSET_TOP_QUANTILE: Final = 0.9
#: The falling edge is fitted from OFFSET_PRE_S before the last step at 90 % of that level's
#: excess over the floor (3 s of the level before it: enough points for the constant part,
#: short enough to stay inside a stretch burst) down to 35 % of it (two thirds of the decay,
#: before it flattens towards the residual ~1.5-2x).
OFFSET_ANCHOR_FRACTION: Final = 0.9
OFFSET_FIT_LOW_FRACTION: Final = 0.35
OFFSET_PRE_S: Final = 3.0
#: Fewest steps (0.1 s each) in which a knee is looked for: a constant and a falling line
#: need a few points each.
KNEE_MIN_STEPS: Final = 6
#: Lower clip of ratio² - 1 before the log (ratio ≈ 1.0005): the floor itself has no excess.
EXCESS_MIN_SQ: Final = 1e-3
#: Window of the running median that phasic dips are measured against (s): longer than the
#: slowest ALMA/PLM-like rhythm of interest (0.3 Hz), shorter than a plateau's slow drifts.
PHASIC_LOCAL_S: Final = 5.0
#: Fraction of the onset window in which the leg must be vertical to count as standing.
STANDING_FRACTION: Final = 0.5

EVENT_SCHEMA: Final[Mapping[str, pl.DataType | type[pl.DataType]]] = {
    "onset_s": pl.Float64,
    "offset_s": pl.Float64,
    "duration_s": pl.Float64,
    "onset": pl.Datetime("us", "UTC"),
    "offset": pl.Datetime("us", "UTC"),
    "leg": pl.String,
    "channels": pl.List(pl.String),
    "peak_rel": pl.Float64,
    "mean_rel": pl.Float64,
    "severity": pl.String,
    "confidence": pl.Float64,
    "kind": pl.String,
    "evidence": pl.String,
    "woke": pl.Boolean,
    "got_up": pl.Boolean,
    "stretched": pl.Boolean,
}
COVERAGE_SCHEMA: Final[Mapping[str, pl.DataType | type[pl.DataType]]] = {
    "leg": pl.String,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "reason": pl.String,
}
REJECTED_SCHEMA: Final[Mapping[str, pl.DataType | type[pl.DataType]]] = {
    "leg": pl.String,
    "onset_s": pl.Float64,
    "offset_s": pl.Float64,
    "reason": pl.String,
}


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
    """

    leg: Leg
    emg_uv: NDArray[np.float32] | None
    emg_fs_hz: float | None
    emg_channels: tuple[str, ...] = ()
    emg_valid: NDArray[np.bool_] | None = None
    acc_mg: NDArray[np.float32] | None = None
    acc_fs_hz: float | None = None
    acc_valid: NDArray[np.bool_] | None = None

    def emg_duration_s(self) -> float:
        if self.emg_uv is None or self.emg_fs_hz is None:
            return 0.0
        return float(np.shape(self.emg_uv)[-1]) / self.emg_fs_hz

    def acc_duration_s(self) -> float:
        if self.acc_mg is None or self.acc_fs_hz is None:
            return 0.0
        return float(np.shape(self.acc_mg)[-1]) / self.acc_fs_hz


@dataclass(slots=True, eq=False)
class _Leg:
    """Intermediate per-leg state of one detection run."""

    signals: LegSignals
    channels: tuple[str, ...]
    env: Envelope | None = None
    ratio_ch: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    ratio: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    step_ratio: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    acc: AccFeatures | None = None
    cands: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 3), dtype=np.int64))
    plm: NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, dtype=bool))

    @property
    def hop_s(self) -> float:
        return self.env.hop_s if self.env is not None else 0.1


class CrampResults:
    """Cramps found in one night, with the spans that were not covered and the parameters.

    Attributes
    ----------
    events : polars.DataFrame
        One row per cramp; columns listed in :func:`detect_cramps` Notes.
    coverage : polars.DataFrame
        Spans *not* covered: ``leg``, ``start_s``, ``end_s`` (s from start), ``reason``
        (``"lead-off"``, ``"gap"``, ``"saturated"``, ``"no-emg"``). Never "no cramp" time.
    rejected : polars.DataFrame
        Candidates that a rule rejected: ``leg``, ``onset_s``, ``offset_s``, ``reason``
        (``"plm_train"``, ``"phasic"``, ``"body_movement"``, ``"standing"``, ``"too_short"``).
    params : DetectionParams
    start : datetime
        Recording start (timezone-aware).
    duration_s : float
        Length of the longest stream (s).
    notch_hz : dict
        Mains lines notched, per leg (empty tuple when no hum was measured).
    """

    def __init__(self, *, events: pl.DataFrame, coverage: pl.DataFrame, rejected: pl.DataFrame,
                 params: DetectionParams, start: datetime, duration_s: float,
                 legs: tuple[Leg, ...], notch_hz: dict[str, tuple[float, ...]],
                 band_hz: dict[str, tuple[float, float]]) -> None:
        self.events = events
        self.coverage = coverage
        self.rejected = rejected
        self.params = params
        self.start = start
        self.duration_s = duration_s
        self.legs = legs
        self.notch_hz = notch_hz
        self.band_hz = band_hz

    def __repr__(self) -> str:
        return (f"CrampResults({self.events.height} events, legs={list(self.legs)}, "
                f"duration_s={self.duration_s:.0f})")

    def covered_s(self, leg: Leg) -> float:
        """Seconds of the night in which ``leg`` had usable EMG."""
        if leg not in self.legs:
            return 0.0
        lost = self.coverage.filter(pl.col("leg") == leg).select(
            (pl.col("end_s") - pl.col("start_s")).sum()).item()
        return max(0.0, self.duration_s - float(lost or 0.0))

    def to_events(self) -> list[CrampEvent]:
        """The events as :class:`crampsense.models.CrampEvent` objects."""
        out: list[CrampEvent] = []
        for row in self.events.iter_rows(named=True):
            out.append(CrampEvent(
                onset=self.start + timedelta(seconds=row["onset_s"]),
                offset=self.start + timedelta(seconds=row["offset_s"]),
                leg=row["leg"], channels=tuple(row["channels"]), peak_rel=row["peak_rel"],
                mean_rel=row["mean_rel"], severity=Severity[row["severity"].upper()],
                confidence=row["confidence"], kind=row["kind"], evidence=row["evidence"],
                woke=row["woke"], got_up=row["got_up"], stretched=row["stretched"]))
        return out

    def summary(self) -> pl.DataFrame:
        """Per leg: ``n_events``, ``total_min``, ``covered_h``, ``events_per_covered_h``.

        ``events_per_covered_h`` is ``nan`` for a leg with no covered time.
        """
        rows = []
        for leg in self.legs:
            ev = self.events.filter(pl.col("leg") == leg)
            covered_h = self.covered_s(leg) / 3600.0
            n = ev.height
            rows.append((leg, n, float(ev["duration_s"].sum()) / 60.0, covered_h,
                         n / covered_h if covered_h > 0 else math.nan))
        return pl.DataFrame(rows, schema={"leg": pl.String, "n_events": pl.Int64,
                                          "total_min": pl.Float64, "covered_h": pl.Float64,
                                          "events_per_covered_h": pl.Float64}, orient="row")

    @property
    def methods(self) -> str:
        """What was done, in prose, with the parameter values and references."""
        p = self.params
        bands = "; ".join(f"{leg} {lo:g}-{hi:g} Hz" for leg, (lo, hi) in self.band_hz.items())
        notch = "; ".join(f"{leg} {', '.join(f'{f:g}' for f in fs)} Hz"
                          for leg, fs in self.notch_hz.items() if fs) or "none (no hum measured)"
        return (
            f"Surface EMG of each leg was band-pass filtered with an order-{p.filter_order} "
            f"Butterworth filter ({bands or 'no EMG'}; upper edge capped at 0.45 x fs) with "
            f"notches only at measured mains lines ({notch}). The envelope was the 1-s RMS "
            f"({p.envelope_window_s:g} s window, {p.hop_s:g} s steps) taken as the median of the "
            "step mean squares, which gates electrode pops, jerks and QRS spikes. Each channel's "
            f"floor was the {p.floor_quantile:g} quantile of {p.floor_block_s:g}-s block medians "
            f"in a centred {p.floor_window_s:g}-s window, and the leg's activity the largest "
            "channel envelope-to-floor ratio. Events opened at "
            f"{p.on_ratio:g}x and closed below {p.off_ratio:g}x the floor (gaps up to "
            f"{p.merge_gap_s:g} s bridged); onsets were moved back along the rising ramp to "
            f"{p.onset_ratio:g}x (at most {p.onset_lookback_s:g} s) and events shorter than "
            f"{p.min_duration_s:g} s were dropped. Rejected: members of periodic limb-movement "
            f"trains (bursts {p.plm_min_burst_s:g}-{p.plm_max_burst_s:g} s, at least "
            f"{p.plm_min_count} at {p.plm_min_interval_s:g}-{p.plm_max_interval_s:g} s onset "
            "intervals; WASM 2016, Ferri et al. 2016), phasic activity (more than "
            f"{p.phasic_max_quiet_fraction:g} of 0.1-s steps below {p.quiet_ratio:g}x), body "
            f"movement (both legs active or moving within {p.onset_window_s:g} s of the onset: "
            f"accelerometer above {p.move_mg:g} mg or turning over {p.turn_deg:g} degrees) and "
            f"onsets while standing (shank axis above {p.vertical_mg:g} mg). Severity followed "
            "crampsense.models.grade_severity. Leg EMG recording follows the AASM 2018 scoring "
            "manual; cramp physiology after Minetto et al. 2009 and Hallegraeff et al. 2017; "
            "events were scored against truth by interval IoU as in YASA's compare_detection."
        )


def _empty(schema: Mapping[str, pl.DataType | type[pl.DataType]]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))


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
            shape = np.shape(sig.emg_uv)
            if len(shape) != 2:
                raise DetectionError(
                    f"{sig.leg} leg EMG has shape {shape}; pass (n_channels, n_samples)")
            if sig.emg_channels and len(sig.emg_channels) != shape[0]:
                raise DetectionError(
                    f"{sig.leg} leg has {shape[0]} EMG rows but {len(sig.emg_channels)} "
                    "channel names; pass one name per row")
        if sig.acc_mg is not None and sig.acc_fs_hz is None:
            raise DetectionError(f"{sig.leg} leg has acceleration but no acc_fs_hz; pass it")


def _spans_of(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)), axis=1)


def _coverage_rows(st: _Leg, duration_s: float) -> list[tuple[str, float, float, str]]:
    leg = st.signals.leg
    if st.env is None:
        return [(leg, 0.0, duration_s, "no-emg")]
    reason = st.env.reason
    dead = (reason != REASON_VALID).all(axis=0)
    code = np.where(dead, reason.max(axis=0), 0)
    rows: list[tuple[str, float, float, str]] = []
    for value, name in REASON_NAMES.items():
        for a, b in _spans_of(code == value):
            rows.append((leg, a * st.hop_s, b * st.hop_s, name))
    end_s = st.env.n_hops * st.hop_s
    tail = st.signals.emg_duration_s()
    if tail - end_s > 0:  # the last partial step
        end_s = tail
    if duration_s - end_s > 1e-9:
        rows.append((leg, end_s, duration_s, "gap"))
    return rows


def _prepare(sig: LegSignals, params: DetectionParams) -> _Leg:
    n_ch = 0 if sig.emg_uv is None else int(np.shape(sig.emg_uv)[0])
    channels = sig.emg_channels or tuple(f"ch{i}" for i in range(n_ch))
    st = _Leg(signals=sig, channels=channels)
    if sig.acc_mg is not None and sig.acc_fs_hz is not None:
        st.acc = acc_features(sig.acc_mg, sig.acc_fs_hz, valid=sig.acc_valid)
    if sig.emg_uv is None or sig.emg_fs_hz is None:
        return st
    env = emg_envelope(sig.emg_uv, sig.emg_fs_hz, valid=sig.emg_valid, params=params)
    floor = emg_floor(env.rms_uv, env.hop_s, params)
    with np.errstate(invalid="ignore", divide="ignore"):
        st.ratio_ch = env.rms_uv / floor
        step = np.sqrt(env.hop_ms_uv2) / floor
    st.env = env
    st.ratio = np.fmax.reduce(st.ratio_ch, axis=0)
    st.step_ratio = np.fmax.reduce(step, axis=0)
    _candidates(st, params)
    return st


def _plm_members(spans_s: NDArray[np.float64], params: DetectionParams) -> NDArray[np.bool_]:
    """Which bursts belong to a periodic limb-movement train (WASM 2016)."""
    n = spans_s.shape[0]
    member = np.zeros(n, dtype=bool)
    if n < params.plm_min_count:
        return member
    dur = spans_s[:, 1] - spans_s[:, 0]
    burst = (dur >= params.plm_min_burst_s) & (dur <= params.plm_max_burst_s)
    idx = np.flatnonzero(burst)
    if idx.size < params.plm_min_count:
        return member
    onsets = spans_s[idx, 0]
    gap = np.diff(onsets)
    ok = (gap >= params.plm_min_interval_s) & (gap <= params.plm_max_interval_s)
    # runs of consecutive ok intervals; a run of k intervals links k + 1 bursts
    for a, b in _spans_of(ok):
        if b - a + 1 >= params.plm_min_count:
            member[idx[a:b + 1]] = True
    return member


def _peak(seg: NDArray[np.float64], w: int) -> float:
    """Largest RMS of the ratio over ``w`` steps (a smoothed peak, less biased by noise)."""
    x = np.nan_to_num(seg, nan=0.0)
    if x.size <= w:
        return float(np.sqrt(np.mean(x * x))) if x.size else math.nan
    return float(np.sqrt(np.convolve(x * x, np.ones(w) / w, mode="valid").max()))


def _stretched(ratio: NDArray[np.float64], s_i: int, e_i: int, hop: float,
               params: DetectionParams) -> bool:
    """A forced stretch: the envelope at the end rises above the plateau before it.

    The ratio is smoothed over ``STRETCH_SMOOTH_S`` (RMS of the ratio); its maximum over the
    last ``stretch_window_s`` of the event (and ``STRETCH_AFTER_S`` after it) is compared with
    the median of the event without its last ``STRETCH_MAX_S`` (where a stretch would be; the
    offset is the end of the plateau or stretch), or of the whole event if that is shorter
    than ``STRETCH_MIN_S``.
    """
    tail_a = max(s_i, e_i - round(params.stretch_window_s / hop))
    tail_b = min(ratio.size, e_i + round(STRETCH_AFTER_S / hop))
    before = ratio[s_i:max(s_i, e_i - round(STRETCH_MAX_S / hop))]
    before = before[np.isfinite(before)]
    if before.size < round(STRETCH_MIN_S / hop):
        before = ratio[s_i:e_i][np.isfinite(ratio[s_i:e_i])]
    tail = np.nan_to_num(ratio[tail_a:tail_b], nan=0.0)
    w = max(1, round(STRETCH_SMOOTH_S / hop))
    if before.size == 0 or tail.size < w:
        return False
    smooth = np.sqrt(np.convolve(tail * tail, np.ones(w) / w, mode="valid"))
    return bool(smooth.max() >= params.stretch_ratio * float(np.median(before)))


def _quiet_fraction(step: NDArray[np.float64], w: int, params: DetectionParams) -> float:
    """Share of 0.1-s steps that dip: below ``quiet_ratio`` x floor, or below
    ``phasic_dip_rel`` x the running median of the surrounding ``PHASIC_LOCAL_S``."""
    step = step[np.isfinite(step)]
    if step.size == 0:
        return 1.0
    w = max(1, min(w, step.size))
    pad = np.pad(step, (w // 2, w - 1 - w // 2), mode="edge")
    local = np.median(np.lib.stride_tricks.sliding_window_view(pad, w), axis=1)
    dips = (step < params.quiet_ratio) | (step < params.phasic_dip_rel * local)
    return float(np.mean(dips))


def _ramp_start(ratio: NDArray[np.float64], a: int, b: int, *, lo: int) -> int:
    """Extrapolate a rising ramp back to the floor.

    EMG adds to the floor in power, so the *excess amplitude* ``sqrt(ratio² - 1)`` is what
    grows as motor units are recruited. A straight line fitted to it between the walk-back
    point ``a`` and the on-crossing ``b`` is extended back to zero; the result never moves
    earlier than ``lo`` and never later than ``a``.
    """
    if b - a < RAMP_MIN_STEPS:
        return a
    seg = ratio[a:b]
    if not np.isfinite(seg).all():
        return a
    excess = np.sqrt(np.clip(seg * seg - 1.0, 0.0, None))
    x = np.arange(a, b, dtype=np.float64)
    slope, icpt = np.polyfit(x, excess, 1)
    if slope <= 0:
        return a
    start = math.floor(-icpt / slope)
    return int(np.clip(start, lo, a))


def _knee(y: NDArray[np.float64]) -> int | None:
    """Knee of a two-segment fit: ``y`` constant, then falling along a straight line.

    Fits ``y[t] ≈ c + k · max(0, t - K)`` by least squares for every knee ``K`` with at least
    one point before it and two after it, and returns the ``K`` with the smallest residual
    among the fits with ``k < 0`` (``None`` when there is none). All knees are evaluated at
    once from reversed cumulative sums, so the cost is linear in ``y.size``.

    Parameters
    ----------
    y : ndarray of float64, shape (n,)
        Finite values, one per step (here the log excess amplitude of the envelope).

    Returns
    -------
    int or None
        Index into ``y`` of the knee: the last step of the constant segment, where the line
        starts.
    """
    n = y.size
    if n < KNEE_MIN_STEPS:
        return None
    t = np.arange(n, dtype=np.float64)

    def tail_sums(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.cumsum(v[::-1])[::-1]  # [j] = sum of v[j:]

    knee = np.arange(1, n - 2, dtype=np.float64)
    j = np.arange(2, n - 1)  # first step after each knee
    a0 = tail_sums(np.ones(n))[j]
    a1, a2 = tail_sums(t)[j], tail_sums(t * t)[j]
    ay, aty = tail_sums(y)[j], tail_sums(t * y)[j]
    # sums of u = max(0, t - K), u², u·y over the whole window
    su = a1 - knee * a0
    suu = a2 - 2.0 * knee * a1 + knee * knee * a0
    suy = aty - knee * ay
    sy, syy = float(y.sum()), float(y @ y)
    det = n * suu - su * su  # > 0: u takes both 0 and positive values
    c = (suu * sy - su * suy) / det
    k = (n * suy - su * sy) / det
    sse = np.where(k < 0.0, syy - c * sy - k * suy, np.inf)
    best = int(np.argmin(sse))
    return int(knee[best]) if np.isfinite(sse[best]) else None


def _plateau_end(ratio: NDArray[np.float64], on_i: int, s_i: int, e_i: int, *,
                 stood_up: bool, hop: float, params: DetectionParams) -> tuple[int, float]:
    """Offset (end of the plateau) and plateau level of one event.

    1. **Plateau level**: the median ratio of the span ``[s_i, e_i)`` gives a first level;
       the *core* runs from ``s_i`` to the last step at or above ``offset_plateau_fraction``
       of it, and the plateau level is the median of the core (robust to the ramp, the decay
       and a stretch burst).
    2. **Top**: the level the decay starts from, the ``OFFSET_TOP_QUANTILE`` of the ratio in
       the ``OFFSET_TAIL_S`` before the last step at the plateau level (at least the plateau
       level). A forced stretch at the end raises it to the stretch level, so the decay is
       measured from the end of the stretch, not from the plateau before it.
    3. **Falling edge**: from ``OFFSET_PRE_S`` before the last step at
       ``1 + OFFSET_ANCHOR_FRACTION · (top - 1)`` to the first step after it at or below
       ``1 + OFFSET_FIT_LOW_FRACTION · (top - 1)`` (or the span end).
    4. **Change point**: a two-segment fit (constant, then a straight line) of the log excess
       amplitude ``log sqrt(ratio² - 1)`` over that window (:func:`_knee`). Activity decays
       roughly exponentially after a cramp, which is a straight falling line in the log; the
       knee is where the plateau ends. This uses the whole falling edge instead of one
       crossing of a fixed fraction, which lands part-way down the decay.

    The offset stays at least ``min_duration_s`` after the onset and never later than the
    core's end. An event cut short by getting up keeps the core's end (standing ends the
    cramp; walking bursts follow, so no decay is visible), as does any window holding
    invalid data or without a falling fit.

    Returns
    -------
    (int, float)
        Offset step index (exclusive end) and plateau level (x floor).
    """
    first = float(np.nanmedian(ratio[s_i:e_i]))
    high = np.flatnonzero(ratio[s_i:e_i] >= params.offset_plateau_fraction * first)
    min_e = on_i + math.ceil(params.min_duration_s / hop)
    core_e = min(e_i, max(s_i + int(high[-1]) + 1, min_e)) if high.size else e_i
    plateau = float(np.nanmedian(ratio[s_i:core_e]))
    if stood_up or not math.isfinite(plateau):
        return core_e, plateau
    seg = ratio[s_i:e_i]
    at_level = np.flatnonzero(seg >= plateau)
    if at_level.size == 0:
        return core_e, plateau
    last_i = s_i + int(at_level[-1])
    tail = ratio[max(s_i, last_i - round(OFFSET_TAIL_S / hop)):last_i + 1]
    top = max(plateau, float(np.nanquantile(tail, OFFSET_TOP_QUANTILE)))
    anchor = np.flatnonzero(seg >= 1.0 + OFFSET_ANCHOR_FRACTION * (top - 1.0))
    anchor_i = s_i + int(anchor[-1]) if anchor.size else last_i
    low = np.flatnonzero(~(ratio[anchor_i:e_i] > 1.0 + OFFSET_FIT_LOW_FRACTION * (top - 1.0)))
    stop = anchor_i + int(low[0]) if low.size else e_i
    a = max(s_i, anchor_i - round(OFFSET_PRE_S / hop))
    win = ratio[a:stop]
    if not np.isfinite(win).all():
        return core_e, plateau
    knee = _knee(0.5 * np.log(np.maximum(win * win - 1.0, EXCESS_MIN_SQ)))
    if knee is None:
        return core_e, plateau
    return min(core_e, max(a + knee, min_e)), plateau


def _standing_or_moving(st: _Leg, t0: float, t1: float,
                        params: DetectionParams) -> tuple[bool | None, bool | None]:
    """(moving, standing) of a leg in ``[t0, t1)``; ``None`` without valid accelerometer."""
    if st.acc is None:
        return None, None
    w = st.acc.window(t0, t1)
    if not st.acc.valid[w].any():
        return None, None
    moving = bool(st.acc.moving(params)[w].any())
    vert = st.acc.vertical(params)[w]
    standing = bool(vert.mean() >= STANDING_FRACTION) if vert.size else False
    return moving, standing


def _got_up(st: _Leg, t0: float, t1: float, params: DetectionParams) -> float | None:
    """Start time (s) of the first standing run of at least ``got_up_min_s`` in the window."""
    if st.acc is None:
        return None
    w = st.acc.window(t0, t1)
    vert = st.acc.vertical(params)[w]
    need = max(1, round(params.got_up_min_s / st.acc.step_s))
    for a, b in _spans_of(vert):
        if b - a >= need:
            return float((w.start + a) * st.acc.step_s)
    return None


def _candidates(st: _Leg, params: DetectionParams) -> None:
    """Hysteresis spans with ramp-refined onsets and PLM-train membership, stored on ``st``."""
    hop = st.hop_s
    spans = hysteresis_spans(st.ratio, on=params.on_ratio, off=params.off_ratio,
                             merge_gap_n=round(params.merge_gap_s / hop))
    st.plm = _plm_members(spans.astype(np.float64) * hop, params)
    lookback = round(params.onset_lookback_s / hop)
    prev_stop = 0
    rows = []
    for s, e in spans:
        s_i, e_i = int(s), int(e)
        # Onset: walk back along the rising ramp while the ratio stays above onset_ratio,
        # then extrapolate the ramp to the floor.
        a = max(prev_stop, s_i - lookback)
        below = np.flatnonzero(~(st.ratio[a:s_i] >= params.onset_ratio))
        on_i = a + int(below[-1]) + 1 if below.size else a
        rows.append((_ramp_start(st.ratio, on_i, s_i, lo=a), s_i, e_i))
        prev_stop = e_i
    st.cands = np.array(rows, dtype=np.int64).reshape(-1, 3)


def _bilateral_onset(onset_s: float, other: _Leg | None, params: DetectionParams) -> bool:
    """Whether the other leg's activity (not a PLM burst) started within the onset window."""
    if other is None or other.env is None or other.cands.shape[0] == 0:
        return False
    starts = other.cands[:, 0] * other.hop_s
    near = np.abs(starts - onset_s) <= params.onset_window_s
    return bool((near & ~other.plm).any())


def _leg_events(st: _Leg, other: _Leg | None, params: DetectionParams
                ) -> tuple[list[dict[str, object]], list[tuple[str, float, float, str]]]:
    leg = st.signals.leg
    hop = st.hop_s
    events: list[dict[str, object]] = []
    rejected: list[tuple[str, float, float, str]] = []
    if st.env is None:
        return events, rejected
    for i, (on_i, s_i, span_end) in enumerate(st.cands.tolist()):
        e_i = span_end
        onset_s, cross_s, offset_s = on_i * hop, s_i * hop, e_i * hop
        if offset_s - onset_s < params.min_duration_s:
            continue  # ordinary short bursts are not worth a "rejected" row
        if st.plm[i] and (e_i - s_i) * hop <= params.plm_max_burst_s:
            rejected.append((leg, onset_s, offset_s, "plm_train"))
            continue
        w0, w1 = onset_s - params.onset_window_s, cross_s + params.onset_window_s
        moving, standing = _standing_or_moving(st, w0, w1, params)
        if standing:
            rejected.append((leg, onset_s, offset_s, "standing"))
            continue
        o_moving = None if other is None else _standing_or_moving(other, w0, w1, params)[0]
        # Rolling over: both legs start together, or both legs move at the onset.
        if _bilateral_onset(onset_s, other, params) or (moving and o_moving):
            rejected.append((leg, onset_s, offset_s, "body_movement"))
            continue
        # Getting up ends the cramp at the latest: standing stretches the calf.
        up_s = _got_up(st, onset_s, offset_s + params.got_up_after_s, params)
        got_up = up_s is not None
        if up_s is not None and onset_s + params.min_duration_s <= up_s < offset_s:
            e_i = max(s_i + 1, round(up_s / hop))
            offset_s = e_i * hop
        # Offset: end of the plateau, not the end of the slow decay after it.
        e_i, plateau = _plateau_end(st.ratio, on_i, s_i, e_i, stood_up=e_i < span_end,
                                    hop=hop, params=params)
        offset_s = e_i * hop
        # A cramp is tonic: judged on the event itself, after walking was cut off.
        quiet = _quiet_fraction(st.step_ratio[s_i:e_i], round(PHASIC_LOCAL_S / hop), params)
        if quiet > params.phasic_max_quiet_fraction:
            rejected.append((leg, onset_s, offset_s, "phasic"))
            continue
        seg = st.ratio[on_i:e_i]
        # windows centred on the event's steps: a stretch that ends the event is seen whole
        w = round(PEAK_SMOOTH_S / hop)
        peak = _peak(st.ratio[max(0, on_i - w // 2):e_i + w // 2], w)
        mean = float(np.nanmean(seg))
        woke = False
        if st.acc is not None:  # movement while still lying down (before any getting up)
            w_end = onset_s + params.woke_after_s
            if up_s is not None:
                w_end = min(w_end, up_s - params.onset_window_s)
            ww = st.acc.window(onset_s, w_end)
            woke = bool(st.acc.moving(params)[ww].any())
        stretched = _stretched(st.ratio, s_i, e_i, hop, params)
        # Channels that carried the event, and the confidence.
        ch_peak = np.nanmax(np.where(np.isfinite(st.ratio_ch[:, s_i:e_i]),
                                     st.ratio_ch[:, s_i:e_i], -np.inf), axis=1)
        ch_valid = np.isfinite(st.ratio_ch[:, s_i:e_i]).any(axis=1)
        carried = tuple(c for c, pk in zip(st.channels, ch_peak, strict=True)
                        if pk >= params.on_ratio)
        agree = len(carried) / max(1, int(ch_valid.sum()))
        duration = offset_s - onset_s
        ev_plateau = np.clip((plateau - params.off_ratio) / params.on_ratio, 0.0, 1.0)
        ev_duration = np.clip((duration - params.min_duration_s)
                              / (CONF_FULL_DURATION_S - params.min_duration_s), 0.0, 1.0)
        wp, wd, wa = CONF_WEIGHTS
        confidence = CONF_BASE + CONF_SPAN * float(wp * ev_plateau + wd * ev_duration
                                                  + wa * agree)
        has_acc = st.acc is not None and bool(st.acc.valid[st.acc.window(onset_s,
                                                                          offset_s)].any())
        events.append({
            "onset_s": onset_s, "offset_s": offset_s, "duration_s": duration,
            "leg": leg, "channels": list(carried), "peak_rel": peak, "mean_rel": mean,
            "severity": str(grade_severity(duration, peak)), "confidence": round(confidence, 3),
            "kind": "cramp", "evidence": "emg+acc" if has_acc else "emg",
            "woke": woke, "got_up": got_up, "stretched": stretched,
        })
    return events, rejected


def detect_cramps(legs: Sequence[LegSignals], *, start: datetime,
                  params: DetectionParams | None = None) -> CrampResults:
    """Detect nocturnal leg cramps in one night of leg EMG (and accelerometer) signals.

    Parameters
    ----------
    legs : sequence of LegSignals
        One entry per leg (at most one per leg). A leg without EMG is reported as not covered
        (``"no-emg"``); accelerometer-only detection is not implemented yet.
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

    **Rejections**, in order: shorter than ``min_duration_s``; a burst of at most
    ``plm_max_burst_s`` inside a PLM train (at least ``plm_min_count`` bursts at
    ``plm_min_interval_s``-``plm_max_interval_s`` onset intervals; WASM 2016); starting while
    standing (shank vertical in most of the onset window); a body movement: the other leg's
    activity (not a PLM burst) starting within ``onset_window_s`` of the onset, or both legs'
    accelerometers moving in the onset window (rolling over); phasic (ALMA, tremor, walking:
    more than ``phasic_max_quiet_fraction`` of the 0.1-s steps dip below ``quiet_ratio`` x
    floor or below ``phasic_dip_rel`` x their running 5-s median). Spans without usable
    signal are reported in ``coverage`` and never contain events. ``CrampResults.rejected``
    lists what each rule removed.

    **Context flags.** ``woke``: accelerometer movement (``move_mg``, ``turn_deg``) on that
    leg within ``woke_after_s`` of the onset, before any getting up. ``got_up``: shank
    vertical (``|x| > vertical_mg``) for ``got_up_min_s`` within the event or up to
    ``got_up_after_s`` after it. ``stretched``: the 2-s RMS of the ratio in the last
    ``stretch_window_s`` of the event (or 5 s after) reaches ``stretch_ratio`` x the median
    plateau before that window.

    **Confidence** = 0.4 + 0.6 x (0.45 x plateau + 0.30 x duration + 0.25 x agreement), where
    plateau = clip((median core ratio - off_ratio) / on_ratio, 0, 1), duration =
    clip((duration - min_duration_s) / (60 s - min_duration_s), 0, 1) and agreement = share of
    the leg's valid channels that reached ``on_ratio``.

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
    confidence   float64, 0-1      see above; EMG events range 0.4-1.0
    kind         str               "cramp" ("possible_cramp" is for accelerometer-only)
    evidence     str               "emg" or "emg+acc" (accelerometer valid during the event)
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
    duration_s = max(max(s.emg_duration_s(), s.acc_duration_s()) for s in legs)
    states = {s.leg: _prepare(s, params) for s in legs}
    rows: list[dict[str, object]] = []
    rejected: list[tuple[str, float, float, str]] = []
    coverage: list[tuple[str, float, float, str]] = []
    for leg, st in states.items():
        other = next((o for name, o in states.items() if name != leg), None)
        ev, rej_rows = _leg_events(st, other, params)
        rows.extend(ev)
        rejected.extend(rej_rows)
        coverage.extend(_coverage_rows(st, duration_s))
    for r in rejected:
        logger.debug("rejected a %s-leg candidate at %.1f s: %s", r[0], r[1], r[3])
    start_utc = start.astimezone(UTC)
    events = _empty(EVENT_SCHEMA)
    if rows:
        events = pl.DataFrame(rows, schema={k: v for k, v in EVENT_SCHEMA.items()
                                            if k not in ("onset", "offset")})
        events = events.with_columns(
            (pl.lit(start_utc) + pl.duration(microseconds=(pl.col("onset_s") * 1e6).round()
                                             .cast(pl.Int64))).dt.cast_time_unit("us")
            .alias("onset"),
            (pl.lit(start_utc) + pl.duration(microseconds=(pl.col("offset_s") * 1e6).round()
                                             .cast(pl.Int64))).dt.cast_time_unit("us")
            .alias("offset"),
        ).select(list(EVENT_SCHEMA)).cast(EVENT_SCHEMA).sort("onset_s", "leg")  # type: ignore[arg-type]
    cov = (pl.DataFrame(coverage, schema=dict(COVERAGE_SCHEMA), orient="row")
           .sort("leg", "start_s") if coverage else _empty(COVERAGE_SCHEMA))
    rej = (pl.DataFrame(rejected, schema=dict(REJECTED_SCHEMA), orient="row")
           if rejected else _empty(REJECTED_SCHEMA))
    return CrampResults(
        events=events, coverage=cov, rejected=rej, params=params, start=start_utc,
        duration_s=duration_s, legs=tuple(states),
        notch_hz={leg: tuple(sorted({f for ch in st.env.notch_hz for f in ch}))
                  for leg, st in states.items() if st.env is not None},
        band_hz={leg: st.env.band_hz for leg, st in states.items() if st.env is not None},
    )
