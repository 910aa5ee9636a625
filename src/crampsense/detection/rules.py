"""The event decision rules: which activation spans of one leg are cramps.

Candidates (hysteresis spans of the leg's envelope-to-floor ratio with ramp-refined onsets),
the onset and offset of each event, the rejection rules (duration, periodic limb-movement
trains, standing, body movement, phasic activity), the context flags and the confidence.
Pure functions of hop-level arrays; :mod:`crampsense.detection.detector` runs them. Method and
references: ``docs/detection.md`` and :func:`crampsense.detection.detector.detect_cramps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crampsense.detection.acc import AccFeatures
from crampsense.detection.emg import Envelope, hysteresis_spans
from crampsense.detection.model import REPORT_PROBABILITY, LogisticModel, TreeModel, model_for
from crampsense.detection.params import DetectionParams
from crampsense.models import Leg, grade_severity

__all__ = ["Decision", "LegState", "candidates", "event_features", "leg_events", "spans_of"]

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
#: Block length (s) in which :func:`detect_cramps` feeds a whole night's accelerometer to the
#: Fraction of the onset window in which the leg must be vertical to count as standing.
STANDING_FRACTION: Final = 0.5


@dataclass(slots=True, eq=False)
class LegState:
    """Intermediate per-leg state of one detection run."""

    leg: Leg
    channels: tuple[str, ...]
    h0: int = 0  # absolute hop index of element 0 of the arrays below
    env: Envelope | None = None
    ratio_ch: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    ratio: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    step_ratio: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    acc: AccFeatures | None = None
    cands: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 3), dtype=np.int64))
    plm: NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, dtype=bool))
    dms: NDArray[np.float64] | None = None  # hop mean square of the first difference (raw EMG)
    #: Rises on a raised local baseline inside a long span (:func:`nested_candidates`).
    nested: list[Nested] = field(default_factory=list)

    @property
    def hop_s(self) -> float:
        return self.env.hop_s if self.env is not None else 0.1



def spans_of(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)), axis=1)



#: Nested rises (:func:`nested_candidates`). Activity adds to what is already there in power,
#: so a cramp on a slow tone change (1.5-3x for 10-60 min; DETECTION.md) stands on a raised
#: local baseline B, and ``sqrt(ratio² - B² + 1)`` is the ratio the cramp would have alone.
#: B is the NESTED_BASE_QUANTILE of the NESTED_BLOCK_S medians of the leg's ratio over the
#: NESTED_BASE_S before a step (the first half-minute of that is before any ramp of up to
#: 90 s; a tone change is minutes long; the lowest median would sit under the tone's level by
#: its block-to-block noise and leave part of the tone in the rise), looked
#: for at least NESTED_SETTLE_S after the span's start (a whole baseline window inside the
#: span: before that the span's own ramp, of up to 2-3 min for a tone change, is its
#: baseline), on baselines of at least NESTED_MIN_BASE x floor.
NESTED_BLOCK_S: Final = 5.0
NESTED_BASE_S: Final = 120.0
NESTED_BASE_QUANTILE: Final = 0.25
#: ... on a settled baseline: the 0.75 quantile of those medians at most this much above B.
#: A tone change still ramping up (ramps of 10-165 s) or bursts riding on it (PLM, restless
#: movements) are not a baseline; a rise there is the span's own.
NESTED_MAX_SPREAD: Final = 1.25
NESTED_MIN_SPAN_S: Final = 120.0
NESTED_SETTLE_S: Final = 120.0
NESTED_MIN_BASE: Final = 1.5
#: A rise that ends within this long (s) of its span's event is the stretch that ends a cramp
#: (stretching raises the EMG, and the cramp is over when it stops), never a cramp of its own
#: in place of the span. A cramp on a tone change ends before the tone does.
NESTED_STRETCH_END_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Nested:
    """A rise on a raised local baseline inside the span ``cands[parent]``.

    ``base_ch`` is the baseline of each channel (x floor), ``base`` the leg's; ``on_i``,
    ``s_i``, ``e_i`` are onset, span start and span end on the baseline-removed ratio.
    """

    parent: int
    on_i: int
    s_i: int
    e_i: int
    base: float
    base_ch: tuple[float, ...]


def _minus_base(ratio: NDArray[np.float64], base: float | NDArray[np.float64]
                ) -> NDArray[np.float64]:
    """The ratio without a baseline's power: ``sqrt(max(ratio² - base² + 1, 1))`` (nan kept)."""
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.fmax(ratio * ratio - np.square(base) + 1.0, 1.0),
                       where=np.isfinite(ratio), out=np.full(ratio.shape, np.nan))


def _running_base(r: NDArray[np.float64], bn: int, nb: int
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per step of ``r``: the NESTED_BASE_QUANTILE of the (up to) ``nb`` block medians
    (``bn`` steps each) before its block, and how settled they were (their 0.75 quantile over
    that base); nan where none is known."""
    k = r.size // bn
    base = np.full(r.size, np.nan)
    spread = np.full(r.size, np.nan)
    if k < 2:
        return base, spread
    blocks = r[:k * bn].reshape(k, bn)
    ok = np.isfinite(blocks).any(axis=1)
    med = np.full(k, np.inf)
    if ok.any():
        med[ok] = np.nanmedian(blocks[ok], axis=1)
    # windows[j] = the nb medians before block j (inf-padded at the start)
    padded = np.concatenate((np.full(nb, np.inf), med))
    windows = np.sort(np.lib.stride_tricks.sliding_window_view(padded, nb)[:k], axis=1)
    n = np.isfinite(windows).sum(axis=1)
    rows = np.arange(k)
    low = windows[rows, np.floor(NESTED_BASE_QUANTILE * np.maximum(n - 1, 0)).astype(np.int64)]
    high = windows[rows, np.floor(0.75 * np.maximum(n - 1, 0)).astype(np.int64)]
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(n > 0, low, np.nan)
        sp = np.where(n > 0, high / low, np.nan)
    for arr, src in ((base, b), (spread, sp)):
        arr[:k * bn] = np.repeat(src, bn)
        if r.size > k * bn:
            arr[k * bn:] = src[-1]
    return base, spread


def nested_candidates(st: LegState, params: DetectionParams) -> list[Nested]:
    """Rises that stand on a raised local baseline inside long spans (a cramp on a tone change).

    The span of a slow tone change holds any cramp that starts on it, and the candidate of the
    whole span reads as tone (long, raised before and after). Inside each span longer than
    ``NESTED_MIN_SPAN_S``, the leg's ratio is compared with its running baseline B (see
    :data:`NESTED_BLOCK_S`); where ``sqrt(ratio² - B² + 1)`` reaches ``on_ratio``, B is frozen
    per channel and the rise's own span, onset and ramp are found on the baseline-removed ratio
    exactly as for any candidate. The decision step weighs it with its features measured on
    that ratio, i.e. as it would look without the tone.
    """
    hop = st.hop_s
    bn = max(1, round(NESTED_BLOCK_S / hop))
    nb = max(1, round(NESTED_BASE_S / NESTED_BLOCK_S))
    settle = round(NESTED_SETTLE_S / hop)
    lookback = round(params.onset_lookback_s / hop)
    merge_n = round(params.merge_gap_s / hop)
    out: list[Nested] = []
    for parent, (_, s0, e0) in enumerate(st.cands.tolist()):
        if (e0 - s0) * hop < NESTED_MIN_SPAN_S:
            continue
        r = st.ratio[s0:e0]
        base, spread = _running_base(r, bn, nb)
        with np.errstate(invalid="ignore"):
            hit = ((_minus_base(r, base) >= params.on_ratio) & (base >= NESTED_MIN_BASE)
                   & (spread <= NESTED_MAX_SPREAD))
        hit[:settle] = False
        if not hit.any():
            continue
        base_chs = [_running_base(st.ratio_ch[ch, s0:e0], bn, nb)[0]
                    for ch in range(st.ratio_ch.shape[0])]
        c = 0
        while True:
            nxt = np.flatnonzero(hit[c:])
            if nxt.size == 0:
                break
            c += int(nxt[0])
            b_leg = float(base[c])
            b_ch = [float(bc[c]) if np.isfinite(bc[c]) else 1.0 for bc in base_chs]
            adj = np.fmax.reduce(_minus_base(st.ratio_ch[:, s0:e0],
                                             np.array(b_ch)[:, None]), axis=0)
            spans = hysteresis_spans(adj, on=params.on_ratio, off=params.off_ratio,
                                     merge_gap_n=merge_n)
            inside = spans[(spans[:, 0] <= c) & (spans[:, 1] > c)]
            if inside.shape[0] == 0:
                c += 1
                continue
            a_s, a_e = (int(v) for v in inside[0])
            lo = max(0, a_s - lookback)
            below = np.flatnonzero(~(adj[lo:a_s] >= params.onset_ratio))
            on = lo + int(below[-1]) + 1 if below.size else lo
            on = _ramp_start(adj, on, a_s, lo=lo)
            if not (spread[on] <= NESTED_MAX_SPREAD and on >= settle):
                # the baseline was still moving when the rise began: a tone that goes on
                # rising, not a rise on a settled tone
                c = a_e
                continue
            out.append(Nested(parent, s0 + on, s0 + a_s, s0 + a_e, b_leg, tuple(b_ch)))
            c = a_e
    return out


def nested_view(st: LegState, n: Nested) -> LegState:
    """``st`` with its ratios measured against the nested rise's frozen baseline."""
    base_ch = np.array(n.base_ch)[:, None]
    ratio_ch = _minus_base(st.ratio_ch, base_ch)
    return replace(st, ratio_ch=ratio_ch, ratio=np.fmax.reduce(ratio_ch, axis=0),
                   step_ratio=_minus_base(st.step_ratio, n.base), nested=[])


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
    for a, b in spans_of(ok):
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
    x = np.arange(b - a, dtype=np.float64)  # relative to a: the same numbers in any window
    slope, icpt = np.polyfit(x, excess, 1)
    if slope <= 0:
        return a
    start = a + math.floor(-icpt / slope)
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


def _standing_or_moving(st: LegState, t0: float, t1: float,
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


def _got_up(st: LegState, t0: float, t1: float, params: DetectionParams) -> float | None:
    """Start time (s) of the first standing run of at least ``got_up_min_s`` in the window."""
    if st.acc is None:
        return None
    w = st.acc.window(t0, t1)
    vert = st.acc.vertical(params)[w]
    need = max(1, round(params.got_up_min_s / st.acc.step_s))
    for a, b in spans_of(vert):
        if b - a >= need:
            return float((w.start + a) * st.acc.step_s)
    return None


#: Spans closer than this (s) are one candidate when the ratio between them never fell back
#: to ``onset_ratio`` (and stayed valid): a weak cramp (2-3x) whose irregular firing dips below
#: ``off_ratio`` for a few seconds is one contraction, not several; the pauses between PLM
#: bursts or restless movements return to the floor.
DIP_BRIDGE_S: Final = 10.0


def _bridge_dips(ratio: NDArray[np.float64], spans: NDArray[np.int64], *, max_n: int,
                 level: float) -> NDArray[np.int64]:
    """Join consecutive spans whose gap is at most ``max_n`` steps of valid data at or above
    ``level`` (a dip, not a return to the floor)."""
    if spans.shape[0] < 2:
        return spans
    out = [spans[0].copy()]
    for s, e in spans[1:]:
        gap = ratio[out[-1][1]:s]
        if s - out[-1][1] <= max_n and gap.size and bool((gap >= level).all()):
            out[-1][1] = e
        else:
            out.append(np.array([s, e], dtype=np.int64))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


#: Longest pause (s) between spans that is still one contraction when the muscle never went
#: back to rest: a weak cramp (2-3x) whose firing wanes for tens of seconds before it picks up
#: again is one episode, as the sufferer tells it.
PAUSE_BRIDGE_S: Final = 30.0
#: Block (s) whose median must stay at or above ``onset_ratio`` through such a pause: single
#: 0.1-s steps of a weak interference pattern fall lower, rest does not come back above it.
PAUSE_BLOCK_S: Final = 5.0
#: ... and at or above this multiple of the level before the first span (median of the ratio
#: from PAUSE_PRE_S to PAUSE_PRE_GAP_S before it): on a raised tone, PLM bursts or movements
#: with the tone between them are not bridged.
PAUSE_ABOVE_PRE: Final = 1.25
#: ... and at or above this fraction of the median of the span before the pause: the waning
#: of a weak contraction, not the decay and residual firing after a strong one.
PAUSE_OF_SPAN: Final = 0.5
PAUSE_PRE_S: Final = 60.0
PAUSE_PRE_GAP_S: Final = 10.0


def _finite_median(x: NDArray[np.float64], default: float = math.nan) -> float:
    """Median of the finite values of ``x``; ``default`` when there are none."""
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else default


def _bridge_pauses(ratio: NDArray[np.float64], spans: NDArray[np.int64], *, hop: float,
                   level: float) -> NDArray[np.int64]:
    """Join consecutive spans separated by at most PAUSE_BRIDGE_S whose every PAUSE_BLOCK_S
    block of the pause has a median at or above ``level``, PAUSE_ABOVE_PRE times the level
    before the first span of the chain (the muscle stayed active, well above its state before
    the episode began) and PAUSE_OF_SPAN times the median of the span before the pause."""
    if spans.shape[0] < 2:
        return spans
    max_n, blk = round(PAUSE_BRIDGE_S / hop), max(1, round(PAUSE_BLOCK_S / hop))
    pre_n, gap_n = round(PAUSE_PRE_S / hop), round(PAUSE_PRE_GAP_S / hop)
    out = [spans[0].copy()]
    pre = math.nan
    for s, e in spans[1:]:
        if math.isnan(pre):
            head = int(out[-1][0])
            pre = _finite_median(ratio[max(0, head - pre_n):max(0, head - gap_n)])
        gap = ratio[out[-1][1]:s]
        ok = 0 < gap.size <= max_n and math.isfinite(pre)
        if ok:
            last = _finite_median(ratio[out[-1][0]:out[-1][1]])
            need = max(level, PAUSE_ABOVE_PRE * pre, PAUSE_OF_SPAN * last)
            n_blk = max(1, gap.size // blk)
            ok = all(_finite_median(b) >= need for b in np.array_split(gap, n_blk))
        if ok:
            out[-1][1] = e
        else:
            out.append(np.array([s, e], dtype=np.int64))
            pre = math.nan
    return np.array(out, dtype=np.int64).reshape(-1, 2)


#: The local level before a span: the 0.25 quantile of the LOCAL_BLOCK_S medians from
#: LOCAL_LEVEL_S to LOCAL_GAP_S before it (a ramp of up to a minute leaves most of that
#: window at the level it rose from). On a raised tone the floor-relative onset level
#: (``onset_ratio``) lies below the tone, so the onset is walked back only while the ratio
#: stays at or above LOCAL_ONSET_ABOVE times the local level, and the ramp is extrapolated to
#: that level rather than to the floor: a burst on a tone starts where it leaves the tone.
LOCAL_LEVEL_S: Final = 120.0
LOCAL_GAP_S: Final = 10.0
LOCAL_BLOCK_S: Final = 5.0
LOCAL_ONSET_ABOVE: Final = 1.25


def _local_level(ratio: NDArray[np.float64], s_i: int, hop: float) -> float:
    """The level the span starting at ``s_i`` rose from (x floor; 1.0 when unknown)."""
    a = max(0, s_i - round(LOCAL_LEVEL_S / hop))
    b = max(0, s_i - round(LOCAL_GAP_S / hop))
    bn = max(1, round(LOCAL_BLOCK_S / hop))
    k = (b - a) // bn
    if k < 1:
        return 1.0
    blocks = ratio[b - k * bn:b].reshape(k, bn)
    ok = np.isfinite(blocks).all(axis=1)
    if not ok.any():
        return 1.0
    return max(1.0, float(np.quantile(np.median(blocks[ok], axis=1), 0.25)))


def candidates(st: LegState, params: DetectionParams) -> None:
    """Hysteresis spans with ramp-refined onsets and PLM-train membership, stored on ``st``."""
    hop = st.hop_s
    spans = hysteresis_spans(st.ratio, on=params.on_ratio, off=params.off_ratio,
                             merge_gap_n=round(params.merge_gap_s / hop))
    spans = _bridge_dips(st.ratio, spans, max_n=round(DIP_BRIDGE_S / hop),
                         level=params.onset_ratio)
    spans = _bridge_pauses(st.ratio, spans, hop=hop, level=params.onset_ratio)
    st.plm = _plm_members((spans + st.h0).astype(np.float64) * hop, params)
    lookback = round(params.onset_lookback_s / hop)
    prev_stop = 0
    rows = []
    for s, e in spans:
        s_i, e_i = int(s), int(e)
        # Onset: walk back along the rising ramp while the ratio stays above onset_ratio,
        # then extrapolate the ramp to the floor.
        a = max(prev_stop, s_i - lookback)
        local = _local_level(st.ratio, s_i, hop)
        level = max(params.onset_ratio, LOCAL_ONSET_ABOVE * local)
        below = np.flatnonzero(~(st.ratio[a:s_i] >= level))
        on_i = a + int(below[-1]) + 1 if below.size else a
        if level > params.onset_ratio:  # on a raised level: extrapolate the ramp to it
            adj = _minus_base(st.ratio[a:s_i], local)
            rows.append((a + _ramp_start(adj, on_i - a, s_i - a, lo=0), s_i, e_i))
        else:
            rows.append((_ramp_start(st.ratio, on_i, s_i, lo=a), s_i, e_i))
        prev_stop = e_i
    st.cands = np.array(rows, dtype=np.int64).reshape(-1, 3)
    st.nested = nested_candidates(st, params)


def _bilateral_onset(onset_s: float, other: LegState | None, params: DetectionParams) -> bool:
    """Whether the other leg's activity (not a PLM burst) started within the onset window."""
    if other is None or other.env is None or other.cands.shape[0] == 0:
        return False
    starts = (other.cands[:, 0] + other.h0) * other.hop_s
    near = np.abs(starts - onset_s) <= params.onset_window_s
    return bool((near & ~other.plm).any())


#: The local baseline before an onset: the median envelope ratio from this long before the
#: onset (s) ...
PRE_WINDOW_S: Final = 120.0
#: ... to this long before it (s): the start of a ramp is not baseline.
PRE_GAP_S: Final = 10.0
#: Other rises of the same leg within this much of the onset (s) are its neighbours: PLM
#: trains repeat at 10-90 s, restless legs every 10-60 s.
NEIGHBOUR_WINDOW_S: Final = 120.0
#: Movement of the leg at its onset is looked for from this long before to this long after
#: the onset (s): a voluntary movement moves the leg from its first second; a cramp's painful
#: awakening comes with or after its ramp.
ONSET_MOVE_S: Final = (1.0, 1.5)
#: The floor's spectrum is measured over this long before the onset (s), on steps whose
#: envelope stays below SPECTRAL_QUIET_RATIO x floor.
SPECTRAL_BASE_S: Final = 300.0
SPECTRAL_QUIET_RATIO: Final = 1.5
#: Fewest quiet steps for a floor spectrum (10 s).
SPECTRAL_MIN_STEPS: Final = 100
#: A rise is broadband noise, not muscle activity, when its mean frequency (excess power) is
#: no lower than the amplifier floor's (log ratio at or above BROADBAND_SHIFT; surface EMG has
#: its power near 60-150 Hz, below the white floor's mean frequency once the band reaches
#: 360 Hz, i.e. at BROADBAND_MIN_FS_HZ and more), it is strong (BROADBAND_MIN_REL x floor:
#: a loose electrode's 50-300 µV against a 2-4 µV floor) and lasts (BROADBAND_MIN_S). Weak or
#: short rises are left to the decision model: a simulator or an amplifier whose "muscle"
#: noise is white must not lose its cramps to this rule.
BROADBAND_SHIFT: Final = -0.1
BROADBAND_MIN_REL: Final = 10.0
BROADBAND_MIN_S: Final = 30.0
BROADBAND_MIN_FS_HZ: Final = 800.0
#: Voluntary movement (repositioning a leg, restless movements): the leg moves through at
#: least this share of the contraction and the EMG reaches ``on_ratio`` within
#: VOLUNTARY_MAX_RAMP_S of its onset. A cramp ramps up over tens of seconds in a still leg;
#: the awakening (a burst of a few seconds) and stretching come during it and leave most of
#: it still. (Tuning nights: 6 of 301 cramp candidates and 1,364 of 2,800 others meet both.
#: On shifted-world diagnostic nights 0.6 let repositioning at 50-60 % through, and a 1-s
#: ramp restless movements that reach the threshold in 2-3 s.)
VOLUNTARY_MOVE_SHARE: Final = 0.5
VOLUNTARY_MAX_RAMP_S: Final = 5.0
#: The level after an event is the median ratio from this long after its offset (s), past a
#: cramp's decay and most of its residual activity (tens of seconds to ~3 min) ...
POST_GAP_S: Final = 120.0
#: ... over this long (s): a tone change is still there, a cramp is over.
POST_WINDOW_S: Final = 180.0
#: A cramp's painful awakening comes with or after its ramp: movement is looked for from this
#: long after the onset to this long after the 3x crossing (s).
LATE_MOVE_S: Final = (2.0, 30.0)
#: A rise whose plateau stands above this many times the floor is not a night cramp (recorded
#: cramps reached 2-8x, DETECTION.md; voluntary repositioning up to ~30x): an electrode
#: coming loose or the lead-off noise of an amplifier. Reported as not covered.
PLAUSIBLE_MAX_REL: Final = 40.0
#: The decision model sees the plateau level only up to this multiple of the floor. Below it,
#: weak rises (a tone change, 1.5-3x) differ from cramps (2-8x in the only overnight
#: recordings, DETECTION.md); above it, the level says more about the electrode and the skin
#: under it than about the contraction, and a cramp is a strong contraction: a model free to
#: use the level learned from its tuning world that cramps stop at 8x (where that world's
#: prior ends) and rejected the stronger cramps of any wider world.
PLATEAU_FEATURE_MAX_REL: Final = 5.0
#: How long a rise stays elevated is read on the strongest channel's absolute envelope (not
#: the adaptive ratio, whose floor follows a long rise): 10-s block medians from the onset,
#: until ELEVATED_QUIET_BLOCKS blocks in a row fall below ELEVATED_REL x the pre-onset level,
#: looked at for at most ELEVATED_MAX_S. A cramp is over within ~15 min plus its decay; slow
#: tone changes last 10-60 min.
ELEVATED_BLOCK_S: Final = 10.0
ELEVATED_REL: Final = 1.5
ELEVATED_QUIET_BLOCKS: Final = 3
ELEVATED_MAX_S: Final = 1200.0
#: The pre-onset level of that channel: median envelope from PRE_LEVEL_S to PRE_GAP_S before.
PRE_LEVEL_S: Final = 300.0
#: Wobble: median |change| of the log envelope ratio over this lag (s) within the core.
WOBBLE_LAG_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one hysteresis span: an event, a rejection, or nothing (too short).

    ``features`` and ``probability`` are set for every candidate the decision model saw;
    ``uncovered`` is a span (s) whose signal was not EMG (reported as not covered).
    """

    leg: Leg
    span: tuple[int, int]  # absolute [start, stop) hop indices of the span
    event: dict[str, object] | None = None
    rejected: tuple[str, float, float, str] | None = None
    features: dict[str, float] | None = None
    probability: float | None = None
    onset_s: float | None = None
    offset_s: float | None = None
    uncovered: tuple[float, float] | None = None


def _other_slice(st: LegState, other: LegState, a: int, b: int) -> NDArray[np.float64]:
    """The other leg's ratio over this leg's steps ``[a, b)`` (absolute alignment)."""
    oa, ob = st.h0 + a - other.h0, st.h0 + b - other.h0
    oa, ob = max(0, oa), min(other.ratio.size, ob)
    return other.ratio[oa:ob] if ob > oa else np.empty(0)


def _best_channel(st: LegState, a: int, b: int) -> int:
    """The channel with the largest mean ratio over steps ``[a, b)`` (0 when none is valid)."""
    seg = st.ratio_ch[:, a:b]
    ok = np.isfinite(seg)
    n = ok.sum(axis=1)
    mean = np.where(n > 0, np.where(ok, seg, 0.0).sum(axis=1) / np.maximum(n, 1), -1.0)
    return int(np.argmax(mean))


def _spectral_shift(st: LegState, on_i: int, s_i: int, e_i: int) -> float:
    """Log of the event's mean-frequency proxy (excess power) over the floor's; 0 unknown."""
    if st.dms is None or st.env is None or e_i <= s_i:
        return 0.0
    ms = st.env.hop_ms_uv2
    c = _best_channel(st, s_i, e_i)
    hop = st.hop_s
    b0 = max(0, on_i - round(SPECTRAL_BASE_S / hop))
    b1 = max(b0, on_i - round(PRE_GAP_S / hop))
    quiet = np.isfinite(ms[c, b0:b1]) & (st.ratio_ch[c, b0:b1] < SPECTRAL_QUIET_RATIO)
    if int(quiet.sum()) < SPECTRAL_MIN_STEPS:
        return 0.0
    bm = float(ms[c, b0:b1][quiet].mean())
    bd = float(st.dms[c, b0:b1][quiet].mean())
    ev = np.isfinite(ms[c, s_i:e_i])
    if not ev.any() or bm <= 0 or bd <= 0:
        return 0.0
    em = float(ms[c, s_i:e_i][ev].mean()) - bm
    ed = float(st.dms[c, s_i:e_i][ev].mean()) - bd
    if em <= 0 or ed <= 0:
        return 0.0
    return math.log((ed / em) / (bd / bm))


def _elevated_s(st: LegState, on_i: int, s_i: int) -> float:
    """How long (s) the strongest channel's envelope stays above ELEVATED_REL x its level
    before the onset (at most ELEVATED_MAX_S; 0 when unknown)."""
    if st.env is None:
        return 0.0
    hop = st.hop_s
    c = _best_channel(st, s_i, s_i + 10)
    rms = st.env.rms_uv[c]
    pre = rms[max(0, on_i - round(PRE_LEVEL_S / hop)):max(0, on_i - round(PRE_GAP_S / hop))]
    pre = pre[np.isfinite(pre)]
    if pre.size == 0:
        return 0.0
    level = ELEVATED_REL * float(np.median(pre))
    bn = round(ELEVATED_BLOCK_S / hop)
    seg = rms[on_i:min(rms.size, on_i + round(ELEVATED_MAX_S / hop))]
    k = seg.size // bn
    if k == 0:
        return 0.0
    blocks = seg[:k * bn].reshape(k, bn)
    ok = np.isfinite(blocks).any(axis=1)
    med = np.full(k, np.nan)
    if ok.any():
        med[ok] = np.nanmedian(blocks[ok], axis=1)
    low = ~(med >= level)
    start = max(0, (s_i - on_i) // bn)
    run = 0
    for j in range(start, k):
        run = run + 1 if low[j] else 0
        if run >= ELEVATED_QUIET_BLOCKS:
            return float((j + 1 - run) * ELEVATED_BLOCK_S)
    return float(k * ELEVATED_BLOCK_S)


def event_features(st: LegState, other: LegState | None, on_i: int, s_i: int, e_i: int,
                   *, plateau: float, quiet: float, plm: bool, bilateral: bool,
                   both_moving: bool, params: DetectionParams,
                   emg_fs_hz: float | None = None) -> dict[str, float]:
    """The decision model's evidence for one candidate (see
    :data:`crampsense.detection.model.EMG_FEATURES`; ``spectral_shift`` feeds a hard rule)."""
    hop = st.hop_s
    onset_s, cross_s, offset_s = ((st.h0 + on_i) * hop, (st.h0 + s_i) * hop,
                                  (st.h0 + e_i) * hop)
    starts = st.cands[:, 1]
    near = np.abs(starts - s_i) <= round(NEIGHBOUR_WINDOW_S / hop)
    neighbours = int(near.sum()) - 1
    pre_rel = _finite_median(st.ratio[max(0, on_i - round(PRE_WINDOW_S / hop)):
                                      max(0, on_i - round(PRE_GAP_S / hop))], default=1.0)
    core = st.ratio[s_i:e_i]
    core = core[np.isfinite(core)]
    cv = float(core.std() / core.mean()) if core.size and core.mean() > 0 else 0.0
    lag = max(1, round(WOBBLE_LAG_S / hop))
    lc = np.log(np.maximum(core, 1e-3))
    wobble = float(np.median(np.abs(lc[lag:] - lc[:-lag]))) if lc.size > lag else 0.0
    elevated = _elevated_s(st, on_i, s_i)
    p0 = min(st.ratio.size, e_i + round(POST_GAP_S / hop))
    post_rel = _finite_median(st.ratio[p0:min(st.ratio.size, p0 + round(POST_WINDOW_S / hop))],
                              default=1.0)
    onset_move = 0.0
    late_move = 0.0
    move_share = 0.0
    has_acc = 0.0
    if st.acc is not None and st.acc.valid[st.acc.window(onset_s, offset_s)].any():
        has_acc = 1.0
        w = st.acc.window(onset_s - ONSET_MOVE_S[0], onset_s + ONSET_MOVE_S[1])
        m = st.acc.motion_mg[w]
        m = m[np.isfinite(m)]
        onset_move = float(np.log1p(m.max())) if m.size else 0.0
        lm = st.acc.motion_mg[st.acc.window(onset_s + LATE_MOVE_S[0], cross_s + LATE_MOVE_S[1])]
        lm = lm[np.isfinite(lm)]
        late_move = float(np.log1p(lm.max())) if lm.size else 0.0
        mv = st.acc.moving(params)[st.acc.window(onset_s, offset_s)]
        move_share = float(mv.mean()) if mv.size else 0.0
    other_active = 0.0
    if other is not None and other.env is not None:
        o = _other_slice(st, other, on_i, e_i)
        o = o[np.isfinite(o)]
        other_active = float((o >= params.off_ratio).mean()) if o.size else 0.0
    ch_peak = np.nanmax(np.where(np.isfinite(st.ratio_ch[:, s_i:e_i]),
                                 st.ratio_ch[:, s_i:e_i], -np.inf), axis=1)
    ch_valid = np.isfinite(st.ratio_ch[:, s_i:e_i]).any(axis=1)
    agree = float((ch_peak >= params.on_ratio).sum()) / max(1, int(ch_valid.sum()))
    return {
        "log_duration_s": math.log(max(offset_s - onset_s, hop)),
        "log_plateau_rel": (math.log(min(max(plateau, 1.0), PLATEAU_FEATURE_MAX_REL))
                            if math.isfinite(plateau) else 0.0),
        "quiet_fraction": quiet,
        "plm_member": float(plm),
        "log_neighbours": math.log1p(max(0, neighbours)),
        "log_ramp_s": math.log1p(max(0.0, cross_s - onset_s)),
        "onset_move_mg": onset_move,
        "move_share": move_share,
        "other_active": other_active,
        "both_moving": float(both_moving),
        "bilateral_onset": float(bilateral),
        "log_pre_rel": math.log(max(pre_rel, 0.5)),
        "log_cv": math.log(max(cv, 1e-3)),
        "log_wobble": math.log(max(wobble, 1e-3)),
        "log_post_rel": math.log(max(post_rel, 0.5)),
        "log_elevated_s": math.log1p(elevated),
        "late_move_mg": late_move,
        "agreement": agree,
        "has_acc": has_acc,
        "spectral_shift": _spectral_shift(st, on_i, s_i, e_i) if (
            emg_fs_hz is not None and emg_fs_hz >= BROADBAND_MIN_FS_HZ) else 0.0,
    }


def leg_events(st: LegState, other: LegState | None, params: DetectionParams,
               *, emg_fs_hz: float | None = None) -> list[Decision]:
    """Decide every candidate of one leg: an event (with its confidence) or a rejection.

    Hard rules: shorter than ``min_duration_s`` (dropped), starting while standing
    (``standing``), a plateau above PLAUSIBLE_MAX_REL (``implausible_level``), a strong,
    long, broadband rise (``not_emg``; these two are not covered) or a rise at once with a
    leg that moves through most of it (``voluntary_movement``). Everything else is
    weighed by the decision model (:mod:`crampsense.detection.model`); a candidate below
    :data:`~crampsense.detection.model.REPORT_PROBABILITY` is rejected under the name of the
    old rule it also breaks (``plm_train``, ``body_movement``, ``phasic``) or of the evidence
    that weighed most against it (``model:<feature>``).
    """
    out: list[Decision] = []
    if st.env is None:
        return out
    model = model_for("envelope" if st.dms is None else "emg")
    for i, (on_i, s_i, span_end) in enumerate(st.cands.tolist()):
        out.append(_decide(st, other, (on_i, s_i, span_end), (st.h0 + s_i, st.h0 + span_end),
                           plm=bool(st.plm[i]), params=params, model=model,
                           emg_fs_hz=emg_fs_hz))
    if st.nested:
        # PLM trains on a tone change: the nested rises with the other spans of the leg
        hop = st.hop_s
        with_nested = {n.parent for n in st.nested}
        rows = [(float(s_i), float(e_i), -1) for j, (_, s_i, e_i) in enumerate(st.cands.tolist())
                if j not in with_nested]
        rows += [(float(n.s_i), float(n.e_i), k) for k, n in enumerate(st.nested)]
        rows.sort()
        spans_s = np.array([r[:2] for r in rows]).reshape(-1, 2)
        member = _plm_members((spans_s + st.h0) * hop, params)
        plm_of = {r[2]: bool(m) for r, m in zip(rows, member, strict=True) if r[2] >= 0}
        for k, n in enumerate(st.nested):
            parent_end = int(st.cands[n.parent, 2])
            d = _decide(nested_view(st, n), other, (n.on_i, n.s_i, n.e_i),
                        (st.h0 + n.s_i, st.h0 + parent_end), plm=plm_of[k], params=params,
                        model=model, emg_fs_hz=emg_fs_hz)
            pd = out[n.parent]
            if d.event is not None and pd.event is not None:
                # one episode, two readings: a cramp on a tone (the rise) or one long
                # contraction with a stronger part (the span); the more probable one stands,
                # except that a rise ending with its span is the stretch that ends a cramp
                stretch = (pd.offset_s or 0.0) - (d.offset_s or 0.0) <= NESTED_STRETCH_END_S
                rise_wins = not stretch and (d.probability or 0.0) > (pd.probability or 0.0)
                loser, why = ((pd, "nested_rise") if rise_wins
                              else (d, "inside_reported_span"))
                demoted = replace(loser, event=None, rejected=(
                    st.leg, float(loser.onset_s or 0.0), float(loser.offset_s or 0.0), why))
                if loser is pd:
                    out[n.parent] = demoted
                else:
                    d = demoted
            out.append(d)
    return out


def _decide(st: LegState, other: LegState | None, cand: tuple[int, int, int],
            span: tuple[int, int], *, plm: bool, params: DetectionParams,
            model: LogisticModel | TreeModel, emg_fs_hz: float | None) -> Decision:
    """One candidate's decision: an event, a rejection, or nothing (shorter than
    ``min_duration_s``)."""
    on_i, s_i, span_end = cand
    leg = st.leg
    hop = st.hop_s
    h0 = st.h0
    kind = "envelope" if st.dms is None else "emg"

    def reject(why: str, off_s: float, **extra: object) -> Decision:
        return Decision(leg, span, rejected=(leg, (h0 + on_i) * hop, off_s, why),
                        **extra)  # type: ignore[arg-type]

    e_i = span_end
    onset_s, cross_s, offset_s = (h0 + on_i) * hop, (h0 + s_i) * hop, (h0 + e_i) * hop
    if offset_s - onset_s < params.min_duration_s:
        return Decision(leg, span)  # short bursts are not worth a "rejected" row
    plm = bool(plm and (e_i - s_i) * hop <= params.plm_max_burst_s)
    w0, w1 = onset_s - params.onset_window_s, cross_s + params.onset_window_s
    moving, standing = _standing_or_moving(st, w0, w1, params)
    if standing:
        return reject("standing", offset_s)
    o_moving = None if other is None else _standing_or_moving(other, w0, w1, params)[0]
    bilateral = _bilateral_onset(onset_s, other, params)
    # Getting up ends the cramp at the latest: standing stretches the calf.
    up_s = _got_up(st, onset_s, offset_s + params.got_up_after_s, params)
    got_up = up_s is not None
    if up_s is not None and onset_s + params.min_duration_s <= up_s < offset_s:
        e_i = max(s_i + 1, round(up_s / hop) - h0)
        offset_s = (h0 + e_i) * hop
    # Offset: end of the plateau, not the end of the slow decay after it.
    e_i, plateau = _plateau_end(st.ratio, on_i, s_i, e_i, stood_up=e_i < span_end,
                                hop=hop, params=params)
    offset_s = (h0 + e_i) * hop
    quiet = _quiet_fraction(st.step_ratio[s_i:e_i], round(PHASIC_LOCAL_S / hop), params)
    feats = event_features(st, other, on_i, s_i, e_i, plateau=plateau, quiet=quiet,
                           plm=plm, bilateral=bilateral,
                           both_moving=bool(moving and o_moving), params=params,
                           emg_fs_hz=emg_fs_hz)
    extra = {"features": feats, "onset_s": onset_s, "offset_s": offset_s}
    if math.isfinite(plateau) and plateau > PLAUSIBLE_MAX_REL:
        return reject("implausible_level", offset_s, **extra, probability=0.0,
                      uncovered=(onset_s, offset_s))
    if (kind == "emg" and emg_fs_hz is not None and emg_fs_hz >= BROADBAND_MIN_FS_HZ
            and feats["spectral_shift"] >= BROADBAND_SHIFT and plateau >= BROADBAND_MIN_REL
            and offset_s - onset_s >= BROADBAND_MIN_S):
        return reject("not_emg", offset_s, **extra, probability=0.0,
                      uncovered=(onset_s, offset_s))
    if (feats["has_acc"] > 0 and feats["move_share"] >= VOLUNTARY_MOVE_SHARE
            and cross_s - onset_s < VOLUNTARY_MAX_RAMP_S):
        return reject("voluntary_movement", offset_s, **extra, probability=0.0)
    p = model.probability({k: feats[k] for k in model.features})
    if p < REPORT_PROBABILITY:
        why = ("plm_train" if plm else
               "body_movement" if bilateral or (moving and o_moving) else
               "phasic" if quiet > params.phasic_max_quiet_fraction else
               f"model:{model.strongest_against(feats)}")
        return reject(why, offset_s, **extra, probability=p)
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
    ch_peak = np.nanmax(np.where(np.isfinite(st.ratio_ch[:, s_i:e_i]),
                                 st.ratio_ch[:, s_i:e_i], -np.inf), axis=1)
    carried = tuple(c for c, pk in zip(st.channels, ch_peak, strict=True)
                    if pk >= params.on_ratio)
    duration = offset_s - onset_s
    has_acc = feats["has_acc"] > 0
    return Decision(leg, span, event={
        "onset_s": onset_s, "offset_s": offset_s, "duration_s": duration,
        "leg": leg, "channels": list(carried), "peak_rel": peak, "mean_rel": mean,
        "severity": str(grade_severity(duration, peak)), "confidence": round(p, 3),
        "kind": "cramp", "evidence": "emg+acc" if has_acc else "emg",
        "woke": woke, "got_up": got_up, "stretched": stretched,
    }, features=feats, probability=p, onset_s=onset_s, offset_s=offset_s)
