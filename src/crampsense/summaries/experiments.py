"""Before/after comparisons of the person's own experiments, with the honesty of the trends.

For an experiment started on local date S (and stopped on T, or still running):

- *after*: nights labelled S <= night < T (the first night after starting is the evening of S;
  a night labelled T starts after the stop);
- *before*: the nights labelled in the same number of days before S (at least
  :data:`MIN_BEFORE_DAYS`, at most :data:`MAX_BEFORE_DAYS`).

Each side: nights, cramps, cramps per night with an exact Poisson 95% interval; between them the
rate ratio (after / before) with the exact conditional interval
(:func:`crampsense.summaries.trends.rate_ratio_interval`); fewer than
:data:`~crampsense.summaries.trends.MIN_NIGHTS_PER_GROUP` nights on either side reads "too few
nights to say anything". And what else changed between the two periods: every factor of the
day table whose median moved by more than 20%, and medications started or stopped. A
before/after comparison cannot separate the change from anything else that changed in the same
weeks, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Final

import polars as pl

from crampsense.journal.experiments import Experiment
from crampsense.summaries.trends import (
    MIN_NIGHTS_PER_GROUP,
    poisson_interval,
    rate_ratio_interval,
)

__all__ = ["ExperimentComparison", "compare_experiment", "experiment_json"]

MIN_BEFORE_DAYS: Final = 14
MAX_BEFORE_DAYS: Final = 30
#: A factor whose median moved by more than this fraction is listed as "also changed".
CHANGE_FRACTION: Final = 0.2
_FACTORS: Final = {
    "water_ml": ("water", "ml"), "magnesium_mg": ("magnesium", "mg"),
    "potassium_mg": ("potassium", "mg"), "calcium_mg": ("calcium", "mg"),
    "sodium_mg": ("sodium", "mg"), "caffeine_mg": ("caffeine", "mg"),
    "alcohol_drinks": ("alcohol", "drinks"), "exercise_min": ("exercise", "min"),
    "steps": ("steps", "steps"), "sleep_h": ("sleep", "h"),
}
CAVEAT: Final = ("A before/after comparison cannot tell your change apart from anything else "
                 "that changed in the same weeks (season, training, other habits, chance).")


@dataclass
class ExperimentComparison:
    """The comparison of one experiment (rates in cramps per night)."""

    name: str
    start: date
    stop: date | None
    before: tuple[date, date]  # first and last night date of the before period
    n_before: int
    n_after: int
    cramps_before: int
    cramps_after: int
    rate_before_ci: tuple[float, float]
    rate_after_ci: tuple[float, float]
    rate_ratio: float | None
    rate_ratio_ci: tuple[float, float] | None
    verdict: str
    text: str
    also_changed: list[str] = field(default_factory=list)


def _ci(ci: tuple[float, float]) -> str:
    return f"{ci[0]:.2f}-{'inf' if math.isinf(ci[1]) else f'{ci[1]:.2f}'}"


def compare_experiment(
    experiment: Experiment, nights: pl.DataFrame, days: pl.DataFrame, *, tz: tzinfo,
    today: date,
) -> ExperimentComparison:
    """Compare the nights after ``experiment`` started with the nights before it.

    Parameters
    ----------
    experiment : Experiment
    nights : polars.DataFrame
        :func:`crampsense.summaries.history.nights_history`.
    days : polars.DataFrame
        :func:`crampsense.summaries.day_table.day_table`.
    tz : tzinfo
        The person's time zone.
    today : date
        The local date now (the end of a running experiment).
    """
    start = experiment.start.astimezone(tz).date()
    stop = experiment.stop.astimezone(tz).date() if experiment.stop else None
    end = stop or today + timedelta(days=1)
    length = max(MIN_BEFORE_DAYS, min(MAX_BEFORE_DAYS, (end - start).days))
    b0 = start - timedelta(days=length)
    nd = pl.col("night_date")
    after = nights.filter((nd >= start) & (nd < end))
    before = nights.filter((nd >= b0) & (nd < start))
    a, b = int(after["cramps"].sum()), int(before["cramps"].sum())
    na, nb = after.height, before.height
    ci_a, ci_b = poisson_interval(a, na), poisson_interval(b, nb)
    ratio = ratio_ci = None
    if na >= MIN_NIGHTS_PER_GROUP and nb >= MIN_NIGHTS_PER_GROUP:
        ratio = (a / na) / (b / nb) if b else (math.inf if a else math.nan)
        ratio_ci = rate_ratio_interval(a, na, b, nb)
    if ratio_ci is None:
        verdict = "too few nights"
        tail = (f"too few nights to say anything (need {MIN_NIGHTS_PER_GROUP} on each side; "
                f"have {nb} before and {na} after)")
    elif ratio_ci[1] < 1.0:
        verdict = "fewer"
        tail = (f"fewer cramps went with the period after the change (rate ratio {ratio:.2f}, "
                f"95% CI {_ci(ratio_ci)})")
    elif ratio_ci[0] > 1.0:
        verdict = "more"
        tail = (f"more cramps went with the period after the change (rate ratio {ratio:.2f}, "
                f"95% CI {_ci(ratio_ci)})")
    else:
        verdict = "no clear difference"
        shown = "n/a" if ratio is None or math.isnan(ratio) else f"{ratio:.2f}"
        tail = f"no clear difference (rate ratio {shown}, 95% CI {_ci(ratio_ci)})"
    text = (f"before ({b0} to {start - timedelta(days=1)}): "
            + (f"{b / nb:.2f} cramps per night (95% CI {_ci(ci_b)})" if nb else "no nights")
            + f", n = {nb} nights; after ({start} to {end - timedelta(days=1)}"
            + ("" if stop else ", still running") + "): "
            + (f"{a / na:.2f} ({_ci(ci_a)})" if na else "no nights")
            + f", n = {na}; {tail}")
    also = _also_changed(days, (b0, start), (start, end))
    return ExperimentComparison(
        name=experiment.name, start=start, stop=stop, before=(b0, start - timedelta(days=1)),
        n_before=nb, n_after=na, cramps_before=b, cramps_after=a, rate_before_ci=ci_b,
        rate_after_ci=ci_a, rate_ratio=ratio, rate_ratio_ci=ratio_ci, verdict=verdict,
        text=text, also_changed=also,
    )


def _also_changed(days: pl.DataFrame, before: tuple[date, date],
                  after: tuple[date, date]) -> list[str]:
    if days.is_empty():
        return []
    d = pl.col("date")
    b = days.filter((d >= before[0]) & (d < before[1]))
    a = days.filter((d >= after[0]) & (d < after[1]))
    if "sleep_asleep_min" in days.columns:
        b = b.with_columns((pl.col("sleep_asleep_min") / 60.0).alias("sleep_h"))
        a = a.with_columns((pl.col("sleep_asleep_min") / 60.0).alias("sleep_h"))
    out = []
    for column, (label, unit) in _FACTORS.items():
        if column not in a.columns or column not in b.columns:
            continue
        mb, ma = b[column].drop_nulls(), a[column].drop_nulls()
        if mb.len() == 0 or ma.len() == 0:
            continue
        vb, va = float(mb.median() or 0.0), float(ma.median() or 0.0)  # type: ignore[arg-type]
        if (vb == 0 and va != 0) or (vb != 0 and abs(va - vb) / abs(vb) > CHANGE_FRACTION):
            out.append(f"{label}: median {vb:,.4g} {unit} a day before, {va:,.4g} {unit} after "
                       f"({mb.len()} and {ma.len()} days with data)")
    if "medications" in days.columns:
        def taken(df: pl.DataFrame) -> set[str]:
            return {m for ms in df["medications"].drop_nulls().to_list() for m in ms}

        for m in sorted(taken(a) - taken(b)):
            out.append(f"medication {m}: taken after the start, not logged before")
        for m in sorted(taken(b) - taken(a)):
            out.append(f"medication {m}: logged before the start, not after")
    return out


def experiment_json(c: ExperimentComparison) -> dict[str, object]:
    """JSON-ready form of a comparison (``inf`` as null)."""
    def num(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(x, 4)

    return {
        "name": c.name, "start": c.start.isoformat(),
        "stop": c.stop.isoformat() if c.stop else None,
        "before": [c.before[0].isoformat(), c.before[1].isoformat()],
        "nights_before": c.n_before, "nights_after": c.n_after,
        "cramps_before": c.cramps_before, "cramps_after": c.cramps_after,
        "per_night_before_ci": [num(v) for v in c.rate_before_ci],
        "per_night_after_ci": [num(v) for v in c.rate_after_ci],
        "rate_ratio": num(c.rate_ratio),
        "rate_ratio_ci": [num(v) for v in c.rate_ratio_ci] if c.rate_ratio_ci else None,
        "verdict": c.verdict, "text": c.text, "also_changed": c.also_changed,
        "caveat": CAVEAT,
    }
