"""Accelerometer-only "possible cramps" for legs without EMG (most consumer wearables).

A night cramp is a sustained, involuntary, near-isometric contraction of the calf in a leg
that was lying still, often with an abrupt awakening movement, sometimes followed by
stretching and getting up. Without EMG, the contraction shows on a shank accelerometer only
as the muscle's mechanomyogram (MMG): a 5-25 Hz surface vibration of a few mg whose amplitude
grows with force (Orizio 1993; Beck et al. 2005). :func:`possible_cramps` looks for a
sustained rise of that vibration over the night's own floor in a still leg, and rejects the
look-alikes: rolling over (both legs, posture change), periodic limb movements and ALMA
(phasic bursts, not a plateau), walking and standing (shank upright).

Results are *possible* cramps: the vibration is small, depends on how firmly the sensor sits
on the calf, and nothing in it tells a cramp from a voluntary calf contraction; the
confidence is the accelerometer decision model's probability (:data:`MAX_CONFIDENCE`).
Method and measured performance: ``docs/acc-and-sleep.md``.

References
----------
Orizio C (1993) Muscle sound: bases for the introduction of a mechanomyographic signal in
muscle studies. Crit Rev Biomed Eng 21:201-243.
Beck TW et al. (2005) Mechanomyographic amplitude and frequency responses during dynamic
muscle actions: a comprehensive review. Biomed Eng Online 4:67.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from crampsense.detection.model import REPORT_PROBABILITY, model_for
from crampsense.detection.schema import EVENT_ROW_SCHEMA
from crampsense.detection.sleep import AccEpochs, SleepPeriod, _check_ranges, _quiet_nan, _runs
from crampsense.errors import ConfigError, DetectionError
from crampsense.models import grade_severity

__all__ = ["ACC_EVENT_SCHEMA", "AccCrampParams", "possible_cramps"]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
BOOL = NDArray[np.bool_]

#: The detector's event columns without the wall-clock ``onset``/``offset`` (added by
#: detect_cramps from its start time).
ACC_EVENT_SCHEMA: Final = EVENT_ROW_SCHEMA

#: Axis carrying the MMG: z is normal to the skin, the direction the muscle belly vibrates in.
MMG_AXIS: Final = 2
#: Epoch the detector works on (s): onsets within a second or two, 28 800 epochs a night.
DETECT_EPOCH_S: Final = 1.0
#: Vibration floor: 20th percentile of 10-s block medians over a centred 30-min window. A
#: cramp lasts at most ~15 min, so a fifth of the window stays quiet even during the longest.
FLOOR_BLOCK_S: Final = 10.0
FLOOR_WINDOW_S: Final = 1800.0
FLOOR_QUANTILE: Final = 20.0
#: Vibration ratio smoothed as the RMS over this many seconds (centred): 5 s of 50-Hz samples
#: hold ~200 degrees of freedom in the band, so the ratio's noise falls to ~5 %.
SMOOTH_S: Final = 5.0
#: Hysteresis on the smoothed ratio (x floor): on at 1.3 (the 5-s ratio of pure sensor noise
#: scatters by ~6 % around ~1.05 above the 20th-percentile floor, so 1.3 is ~4 SDs; a 2.5-mg
#: MMG over the ~2.7-mg in-band noise of the z axis reaches it), off below 1.12.
ON_RATIO: Final = 1.3
OFF_RATIO: Final = 1.12
#: The event's mean 1-s ratio over its still epochs must reach this: noise excursions that
#: touch ON_RATIO average ~1.2; tuning cramps averaged 1.4-2.0.
MIN_MEAN_REL: Final = 1.3
#: PLM trains (WASM 2016): a candidate with at least PLM_MIN_NEIGHBOURS other vibration bursts
#: starting 10-90 s before or after it (a chain at PLM intervals) is part of a train.
PLM_MIN_INTERVAL_S: Final = 10.0
PLM_MAX_INTERVAL_S: Final = 90.0
PLM_MIN_NEIGHBOURS: Final = 2
#: Only bursts up to this long (s) count as train members (bilateral PLM: <= 15 s, WASM 2016).
PLM_MAX_BURST_S: Final = 15.0
#: Dips of the smoothed ratio below OFF_RATIO shorter than this (s) are bridged: a weak
#: plateau wobbles around the off level; PLM bursts are >= 10 s apart.
MERGE_GAP_S: Final = 5.0
#: Onset walks back along the rising ramp to where the smoothed ratio last stood below this
#: level, at most ONSET_LOOKBACK_S (cramp EMG, and with it the MMG, ramps over 10-45 s).
ONSET_RATIO: Final = 1.06
ONSET_LOOKBACK_S: Final = 60.0
#: Shortest possible cramp (s). PLM bursts end at 10 s (WASM 2016), but ALMA runs (up to
#: ~20 s of sub-second bursts) and roll-overs (3-20 s) look tonic at 1-s resolution, so an
#: acc-only event must outlast them; this costs the shortest cramps (a log-normal with median
#: 90 s and sigma 0.8 puts ~6 % of cramps under 25 s).
MIN_DURATION_S: Final = 25.0
#: A 1-s epoch moves when its movement (sqrt of summed axis variances) exceeds this (mg) or
#: the shank is upright for most of it: a still limb shows ~5 mg of sensor noise and MMG.
MOVE_MG: Final = 40.0
#: A cramp is near-isometric: at least this share of its epochs must be still (the waking
#: burst takes 2-6 s of a cramp lasting a minute or more).
MIN_STILL_FRACTION: Final = 0.6
#: Tonic, not phasic: of the still epochs, at least this share must carry vibration over
#: TONIC_RATIO x floor (1-s values). PLM and ALMA bursts leave most epochs at the floor.
MIN_TONIC_FRACTION: Final = 0.7
TONIC_RATIO: Final = 1.1
#: Cramps start in a still leg: at most this share of the PRE_S seconds before onset may move.
PRE_S: Final = 30.0
MAX_PRE_MOVING_FRACTION: Final = 0.2
#: Body movement: the other leg moving within this window around the onset (s), or a
#: posture change of this leg above TURN_DEG within it, means rolling over, not a cramp.
ONSET_WINDOW_S: Final = 10.0
TURN_DEG: Final = 20.0
#: Context flags: woke = this leg moves within WOKE_AFTER_S of onset; got_up = shank upright
#: for GOT_UP_MIN_S within the event or GOT_UP_AFTER_S after it; stretched = the 3-s RMS
#: ratio in the last STRETCH_WINDOW_S reaches STRETCH_RATIO x the event's median ratio (a
#: forced stretch raises the contraction, and its MMG, by a third or more).
WOKE_AFTER_S: Final = 30.0
GOT_UP_MIN_S: Final = 10.0
GOT_UP_AFTER_S: Final = 120.0
STRETCH_WINDOW_S: Final = 15.0
STRETCH_RATIO: Final = 1.3
#: peak_rel: the largest RMS of the 1-s vibration ratio over this long (s).
PEAK_SMOOTH_S: Final = 3.0
#: Confidence = the accelerometer decision model's probability (calibrated on the tuning
#: world), optionally capped by ``AccCrampParams.max_confidence``. No cap by default: a cap
#: makes the confidence say less than the evidence does (on the shifted world, events capped
#: at 0.6 were true 79 % of the time: calibration error 0.2). The label "possible_cramp" says
#: what the evidence is; the probability says how sure it is.
MAX_CONFIDENCE: Final = 1.0

_RANGES: Final[dict[str, tuple[float, float]]] = {
    "floor_block_s": (1.0, 120.0),
    "floor_window_s": (60.0, 14400.0),
    "floor_quantile": (1.0, 50.0),
    "smooth_s": (1.0, 30.0),
    "on_ratio": (1.01, 20.0),
    "off_ratio": (1.0, 20.0),
    "onset_ratio": (1.0, 20.0),
    "onset_lookback_s": (0.0, 300.0),
    "min_duration_s": (1.0, 600.0),
    "min_mean_rel": (1.0, 20.0),
    "plm_min_interval_s": (1.0, 60.0),
    "plm_max_interval_s": (5.0, 600.0),
    "plm_min_neighbours": (1.0, 20.0),
    "plm_max_burst_s": (1.0, 60.0),
    "merge_gap_s": (0.0, 60.0),
    "move_mg": (5.0, 2000.0),
    "min_still_fraction": (0.0, 1.0),
    "min_tonic_fraction": (0.0, 1.0),
    "tonic_ratio": (1.0, 20.0),
    "pre_s": (0.0, 600.0),
    "max_pre_moving_fraction": (0.0, 1.0),
    "onset_window_s": (0.0, 120.0),
    "turn_deg": (1.0, 180.0),
    "woke_after_s": (0.0, 600.0),
    "got_up_min_s": (1.0, 600.0),
    "got_up_after_s": (0.0, 3600.0),
    "stretch_window_s": (1.0, 120.0),
    "stretch_ratio": (1.0, 10.0),
    "max_confidence": (0.0, 1.0),
}


@dataclass(frozen=True, slots=True)
class AccCrampParams:
    """Parameters of :func:`possible_cramps`; defaults are the module constants (with reasons).

    Attributes
    ----------
    floor_block_s, floor_window_s, floor_quantile : float
        Vibration floor: block (s), centred window (s) and percentile of block medians.
    smooth_s : float
        RMS smoothing of the vibration ratio (s).
    on_ratio, off_ratio, onset_ratio : float
        Hysteresis and onset walk-back levels (x floor).
    onset_lookback_s, min_duration_s : float
        Onset walk-back limit and shortest event (s).
    min_mean_rel : float
        Lowest mean vibration ratio of an event (x floor).
    plm_min_interval_s, plm_max_interval_s : float
        Interval range (s) of vibration bursts that chain into a PLM train.
    plm_min_neighbours : int
        Other bursts in that range that make a candidate part of a train.
    plm_max_burst_s, merge_gap_s : float
        Longest train member burst and longest bridged dip (s).
    move_mg, min_still_fraction, min_tonic_fraction, tonic_ratio : float
        Movement threshold (mg), required still and tonic shares, tonic level (x floor).
    pre_s, max_pre_moving_fraction : float
        Still-before-onset window (s) and the share of it that may move.
    onset_window_s, turn_deg : float
        Body-movement rule window (s) and posture-change limit (degrees).
    woke_after_s, got_up_min_s, got_up_after_s, stretch_window_s, stretch_ratio : float
        Context flags.
    max_confidence : float
        Cap of the confidence.
    """

    floor_block_s: float = FLOOR_BLOCK_S
    floor_window_s: float = FLOOR_WINDOW_S
    floor_quantile: float = FLOOR_QUANTILE
    smooth_s: float = SMOOTH_S
    on_ratio: float = ON_RATIO
    off_ratio: float = OFF_RATIO
    onset_ratio: float = ONSET_RATIO
    onset_lookback_s: float = ONSET_LOOKBACK_S
    min_duration_s: float = MIN_DURATION_S
    min_mean_rel: float = MIN_MEAN_REL
    plm_min_interval_s: float = PLM_MIN_INTERVAL_S
    plm_max_interval_s: float = PLM_MAX_INTERVAL_S
    plm_min_neighbours: int = PLM_MIN_NEIGHBOURS
    plm_max_burst_s: float = PLM_MAX_BURST_S
    merge_gap_s: float = MERGE_GAP_S
    move_mg: float = MOVE_MG
    min_still_fraction: float = MIN_STILL_FRACTION
    min_tonic_fraction: float = MIN_TONIC_FRACTION
    tonic_ratio: float = TONIC_RATIO
    pre_s: float = PRE_S
    max_pre_moving_fraction: float = MAX_PRE_MOVING_FRACTION
    onset_window_s: float = ONSET_WINDOW_S
    turn_deg: float = TURN_DEG
    woke_after_s: float = WOKE_AFTER_S
    got_up_min_s: float = GOT_UP_MIN_S
    got_up_after_s: float = GOT_UP_AFTER_S
    stretch_window_s: float = STRETCH_WINDOW_S
    stretch_ratio: float = STRETCH_RATIO
    max_confidence: float = MAX_CONFIDENCE

    def __post_init__(self) -> None:
        _check_ranges(self, _RANGES, "acc_only")
        if not self.onset_ratio <= self.off_ratio < self.on_ratio:
            raise ConfigError(
                f"acc_only ratios must satisfy onset_ratio <= off_ratio < on_ratio, got "
                f"{self.onset_ratio}, {self.off_ratio}, {self.on_ratio}; reorder them",
                key="acc_only.on_ratio",
            )


def vibration_floor(vib_mg: F64, epoch_s: float, params: AccCrampParams | None = None) -> F64:
    """Adaptive floor of the calf vibration per epoch (mg), shape like ``vib_mg``.

    The 20th percentile of 10-s block medians over a centred 30-min window, held per block
    (nan where the window has no valid block).
    """
    p = params if params is not None else AccCrampParams()
    v = np.asarray(vib_mg, dtype=np.float64)
    n = v.size
    b = max(1, round(p.floor_block_s / epoch_s))
    nb = -(-n // b)
    pad = np.full(nb * b, np.nan)
    pad[:n] = v
    with _quiet_nan():
        med = np.nanmedian(pad.reshape(nb, b), axis=1)
        w = max(1, min(nb, round(p.floor_window_s / (b * epoch_s))))
        half = w // 2
        ext = np.concatenate([np.full(half, np.nan), med, np.full(w - 1 - half, np.nan)])
        floor_b = np.nanpercentile(sliding_window_view(ext, w), p.floor_quantile, axis=1)
    out: F64 = np.repeat(floor_b, b)[:n]
    return out


def _rms_smooth(x: F64, w: int) -> F64:
    from scipy.ndimage import uniform_filter1d  # noqa: PLC0415 - 0.5 s to import; acc-only legs

    out: F64 = np.sqrt(uniform_filter1d(x * x, size=max(1, w), mode="nearest"))
    return out


def possible_cramps(
    epochs: AccEpochs,
    *,
    sleep: SleepPeriod,
    leg: str,
    other: AccEpochs | None = None,
    params: AccCrampParams | None = None,
    collect: list[dict[str, object]] | None = None,
) -> pl.DataFrame:
    """Possible cramps of one leg from its accelerometer alone.

    Parameters
    ----------
    epochs : AccEpochs
        This leg's epochs of the whole night, 1-s epochs recommended
        (``acc_epochs(acc_mg, fs_hz, epoch_s=1.0)``), 25 Hz or more.
    sleep : SleepPeriod
        From :func:`~crampsense.detection.sleep.sleep_period`; only onsets inside the sleep
        period count (the whole night when none was found).
    leg : {"left", "right"}
    other : AccEpochs, optional
        The other leg's epochs on the same grid: movement of both legs at the onset is
        rolling over, not a cramp.
    params : AccCrampParams, optional
    collect : list, optional
        When given, every candidate the decision model weighed is appended to it as a dict
        (``leg``, ``onset_s``, ``offset_s``, ``probability``, ``reported`` and the features of
        :data:`crampsense.detection.model.ACC_FEATURES`).

    Returns
    -------
    polars.DataFrame
        One row per possible cramp, columns :data:`ACC_EVENT_SCHEMA` (the detector's
        EVENT_SCHEMA without the wall-clock ``onset``/``offset``).

    Notes
    -----
    Output columns:

    ``onset_s``, ``offset_s``, ``duration_s`` (s); ``leg``; ``channels`` (always empty: no
    EMG); ``peak_rel`` — the largest 3-s RMS of the calf vibration (5-25 Hz on the skin-normal
    axis, still epochs) over its adaptive floor; ``mean_rel`` — the mean of that ratio over
    the event's still epochs (both are MMG + sensor-noise ratios, ~1.2-3 for cramps, not
    comparable with EMG ratios); ``severity`` — :func:`crampsense.models.grade_severity` on
    the duration alone (``peak_rel`` nan: vibration ratios are not EMG ratios);
    ``confidence`` — the accelerometer decision model's probability; ``kind`` =
    ``"possible_cramp"``;
    ``evidence`` = ``"acc"``; ``woke``, ``got_up``, ``stretched``.

    Steps: vibration ratio to the floor, RMS-smoothed over 5 s; hysteresis (on 1.25, off
    1.12; moving epochs bridge but never open an event); onset walked back along the ramp;
    rejected when shorter than 10 s, mostly moving, phasic (PLM, ALMA), not preceded by a
    still leg, accompanied by the other leg moving or by a posture change at the onset
    (rolling over), or outside the sleep period.

    References
    ----------
    Orizio 1993; Beck et al. 2005 (see the module docstring).
    """
    p = params if params is not None else AccCrampParams()
    if leg not in ("left", "right"):
        raise DetectionError(f"leg {leg!r} is not 'left' or 'right'; pass one of those")
    if other is not None and (other.epoch_s != epochs.epoch_s or other.start_s != epochs.start_s):
        raise DetectionError(
            f"the other leg's epochs ({other.epoch_s} s from {other.start_s} s) are not on this "
            f"leg's grid ({epochs.epoch_s} s from {epochs.start_s} s); compute both alike"
        )
    es = epochs.epoch_s
    n = epochs.n
    if n == 0:
        return pl.DataFrame(schema=ACC_EVENT_SCHEMA)
    valid = epochs.valid
    vib = np.where(valid, epochs.vib_mg[MMG_AXIS], np.nan)
    floor = vibration_floor(vib, es, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = vib / floor
    ratio = np.where(np.isfinite(ratio), ratio, 1.0)
    moving = _moving(epochs, p)
    still_ratio = np.where(moving, 1.0, ratio)
    smooth = _rms_smooth(still_ratio, round(p.smooth_s / es))
    hi = (smooth >= p.on_ratio) & ~moving & valid
    lo = ((smooth >= p.off_ratio) | moving) & valid
    lo = _bridge(lo, round(p.merge_gap_s / es))
    other_moving = _moving(other, p) if other is not None else np.zeros(n, dtype=bool)
    other_ratio = np.ones(n)
    if other is not None:
        ov = np.where(other.valid, other.vib_mg[MMG_AXIS], np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            other_ratio = ov / vibration_floor(ov, es, p)
        other_ratio = np.where(np.isfinite(other_ratio), other_ratio, 1.0)
    model = model_for("acc")
    zang = epochs.z_angle_deg
    half = round(p.smooth_s / es / 2)
    b0, b1 = _runs(hi)
    burst_t, burst_len = b0 * es, (b1 - b0) * es
    rows: list[dict[str, object]] = []
    starts, ends = _runs(lo)
    for a, b in zip(starts, ends, strict=True):
        if not hi[a:b].any():
            continue
        # trim moving epochs at the edges and the smoothing spread at the end
        core = np.flatnonzero(~moving[a:b])
        if core.size == 0:
            continue
        a2, b2 = a + int(core[0]), a + int(core[-1]) + 1
        b2 = max(a2 + 1, b2 - half)
        first_hi = a + int(np.flatnonzero(hi[a:b])[0])
        onset_i = _walk_back(smooth, moving, first_hi, max(0, a2 - round(p.onset_lookback_s / es)),
                             p.onset_ratio)
        onset_i = min(onset_i, a2)
        offset_i = b2
        dur = (offset_i - onset_i) * es
        seg = slice(onset_i, offset_i)
        mv = moving[seg]
        reason = _reject(p, es=es, dur=dur, mv=mv, ratio=ratio[seg], moving=moving,
                         other_moving=other_moving, zang=zang, onset_i=onset_i, sleep=sleep,
                         start_s=epochs.start_s)
        if reason in HARD_REJECTIONS:
            logger.debug("acc candidate %.0f-%.0f s rejected: %s", onset_i * es, offset_i * es,
                         reason)
            continue
        st = ~mv
        r_still = ratio[seg][st]
        mean_rel = float(r_still.mean()) if r_still.size else math.nan
        if not math.isfinite(mean_rel):
            continue
        t_first = first_hi * es
        outside = (burst_t < onset_i * es) | (burst_t >= offset_i * es)
        near = np.abs(burst_t[outside & (burst_len <= p.plm_max_burst_s)] - t_first)
        feats = _acc_features(epochs, ratio=ratio, moving=moving, other_moving=other_moving,
                              other_ratio=other_ratio, zang=zang, onset_i=onset_i,
                              offset_i=offset_i, mean_rel=mean_rel, p=p)
        feats["log_neighbours"] = math.log1p(int(((near >= p.plm_min_interval_s)
                                                  & (near <= p.plm_max_interval_s)).sum()))
        prob = model.probability(feats)
        if collect is not None:
            collect.append({"leg": leg, "onset_s": epochs.start_s + onset_i * es,
                            "offset_s": epochs.start_s + offset_i * es, "probability": prob,
                            "reported": prob >= REPORT_PROBABILITY, **feats})
        if prob < REPORT_PROBABILITY:
            logger.debug("acc candidate at %.0f s weighed %.2f: %s", t_first, prob,
                         reason or model.strongest_against(feats))
            continue
        peak_series = _rms_smooth(np.where(mv, 1.0, ratio[seg]), round(PEAK_SMOOTH_S / es))
        peak_rel = float(peak_series.max())
        woke = bool(moving[onset_i:min(n, onset_i + round(p.woke_after_s / es))].any()
                    or mv.any())
        up_end = min(n, offset_i + round(p.got_up_after_s / es))
        upright = epochs.vertical_frac[onset_i:up_end] > 0.5
        got_up = _longest_run(upright) * es >= p.got_up_min_s
        tail = peak_series[-round(p.stretch_window_s / es):]
        body = r_still[: max(1, r_still.size - round(p.stretch_window_s / es))]
        stretched = bool(tail.size and body.size
                         and tail.max() >= p.stretch_ratio * float(np.median(body)))
        conf = min(p.max_confidence, prob)
        t0 = epochs.start_s + onset_i * es
        rows.append({
            "onset_s": t0,
            "offset_s": t0 + dur,
            "duration_s": dur,
            "leg": leg,
            "channels": [],
            "peak_rel": peak_rel,
            "mean_rel": mean_rel,
            "severity": str(grade_severity(dur, math.nan)),
            "confidence": round(conf, 3),
            "kind": "possible_cramp",
            "evidence": "acc",
            "woke": woke,
            "got_up": bool(got_up),
            "stretched": stretched,
        })
    if not rows:
        return pl.DataFrame(schema=ACC_EVENT_SCHEMA)
    return pl.DataFrame(rows, schema=ACC_EVENT_SCHEMA)


def _moving(ep: AccEpochs, p: AccCrampParams) -> BOOL:
    with np.errstate(invalid="ignore"):
        out: BOOL = (ep.motion_mg > p.move_mg) | (ep.vertical_frac > 0.5)
    return out & ep.valid


def _walk_back(smooth: F64, moving: BOOL, i: int, limit: int, level: float) -> int:
    """First epoch of the rise: after the last still epoch below ``level`` before ``i``."""
    seg = (smooth[limit:i] < level) & ~moving[limit:i]
    below = np.flatnonzero(seg)
    return limit + int(below[-1]) + 1 if below.size else limit


def _bridge(mask: BOOL, gap: int) -> BOOL:
    """Fill False runs of at most ``gap`` epochs between True runs."""
    out = mask.copy()
    a, b = _runs(~mask)
    inner = (a > 0) & (b < mask.size) & (b - a <= gap)
    d = np.zeros(mask.size + 1, dtype=np.int64)
    np.add.at(d, a[inner], 1)
    np.add.at(d, b[inner], -1)
    out |= np.cumsum(d)[:-1] > 0
    return out


def _longest_run(mask: BOOL) -> int:
    a, b = _runs(mask)
    return int((b - a).max()) if a.size else 0


def _reject(p: AccCrampParams, *, es: float, dur: float, mv: BOOL, ratio: F64, moving: BOOL,
            other_moving: BOOL, zang: F64, onset_i: int, sleep: SleepPeriod,
            start_s: float) -> str:
    """Why a candidate is not a possible cramp ("" if it is)."""
    if dur < p.min_duration_s:
        return "short"
    if mv.size and (~mv).mean() < p.min_still_fraction:
        return "mostly moving"
    still = ratio[~mv]
    if still.size == 0 or (still >= p.tonic_ratio).mean() < p.min_tonic_fraction:
        return "phasic"
    pre = moving[max(0, onset_i - round(p.pre_s / es)):onset_i]
    if pre.size and pre.mean() > p.max_pre_moving_fraction:
        return "leg was moving before"
    w = round(p.onset_window_s / es)
    lo = max(0, onset_i - w)
    # the other leg moving near the onset or in the first half: rolling over (getting up after
    # a cramp comes at its end)
    hi_other = min(moving.size, onset_i + max(w, round(0.5 * dur / es)))
    if other_moving[lo:hi_other].any():
        return "both legs moved (rolling over)"
    # net posture change: still epochs before the onset against still epochs after it (a
    # waking burst moves the leg and puts it back; rolling over leaves it turned)
    before = np.where(moving[lo:onset_i], np.nan, zang[lo:onset_i])
    a_hi = min(moving.size, onset_i + 3 * w)
    after = np.where(moving[onset_i:a_hi], np.nan, zang[onset_i:a_hi])
    if np.isfinite(before).any() and np.isfinite(after).any():
        with _quiet_nan():
            turn = abs(float(np.nanmedian(after[-w:]) - np.nanmedian(before)))
        if turn > p.turn_deg:
            return "posture change at onset"
    t0 = start_s + onset_i * es
    if sleep.onset_s is not None and sleep.offset_s is not None and not (
        sleep.onset_s <= t0 <= sleep.offset_s
    ):
        return "outside the sleep period"
    return ""


#: Candidates these rules reject are never weighed: an event needs some duration and must
#: start in the sleep period; both legs moving at the onset (rolling over, a bed partner) or
#: an orientation change at the onset (rolling over, a strap that slipped) is never a cramp
#: of one still leg. The other old rules (mostly moving, phasic, moving before, PLM-like
#: neighbours) became evidence for the decision model.
HARD_REJECTIONS: Final = frozenset({"short", "outside the sleep period",
                                    "both legs moved (rolling over)",
                                    "posture change at onset"})
#: The leg counts as still before the onset for at most this long (s).
PRE_STILL_MAX_S: Final = 300.0
#: Orientation change measured between the still epochs this long before and after (s).
TURN_WINDOW_S: Final = 10.0


def _acc_features(ep: AccEpochs, *, ratio: F64, moving: BOOL, other_moving: BOOL,
                  other_ratio: F64, zang: F64, onset_i: int, offset_i: int, mean_rel: float,
                  p: AccCrampParams) -> dict[str, float]:
    """The decision model's evidence for one accelerometer-only candidate
    (:data:`crampsense.detection.model.ACC_FEATURES`, plus ``log_neighbours``)."""
    es = ep.epoch_s
    seg = slice(onset_i, offset_i)
    mv = moving[seg]
    vib = ep.vib_mg[MMG_AXIS][seg][~mv]
    vib = vib[np.isfinite(vib)]
    w = max(1, round(2.0 / es))
    om = ep.motion_mg[max(0, onset_i - w):onset_i + w]
    om = om[np.isfinite(om)]
    before = moving[max(0, onset_i - round(PRE_STILL_MAX_S / es)):onset_i]
    still_before = np.flatnonzero(before[::-1])
    pre_still = (still_before[0] if still_before.size else before.size) * es
    tw = max(1, round(TURN_WINDOW_S / es))
    b = np.where(moving[max(0, onset_i - tw):onset_i], np.nan,
                 zang[max(0, onset_i - tw):onset_i])
    a = np.where(moving[onset_i:onset_i + 3 * tw], np.nan, zang[onset_i:onset_i + 3 * tw])
    turn = 0.0
    if np.isfinite(b).any() and np.isfinite(a).any():
        with _quiet_nan():
            turn = abs(float(np.nanmedian(a[-tw:]) - np.nanmedian(b)))
        turn = turn if math.isfinite(turn) else 0.0
    wo = round(p.onset_window_s / es)
    return {
        "log_duration_s": math.log(max((offset_i - onset_i) * es, es)),
        "log_vibration_mg": math.log(max(float(vib.mean()), 1e-3)) if vib.size else 0.0,
        "log_vibration_ratio": math.log(max(mean_rel, 0.5)),
        "vibration_share": float((ratio[seg][~mv] >= p.tonic_ratio).mean()) if (~mv).any()
        else 0.0,
        "log_onset_move_mg": float(np.log1p(om.max())) if om.size else 0.0,
        "other_vibration": math.log(max(float(np.mean(other_ratio[seg])), 0.5)),
        "other_move": float(other_moving[max(0, onset_i - wo):onset_i + wo].any()),
        "turn_deg": turn,
        "log_pre_still_s": math.log1p(pre_still),
    }
