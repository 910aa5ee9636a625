"""Leg accelerometer epochs, sleep period, wake bouts and non-wear.

Two stages, both pure (arrays in, results out):

* :func:`acc_epochs` turns a block of raw acceleration into per-epoch features
  (:class:`AccEpochs`). Each epoch depends only on its own samples, so epochs of consecutive
  epoch-aligned blocks, joined with :meth:`AccEpochs.concat`, equal the epochs of the whole
  recording: the streaming detector can compute them block by block.
* :func:`sleep_period` finds the sleep period (HDCZA, van Hees et al. 2018, adapted to the
  shank), the wake bouts inside it (sustained-inactivity rule, van Hees et al. 2015) and
  non-wear (GGIR's 2013 rule, guarded so a still sleeping leg is not called "off").

Method, adaptations to the leg, parameters and limits: ``docs/acc-and-sleep.md``.

References
----------
van Hees VT et al. (2018) Estimating sleep parameters using an accelerometer without sleep
diary. Sci Rep 8:12975 (HDCZA).
van Hees VT et al. (2015) A novel, open access method to assess sleep duration using a
wrist-worn accelerometer. PLoS One 10:e0142533 (z-angle, sustained inactivity bouts).
van Hees VT et al. (2013) Separating movement and gravity components in an acceleration
signal and implications for the assessment of human daily physical activity. PLoS One
8:e61691 (ENMO, non-wear rule).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from crampsense.errors import ConfigError, DetectionError
from crampsense.models import G_MG, MIN_ACC_FS_HZ, VERTICAL_MG

__all__ = [
    "AccEpochs",
    "SleepParams",
    "SleepPeriod",
    "acc_epochs",
    "sleep_period",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
BOOL = NDArray[np.bool_]

# --- epochs ----------------------------------------------------------------------------------
#: Default epoch (s): HDCZA and GGIR work on 5-s epochs. The cramp detector asks for 1 s.
EPOCH_S: Final = 5.0
#: Calf vibration band (Hz): mechanomyogram of a contracting muscle, power centred at
#: 10-25 Hz (Orizio 1993; Beck et al. 2005); the upper edge is capped at the Nyquist rate.
VIB_BAND_HZ: Final = (5.0, 25.0)
#: An epoch is usable when at least this fraction of its samples is valid and finite.
MIN_VALID_FRACTION: Final = 0.8

# --- HDCZA (van Hees et al. 2018) --------------------------------------------------------------
#: Rolling median of |delta z-angle| over 5 min (the paper's window).
HDCZA_WINDOW_S: Final = 300.0
#: Threshold = 10th percentile of the rolling medians x 15, clamped to [0.13, 0.50] degrees
#: (the paper's constants; GGIR's defaults).
HDCZA_PERCENTILE: Final = 10.0
HDCZA_MULTIPLIER: Final = 15.0
HDCZA_MIN_DEG: Final = 0.13
HDCZA_MAX_DEG: Final = 0.50
#: Candidate blocks must last longer than 30 min and are joined across gaps under 60 min.
HDCZA_MIN_BLOCK_S: Final = 1800.0
HDCZA_MAX_GAP_S: Final = 3600.0
#: Leg adaptation: the period is extended over still runs of at least 5 min that lie less than
#: 10 min beyond its edge. A leg at sleep onset is broken up by hypnic jerks, a first roll-over
#: or a cramp with a short walk; HDCZA drops blocks under 30 min, which would move the onset
#: past them although the person was asleep in between.
EXTEND_MIN_RUN_S: Final = 300.0
EXTEND_MAX_GAP_S: Final = 600.0
# --- wake inside the sleep period (van Hees et al. 2015) ---------------------------------------
#: A change of the z-angle by more than 5 degrees between epochs is a posture change.
WAKE_ANGLE_DEG: Final = 5.0
#: Sleep is sustained inactivity: a run of at least 5 min without posture change or movement.
WAKE_INACTIVE_MIN_S: Final = 300.0
#: Leg adaptation: a burst of limb movement (sqrt of the summed axis variances in the epoch)
#: above this is activity even without a net posture change. Waking kicks, rubbing and walking
#: reach 100-400 mg; periodic limb movements of sleep move the shank by 10-50 mg (stay asleep).
WAKE_MOTION_MG: Final = 50.0
# --- non-wear (GGIR 2013 rule) -------------------------------------------------------------------
#: Window and step of the non-wear test (s): 60-min windows every 15 min.
NONWEAR_WINDOW_S: Final = 3600.0
NONWEAR_STEP_S: Final = 900.0
#: Per axis: SD below 13 mg and range below 50 mg; non-wear when at least 2 axes qualify.
NONWEAR_SD_MG: Final = 13.0
NONWEAR_RANGE_MG: Final = 50.0
NONWEAR_MIN_AXES: Final = 2
#: Leg guard: inside the sleep period a still run counts as non-wear only if it lasts this
#: long (s). A worn sleeping shank also meets the SD/range rule (sensor noise is ~3 mg), and
#: one leg can lie still for hours (the generator's quietest legs: ~5 h between roll-overs), so
#: only a still run of 6 h, most of a night, is called off-body from the accelerometer alone.
#: Shorter off-body periods inside sleep need a wear hint (skin temperature, electrode contact).
NONWEAR_IN_SLEEP_MIN_S: Final = 21600.0

_PARAM_RANGES: Final[dict[str, tuple[float, float]]] = {
    "hdcza_window_s": (30.0, 3600.0),
    "hdcza_percentile": (1.0, 50.0),
    "hdcza_multiplier": (1.0, 100.0),
    "hdcza_min_deg": (0.0, 10.0),
    "hdcza_max_deg": (0.0, 45.0),
    "hdcza_min_block_s": (60.0, 86400.0),
    "hdcza_max_gap_s": (0.0, 86400.0),
    "wake_angle_deg": (0.5, 90.0),
    "wake_inactive_min_s": (10.0, 7200.0),
    "wake_motion_mg": (5.0, 2000.0),
    "nonwear_window_s": (300.0, 14400.0),
    "nonwear_step_s": (60.0, 14400.0),
    "nonwear_sd_mg": (1.0, 200.0),
    "nonwear_range_mg": (1.0, 1000.0),
    "nonwear_min_axes": (1.0, 3.0),
    "nonwear_in_sleep_min_s": (600.0, 86400.0),
}


@dataclass(frozen=True, slots=True)
class SleepParams:
    """Parameters of :func:`sleep_period` (defaults: the module constants, with reasons).

    Attributes
    ----------
    hdcza_window_s, hdcza_percentile, hdcza_multiplier, hdcza_min_deg, hdcza_max_deg,
    hdcza_min_block_s, hdcza_max_gap_s : float
        HDCZA: rolling-median window (s), percentile and multiplier of the threshold, its
        clamp (degrees), shortest block and longest joined gap (s).
    wake_angle_deg, wake_inactive_min_s, wake_motion_mg : float
        Wake inside the sleep period: posture change (degrees), shortest sleep run (s),
        movement burst (mg).
    nonwear_window_s, nonwear_step_s, nonwear_sd_mg, nonwear_range_mg : float
        GGIR non-wear window, step (s), SD and range limits (mg).
    nonwear_min_axes : int
        Axes that must be still.
    nonwear_in_sleep_min_s : float
        Shortest still run inside the sleep period that counts as non-wear (s).
    """

    hdcza_window_s: float = HDCZA_WINDOW_S
    hdcza_percentile: float = HDCZA_PERCENTILE
    hdcza_multiplier: float = HDCZA_MULTIPLIER
    hdcza_min_deg: float = HDCZA_MIN_DEG
    hdcza_max_deg: float = HDCZA_MAX_DEG
    hdcza_min_block_s: float = HDCZA_MIN_BLOCK_S
    hdcza_max_gap_s: float = HDCZA_MAX_GAP_S
    wake_angle_deg: float = WAKE_ANGLE_DEG
    wake_inactive_min_s: float = WAKE_INACTIVE_MIN_S
    wake_motion_mg: float = WAKE_MOTION_MG
    nonwear_window_s: float = NONWEAR_WINDOW_S
    nonwear_step_s: float = NONWEAR_STEP_S
    nonwear_sd_mg: float = NONWEAR_SD_MG
    nonwear_range_mg: float = NONWEAR_RANGE_MG
    nonwear_min_axes: int = NONWEAR_MIN_AXES
    nonwear_in_sleep_min_s: float = NONWEAR_IN_SLEEP_MIN_S

    def __post_init__(self) -> None:
        _check_ranges(self, _PARAM_RANGES, "sleep")
        if self.hdcza_min_deg > self.hdcza_max_deg:
            raise ConfigError(
                f"sleep parameter 'hdcza_min_deg' ({self.hdcza_min_deg:g}) exceeds "
                f"'hdcza_max_deg' ({self.hdcza_max_deg:g}); swap or change them",
                key="sleep.hdcza_min_deg",
            )


def _check_ranges(obj: object, ranges: dict[str, tuple[float, float]], section: str) -> None:
    """Raise ConfigError for a field of ``obj`` that is not a number inside its range."""
    for name, (low, high) in ranges.items():
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ConfigError(
                f"{section} parameter {name!r} must be a number, got {value!r}; "
                f"use a value from {low:g} to {high:g}",
                key=f"{section}.{name}",
            )
        if not low <= value <= high:
            raise ConfigError(
                f"{section} parameter {name!r} = {value!r} is out of range; "
                f"use a value from {low:g} to {high:g}",
                key=f"{section}.{name}",
            )


# ---------------------------------------------------------------------------------------------
# epochs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class AccEpochs:
    """Per-epoch features of one leg's accelerometer.

    Axes follow the leg convention: **x** along the shank (towards the knee), **y** lateral,
    **z** perpendicular to the skin (posterior to anterior, out of the shin). Epoch ``k``
    covers ``[start_s + k * epoch_s, start_s + (k + 1) * epoch_s)``. Features of an unusable
    epoch (fewer than ``MIN_VALID_FRACTION`` valid samples) are ``nan``.

    Attributes
    ----------
    epoch_s : float
        Epoch length (s).
    start_s : float
        Start of epoch 0 (s from the recording start).
    fs_hz : float
        Accelerometer rate the epochs were computed at (Hz).
    mean_mg, sd_mg, min_mg, max_mg : ndarray of float64, shape (3, n)
        Per-axis mean, population SD, minimum and maximum (mg), gravity included.
    enmo_mg : ndarray of float64, shape (n,)
        Mean ENMO, ``max(|a| - 1000 mg, 0)`` (van Hees et al. 2013).
    vertical_frac : ndarray of float64, shape (n,)
        Fraction of samples with ``|x| > VERTICAL_MG`` (shank upright: standing, walking).
    vib_mg : ndarray of float64, shape (3, n)
        Per-axis RMS in the 5-25 Hz band (capped at the Nyquist rate): the calf's
        mechanomyogram plus sensor noise (Hann-windowed periodogram of the epoch).
    valid_frac : ndarray of float64, shape (n,)
        Fraction of the epoch's samples that were valid and finite.
    """

    epoch_s: float
    start_s: float
    fs_hz: float
    mean_mg: F64
    sd_mg: F64
    min_mg: F64
    max_mg: F64
    enmo_mg: F64
    vertical_frac: F64
    vib_mg: F64
    valid_frac: F64

    @property
    def n(self) -> int:
        """Number of epochs."""
        return int(self.enmo_mg.size)

    @property
    def t_s(self) -> F64:
        """Start time of each epoch (s), shape (n,)."""
        out: F64 = self.start_s + self.epoch_s * np.arange(self.n, dtype=np.float64)
        return out

    @property
    def end_s(self) -> float:
        """End of the last epoch (s)."""
        return self.start_s + self.n * self.epoch_s

    @property
    def valid(self) -> BOOL:
        """Epochs with enough valid samples, shape (n,)."""
        out: BOOL = self.valid_frac >= MIN_VALID_FRACTION
        return out

    @property
    def z_angle_deg(self) -> F64:
        """Angle of the skin-normal axis z to the horizontal plane (degrees), shape (n,).

        ``atan(z / sqrt(x² + y²))`` of the epoch's mean vector, the shank analogue of van Hees'
        wrist z-angle (whose z is also normal to the skin): it changes with rotation of the
        leg about its long axis (rolling over, turning the foot) and with raising the shank.
        """
        x, y, z = self.mean_mg
        out: F64 = np.degrees(np.arctan2(z, np.hypot(x, y)))
        return out

    @property
    def range_mg(self) -> F64:
        """Per-axis range ``max - min`` (mg), shape (3, n)."""
        out: F64 = self.max_mg - self.min_mg
        return out

    @property
    def motion_mg(self) -> F64:
        """Movement in the epoch, ``sqrt(sum of the axis variances)`` (mg), shape (n,)."""
        out: F64 = np.sqrt((self.sd_mg**2).sum(axis=0))
        return out

    def __len__(self) -> int:
        return self.n

    @classmethod
    def concat(cls, parts: Sequence[AccEpochs]) -> AccEpochs:
        """Join epochs of consecutive blocks into one.

        Raises
        ------
        DetectionError
            If ``parts`` is empty, or epochs, rates or times do not line up.
        """
        if not parts:
            raise DetectionError("no epoch blocks to concatenate; pass at least one AccEpochs")
        first = parts[0]
        t = first.end_s
        for p in parts[1:]:
            if p.epoch_s != first.epoch_s or p.fs_hz != first.fs_hz:
                raise DetectionError(
                    f"epoch blocks differ (epoch {p.epoch_s} s at {p.fs_hz} Hz vs "
                    f"{first.epoch_s} s at {first.fs_hz} Hz); compute all with the same settings"
                )
            if not math.isclose(p.start_s, t, abs_tol=1e-6 * first.epoch_s):
                raise DetectionError(
                    f"epoch block starts at {p.start_s} s but the previous one ends at {t} s; "
                    "pass consecutive, epoch-aligned blocks"
                )
            t = p.end_s
        arrays: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in ("epoch_s", "start_s", "fs_hz"):
                continue
            arrays[f.name] = np.concatenate([getattr(p, f.name) for p in parts], axis=-1)
        return cls(epoch_s=first.epoch_s, start_s=first.start_s, fs_hz=first.fs_hz, **arrays)

    def coarsen(self, factor: int) -> AccEpochs:
        """Merge every ``factor`` consecutive epochs into one (a trailing rest is dropped).

        Means, SDs (pooled), minima, maxima, ENMO and vertical fraction are exactly those of
        the longer epoch; ``vib_mg`` is the RMS of the sub-epochs' band RMS (power average).
        """
        if factor < 1 or int(factor) != factor:
            raise DetectionError(f"coarsen factor {factor!r} must be a whole number >= 1")
        k = int(factor)
        if k == 1:
            return self
        m = self.n // k

        def grp(a: F64) -> F64:
            return a[..., : m * k].reshape(*a.shape[:-1], m, k)

        w = grp(np.where(self.valid_frac > 0, self.valid_frac, 0.0))
        wsum = w.sum(axis=-1)
        safe = np.where(wsum > 0, wsum, 1.0)

        def wmean(a: F64) -> F64:
            g = np.where(w > 0, grp(a), 0.0)
            out: F64 = (g * w).sum(axis=-1) / safe
            return np.where(wsum > 0, out, np.nan)

        mean = wmean(self.mean_mg)
        dev2 = np.where(w > 0, grp(self.sd_mg) ** 2 + (grp(self.mean_mg) - mean[..., None]) ** 2,
                        0.0)
        sd = np.where(wsum > 0, np.sqrt((dev2 * w).sum(axis=-1) / safe), np.nan)
        with np.errstate(invalid="ignore"), _quiet_nan():
            mn = np.nanmin(grp(self.min_mg), axis=-1)
            mx = np.nanmax(grp(self.max_mg), axis=-1)
        vib = np.sqrt(wmean(self.vib_mg**2))
        return AccEpochs(
            epoch_s=self.epoch_s * k,
            start_s=self.start_s,
            fs_hz=self.fs_hz,
            mean_mg=mean,
            sd_mg=sd,
            min_mg=mn,
            max_mg=mx,
            enmo_mg=wmean(self.enmo_mg),
            vertical_frac=wmean(self.vertical_frac),
            vib_mg=vib,
            valid_frac=grp(self.valid_frac).mean(axis=-1),
        )


@contextlib.contextmanager
def _quiet_nan() -> Iterator[None]:
    """Silence numpy's "All-NaN slice" RuntimeWarning for all-invalid epochs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _epoch_samples(epoch_s: float, fs_hz: float) -> int:
    if not (isinstance(fs_hz, int | float) and math.isfinite(fs_hz) and fs_hz >= MIN_ACC_FS_HZ):
        raise DetectionError(
            f"accelerometer rate {fs_hz!r} Hz is too low or invalid; record at "
            f"{MIN_ACC_FS_HZ:g} Hz or more"
        )
    if not (isinstance(epoch_s, int | float) and math.isfinite(epoch_s) and epoch_s > 0):
        raise DetectionError(f"epoch_s={epoch_s!r} must be a positive number of seconds")
    n = epoch_s * fs_hz
    if abs(n - round(n)) > 1e-6 * max(n, 1.0) or round(n) < 2:
        raise DetectionError(
            f"epoch_s={epoch_s} s at {fs_hz} Hz is {n:g} samples; choose an epoch holding a "
            "whole number (>= 2) of samples"
        )
    return round(n)


def acc_epochs(
    acc_mg: NDArray[np.floating[Any]],
    fs_hz: float,
    *,
    valid: NDArray[np.bool_] | None = None,
    epoch_s: float = EPOCH_S,
    start_s: float = 0.0,
) -> AccEpochs:
    """Per-epoch accelerometer features of one leg (block-composable).

    Parameters
    ----------
    acc_mg : ndarray, shape (3, m)
        Acceleration (mg, gravity included); axes x along the shank, y lateral, z out of the
        skin. ``nan`` samples count as invalid.
    fs_hz : float
        Sample rate (Hz), 25 Hz or more; ``epoch_s * fs_hz`` must be a whole number.
    valid : ndarray of bool, shape (m,), optional
        False where the samples are not usable (gap, lead-off of the whole device).
    epoch_s : float
        Epoch length (s), 5 s by default (HDCZA); 1 s for :func:`possible_cramps`.
    start_s : float
        Time of sample 0 (s from the recording start); start blocks on epoch boundaries.

    Returns
    -------
    AccEpochs
        ``m // (epoch_s * fs_hz)`` epochs; a trailing partial epoch is dropped (a streaming
        caller keeps those samples for the next block).

    Notes
    -----
    Every feature of an epoch depends on that epoch's samples only (no filter state), so
    ``AccEpochs.concat([acc_epochs(b, fs) for b in blocks])`` equals ``acc_epochs(whole, fs)``
    for epoch-aligned blocks. The vibration band power is the Hann-windowed periodogram of
    the linearly detrended epoch, summed over 5-25 Hz and scaled so that white noise of RMS
    ``s`` gives ``s * sqrt(band / (fs / 2))``.

    Examples
    --------
    >>> acc = np.zeros((3, 500)); acc[2] = 1000.0
    >>> ep = acc_epochs(acc, 50.0)
    >>> ep.n, float(ep.z_angle_deg[0]), float(ep.enmo_mg[0])
    (2, 90.0, 0.0)
    """
    a = np.asarray(acc_mg, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != 3:
        raise DetectionError(
            f"accelerometer array has shape {a.shape}; pass (3, n_samples) with x along the shank"
        )
    k = _epoch_samples(epoch_s, fs_hz)
    if valid is not None and np.shape(valid) != (a.shape[1],):
        raise DetectionError(
            f"valid has shape {np.shape(valid)} but the accelerometer has {a.shape[1]} samples; "
            "pass one flag per sample"
        )
    n = a.shape[1] // k
    blocks = a[:, : n * k].reshape(3, n, k)
    ok: BOOL = np.asarray(np.isfinite(blocks).all(axis=0), dtype=bool)  # (n, k)
    if valid is not None:
        ok &= np.asarray(valid[: n * k], dtype=bool).reshape(n, k)
    cnt = ok.sum(axis=1)
    frac = cnt / k
    good = frac >= MIN_VALID_FRACTION
    safe_cnt = np.maximum(cnt, 1)
    x = np.where(ok[None], blocks, 0.0)
    mean = x.sum(axis=2) / safe_cnt
    dev = np.where(ok[None], blocks - mean[..., None], 0.0)
    sd = np.sqrt((dev * dev).sum(axis=2) / safe_cnt)
    mn = np.where(ok[None], blocks, np.inf).min(axis=2)
    mx = np.where(ok[None], blocks, -np.inf).max(axis=2)
    norm = np.sqrt((x * x).sum(axis=0))
    enmo = (np.maximum(norm - G_MG, 0.0) * ok).sum(axis=1) / safe_cnt
    vert = ((np.abs(x[0]) > VERTICAL_MG) & ok).sum(axis=1) / safe_cnt
    vib = _band_rms(dev, ok, k, float(fs_hz))
    bad = ~good
    for arr in (mean, sd, mn, mx, vib):
        arr[:, bad] = np.nan
    for arr1 in (enmo, vert):
        arr1[bad] = np.nan
    return AccEpochs(
        epoch_s=k / float(fs_hz),
        start_s=float(start_s),
        fs_hz=float(fs_hz),
        mean_mg=mean,
        sd_mg=sd,
        min_mg=mn,
        max_mg=mx,
        enmo_mg=enmo,
        vertical_frac=vert,
        vib_mg=vib,
        valid_frac=frac.astype(np.float64),
    )


def _band_rms(dev: F64, ok: BOOL, k: int, fs_hz: float) -> F64:
    """Per-axis RMS in VIB_BAND_HZ of each epoch (dev: demeaned, invalid samples 0)."""
    # remove the linear trend too: slow posture drift leaks into 5 Hz through the window
    tt = np.arange(k) - (k - 1) / 2.0
    slope = (dev * tt).sum(axis=2) / float((tt * tt).sum())
    y = np.where(ok[None], dev - slope[..., None] * tt, 0.0)
    win = np.hanning(k + 2)[1:-1]
    spec = np.fft.rfft(y * win, axis=2)
    freqs = np.fft.rfftfreq(k, 1.0 / fs_hz)
    hi = min(VIB_BAND_HZ[1], fs_hz / 2.0)
    band = (freqs >= VIB_BAND_HZ[0]) & (freqs <= hi)
    # one-sided periodogram scaled so that sum over all bins = mean square of the signal
    scale = np.full(freqs.size, 2.0)
    scale[0] = 1.0
    if k % 2 == 0:
        scale[-1] = 1.0
    power = (np.abs(spec[..., band]) ** 2 * scale[band]).sum(axis=2) / (k * (win * win).sum())
    out: F64 = np.sqrt(power)
    return out


# ---------------------------------------------------------------------------------------------
# sleep period
# ---------------------------------------------------------------------------------------------
SPAN_SCHEMA: Final = {"start_s": pl.Float64, "end_s": pl.Float64}


@dataclass(frozen=True, eq=False)
class SleepPeriod:
    """Sleep period, wake bouts and non-wear of one leg (or a night).

    Attributes
    ----------
    onset_s, offset_s : float or None
        Start and end of the sleep period (s from the recording start); None when no block
        of sustained inactivity longer than ``hdcza_min_block_s`` was found.
    wake_bouts : polars.DataFrame
        Columns ``start_s``, ``end_s`` (f64, s): wake inside the sleep period.
    nonwear : polars.DataFrame
        Columns ``start_s``, ``end_s`` (f64, s): sensor judged off the leg.
    asleep : ndarray of bool, shape (n_epochs,)
        Per epoch: inside the sleep period, not awake, worn and valid.
    epoch_s, start_s : float
        Epoch grid of ``asleep`` (epoch ``k`` starts at ``start_s + k * epoch_s``).
    threshold_deg : float
        The HDCZA threshold used (degrees).
    """

    onset_s: float | None
    offset_s: float | None
    wake_bouts: pl.DataFrame
    nonwear: pl.DataFrame
    asleep: BOOL
    epoch_s: float
    start_s: float
    threshold_deg: float

    @property
    def sleep_s(self) -> float:
        """Time asleep (s): asleep epochs x epoch length."""
        return float(self.asleep.sum()) * self.epoch_s

    @property
    def methods(self) -> str:
        """What was done, in prose (for reports)."""
        if self.onset_s is None or self.offset_s is None:
            found = "No sleep period was found (no block of sustained inactivity over 30 min)."
        else:
            found = (
                f"The sleep period ran from {self.onset_s / 3600:.2f} h to "
                f"{self.offset_s / 3600:.2f} h after the start, with "
                f"{self.wake_bouts.height} wake bout(s) and {self.sleep_s / 3600:.2f} h asleep."
            )
        return (
            "Sleep period from the shank accelerometer with HDCZA (van Hees et al., Sci Rep "
            f"2018): z-angle of the skin-normal axis per {self.epoch_s:g}-s epoch, 5-min rolling "
            "median of its absolute change, threshold the 10th percentile x 15 clamped to "
            f"0.13-0.50 degrees (here {self.threshold_deg:.3f}), blocks over 30 min joined "
            "across gaps under 60 min. Wake inside it: posture changes over 5 degrees or "
            "movement bursts over 50 mg, unless part of 5 min of sustained inactivity (van "
            "Hees et al., PLoS One 2015). Non-wear: SD under 13 mg and range under 50 mg on 2 "
            "axes over 60-min windows (GGIR), inside the sleep period only for still runs of "
            f"6 h or more. {found}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: onset_s, offset_s, sleep_h, wake_bouts, nonwear."""
        return {
            "onset_s": self.onset_s,
            "offset_s": self.offset_s,
            "sleep_h": round(self.sleep_s / 3600.0, 4),
            "wake_bouts": [[float(a), float(b)] for a, b in self.wake_bouts.iter_rows()],
            "nonwear": [[float(a), float(b)] for a, b in self.nonwear.iter_rows()],
        }

    def asleep_at(self, t_s: F64) -> BOOL:
        """Whether each time ``t_s`` (s) falls in an asleep epoch."""
        idx = np.floor((np.asarray(t_s, dtype=np.float64) - self.start_s) / self.epoch_s)
        inside = (idx >= 0) & (idx < self.asleep.size)
        out = np.zeros(idx.shape, dtype=bool)
        out[inside] = self.asleep[idx[inside].astype(np.int64)]
        return out


def _runs(mask: BOOL) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and end (exclusive) indices of the True runs of ``mask``."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _spans(mask: BOOL, start_s: float, epoch_s: float) -> pl.DataFrame:
    a, b = _runs(mask)
    return pl.DataFrame(
        {"start_s": start_s + a * epoch_s, "end_s": start_s + b * epoch_s},
        schema=SPAN_SCHEMA,
    )


def _rolling_nanmedian(x: F64, w: int) -> F64:
    """Centred rolling median over ``w`` values, ignoring nan (nan if all are nan)."""
    if x.size == 0:
        return x.copy()
    w = max(1, min(w, x.size))
    half = w // 2
    pad = np.concatenate([np.full(half, np.nan), x, np.full(w - 1 - half, np.nan)])
    with _quiet_nan():
        out: F64 = np.nanmedian(sliding_window_view(pad, w), axis=1)
    return out


def sleep_period(epochs: AccEpochs, *, params: SleepParams | None = None,
                 worn: NDArray[np.bool_] | None = None) -> SleepPeriod:
    """Sleep period (HDCZA), wake bouts and non-wear from one leg's accelerometer epochs.

    Parameters
    ----------
    epochs : AccEpochs
        Epochs of the whole night (any length that divides 5 s, e.g. 1 s or 5 s; finer
        epochs are merged to 5 s with :meth:`AccEpochs.coarsen`).
    params : SleepParams, optional
    worn : ndarray of bool, shape (epochs.n,), optional
        Independent wear evidence per input epoch (skin temperature, electrode contact):
        True is never non-wear, False always is.

    Returns
    -------
    SleepPeriod
        On 5-s epochs (or the input's, if longer).

    Notes
    -----
    1. HDCZA (van Hees et al. 2018): z-angle per 5-s epoch; absolute change between
       epochs; rolling median over 5 min; threshold = 10th percentile of those medians x 15,
       clamped to [0.13, 0.50] degrees; runs below it longer than 30 min are candidate
       blocks, joined when less than 60 min apart; the longest joined block is the sleep
       period. Unusable and non-wear epochs do not take part. Leg adaptation: the period is
       extended over still runs of 5 min or more less than 10 min beyond its edges.
    2. Wake inside the period (van Hees et al. 2015, leg-adapted): an epoch is active if the
       z-angle changes by more than 5 degrees or the leg moves by more than 50 mg; sleep is a
       run of at least 5 min without activity; everything else inside the period is wake.
    3. Non-wear (GGIR 2013): 60-min windows every 15 min with SD < 13 mg and range < 50 mg on
       at least 2 axes. A still sleeping leg passes that test too, so inside the sleep period
       only still runs of 6 h or more count (``worn`` overrides both ways).

    References
    ----------
    van Hees et al., Sci Rep 2018; PLoS One 2015; PLoS One 2013 (see the module docstring).
    """
    p = params if params is not None else SleepParams()
    ep = epochs
    if worn is not None and np.shape(worn) != (ep.n,):
        raise DetectionError(
            f"worn has shape {np.shape(worn)} but there are {ep.n} epochs; pass one flag per epoch"
        )
    worn_arr = None if worn is None else np.asarray(worn, dtype=bool)
    if ep.epoch_s < EPOCH_S:
        ratio = EPOCH_S / ep.epoch_s
        if abs(ratio - round(ratio)) > 1e-6:
            raise DetectionError(
                f"epochs of {ep.epoch_s} s do not divide the 5-s HDCZA epoch; compute epochs of "
                "1 s, 2.5 s or 5 s"
            )
        factor = round(ratio)
        ep = ep.coarsen(factor)
        if worn_arr is not None:
            m = ep.n
            worn_arr = worn_arr[: m * factor].reshape(m, factor).mean(axis=1) >= 0.5
    n = ep.n
    es = ep.epoch_s
    valid = ep.valid
    nonwear_raw = _nonwear_windows(ep, p)
    if worn_arr is not None:
        nonwear_raw = ~worn_arr  # independent wear evidence decides both ways
    # long still runs are non-wear wherever they are (also keeps them out of the HDCZA blocks)
    a, b = _runs(nonwear_raw)
    long_off = np.zeros(n, dtype=bool)
    for i, j in zip(a, b, strict=True):
        if (j - i) * es >= p.nonwear_in_sleep_min_s:
            long_off[i:j] = True
    if worn_arr is not None:
        long_off |= ~worn_arr
    usable = valid & ~long_off

    ang = np.where(usable, ep.z_angle_deg, np.nan)
    dz = np.full(n, np.nan)
    if n > 1:
        dz[1:] = np.abs(np.diff(ang))
    med = _rolling_nanmedian(dz, max(1, round(p.hdcza_window_s / es)))
    finite = med[np.isfinite(med)]
    if finite.size:
        thr = float(np.percentile(finite, p.hdcza_percentile)) * p.hdcza_multiplier
        thr = float(np.clip(thr, p.hdcza_min_deg, p.hdcza_max_deg))
    else:
        thr = p.hdcza_min_deg
    with np.errstate(invalid="ignore"):
        still = (med < thr) & usable
    onset_i, offset_i = _hdcza_block(still, es, p)

    in_spt = np.zeros(n, dtype=bool)
    if onset_i is not None and offset_i is not None:
        in_spt[onset_i:offset_i] = True
    outside = nonwear_raw & ~in_spt
    oa, ob = _runs(outside)
    for i, j in zip(oa, ob, strict=True):  # a window's worth at least, as in GGIR
        if (j - i) * es < p.nonwear_window_s:
            outside[i:j] = False
    nonwear = long_off | outside

    with np.errstate(invalid="ignore"):
        active = (dz > p.wake_angle_deg) | (ep.motion_mg > p.wake_motion_mg)
        active |= ep.vertical_frac > 0.5
    active &= valid
    quiet = ~active & valid & ~nonwear
    qa, qb = _runs(quiet)
    sleepish = np.zeros(n, dtype=bool)
    min_run = max(1, round(p.wake_inactive_min_s / es))
    for i, j in zip(qa, qb, strict=True):
        if j - i >= min_run:
            sleepish[i:j] = True
    asleep = in_spt & sleepish
    if asleep.any():  # the period starts with its first and ends with its last sleep epoch
        first, last = np.flatnonzero(asleep)[[0, -1]]
        onset_i, offset_i = int(first), int(last) + 1
        in_spt[:] = False
        in_spt[onset_i:offset_i] = True
    wake = in_spt & ~sleepish & valid & ~nonwear
    onset_s = None if onset_i is None else ep.start_s + onset_i * es
    offset_s = None if offset_i is None else ep.start_s + offset_i * es
    logger.debug("sleep period %s-%s s, threshold %.3f deg", onset_s, offset_s, thr)
    return SleepPeriod(
        onset_s=onset_s,
        offset_s=offset_s,
        wake_bouts=_spans(wake, ep.start_s, es),
        nonwear=_spans(nonwear, ep.start_s, es),
        asleep=asleep,
        epoch_s=es,
        start_s=ep.start_s,
        threshold_deg=thr,
    )


def _hdcza_block(still: BOOL, es: float, p: SleepParams) -> tuple[int | None, int | None]:
    """Longest joined block of ``still`` runs (HDCZA steps 5-6) as epoch indices."""
    a, b = _runs(still)
    keep = (b - a) * es > p.hdcza_min_block_s
    a, b = a[keep], b[keep]
    if not a.size:
        return None, None
    gaps = (a[1:] - b[:-1]) * es
    split = np.flatnonzero(gaps >= p.hdcza_max_gap_s)
    starts = np.concatenate([[0], split + 1])
    ends = np.concatenate([split, [a.size - 1]])
    lengths = b[ends] - a[starts]
    best = int(np.argmax(lengths))
    lo_i, hi_i = int(a[starts[best]]), int(b[ends[best]])
    ra, rb = _runs(still)
    long_run = (rb - ra) * es >= EXTEND_MIN_RUN_S
    ra, rb = ra[long_run], rb[long_run]
    gap = round(EXTEND_MAX_GAP_S / es)
    for i in range(ra.size - 1, -1, -1):  # runs, not samples: a handful per night
        if rb[i] <= lo_i and lo_i - rb[i] < gap:
            lo_i = int(ra[i])
    for i in range(ra.size):
        if ra[i] >= hi_i and ra[i] - hi_i < gap:
            hi_i = int(rb[i])
    return lo_i, hi_i


def _nonwear_windows(ep: AccEpochs, p: SleepParams) -> BOOL:
    """Epochs inside a GGIR non-wear window (SD and range small on enough axes)."""
    n = ep.n
    es = ep.epoch_s
    w = max(1, round(p.nonwear_window_s / es))
    step = max(1, round(p.nonwear_step_s / es))
    if n < w:
        return np.zeros(n, dtype=bool)
    ok = ep.valid
    wt = ok.astype(np.float64)
    mean = np.where(ok, ep.mean_mg, 0.0)
    sq = np.where(ok, ep.sd_mg**2 + ep.mean_mg**2, 0.0)
    cw = np.concatenate([[0.0], np.cumsum(wt)])
    cm = np.concatenate([np.zeros((3, 1)), np.cumsum(mean * wt, axis=1)], axis=1)
    cs = np.concatenate([np.zeros((3, 1)), np.cumsum(sq * wt, axis=1)], axis=1)
    starts = np.arange(0, n - w + 1, step)
    cnt = cw[starts + w] - cw[starts]
    enough = cnt >= MIN_VALID_FRACTION * w
    safe = np.maximum(cnt, 1.0)
    m1 = (cm[:, starts + w] - cm[:, starts]) / safe
    m2 = (cs[:, starts + w] - cs[:, starts]) / safe
    sd = np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
    mx = np.where(ok, ep.max_mg, -np.inf)
    mn = np.where(ok, ep.min_mg, np.inf)
    wmax = sliding_window_view(mx, w, axis=1)[:, starts].max(axis=2)
    wmin = sliding_window_view(mn, w, axis=1)[:, starts].min(axis=2)
    axes_still = ((sd < p.nonwear_sd_mg) & (wmax - wmin < p.nonwear_range_mg)).sum(axis=0)
    flagged = enough & (axes_still >= p.nonwear_min_axes)
    # mark every epoch covered by a flagged window (difference array, no per-epoch loop)
    d = np.zeros(n + 1)
    np.add.at(d, starts[flagged], 1.0)
    np.add.at(d, starts[flagged] + w, -1.0)
    flags: BOOL = np.cumsum(d)[:n] > 0
    return flags
