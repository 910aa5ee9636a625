"""Leg accelerometer features at 1 s resolution: movement, orientation change, standing.

The detector uses them to tell a cramp (a sustained contraction of a still leg) from body
movement (rolling over, walking), and to set the context flags ``woke`` and ``got_up``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crampsense.detection.params import DetectionParams
from crampsense.errors import DetectionError

__all__ = ["AccFeatures", "acc_features", "features_from_steps", "step_stats"]

#: Feature step (s): movement bursts of a roll-over last seconds, so 1 s resolves them.
ACC_STEP_S: Final = 1.0
#: Orientation change is measured between the mean vectors this far apart (s).
TURN_SPAN_S: Final = 4.0
#: Lowest accelerometer rate the per-second movement features accept (Hz): 1-s variance needs
#: a few samples per second. Lower than :data:`crampsense.models.MIN_ACC_FS_HZ` on purpose:
#: these features also describe slow consumer streams that cannot carry cramp evidence.
MIN_FEATURE_ACC_FS_HZ: Final = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class AccFeatures:
    """Per-second accelerometer features of one leg.

    Attributes
    ----------
    step_s : float
        Step length (s); step ``k`` covers ``[k * step_s, (k + 1) * step_s)``.
    motion_mg : ndarray of float64, shape (n_steps,)
        ``sqrt(var(x) + var(y) + var(z))`` within the step (mg); ``nan`` if invalid.
    turn_deg : ndarray of float64, shape (n_steps,)
        Angle between the mean acceleration vectors ``TURN_SPAN_S`` apart, centred (degrees).
    along_mg : ndarray of float64, shape (n_steps,)
        Mean of the along-shank axis x (mg); ``|along_mg| > vertical_mg`` means standing.
    valid : ndarray of bool, shape (n_steps,)
    """

    step_s: float
    motion_mg: NDArray[np.float64]
    turn_deg: NDArray[np.float64]
    along_mg: NDArray[np.float64]
    valid: NDArray[np.bool_]

    def moving(self, params: DetectionParams) -> NDArray[np.bool_]:
        """Steps with a movement burst or an orientation change."""
        with np.errstate(invalid="ignore"):
            out: NDArray[np.bool_] = (self.motion_mg > params.move_mg) | (
                self.turn_deg > params.turn_deg)
        return out & self.valid

    def vertical(self, params: DetectionParams) -> NDArray[np.bool_]:
        """Steps with the shank vertical (standing or walking)."""
        with np.errstate(invalid="ignore"):
            out: NDArray[np.bool_] = np.abs(self.along_mg) > params.vertical_mg
        return out & self.valid

    def window(self, t0_s: float, t1_s: float) -> slice:
        """Steps overlapping ``[t0_s, t1_s)`` as a slice."""
        n = self.motion_mg.size
        a = int(np.clip(np.floor(t0_s / self.step_s), 0, n))
        b = int(np.clip(np.ceil(t1_s / self.step_s), 0, n))
        return slice(a, max(a, b))


def acc_features(acc_mg: NDArray[np.floating], fs_hz: float, *,
                 valid: NDArray[np.bool_] | None = None) -> AccFeatures:
    """Per-second movement, orientation change and shank posture.

    Parameters
    ----------
    acc_mg : ndarray, shape (3, m)
        Acceleration in milli-g, axis 0 = x along the shank.
    fs_hz : float
        Sample rate (Hz), at least 5 Hz.
    valid : ndarray of bool, shape (m,), optional

    Returns
    -------
    AccFeatures
    """
    a = np.asarray(acc_mg)
    if a.ndim != 2 or a.shape[0] != 3:
        raise DetectionError(
            f"accelerometer array has shape {a.shape}; pass (3, n_samples) with x along the shank"
        )
    if not np.isfinite(fs_hz) or fs_hz < MIN_FEATURE_ACC_FS_HZ:
        raise DetectionError(
            f"accelerometer rate {fs_hz!r} Hz is too low; "
            f"record at {MIN_FEATURE_ACC_FS_HZ:g} Hz or more"
        )
    if valid is not None and np.shape(valid) != (a.shape[1],):
        raise DetectionError(
            f"acc_valid has shape {np.shape(valid)} but the accelerometer has {a.shape[1]} "
            "samples; pass one flag per sample"
        )
    step_s, mean, motion, ok = step_stats(a, fs_hz, valid)
    return features_from_steps(step_s, mean, motion, ok)


def step_stats(a: NDArray[np.floating], fs_hz: float, valid: NDArray[np.bool_] | None
               ) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Per-step mean vector, movement and validity of whole 1-s steps (the partial last
    step is ignored). Each step depends only on its own samples, so steps computed block by
    block equal steps computed over the whole array (used by the streaming detector).

    Returns
    -------
    step_s : float
    mean : ndarray of float64, shape (3, n_steps)
        Mean acceleration per step (mg), invalid samples counted as 0.
    motion : ndarray of float64, shape (n_steps,)
        ``sqrt(var(x) + var(y) + var(z))`` (mg); ``nan`` if invalid.
    ok : ndarray of bool, shape (n_steps,)
    """
    step_n = max(1, round(ACC_STEP_S * fs_hz))
    n = a.shape[1] // step_n
    blocks = np.asarray(a[:, :n * step_n], dtype=np.float64).reshape(3, n, step_n)
    ok: NDArray[np.bool_] = np.asarray(np.isfinite(blocks).all(axis=(0, 2)), dtype=bool)
    if valid is not None:
        ok &= np.asarray(valid[:n * step_n], dtype=bool).reshape(n, step_n).all(axis=1)
    blocks = np.where(np.isfinite(blocks), blocks, 0.0)
    mean = blocks.mean(axis=2)  # (3, n)
    motion = np.sqrt(blocks.var(axis=2).sum(axis=0))
    motion[~ok] = np.nan
    return step_n / fs_hz, mean, motion, ok


def features_from_steps(step_s: float, mean: NDArray[np.float64], motion: NDArray[np.float64],
                        ok: NDArray[np.bool_]) -> AccFeatures:
    """:class:`AccFeatures` from the per-step values of :func:`step_stats` (adds the
    orientation change, which needs the steps ``TURN_SPAN_S / 2`` on either side)."""
    n = int(ok.size)
    lag = max(1, round(TURN_SPAN_S / 2 / ACC_STEP_S))
    norm = np.linalg.norm(mean, axis=0)
    unit = np.divide(mean, norm, out=np.zeros_like(mean), where=norm > 0)
    turn = np.zeros(n)
    if n > 2 * lag:
        cos = np.clip((unit[:, 2 * lag:] * unit[:, :-2 * lag]).sum(axis=0), -1.0, 1.0)
        turn[lag:n - lag] = np.degrees(np.arccos(cos))
        both = ok[2 * lag:] & ok[:-2 * lag]
        turn[lag:n - lag][~both] = 0.0
    along = mean[0].copy()
    along[~ok] = np.nan
    return AccFeatures(step_s=step_s, motion_mg=motion, turn_deg=turn, along_mg=along,
                       valid=ok)
