"""The results object of one night's detection: :class:`CrampResults`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

import polars as pl

from crampsense.detection.params import DetectionParams
from crampsense.detection.sleep import SleepPeriod
from crampsense.models import CrampEvent, Leg, Severity

__all__ = ["COVERAGE_SCHEMA", "REJECTED_SCHEMA", "CrampResults", "empty_frame"]

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



class CrampResults:
    """Cramps found in one night, with the spans that were not covered and the parameters.

    Attributes
    ----------
    events : polars.DataFrame
        One row per cramp; columns listed in :func:`detect_cramps` Notes.
    coverage : polars.DataFrame
        Spans *not* covered: ``leg``, ``start_s``, ``end_s`` (s from start), ``reason``
        (``"lead-off"``, ``"gap"``, ``"saturated"``, ``"hum"``, ``"not-emg"`` (a rise with a
        broadband spectrum: a loose electrode), ``"no-emg"``, ``"non-wear"``). Never "no
        cramp" time.
    rejected : polars.DataFrame
        Candidates that were not reported: ``leg``, ``onset_s``, ``offset_s``, ``reason``
        (``"standing"``, ``"implausible_level"``, ``"not_emg"``, ``"voluntary_movement"``,
        ``"nested_rise"`` / ``"inside_reported_span"`` (a span and a rise on its raised
        baseline would both be reported; the less probable gives way), or for candidates
        the decision model weighed below 0.5: ``"plm_train"``, ``"body_movement"``,
        ``"phasic"`` when that old rule also fires, else
        ``"model:<feature that weighed most against it>"``).
    candidates : polars.DataFrame
        Every candidate the decision model weighed: ``leg``, ``onset_s``, ``offset_s``,
        ``probability``, ``reported`` and one column per feature
        (:data:`crampsense.detection.model.EMG_FEATURES`).
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
                 evidence: Mapping[str, str] | None = None,
                 candidates: pl.DataFrame | None = None) -> None:
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
        self.candidates = candidates if candidates is not None else pl.DataFrame(
            schema={"leg": pl.String, "onset_s": pl.Float64, "offset_s": pl.Float64,
                    "probability": pl.Float64, "reported": pl.Boolean})

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
            f"{p.min_duration_s:g} s were dropped. Inside spans longer than 2 min, rises on a "
            "raised, settled local baseline (the 0.25 quantile of the 5-s medians of the 2 min "
            "before, at least 2 min into the span; activity adds "
            "in power, so the rise's own ratio is sqrt(ratio² - baseline² + 1)) were "
            "candidates of their own, weighed as they would look without the slow tone under "
            "them and considered when the whole span was not an event. Dropped too were "
            f"onsets while standing (shank axis "
            f"above {p.vertical_mg:g} mg), rises above 40x the floor and, at 800 Hz or more, "
            "strong broadband rises (reported as not covered: not EMG). Every other candidate "
            "was weighed by a decision model, "
            f"{_model_text()}, over physiological evidence: duration, plateau, continuity "
            "(share of dipping steps), membership of a periodic limb-movement train (bursts "
            f"{p.plm_min_burst_s:g}-{p.plm_max_burst_s:g} s, at least {p.plm_min_count} at "
            f"{p.plm_min_interval_s:g}-{p.plm_max_interval_s:g} s onset intervals; WASM 2016, "
            "Ferri et al. 2016) and other rises within 2 min, the onset ramp, movement of "
            "that leg at the onset and after the ramp, what the other leg did, the level "
            "before and after and how long the absolute envelope stayed raised (a local "
            "baseline that follows slow tone changes), and the envelope's variability. "
            "Its probability is the reported confidence; events were reported at 0.5 or more. "
            "Severity followed "
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
                "cramps from the accelerometer alone (sustained 5-25 Hz mechanomyographic "
                "vibration of the calf in a still leg, Orizio 1993; Beck et al. 2005, or the "
                "awakening movement of that one leg after a still spell; rolling over, a bed "
                "partner and orientation jumps rejected), weighed by their own decision model "
                "whose probability, calibrated to a whole night's share of cramps, is the "
                "confidence; severity is graded on duration only; see "
                "crampsense.detection.acc_only.")
        if self.sleep:
            first = next(iter(self.sleep.values()))
            parts.append(" " + first.methods.split(" The sleep period ran")[0]
                         .split(" No sleep period")[0])
        return "".join(parts)



def _model_text() -> str:
    from crampsense.detection.model import model_info  # noqa: PLC0415 - reads package data

    info = model_info()
    fit = info.get("model", {})
    kind = fit.get("type", "a model") if isinstance(fit, dict) else "a model"
    seeds = info.get("seeds", "?")
    return (f"{kind} fitted on the night generator's tuning world (seeds {seeds}; "
            f"'{info.get('command', 'python benchmarks/fit_detector.py')}', "
            f"{info.get('fitted', '?')})")


def empty_frame(schema: Mapping[str, pl.DataType | type[pl.DataType]]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(schema))

