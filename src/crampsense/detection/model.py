"""The decision model: gradient-boosted trees over a candidate event's physiological evidence.

Each candidate event (a sustained rise of one leg's EMG, or for accelerometer-only legs a
sustained rise of calf vibration in a still leg) is described by a few features that separate
cramps from their look-alikes on any night (duration, plateau, continuity, train periodicity,
onset dynamics, movement of that leg at the onset, what the other leg does, the local baseline
and how long a rise lasts). A model turns them into the probability that the candidate is a
cramp; that probability is the event's ``confidence`` and an event is reported when it reaches
:data:`REPORT_PROBABILITY`.

The shipped models are gradient-boosted depth-2 trees on the logistic loss (:class:`TreeModel`,
:func:`fit_trees`; numpy only). A logistic regression (:class:`LogisticModel`,
:func:`fit_logistic`, optionally with every product of two features) is kept for comparison:
by 4-fold cross-validation by night on the tuning world it reached F1 0.69 (0.80 with
products) where the trees reached 0.90. The coefficients are package data
(``decision_model.json``), fitted on the *tuning* world of the night generator by
``python benchmarks/fit_detector.py``; the file records the feature names, the command, the
seeds and the fit's in-sample figures.

References
----------
.. [1] Friedman J.H., Greedy function approximation: a gradient boosting machine, Ann Stat
   29(5):1189-1232, 2001.
.. [2] Niculescu-Mizil A., Caruana R., Predicting good probabilities with supervised
   learning, ICML 2005 (boosted trees and logistic regression on their own world).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crampsense.errors import DetectionError

__all__ = [
    "ACC_FEATURES",
    "EMG_FEATURES",
    "ENVELOPE_FEATURES",
    "REPORT_PROBABILITY",
    "LogisticModel",
    "TreeModel",
    "fit_isotonic",
    "fit_logistic",
    "fit_trees",
    "model_for",
    "report_probability_for",
]

#: An event is reported when its probability of being a cramp reaches this (the operating
#: point chosen in advance: a coin flip; the confidence says how sure it is). A model entry
#: of the coefficient file may carry its own ``report_probability``, chosen by the fit
#: (:func:`report_probability_for`; the accelerometer model's maximises its out-of-fold F1
#: on the tuning nights).
REPORT_PROBABILITY: Final = 0.5
#: Package-data file with the fitted coefficients.
MODEL_FILE: Final = "decision_model.json"
#: Version of the coefficient file's layout this code reads.
MODEL_FORMAT: Final = 1
#: Features of a raw-EMG candidate (names are the keys of the feature dicts).
EMG_FEATURES: Final[tuple[str, ...]] = (
    "log_duration_s",  # cramps last 10 s to 15 min; PLM bursts <= 10 s; tone changes 10-60 min
    "log_plateau_rel",  # median envelope / floor of the event's core
    "quiet_fraction",  # share of 0.1-s steps that dip (phasic bursts vs one sustained pattern)
    "plm_member",  # a member of a train of >= 4 bursts at 10-90 s (WASM 2016)
    "log_neighbours",  # other rises of this leg within 2 min (trains, restless wake)
    "log_ramp_s",  # onset to the 3x crossing: a ramp of tens of seconds vs a voluntary step
    "onset_move_mg",  # log1p of this leg's movement in the first seconds (repositioning)
    "move_share",  # share of the event's seconds in which this leg moves
    "other_active",  # share of the event in which the other leg is active too (bilateral)
    "both_moving",  # both accelerometers move at the onset (rolling over)
    "bilateral_onset",  # the other leg's activity starts within seconds of this onset
    "log_pre_rel",  # median envelope / floor in the 2 min before the onset (tone changes)
    "log_cv",  # variability of the core envelope (voluntary movement wanders, cramps hold)
    "log_wobble",  # second-to-second change of the envelope (irregular firing vs slow tone)
    "log_post_rel",  # median envelope / floor 2-5 min after the offset (a tone change stays)
    "log_elevated_s",  # how long the envelope stays 1.5x above its pre-onset level
    "late_move_mg",  # log1p of this leg's movement after the ramp (the painful awakening)
    "agreement",  # share of the leg's valid channels that reached on_ratio
    "has_acc",  # an accelerometer was available on this leg
)
#: A pre-computed envelope has the same evidence (the spectrum feeds a hard rule only,
#: see crampsense.detection.rules.BROADBAND_SHIFT).
ENVELOPE_FEATURES: Final[tuple[str, ...]] = EMG_FEATURES
#: Features of an accelerometer-only candidate (see :mod:`crampsense.detection.acc_only`).
ACC_FEATURES: Final[tuple[str, ...]] = (
    "log_duration_s",
    "log_vibration_mg",  # calf mechanomyogram (5-25 Hz) during the event
    "log_vibration_ratio",  # ... over the leg's own quiet level
    "vibration_share",  # share of the event's seconds with vibration
    "log_onset_move_mg",  # movement burst at the onset (awakening)
    "other_vibration",  # the other leg vibrates too (bed partner, rolling over)
    "other_move",  # the other leg moves at the onset
    "turn_deg",  # orientation change without movement (a strap that slipped)
    "log_pre_still_s",  # how long the leg was still before
    "log_neighbours",  # other vibration bursts of this leg at PLM intervals
    "wake_trigger",  # the candidate came from an awakening movement, not from vibration
    "log_wake_mg",  # the first movement burst of this leg in the event (the awakening)
    "log_wake_s",  # ... its length (awakening: a few seconds; repositioning: up to 45 s)
    "log_other_wake_mg",  # the other leg's movement during that burst (bed partner)
    "wake_turn_deg",  # orientation change across that burst (repositioning, strap slip)
    "log_post_still_s",  # how long the leg lies still after it (a cramp holds it)
    "log_pre_wake_ratio",  # calf vibration in the 20 s before it over the minutes before
    "log_moves_around",  # other movement bursts of this leg within 2 min (restless wake)
    "got_up",  # upright within the event or 2 min after
    "log_outside_sleep_s",  # how far the onset lies outside the leg's sleep period
    "log_pre_ratio",  # calf vibration over the floor in the 2 min before (tone changes)
    "log_post_ratio",  # ... 2-5 min after the offset (a tone change stays raised)
)
FEATURES: Final[Mapping[str, tuple[str, ...]]] = {
    "emg": EMG_FEATURES, "envelope": ENVELOPE_FEATURES, "acc": ACC_FEATURES}


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic regression over named, standardised features.

    Attributes
    ----------
    features : tuple of str
    mean, scale : ndarray, shape (n_terms,)
        Standardisation of the design vector: ``z = (x - mean) / scale``.
    coef : ndarray, shape (n_terms,)
    intercept : float
    quadratic : bool
        The design vector also holds every product of two features.
    lo, hi : ndarray, shape (n_features,), optional
        The features' range in the fit; inputs are clipped to it (no extrapolation).
    """

    features: tuple[str, ...]
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef: NDArray[np.float64]
    intercept: float
    quadratic: bool = False
    lo: NDArray[np.float64] | None = None
    hi: NDArray[np.float64] | None = None

    def vector(self, x: Mapping[str, float]) -> NDArray[np.float64]:
        """The design vector of ``x``: the features in this model's order, then (quadratic
        models) every product of two features (missing features raise)."""
        try:
            v = np.array([float(x[f]) for f in self.features])
        except KeyError as exc:
            raise DetectionError(f"feature {exc.args[0]!r} missing for the decision model; "
                                 "this is a bug, please report it") from exc
        if self.lo is not None and self.hi is not None:  # never extrapolate past the fit
            v = np.clip(v, self.lo, self.hi)
        out: NDArray[np.float64] = expand(v[None, :], quadratic=self.quadratic)[0]
        return out

    def contributions(self, x: Mapping[str, float]) -> NDArray[np.float64]:
        """Each feature's additive share of the log-odds (standardised x coefficient)."""
        out: NDArray[np.float64] = self.coef * (self.vector(x) - self.mean) / self.scale
        return out

    def probability(self, x: Mapping[str, float]) -> float:
        """Probability that the candidate is a cramp."""
        z = self.intercept + float(self.contributions(x).sum())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def strongest_against(self, x: Mapping[str, float]) -> str:
        """The feature that pulls the probability down the most (a product term counts for
        both of its features)."""
        c = self.contributions(x)
        k = len(self.features)
        per = c[:k].copy()
        if self.quadratic:
            for (i, j), v in zip(_pairs(k), c[k:], strict=True):
                per[i] += v / 2
                per[j] += v / 2
        return self.features[int(np.argmin(per))]

    def to_json(self) -> dict[str, object]:
        return {"features": list(self.features), "quadratic": self.quadratic,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept,
                "lo": None if self.lo is None else self.lo.tolist(),
                "hi": None if self.hi is None else self.hi.tolist()}

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> LogisticModel:
        return cls(tuple(d["features"]),  # type: ignore[arg-type]
                   np.asarray(d["mean"], dtype=np.float64),
                   np.asarray(d["scale"], dtype=np.float64),
                   np.asarray(d["coef"], dtype=np.float64),
                   float(d["intercept"]), bool(d.get("quadratic", False)),  # type: ignore[arg-type]
                   None if d.get("lo") is None else np.asarray(d["lo"], dtype=np.float64),
                   None if d.get("hi") is None else np.asarray(d["hi"], dtype=np.float64))


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


def expand(x: NDArray[np.float64], *, quadratic: bool) -> NDArray[np.float64]:
    """Design matrix: the features, then (``quadratic``) every product ``x_i x_j``, i <= j."""
    if not quadratic:
        return x
    k = x.shape[1]
    prods = [x[:, i] * x[:, j] for i, j in _pairs(k)]
    return np.hstack([x, np.stack(prods, axis=1)]) if prods else x


def fit_logistic(x: NDArray[np.float64], y: NDArray[np.float64], features: Sequence[str], *,
                 l2: float = 1.0, weights: NDArray[np.float64] | None = None,
                 quadratic: bool = False) -> LogisticModel:
    """L2-penalised logistic regression by L-BFGS on standardised features.

    Parameters
    ----------
    x : ndarray, shape (n, n_features)
    y : ndarray of {0, 1}, shape (n,)
    features : sequence of str
    quadratic : bool
        Also fit every product of two features (interactions such as "long *and* low").
    l2 : float
        Penalty on the squared standardised coefficients (not the intercept).
    weights : ndarray, shape (n,), optional
        Sample weights.
    """
    from scipy import optimize  # noqa: PLC0415 - only the fitting command needs it

    lo, hi = x.min(axis=0), x.max(axis=0)
    x = expand(x, quadratic=quadratic)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    w = np.ones(len(y)) if weights is None else weights
    n = float(w.sum())

    def loss(beta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        b0, b = beta[0], beta[1:]
        t = b0 + z @ b
        # log(1 + exp(t)) - y t, stably
        lse = np.logaddexp(0.0, t)
        val = float((w * (lse - y * t)).sum() / n + 0.5 * l2 * (b @ b) / n)
        p = 1.0 / (1.0 + np.exp(-t))
        r = w * (p - y) / n
        grad = np.concatenate(([r.sum()], z.T @ r + l2 * b / n))
        return val, grad

    res = optimize.minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    beta = res.x
    return LogisticModel(tuple(features), mean, scale, beta[1:], float(beta[0]), quadratic,
                         lo, hi)


@dataclass(frozen=True)
class TreeModel:
    """Gradient-boosted regression trees on the log-odds (logistic loss, Newton leaves).

    Attributes
    ----------
    features : tuple of str
    base : float
        Initial log-odds (the training share of cramps).
    rate : float
        Learning rate (shrinkage) applied to every tree.
    trees : tuple of ndarray, each shape (n_nodes, 5)
        Rows ``(feature, threshold, left, right, value)``; ``feature`` -1 marks a leaf.
        ``value`` is the Newton estimate at every node (leaves: the tree's output), so each
        split's contribution can be read off (Saabas attribution).
    lo, hi : ndarray, shape (n_features,)
        The features' range in the fit; inputs are clipped to it.
    calibration : (tuple of float, tuple of float), optional
        A monotone map of the trees' probability (knots x, y; linear in between), fitted on
        out-of-fold predictions (:func:`fit_isotonic`); None: the trees' probability as is.
    """

    features: tuple[str, ...]
    base: float
    rate: float
    trees: tuple[NDArray[np.float64], ...]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    calibration: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def vector(self, x: Mapping[str, float]) -> NDArray[np.float64]:
        try:
            v = np.array([float(x[f]) for f in self.features])
        except KeyError as exc:
            raise DetectionError(f"feature {exc.args[0]!r} missing for the decision model; "
                                 "this is a bug, please report it") from exc
        out: NDArray[np.float64] = np.clip(v, self.lo, self.hi)
        return out

    def _walk(self, v: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """Log-odds and each feature's share of it (beyond the base)."""
        z = self.base
        share = np.zeros(len(self.features))
        for t in self.trees:
            i = 0
            while t[i, 0] >= 0:
                f = int(t[i, 0])
                nxt = int(t[i, 2]) if v[f] <= t[i, 1] else int(t[i, 3])
                share[f] += self.rate * (t[nxt, 4] - t[i, 4])
                i = nxt
            z += self.rate * t[i, 4]
        return z, share

    def raw_probability(self, x: Mapping[str, float]) -> float:
        """The trees' probability, before :attr:`calibration`."""
        z, _ = self._walk(self.vector(x))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def probability(self, x: Mapping[str, float]) -> float:
        """Probability that the candidate is a cramp (calibrated when the model has a map)."""
        p = self.raw_probability(x)
        if self.calibration is None:
            return p
        return float(np.interp(p, self.calibration[0], self.calibration[1]))

    def strongest_against(self, x: Mapping[str, float]) -> str:
        """The feature whose splits pull the probability down the most."""
        _, share = self._walk(self.vector(x))
        return self.features[int(np.argmin(share))]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "type": "trees", "features": list(self.features), "base": self.base,
            "rate": self.rate, "trees": [t.round(6).tolist() for t in self.trees],
            "lo": self.lo.tolist(), "hi": self.hi.tolist()}
        if self.calibration is not None:
            out["calibration"] = {"x": [round(v, 6) for v in self.calibration[0]],
                                  "y": [round(v, 6) for v in self.calibration[1]]}
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> TreeModel:
        cal = d.get("calibration")
        calibration = (None if not isinstance(cal, Mapping) else
                       (tuple(float(v) for v in cal["x"]), tuple(float(v) for v in cal["y"])))
        return cls(tuple(d["features"]), float(d["base"]), float(d["rate"]),  # type: ignore[arg-type]
                   tuple(np.asarray(t, dtype=np.float64) for t in d["trees"]),  # type: ignore[attr-defined]
                   np.asarray(d["lo"], dtype=np.float64), np.asarray(d["hi"], dtype=np.float64),
                   calibration)


def fit_isotonic(p: NDArray[np.float64], y: NDArray[np.float64], *, min_count: int = 10,
                 weights: NDArray[np.float64] | None = None
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Monotone calibration map of probabilities ``p`` to outcomes ``y`` (pool adjacent
    violators on blocks of at least ``min_count`` sorted predictions).

    Returns knots ``(x, y)`` for linear interpolation: x are the merged blocks' mean
    predictions, y their share of positives (non-decreasing); beyond the end knots the map
    is flat. ``weights`` (default 1 each) count a prediction that many times in both.

    References
    ----------
    .. [1] Zadrozny B., Elkan C., Transforming classifier scores into accurate multiclass
       probability estimates, KDD 2002.
    """
    order = np.argsort(p, kind="stable")
    ps, ys = np.asarray(p, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    ws = (np.ones(ps.size) if weights is None
          else np.asarray(weights, dtype=np.float64)[order])
    blocks: list[list[float]] = []  # [sum w p, sum w y, sum w]
    for i in range(0, ps.size, max(1, min_count)):
        sl = slice(i, i + max(1, min_count))
        blocks.append([float(ws[sl] @ ps[sl]), float(ws[sl] @ ys[sl]), float(ws[sl].sum())])
    merged: list[list[float]] = []
    for b in blocks:
        merged.append(b)
        while len(merged) > 1 and (merged[-2][1] / merged[-2][2]
                                   >= merged[-1][1] / merged[-1][2]):
            last = merged.pop()
            merged[-1] = [merged[-1][0] + last[0], merged[-1][1] + last[1],
                          merged[-1][2] + last[2]]
    return tuple(b[0] / b[2] for b in merged), tuple(b[1] / b[2] for b in merged)


def fit_trees(x: NDArray[np.float64], y: NDArray[np.float64], features: Sequence[str], *,
              rounds: int = 100, depth: int = 2, rate: float = 0.2,
              weights: NDArray[np.float64] | None = None, n_thresholds: int = 24,
              l2: float = 1.0) -> TreeModel:
    """Gradient boosting of depth-limited trees with the logistic loss.

    Each round fits a tree to the loss's gradient and Hessian (second-order split gain, leaf
    value ``-G / (H + l2)``) with split thresholds at ``n_thresholds`` quantiles of each
    feature; the model adds ``rate`` times the tree.

    Parameters
    ----------
    x : ndarray, shape (n, n_features)
    y : ndarray of {0, 1}, shape (n,)
    features : sequence of str
    rounds, depth, rate : int, int, float
    weights : ndarray, shape (n,), optional
    n_thresholds : int
    l2 : float
        Penalty on leaf values (Hessian units).

    References
    ----------
    .. [1] Friedman J.H., Greedy function approximation: a gradient boosting machine,
       Ann Stat 29(5):1189-1232, 2001.
    .. [2] Chen T., Guestrin C., XGBoost: a scalable tree boosting system, KDD 2016
       (second-order split gain and leaf values).
    """
    w = np.ones(len(y)) if weights is None else weights
    lo, hi = x.min(axis=0), x.max(axis=0)
    edges = [np.unique(np.quantile(x[:, j], np.linspace(0.03, 0.97, n_thresholds)))
             for j in range(x.shape[1])]
    p0 = float(np.clip((w * y).sum() / w.sum(), 1e-3, 1 - 1e-3))
    base = math.log(p0 / (1 - p0))
    f = np.full(len(y), base)
    trees: list[NDArray[np.float64]] = []

    for _ in range(rounds):
        p = 1.0 / (1.0 + np.exp(-f))
        g = w * (p - y)
        h = w * np.maximum(p * (1 - p), 1e-6)
        nodes: list[list[float]] = []
        upd = np.zeros(len(y))

        def grow(idx: NDArray[np.int64], d: int, *, g: NDArray[np.float64] = g,
                 h: NDArray[np.float64] = h, nodes: list[list[float]] = nodes,
                 upd: NDArray[np.float64] = upd) -> int:
            gs, hs = float(g[idx].sum()), float(h[idx].sum())
            me = len(nodes)
            nodes.append([-1.0, 0.0, -1.0, -1.0, -gs / (hs + l2)])
            upd[idx] = nodes[me][4]  # overwritten by the children if this node splits
            if d == depth or idx.size < 2:
                return me
            best, bj, bt = 0.0, -1, 0.0
            for j in range(x.shape[1]):
                xj = x[idx, j]
                for t in edges[j]:
                    left = xj <= t
                    gl, hl = float(g[idx][left].sum()), float(h[idx][left].sum())
                    gr, hr = gs - gl, hs - hl
                    if hl < 1e-3 or hr < 1e-3:
                        continue
                    gain = gl * gl / (hl + l2) + gr * gr / (hr + l2) - gs * gs / (hs + l2)
                    if gain > best:
                        best, bj, bt = gain, j, float(t)
            if bj < 0:
                return me
            left_i = idx[x[idx, bj] <= bt]
            right_i = idx[x[idx, bj] > bt]
            nodes[me][0], nodes[me][1] = float(bj), bt
            nodes[me][2] = float(grow(left_i, d + 1))
            nodes[me][3] = float(grow(right_i, d + 1))
            return me

        grow(np.arange(len(y)), 0)
        trees.append(np.asarray(nodes, dtype=np.float64))
        f = f + rate * upd
    return TreeModel(tuple(features), base, rate, tuple(trees), lo, hi)


@cache
def _load() -> dict[str, object]:
    text = resources.files("crampsense.detection").joinpath(MODEL_FILE).read_text("utf-8")
    data: dict[str, object] = json.loads(text)
    if data.get("format") != MODEL_FORMAT:
        raise DetectionError(f"{MODEL_FILE} has format {data.get('format')!r}, expected "
                             f"{MODEL_FORMAT}; reinstall crampsense")
    return data


@cache
def model_for(kind: str) -> LogisticModel | TreeModel:
    """The shipped model of one evidence kind (``"emg"``, ``"envelope"`` or ``"acc"``)."""
    models = _load()["models"]
    if not isinstance(models, dict) or kind not in models:
        raise DetectionError(f"no decision model for evidence {kind!r}; reinstall crampsense")
    d = models[kind]
    m: LogisticModel | TreeModel = (TreeModel.from_json(d) if d.get("type") == "trees"
                                    else LogisticModel.from_json(d))
    if m.features != FEATURES[kind]:
        raise DetectionError(f"{MODEL_FILE}'s {kind} features differ from the code's; refit "
                             "with python benchmarks/fit_detector.py")
    return m


@cache
def report_probability_for(kind: str) -> float:
    """The probability at which a candidate of evidence ``kind`` is reported: the model
    entry's ``report_probability`` (chosen by ``benchmarks/fit_detector.py``) or
    :data:`REPORT_PROBABILITY`."""
    models = _load()["models"]
    d = models.get(kind) if isinstance(models, dict) else None
    value = d.get("report_probability") if isinstance(d, dict) else None
    if value is None:
        return REPORT_PROBABILITY
    p = float(value)
    if not 0.0 < p < 1.0:
        raise DetectionError(f"{MODEL_FILE}'s {kind} report_probability {p} is not in (0, 1); "
                             "refit with python benchmarks/fit_detector.py")
    return p


def model_info() -> dict[str, object]:
    """What the shipped coefficient file says about itself (fit command, seeds, version)."""
    return {k: v for k, v in _load().items() if k != "models"}
