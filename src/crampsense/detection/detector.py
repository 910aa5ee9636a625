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

from crampsense.detection.acc import AccFeatures, features_from_steps, step_stats
from crampsense.detection.acc_only import possible_cramps
from crampsense.detection.emg import (
    REASON_NAMES,
    REASON_VALID,
    REVISION_S,
    EmgFrontEnd,
    Envelope,
    EnvelopeFrontEnd,
    emg_floor,
    hop_envelope,
    hysteresis_spans,
)
from crampsense.detection.params import DetectionParams
from crampsense.detection.schema import EVENT_SCHEMA
from crampsense.detection.sleep import (
    AccEpochs,
    SleepPeriod,
    acc_epochs,
    sleep_period,
)
from crampsense.errors import DetectionError
from crampsense.models import MIN_ACC_FS_HZ, CrampEvent, Leg, Severity, grade_severity

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
#: Block length (s) in which :func:`detect_cramps` feeds a whole night's accelerometer to the
#: same block-wise code the streaming detector uses (bounded temporary memory).
OFFLINE_ACC_BLOCK_S: Final = 600.0
#: Fraction of the onset window in which the leg must be vertical to count as standing.
STANDING_FRACTION: Final = 0.5
#: Accelerometer step (s) and how many seconds at the end of the steps are provisional: the
#: orientation change of a step needs the steps 2 s after it (acc.TURN_SPAN_S / 2), plus one.
ACC_STEP_S: Final = 1.0
TURN_MARGIN_S: Final = 3.0

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


@dataclass(slots=True, eq=False)
class _Leg:
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

    @property
    def hop_s(self) -> float:
        return self.env.hop_s if self.env is not None else 0.1


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
        return sum(m.size for m in self._motion) * self.step_n / self.fs_hz

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
    sleep : dict of str to SleepPeriod
        Per leg with an accelerometer of 25 Hz or more: the HDCZA sleep period, wake bouts
        and non-wear (:func:`crampsense.detection.sleep.sleep_period`).
    evidence : dict of str to str
        Per leg, what its events rest on: ``"emg"``, ``"envelope"`` (pre-computed EMG
        envelope), ``"acc"`` (accelerometer only: ``possible_cramp`` events, lower
        confidence) or ``"none"``.
    """

    def __init__(self, *, events: pl.DataFrame, coverage: pl.DataFrame, rejected: pl.DataFrame,
                 params: DetectionParams, start: datetime, duration_s: float,
                 legs: tuple[Leg, ...], notch_hz: dict[str, tuple[float, ...]],
                 band_hz: dict[str, tuple[float, float]],
                 sleep: Mapping[str, SleepPeriod] | None = None,
                 evidence: Mapping[str, str] | None = None) -> None:
        self.events = events
        self.coverage = coverage
        self.rejected = rejected
        self.params = params
        self.start = start
        self.duration_s = duration_s
        self.legs = legs
        self.notch_hz = notch_hz
        self.band_hz = band_hz
        self.sleep: dict[str, SleepPeriod] = dict(sleep or {})
        self.evidence: dict[str, str] = dict(evidence or {})

    def __repr__(self) -> str:
        return (f"CrampResults({self.events.height} events, legs={list(self.legs)}, "
                f"duration_s={self.duration_s:.0f})")

    def covered_s(self, leg: Leg) -> float:
        """Seconds of the night in which ``leg`` had a usable signal (EMG, or the
        accelerometer for an accelerometer-only leg, see :attr:`evidence`)."""
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
        """Per leg: ``evidence``, ``n_events``, ``total_min``, ``covered_h``,
        ``events_per_covered_h``, ``sleep_h``, ``events_per_sleep_h``.

        Rates are ``nan`` where their denominator is zero or unknown (``sleep_h`` is ``nan``
        for a leg without an accelerometer of 25 Hz or more).
        """
        rows = []
        for leg in self.legs:
            ev = self.events.filter(pl.col("leg") == leg)
            covered_h = self.covered_s(leg) / 3600.0
            n = ev.height
            sp = self.sleep.get(leg)
            sleep_h = sp.sleep_s / 3600.0 if sp is not None else math.nan
            rows.append((leg, self.evidence.get(leg, "none"), n,
                         float(ev["duration_s"].sum()) / 60.0, covered_h,
                         n / covered_h if covered_h > 0 else math.nan, sleep_h,
                         n / sleep_h if sleep_h > 0 else math.nan))
        return pl.DataFrame(rows, schema={"leg": pl.String, "evidence": pl.String,
                                          "n_events": pl.Int64, "total_min": pl.Float64,
                                          "covered_h": pl.Float64,
                                          "events_per_covered_h": pl.Float64,
                                          "sleep_h": pl.Float64,
                                          "events_per_sleep_h": pl.Float64}, orient="row")

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
            + self._acc_methods()
        )

    def _acc_methods(self) -> str:
        """The accelerometer-only and sleep-period part of :attr:`methods`."""
        parts = []
        acc_legs = [leg for leg, e in self.evidence.items() if e == "acc"]
        if acc_legs:
            parts.append(
                f" The {' and '.join(acc_legs)} leg had no EMG: its events are possible "
                "cramps from the accelerometer alone (an abrupt awakening from a still leg "
                "with sustained 5-25 Hz mechanomyographic vibration of the calf, Orizio 1993; "
                "Beck et al. 2005), with confidence capped at 0.6 and severity graded on "
                "duration only; see crampsense.detection.acc_only.")
        if self.sleep:
            first = next(iter(self.sleep.values()))
            parts.append(" " + first.methods.split(" The sleep period ran")[0]
                         .split(" No sleep period")[0])
        return "".join(parts)


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


def _spans_of(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    return np.stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)), axis=1)


def _coverage_rows(st: _Leg, ls: _LegStream, duration_s: float
                   ) -> list[tuple[str, float, float, str]]:
    leg = st.leg
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
    tail = ls.emg_duration_s
    if tail - end_s > 0:  # the last partial step
        end_s = tail
    if duration_s - end_s > 1e-9:
        rows.append((leg, end_s, duration_s, "gap"))
    return rows


def _window_leg(ls: _LegStream, t0_s: float, params: DetectionParams) -> _Leg:
    """Hop-level stage of one leg from ``t0_s`` (rounded down to a floor block) to the last
    complete hop: envelope, floor, ratios and candidates.

    Every value at a step depends only on steps within a bounded distance, and the window
    starts on a floor-block boundary, so away from the window's start and end the arrays are
    bit-identical to those of the whole night (the streaming detector relies on this)."""
    st = _Leg(leg=ls.leg, channels=ls.channels)
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
    st.plm = _plm_members((spans + st.h0).astype(np.float64) * hop, params)
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
    starts = (other.cands[:, 0] + other.h0) * other.hop_s
    near = np.abs(starts - onset_s) <= params.onset_window_s
    return bool((near & ~other.plm).any())


@dataclass(frozen=True, slots=True)
class _Decision:
    """What became of one hysteresis span: an event, a rejection, or nothing (too short)."""

    leg: Leg
    span: tuple[int, int]  # absolute [start, stop) hop indices of the span
    event: dict[str, object] | None = None
    rejected: tuple[str, float, float, str] | None = None


def _leg_events(st: _Leg, other: _Leg | None, params: DetectionParams) -> list[_Decision]:
    leg = st.leg
    hop = st.hop_s
    h0 = st.h0
    out: list[_Decision] = []
    if st.env is None:
        return out
    for i, (on_i, s_i, span_end) in enumerate(st.cands.tolist()):
        span = (h0 + s_i, h0 + span_end)

        def reject(why: str, off_s: float, span: tuple[int, int] = span,
                   on_i: int = on_i) -> None:
            out.append(_Decision(leg, span, rejected=(leg, (h0 + on_i) * hop, off_s, why)))

        e_i = span_end
        onset_s, cross_s, offset_s = (h0 + on_i) * hop, (h0 + s_i) * hop, (h0 + e_i) * hop
        if offset_s - onset_s < params.min_duration_s:
            out.append(_Decision(leg, span))  # short bursts are not worth a "rejected" row
            continue
        if st.plm[i] and (e_i - s_i) * hop <= params.plm_max_burst_s:
            reject("plm_train", offset_s)
            continue
        w0, w1 = onset_s - params.onset_window_s, cross_s + params.onset_window_s
        moving, standing = _standing_or_moving(st, w0, w1, params)
        if standing:
            reject("standing", offset_s)
            continue
        o_moving = None if other is None else _standing_or_moving(other, w0, w1, params)[0]
        # Rolling over: both legs start together, or both legs move at the onset.
        if _bilateral_onset(onset_s, other, params) or (moving and o_moving):
            reject("body_movement", offset_s)
            continue
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
        # A cramp is tonic: judged on the event itself, after walking was cut off.
        quiet = _quiet_fraction(st.step_ratio[s_i:e_i], round(PHASIC_LOCAL_S / hop), params)
        if quiet > params.phasic_max_quiet_fraction:
            reject("phasic", offset_s)
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
        out.append(_Decision(leg, span, event={
            "onset_s": onset_s, "offset_s": offset_s, "duration_s": duration,
            "leg": leg, "channels": list(carried), "peak_rel": peak, "mean_rel": mean,
            "severity": str(grade_severity(duration, peak)), "confidence": round(confidence, 3),
            "kind": "cramp", "evidence": "emg+acc" if has_acc else "emg",
            "woke": woke, "got_up": got_up, "stretched": stretched,
        }))
    return out


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
              ) -> tuple[dict[Leg, _Leg], list[_Decision]]:
    """Hop-level and event stage of every leg from ``t0_s`` on (0: the whole night)."""
    states = {leg: _window_leg(ls, t0_s, params) for leg, ls in streams.items()}
    decisions: list[_Decision] = []
    for leg, st in states.items():
        other = next((o for name, o in states.items() if name != leg), None)
        # A leg without EMG (accelerometer only) gets no EMG decisions here; the
        # accelerometer-only "possible cramps" are added by their own stage.
        decisions.extend(_leg_events(st, other, params))
    return states, decisions


def _events_frame(rows: Sequence[Mapping[str, object]], start_utc: datetime) -> pl.DataFrame:
    """Event rows (dicts without ``onset``/``offset``) as a frame with EVENT_SCHEMA."""
    if not rows:
        return _empty(EVENT_SCHEMA)
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
            acc_rows = possible_cramps(epochs[leg], sleep=sleep[leg], leg=leg, other=other)
            rows.extend(acc_rows.to_dicts())
            coverage.extend(_acc_coverage_rows(leg, epochs[leg], sleep[leg], duration_s))
            evidence[leg] = "acc"
        else:
            coverage.extend(_coverage_rows(st, ls, duration_s))
            evidence[leg] = ("none" if ls.front is None else
                             "envelope" if isinstance(ls.front, EnvelopeFrontEnd) else "emg")
    for r in rejected:
        logger.debug("rejected a %s-leg candidate at %.1f s: %s", r[0], r[1], r[3])
    start_utc = start.astimezone(UTC)
    cov = (pl.DataFrame(coverage, schema=dict(COVERAGE_SCHEMA), orient="row")
           .sort("leg", "start_s") if coverage else _empty(COVERAGE_SCHEMA))
    rej = (pl.DataFrame(rejected, schema=dict(REJECTED_SCHEMA), orient="row")
           if rejected else _empty(REJECTED_SCHEMA))
    return CrampResults(
        events=_events_frame(rows, start_utc), coverage=cov, rejected=rej, params=params,
        start=start_utc, duration_s=duration_s, legs=tuple(states),
        notch_hz={leg: tuple(sorted({f for ch in st.env.notch_hz for f in ch}))
                  for leg, st in states.items() if st.env is not None},
        band_hz={leg: st.env.band_hz for leg, st in states.items()
                 if st.env is not None and not math.isnan(st.env.band_hz[0])},
        sleep=sleep, evidence=evidence,
    )


def _sleep_of(epochs_1s: AccEpochs) -> SleepPeriod:
    """HDCZA sleep period of one leg from its 1-s epochs (merged to 5 s inside)."""
    return sleep_period(epochs_1s)


def _acc_coverage_rows(leg: str, epochs: AccEpochs, sleep: SleepPeriod, duration_s: float
                       ) -> list[tuple[str, float, float, str]]:
    """Spans an accelerometer-only leg did not cover: invalid epochs and non-wear."""
    rows: list[tuple[str, float, float, str]] = []
    es = epochs.epoch_s
    for a, b in _spans_of(~epochs.valid):
        rows.append((leg, epochs.start_s + a * es, epochs.start_s + b * es, "gap"))
    for a, b in sleep.nonwear.iter_rows():
        rows.append((leg, float(a), float(b), "non-wear"))
    end_s = epochs.end_s
    if duration_s - end_s > 1e-9:
        rows.append((leg, end_s, duration_s, "gap"))
    return rows
