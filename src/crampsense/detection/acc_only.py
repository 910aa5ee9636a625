"""Accelerometer-only "possible cramps" for legs without EMG (most consumer wearables).

A night cramp is a sustained, involuntary, near-isometric contraction of the calf in a leg
that was lying still, often with an abrupt awakening movement, sometimes followed by
stretching and getting up. Without EMG, the contraction shows on a shank accelerometer only
as the muscle's mechanomyogram (MMG): a 5-25 Hz surface vibration of a few mg whose amplitude
grows with force (Orizio 1993; Beck et al. 2005). :func:`possible_cramps` weighs two kinds
of candidate: a sustained rise of that vibration over the night's own floor in a still leg,
and - because most straps couple too loosely to feel it - the awakening: a short movement of
that one leg after a still spell, the other leg still, the posture unchanged, followed by
stillness or getting up. Hard rules drop rolling over (both legs, posture change) and strap
slips (orientation jump); the decision model weighs the rest against periodic limb
movements and ALMA (phasic bursts), restless wake (movements every 10-60 s), slow tone
changes (raised vibration before and after) and walking (shank upright).

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

from crampsense.detection.model import model_for, report_probability_for
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

    Steps: vibration ratio to the floor, RMS-smoothed over 5 s; hysteresis (on 1.3, off
    1.12; moving epochs bridge but never open an event); onset walked back along the ramp,
    offset trimmed to the end of the plateau; awakening candidates from short movement
    bursts after >= 30 s of stillness (twitches <= 50 mg do not break it; 15 s before the
    burst to a get-up within 5 min, else 45 s after); dropped when shorter than 25 s
    (vibration), when both legs move at the onset or during the burst, or when the posture
    changes across it (> 20 degrees at a vibration onset, > 5 across an awakening: rolling
    over, repositioning, a strap that slipped); every other candidate is weighed by the
    decision model and, of overlapping ones, the most probable is reported when it reaches
    the acc model's report threshold (:func:`crampsense.detection.model.report_probability_for`).
    See ``docs/acc-and-sleep.md``.

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
    report_p = report_probability_for("acc")
    zang = epochs.z_angle_deg
    half = round(p.smooth_s / es / 2)
    b0, b1 = _runs(hi)
    burst_t, burst_len = b0 * es, (b1 - b0) * es
    rows: list[dict[str, object]] = []
    bursts = _move_bursts(epochs, es)
    other_motion = other.motion_mg if other is not None else np.zeros(n)
    # onset, offset, first high epoch (awakenings: the burst's), reason, from an awakening
    cands: list[tuple[int, int, int, str, bool]] = []
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
        offset_i = _trim_decay(smooth, moving, onset_i, b2)
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
        cands.append((onset_i, offset_i, first_hi, reason, False))
    # The awakening: a cramp without visible vibration still wakes the sleeper, who moves
    # that one leg tens of seconds into the contraction and then lies still (or gets up).
    standing = _standing(epochs, es)
    for m0, m1, prev in _wake_bursts(bursts, epochs, es, standing):
        onset_i = max(prev, m0 - round(WAKE_LEAD_S / es))
        offset_i = _wake_offset(bursts, epochs, m1, n, es, standing=standing)
        if any(_iou(c[0], c[1], onset_i, offset_i) >= WAKE_SAME_IOU for c in cands):
            continue  # a vibration candidate holds this awakening already
        reason = _reject_wake(p, es=es, m0=m0, m1=m1, motion=epochs.motion_mg,
                              other_motion=other_motion, moving=moving, zang=zang,
                              onset_i=onset_i, sleep=sleep, start_s=epochs.start_s)
        if reason in HARD_REJECTIONS:
            logger.debug("acc wake candidate %.0f s rejected: %s", m0 * es, reason)
            continue
        cands.append((onset_i, offset_i, m0, reason, True))
    weighed_c: list[tuple[float, int, int, float, dict[str, float]]] = []
    for onset_i, offset_i, first_hi, reason, wake in cands:
        seg = slice(onset_i, offset_i)
        mv = moving[seg]
        r_still = ratio[seg][~mv]
        mean_rel = float(r_still.mean()) if r_still.size else 1.0
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
        feats.update(_wake_features(epochs, bursts, ratio=ratio, other_motion=other_motion,
                                    zang=zang,
                                    moving=moving, onset_i=onset_i, offset_i=offset_i,
                                    hi=hi, p=p, wake_at=first_hi if wake else None))
        feats["log_outside_sleep_s"] = _outside_sleep(sleep, epochs.start_s + onset_i * es)
        prob = model.probability(feats)
        if prob < report_p:
            logger.debug("acc candidate at %.0f s weighed %.2f: %s", t_first, prob,
                         reason or model.strongest_against(feats))
        weighed_c.append((prob, onset_i, offset_i, mean_rel, feats))
    # One event per overlapping group: the most probable candidate (a cramp's vibration rise
    # and its awakening are two views of one event).
    kept: list[tuple[float, int, int, float, dict[str, float]]] = []
    for c in sorted(weighed_c, key=lambda c: (-c[0], c[1])):
        if c[0] >= report_p and not any(k[1] < c[2] and k[2] > c[1] for k in kept):
            kept.append(c)
    if collect is not None:
        for c in sorted(weighed_c, key=lambda c: c[1]):
            collect.append({"leg": leg, "onset_s": epochs.start_s + c[1] * es,
                            "offset_s": epochs.start_s + c[2] * es, "probability": c[0],
                            "reported": any(c is k for k in kept), **c[4]})
    for prob, onset_i, offset_i, mean_rel, _ in sorted(kept, key=lambda c: c[1]):
        seg = slice(onset_i, offset_i)
        mv = moving[seg]
        dur = (offset_i - onset_i) * es
        r_still = ratio[seg][~mv]
        peak_series = _rms_smooth(np.where(mv, 1.0, ratio[seg]), round(PEAK_SMOOTH_S / es))
        peak_rel = max(float(peak_series.max()), mean_rel)
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


#: Candidates these rules reject are never weighed: an event needs some duration; both legs
#: moving at the onset (rolling over, a bed partner) or an orientation change at the onset
#: (rolling over, a strap that slipped) is never a cramp of one still leg. The other old
#: rules (mostly moving, phasic, moving before, PLM-like neighbours, outside the sleep
#: period: a cramp and its walk can keep the leg from the still spell that marks sleep
#: onset) became evidence for the decision model.
HARD_REJECTIONS: Final = frozenset({"short",
                                    "both legs moved (rolling over)",
                                    "posture change at onset"})
#: The leg counts as still before the onset for at most this long (s).
PRE_STILL_MAX_S: Final = 300.0
#: Orientation change measured between the still epochs this long before and after (s).
TURN_WINDOW_S: Final = 10.0


#: Awakening movement (DETECTION.md; the generator's cramp "woke"): a movement burst of this
#: leg, 2-6 s, 50-400 mg, tens of seconds into the contraction. A burst is a run of epochs
#: moving more than WAKE_MOVE_MG (sensor noise: ~5 mg; PLM move the shank 5-80 mg) or
#: upright, with gaps of at most WAKE_GAP_S bridged.
WAKE_MOVE_MG: Final = 25.0
WAKE_GAP_S: Final = 3.0
#: Only bursts up to this long (s) are awakening candidates (repositioning and restless
#: movements last up to 45 s; the awakening a few seconds).
WAKE_MAX_S: Final = 12.0
#: The leg must have been still this long (s) before the burst: a cramp starts in a still leg
#: and its ramp precedes the awakening.
WAKE_PRE_STILL_S: Final = 30.0
#: An awakening candidate spans from WAKE_LEAD_S before the burst (the ramp before waking)
#: to the get-up that ends the cramp when one follows within WAKE_UP_WITHIN_S, else to
#: WAKE_TAIL_S after the burst or the next movement, whichever comes first (cramps last a
#: median 90 s; the awakening comes with or after the ramp; on tuning nights these spans
#: reached IoU >= 0.2 with every awakened cramp that did not end in getting up).
#: WAKE_UP_WITHIN_S: DETECTION.md puts cramps at seconds up to about 10 min with a median of
#: 1-2 min, and on the tuning nights (fit_detector's 128) no awakening candidate stretched to
#: a get-up 5-15 min later matched a cramp (0 of 15; 9 of 13 at 2.5-5 min): so late a get-up
#: is another awakening (a walk to the bathroom), and the span ends at WAKE_TAIL_S instead.
WAKE_LEAD_S: Final = 15.0
WAKE_TAIL_S: Final = 45.0
WAKE_UP_WITHIN_S: Final = 300.0
#: A burst whose movement stays at or below this (mg) does not end the still spell before an
#: awakening: the sleep-scoring wake threshold of sleep.py (waking kicks 100-400 mg; periodic
#: limb movements and twitches 10-50 mg come in sleep). A twitch, or the cramp's own
#: vibration, seconds before the awakening would otherwise hide it.
WAKE_BREAK_MG: Final = 50.0
#: The other leg moving more than this share of this leg's burst (and more than sensor
#: noise, WAKE_OTHER_MG) during it: both legs moved (rolling over, a bed partner).
WAKE_OTHER_SHARE: Final = 0.3
WAKE_OTHER_MG: Final = 15.0
#: An awakening that leaves the leg turned by more than this (degrees, still epochs
#: TURN_WINDOW_S before and after the burst) is a repositioning: the painful awakening moves
#: the leg and puts it back. Tuning nights (fit_detector's 128, rows of its --dump before
#: this rule): the first burst of 216 matched cramp candidates turned the leg by under 1
#: degree except in 5 (9-19 degrees, where a repositioning fell on the cramp); 109 look-alike
#: awakenings turned it by 4-20 degrees. A still leg's z-angle is steady to a fraction of a
#: degree, so 5 degrees is far above noise and below every turn of a repositioning seen.
WAKE_TURN_DEG: Final = 5.0
#: Other movement bursts of this leg within this long (s) of a candidate are counted
#: (restless wake, PLM trains).
AROUND_S: Final = 120.0
#: Vibration before (the 2 min before the onset) and after (2-5 min after the offset) a
#: candidate: a slow tone change stays raised, a cramp's residual fades within minutes.
TONE_PRE_S: Final = 120.0
TONE_POST_S: Final = (120.0, 300.0)


#: An awakening candidate is dropped when a vibration candidate covers much the same span
#: (interval IoU at least this); a much longer one (a cramp inside a slow tone change) keeps
#: it, and the more probable of the two is reported.
WAKE_SAME_IOU: Final = 0.5


def _iou(a0: int, a1: int, b0: int, b1: int) -> float:
    inter = max(0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    return inter / union if union > 0 else 0.0


#: The offset of a vibration candidate is the last epoch whose smoothed ratio still reaches
#: this share of the way from the floor to the candidate's median level: the hysteresis's
#: off level lies in the decay and the residual tone after the plateau (tuning nights: the
#: offset came a median 15 s, a tenth of them over 100 s, after the plateau's end).
DECAY_SHARE: Final = 0.5


def _trim_decay(smooth: F64, moving: BOOL, i0: int, i1: int) -> int:
    """End of the plateau of the candidate ``[i0, i1)``."""
    s = smooth[i0:i1]
    still = s[~moving[i0:i1]]
    if still.size < 2:
        return i1
    level = 1.0 + DECAY_SHARE * (float(np.median(still)) - 1.0)
    above = np.flatnonzero((s >= level) | moving[i0:i1])
    return i0 + int(above[-1]) + 1 if above.size else i1


def _outside_sleep(sleep: SleepPeriod, t_s: float) -> float:
    """log1p of how far (s) ``t_s`` lies outside the sleep period (0 inside or without one)."""
    if sleep.onset_s is None or sleep.offset_s is None:
        return 0.0
    return math.log1p(max(0.0, sleep.onset_s - t_s, t_s - sleep.offset_s))


def _move_bursts(ep: AccEpochs, es: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and end (exclusive) epochs of this leg's movement bursts."""
    with np.errstate(invalid="ignore"):
        act = ((ep.motion_mg > WAKE_MOVE_MG) | (ep.vertical_frac > 0.5)) & ep.valid
    return _runs(_bridge(act, round(WAKE_GAP_S / es)))


#: The shank counts as standing only where it stays upright this long (s): a get-up leads to
#: a walk of a minute or more, while the jerk of a strong awakening (up to ~800 mg) can tip
#: the along-shank axis over the upright level for a second or two.
STAND_MIN_S: Final = 5.0


def _standing(ep: AccEpochs, es: float) -> BOOL:
    """Epochs in runs of an upright shank lasting at least STAND_MIN_S."""
    a, b = _runs(ep.vertical_frac > 0.5)
    out = np.zeros(ep.n, dtype=bool)
    for i0, i1 in zip(a, b, strict=True):
        if (i1 - i0) * es >= STAND_MIN_S:
            out[i0:i1] = True
    return out


def _wake_bursts(bursts: tuple[NDArray[np.int64], NDArray[np.int64]], ep: AccEpochs,
                 es: float, standing: BOOL) -> list[tuple[int, int, int]]:
    """Bursts that could be a cramp's awakening: short, lying, after a still spell; each with
    the end of the movement before it (:func:`_prev_end`)."""
    b0, b1 = bursts
    out: list[tuple[int, int, int]] = []
    for k in range(b0.size):
        m0, m1 = int(b0[k]), int(b1[k])
        up = np.flatnonzero(standing[m0:m1])
        if up.size:  # woke and got up at once: the lying part is the awakening
            m1 = m0 + int(up[0])
        if m1 <= m0 or (m1 - m0) * es > WAKE_MAX_S:
            continue
        prev = _prev_end(bursts, m0, ep)
        if (m0 - prev) * es < WAKE_PRE_STILL_S:
            continue
        out.append((m0, m1, prev))
    return out


def _twitch(ep: AccEpochs, s0: int, s1: int) -> bool:
    """Whether the burst ``[s0, s1)`` moved at most WAKE_BREAK_MG (False without a valid
    epoch: an unknown burst counts as movement)."""
    with _quiet_nan():
        peak = float(np.nanmax(ep.motion_mg[s0:s1]))
    return peak <= WAKE_BREAK_MG


def _prev_end(bursts: tuple[NDArray[np.int64], NDArray[np.int64]], m0: int,
              ep: AccEpochs) -> int:
    """End of the last burst before ``m0`` that moved more than WAKE_BREAK_MG (0: none)."""
    b0, b1 = bursts
    for k in np.flatnonzero(b1 <= m0)[::-1]:
        if not _twitch(ep, int(b0[k]), int(b1[k])):
            return int(b1[k])
    return 0


def _wake_offset(bursts: tuple[NDArray[np.int64], NDArray[np.int64]], ep: AccEpochs, m1: int,
                 n: int, es: float, *, standing: BOOL) -> int:
    """End of an awakening candidate: the get-up, else WAKE_TAIL_S after the burst or the
    next movement (bursts of at most WAKE_BREAK_MG do not count: twitches in a leg that
    lies still)."""
    b0, b1 = bursts
    if standing[m1:m1 + 1].any():
        return m1  # the burst went on into standing up
    tail = min(n, m1 + round(WAKE_TAIL_S / es))
    for s0, s1 in zip(b0[b0 >= m1], b1[b0 >= m1], strict=True):
        if (s0 - m1) * es > WAKE_UP_WITHIN_S:
            break
        if standing[int(s0):int(s1)].any():
            return int(s0)  # got up: the cramp ends when the person stands
        if _twitch(ep, int(s0), int(s1)):
            continue
        return int(min(tail, s0))
    return tail


def _turn(zang: F64, moving: BOOL, i0: int, i1: int, w: int) -> float:
    """Orientation change between the still epochs within ``w`` before ``i0`` and after
    ``i1`` (degrees; 0 when either side has none)."""
    b = np.where(moving[max(0, i0 - w):i0], np.nan, zang[max(0, i0 - w):i0])
    a = np.where(moving[i1:i1 + w], np.nan, zang[i1:i1 + w])
    if not (np.isfinite(b).any() and np.isfinite(a).any()):
        return 0.0
    with _quiet_nan():
        t = abs(float(np.nanmedian(a) - np.nanmedian(b)))
    return t if math.isfinite(t) else 0.0


def _reject_wake(p: AccCrampParams, *, es: float, m0: int, m1: int, motion: F64,
                 other_motion: F64, moving: BOOL, zang: F64, onset_i: int,
                 sleep: SleepPeriod, start_s: float) -> str:
    """Why an awakening candidate is not a possible cramp ("" if it is)."""
    g = round(2.0 / es)
    with _quiet_nan():
        mine = float(np.nanmax(motion[m0:m1])) if m1 > m0 else 0.0
        theirs = np.asarray(other_motion[max(0, m0 - g):m1 + g], dtype=np.float64)
        theirs_max = float(np.nanmax(theirs)) if np.isfinite(theirs).any() else 0.0
    if theirs_max > max(WAKE_OTHER_MG, WAKE_OTHER_SHARE * mine):
        return "both legs moved (rolling over)"
    if _turn(zang, moving, m0, m1, round(TURN_WINDOW_S / es)) > min(p.turn_deg, WAKE_TURN_DEG):
        return "posture change at onset"
    t0 = start_s + onset_i * es
    if sleep.onset_s is not None and sleep.offset_s is not None and not (
        sleep.onset_s <= t0 <= sleep.offset_s
    ):
        return "outside the sleep period"
    return ""


def _wake_features(ep: AccEpochs, bursts: tuple[NDArray[np.int64], NDArray[np.int64]], *,
                   ratio: F64, other_motion: F64, zang: F64, moving: BOOL, onset_i: int,
                   offset_i: int,
                   hi: BOOL, p: AccCrampParams, wake_at: int | None = None
                   ) -> dict[str, float]:
    """Evidence of the awakening and what follows it, for any candidate (``wake_at``: the
    first epoch of the burst an awakening candidate came from; else the first burst in
    it)."""
    es = ep.epoch_s
    n = ep.n
    b0, b1 = bursts
    if wake_at is not None:  # an awakening candidate: the burst it came from
        inside = np.flatnonzero(b0 == wake_at)
    else:
        inside = np.flatnonzero((b0 >= onset_i - round(2.0 / es)) & (b0 < offset_i))
    out = {"wake_trigger": 0.0 if hi[onset_i:offset_i].any() else 1.0,
           "log_wake_mg": 0.0, "log_wake_s": 0.0, "log_other_wake_mg": 0.0,
           "wake_turn_deg": 0.0, "log_post_still_s": 0.0, "log_pre_wake_ratio": 0.0}
    k = int(inside[0]) if inside.size else -1
    if k >= 0:
        m0, m1 = int(b0[k]), int(b1[k])
        g = round(2.0 / es)
        with _quiet_nan():
            mine = np.nanmax(ep.motion_mg[m0:m1])
            theirs = np.nanmax(np.asarray(other_motion[max(0, m0 - g):m1 + g], dtype=float))
        out["log_wake_mg"] = float(np.log1p(mine)) if np.isfinite(mine) else 0.0
        out["log_wake_s"] = math.log1p((m1 - m0) * es)
        out["log_other_wake_mg"] = float(np.log1p(theirs)) if np.isfinite(theirs) else 0.0
        out["wake_turn_deg"] = _turn(zang, moving, m0, m1, round(TURN_WINDOW_S / es))
        nxt = int(b0[k + 1]) if k + 1 < b0.size else n
        out["log_post_still_s"] = math.log1p(min(nxt - m1, round(600.0 / es)) * es)
        vib = ep.vib_mg[MMG_AXIS]
        pre = slice(max(0, m0 - round(20.0 / es)), m0)
        base = slice(max(0, m0 - round(300.0 / es)), max(0, m0 - round(60.0 / es)))
        with _quiet_nan():
            a = np.nanmean(np.where(moving[pre], np.nan, vib[pre]))
            b = np.nanmedian(np.where(moving[base], np.nan, vib[base]))
        if np.isfinite(a) and np.isfinite(b) and b > 0:
            out["log_pre_wake_ratio"] = math.log(max(float(a / b), 0.5))
    w = round(AROUND_S / es)
    near = ((b0 >= onset_i - w) & (b0 < onset_i)) | ((b0 >= offset_i) & (b0 < offset_i + w))
    mid = (b0 >= onset_i) & (b0 < offset_i)
    out["log_moves_around"] = math.log1p(int(near.sum()) + max(0, int(mid.sum()) - 1))
    up_end = min(n, offset_i + round(p.got_up_after_s / es))
    upright = ep.vertical_frac[onset_i:up_end] > 0.5
    out["got_up"] = float(_longest_run(upright) * es >= p.got_up_min_s)
    # a slow tone change raises the vibration for 10-60 min: before and after stay high
    for name, sl in (("log_pre_ratio", slice(max(0, onset_i - round(TONE_PRE_S / es)),
                                              onset_i)),
                     ("log_post_ratio", slice(min(n, offset_i + round(TONE_POST_S[0] / es)),
                                              min(n, offset_i + round(TONE_POST_S[1] / es))))):
        r = ratio[sl][~moving[sl]]
        out[name] = math.log(max(float(np.median(r)), 0.5)) if r.size else 0.0
    return out


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
