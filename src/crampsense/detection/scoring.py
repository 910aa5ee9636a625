"""Score detected events against truth: one-to-one matching by interval overlap.

The idea follows YASA's ``compare_detection`` (Vallat & Walker, eLife 2021) and spindle-detector
evaluation: a detection and a true event match when their intervals' intersection over union
(IoU) reaches a threshold (0.2 by default), each event matched at most once, greedily by best
IoU, separately per leg. A lenient score (any overlap and onsets within 30 s) is reported too.
Sample-level specificity is never reported: false alarms per night are what users feel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.errors import DetectionError

__all__ = ["EventScores", "compare_events"]

#: Lenient matching: any overlap and onsets no more than this far apart (s) (DETECTION.md).
LENIENT_ONSET_S: Final = 30.0
_REQUIRED: Final = ("onset_s", "offset_s", "leg")
MATCH_SCHEMA: Final = {
    "leg": pl.String,
    "truth_index": pl.Int64,
    "detected_index": pl.Int64,
    "iou": pl.Float64,
    "onset_error_s": pl.Float64,
    "duration_error_s": pl.Float64,
}


@dataclass(frozen=True)
class EventScores:
    """Event-level agreement of detections with truth.

    Attributes
    ----------
    n_true, n_detected : int
        Events in the truth and detected frames.
    tp, fp, fn : int
        IoU-matched pairs, unmatched detections (false alarms), missed true events.
    sensitivity, precision, f1 : float
        ``tp / n_true``, ``tp / n_detected``, ``2 tp / (n_true + n_detected)``; ``nan`` when
        the denominator is 0 (e.g. precision of a night with no detections).
    onset_error_s, onset_error_iqr_s : float
        Median and interquartile range of ``detected onset - true onset`` over matches (s).
    onset_abs_error_s : float
        Median of ``|detected onset - true onset|`` over matches (s).
    duration_error_s : float
        Median of ``detected duration - true duration`` over matches (s).
    lenient_tp, lenient_f1 : int, float
        The same with the lenient criterion (any overlap, onsets within 30 s).
    iou : float
        The IoU threshold used.
    matches : polars.DataFrame
        One row per IoU match: ``leg``, ``truth_index``, ``detected_index`` (row numbers in the
        given frames), ``iou``, ``onset_error_s``, ``duration_error_s``.
    """

    n_true: int
    n_detected: int
    tp: int
    fp: int
    fn: int
    sensitivity: float
    precision: float
    f1: float
    onset_error_s: float
    onset_error_iqr_s: float
    onset_abs_error_s: float
    duration_error_s: float
    lenient_tp: int
    lenient_f1: float
    iou: float
    matches: pl.DataFrame

    def __str__(self) -> str:
        def f(x: float, unit: str = "", digits: int = 2) -> str:
            return "n/a" if math.isnan(x) else f"{x:.{digits}f}{unit}"

        return (
            f"{self.n_true} true and {self.n_detected} detected events; matched one-to-one per "
            f"leg by interval IoU >= {self.iou:g} (greedy, best IoU first): TP {self.tp}, FP "
            f"{self.fp}, FN {self.fn}; sensitivity {f(self.sensitivity)}, precision "
            f"{f(self.precision)}, F1 {f(self.f1)}. Onset error median "
            f"{f(self.onset_error_s, ' s', 1)} (IQR {f(self.onset_error_iqr_s, ' s', 1)}, "
            "median absolute "
            f"{f(self.onset_abs_error_s, ' s', 1)}), duration error median "
            f"{f(self.duration_error_s, ' s', 1)}. Lenient (any overlap, onsets within "
            f"{LENIENT_ONSET_S:g} s): TP {self.lenient_tp}, F1 {f(self.lenient_f1)}."
        )


def _check(frame: pl.DataFrame, name: str) -> None:
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise DetectionError(
            f"{name} frame lacks columns {missing}; it needs onset_s, offset_s (s) and leg")


def _greedy(score: NDArray[np.float64], ok: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Pairs (truth, detected) taken best score first, each index at most once."""
    ti, di = np.nonzero(ok)
    order = np.argsort(-score[ti, di], kind="stable")
    used_t: set[int] = set()
    used_d: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        t, d = int(ti[k]), int(di[k])
        if t in used_t or d in used_d:
            continue
        used_t.add(t)
        used_d.add(d)
        pairs.append((t, d))
    return pairs


def _f1(tp: int, n_true: int, n_det: int) -> float:
    return 2.0 * tp / (n_true + n_det) if n_true + n_det else math.nan


def compare_events(detected: pl.DataFrame, truth: pl.DataFrame, *,
                   iou: float = 0.2) -> EventScores:
    """Match detected events to true events and score the agreement.

    Parameters
    ----------
    detected, truth : polars.DataFrame
        Each needs ``onset_s``, ``offset_s`` (s, same origin) and ``leg``. Pass only the true
        *cramps* (e.g. ``night.cramps()``), not the look-alikes.
    iou : float
        Intersection-over-union threshold in (0, 1] for a strict match.

    Returns
    -------
    EventScores

    Notes
    -----
    Per leg, the IoU ``|A ∩ B| / |A ∪ B|`` of every (true, detected) pair is computed; pairs
    with IoU >= ``iou`` are accepted greedily from the highest IoU down, each event used once.
    The lenient score accepts pairs that overlap at all and whose onsets are at most 30 s
    apart, greedily by the smallest onset difference.

    Examples
    --------
    >>> t = pl.DataFrame({"onset_s": [100.0, 500.0], "offset_s": [160.0, 520.0],
    ...                   "leg": ["left", "right"]})
    >>> d = pl.DataFrame({"onset_s": [102.0, 900.0], "offset_s": [158.0, 930.0],
    ...                   "leg": ["left", "left"]})
    >>> s = compare_events(d, t)
    >>> (s.tp, s.fp, s.fn, round(s.f1, 2))
    (1, 1, 1, 0.5)
    """
    if not 0.0 < iou <= 1.0 or math.isnan(iou):
        raise DetectionError(f"iou threshold {iou!r} must lie in (0, 1]; 0.2 is customary")
    _check(detected, "detected")
    _check(truth, "truth")
    t_on = truth["onset_s"].cast(pl.Float64).to_numpy()
    t_off = truth["offset_s"].cast(pl.Float64).to_numpy()
    d_on = detected["onset_s"].cast(pl.Float64).to_numpy()
    d_off = detected["offset_s"].cast(pl.Float64).to_numpy()
    t_leg = truth["leg"].cast(pl.String).to_numpy()
    d_leg = detected["leg"].cast(pl.String).to_numpy()
    rows: list[tuple[str, int, int, float, float, float]] = []
    lenient_tp = 0
    for leg in sorted(set(t_leg.tolist()) | set(d_leg.tolist())):
        ti = np.flatnonzero(t_leg == leg)
        di = np.flatnonzero(d_leg == leg)
        if ti.size == 0 or di.size == 0:
            continue
        inter = np.clip(np.minimum(t_off[ti, None], d_off[None, di])
                        - np.maximum(t_on[ti, None], d_on[None, di]), 0.0, None)
        union = np.maximum(t_off[ti, None], d_off[None, di]) - np.minimum(
            t_on[ti, None], d_on[None, di])
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(union > 0, inter / union, 0.0)
        for t, d in _greedy(score, score >= iou):
            a, b = int(ti[t]), int(di[d])
            rows.append((leg, a, b, float(score[t, d]), float(d_on[b] - t_on[a]),
                         float((d_off[b] - d_on[b]) - (t_off[a] - t_on[a]))))
        gap = np.abs(t_on[ti, None] - d_on[None, di])
        lenient_tp += len(_greedy(-gap, (inter > 0) & (gap <= LENIENT_ONSET_S)))
    matches = pl.DataFrame(rows, schema=MATCH_SCHEMA, orient="row")
    tp = matches.height
    n_true, n_det = truth.height, detected.height
    err = matches["onset_error_s"].to_numpy()
    dur = matches["duration_error_s"].to_numpy()
    nan = math.nan
    return EventScores(
        n_true=n_true, n_detected=n_det, tp=tp, fp=n_det - tp, fn=n_true - tp,
        sensitivity=tp / n_true if n_true else nan,
        precision=tp / n_det if n_det else nan,
        f1=_f1(tp, n_true, n_det),
        onset_error_s=float(np.median(err)) if tp else nan,
        onset_error_iqr_s=float(np.subtract(*np.percentile(err, [75, 25]))) if tp else nan,
        onset_abs_error_s=float(np.median(np.abs(err))) if tp else nan,
        duration_error_s=float(np.median(dur)) if tp else nan,
        lenient_tp=lenient_tp, lenient_f1=_f1(lenient_tp, n_true, n_det),
        iou=iou, matches=matches,
    )
