"""Trends: cramps per night split by each factor of the day before, with honest uncertainty.

For each factor the nights are split in two groups (e.g. "after days under 1.5 L of water" and
"otherwise"; nights whose day has no value for the factor are left out and counted). For each
group: nights, cramps, cramps per night with an exact Poisson 95% interval, and (when the
night's sleep is known) cramps per hour of sleep. Between the groups: the rate ratio with the
exact conditional interval (the split of the total count between the groups is binomial given
the total; Clopper-Pearson bounds on that share, turned into a ratio of rates).

Wording rules: associations only; the words "cause", "because", "due to", "prevent", "help",
"effect" and "leads to" never appear. A factor with fewer than :data:`MIN_NIGHTS_PER_GROUP`
nights on either side says there are too few nights to say anything. An interval that excludes
1 reads "more (or fewer) cramps went with ..."; otherwise "no clear difference".

References
----------
Ulm K. A simple method to calculate the confidence interval of a standardized mortality ratio.
Am J Epidemiol 1990;131:373-5 (exact Poisson limits from chi-square quantiles).
Breslow NE, Day NE. Statistical Methods in Cancer Research II, 1987, ch. 2 (conditional
binomial interval for a ratio of two Poisson rates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import polars as pl
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "MIN_NIGHTS_PER_GROUP",
    "Factor",
    "FactorSplit",
    "TrendsReport",
    "build_trends",
    "default_factors",
    "poisson_interval",
    "rate_ratio_interval",
    "render_trends",
    "trends_json",
]

#: Fewer nights than this on either side of a split: too few to say anything. With 7 nights a
#: side and typical rates (0.2-1 cramps a night) an interval spans more than a factor of 5.
MIN_NIGHTS_PER_GROUP: Final = 7
#: Two-sided confidence level of every interval.
CONFIDENCE: Final = 0.95
#: Water below this on the day before (ml) counts as a low-water day (self-help guides' 1.5 L).
LOW_WATER_ML: Final = 1500.0
#: Exercise of at least this long (min) counts as a hard-exercise day.
HARD_EXERCISE_MIN: Final = 60.0
#: Sleep shorter than this (h) counts as a short night.
SHORT_SLEEP_H: Final = 6.0
#: Cramp nights in the last :data:`RED_FLAG_WINDOW_NIGHTS` nights that read as persistent.
RED_FLAG_CRAMP_NIGHTS: Final = 4
RED_FLAG_WINDOW_NIGHTS: Final = 7
#: A mean rate at or above this over the whole period reads as frequent (cramps per night).
RED_FLAG_MEAN_PER_NIGHT: Final = 1.0


@dataclass(frozen=True)
class Factor:
    """How one factor splits nights: ``expr`` is true for the "exposed" group."""

    key: str
    exposed: str  # "after days under 1.5 L of water"
    other: str  # "otherwise"
    column: str
    expr: pl.Expr


@dataclass(frozen=True)
class FactorSplit:
    """One factor's comparison (rates in cramps per night; ``*_ph``: per hour of sleep)."""

    key: str
    exposed: str
    other: str
    n_exposed: int
    n_other: int
    n_unknown: int
    cramps_exposed: int
    cramps_other: int
    rate_exposed: float
    rate_exposed_ci: tuple[float, float]
    rate_other: float
    rate_other_ci: tuple[float, float]
    rate_ratio: float | None
    rate_ratio_ci: tuple[float, float] | None
    rate_ph_exposed: float | None
    rate_ph_other: float | None
    verdict: str
    text: str


@dataclass
class TrendsReport:
    """All factors over the chosen nights, plus red-flag notices and the disclaimer."""

    first_night: date | None
    last_night: date | None
    n_nights: int
    n_cramps: int
    splits: list[FactorSplit] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    headline: str = ""
    disclaimer: str = ""


def poisson_interval(count: int, exposure: float, confidence: float = CONFIDENCE) -> tuple[
    float, float
]:
    """Exact (Garwood) interval for a Poisson rate ``count / exposure``.

    Examples
    --------
    >>> lo, hi = poisson_interval(0, 10.0)
    >>> lo, round(hi, 3)
    (0.0, 0.369)
    """
    if exposure <= 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    lo = 0.0 if count == 0 else float(stats.chi2.ppf(alpha / 2, 2 * count)) / 2.0
    hi = float(stats.chi2.ppf(1 - alpha / 2, 2 * count + 2)) / 2.0
    return (lo / exposure, hi / exposure)


def rate_ratio_interval(
    a: int, t_a: float, b: int, t_b: float, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Exact conditional interval for the ratio of Poisson rates ``(a/t_a) / (b/t_b)``.

    Given ``a + b``, ``a`` is binomial with share ``p = t_a R / (t_a R + t_b)``; Clopper-Pearson
    bounds on ``p`` give ``R = p / (1 - p) * t_b / t_a``. Bounds are 0 or ``inf`` at the edges.

    Examples
    --------
    >>> lo, hi = rate_ratio_interval(12, 10.0, 6, 30.0)
    >>> round(lo, 2), round(hi, 2)
    (2.08, 19.48)
    """
    n = a + b
    if n == 0 or t_a <= 0 or t_b <= 0:
        return (0.0, math.inf)
    alpha = 1.0 - confidence
    p_lo = 0.0 if a == 0 else float(stats.beta.ppf(alpha / 2, a, n - a + 1))
    p_hi = 1.0 if a == n else float(stats.beta.ppf(1 - alpha / 2, a + 1, n - a))
    lo = p_lo / (1 - p_lo) * t_b / t_a
    hi = math.inf if p_hi >= 1.0 else p_hi / (1 - p_hi) * t_b / t_a
    return (lo, hi)


def default_factors(days: pl.DataFrame) -> list[Factor]:
    """The factors of the day before that crampsense compares (medications from the data).

    Minerals split at the person's own median over the period (below vs at or above).
    """
    factors = [
        Factor("water", f"after days under {LOW_WATER_ML / 1000:g} L of water",
               f"after days with {LOW_WATER_ML / 1000:g} L or more", "water_ml",
               pl.col("water_ml") < LOW_WATER_ML),
        Factor("exercise", f"after days with {HARD_EXERCISE_MIN:g} min of exercise or more",
               "after lighter days", "exercise_min", pl.col("exercise_min") >= HARD_EXERCISE_MIN),
        Factor("caffeine", "after days with caffeine", "after days without", "caffeine_mg",
               pl.col("caffeine_mg") > 0),
        Factor("alcohol", "after days with alcohol", "after days without", "alcohol_drinks",
               pl.col("alcohol_drinks") > 0),
        Factor("sleep", f"on nights with under {SHORT_SLEEP_H:g} h of sleep",
               "on longer nights", "sleep_h", pl.col("sleep_h") < SHORT_SLEEP_H),
    ]
    for mineral in ("magnesium", "potassium", "calcium", "sodium"):
        column = f"{mineral}_mg"
        if column in days.columns and days[column].drop_nulls().len() > 0:
            median = float(days[column].drop_nulls().cast(pl.Float64).median() or 0.0)  # type: ignore[arg-type]
            factors.append(Factor(
                mineral, f"after days under your median {mineral} ({median:.0f} mg)",
                "after days at or above it", column, pl.col(column) < median))
    if "medications" in days.columns:
        names = sorted({m for ms in days["medications"].drop_nulls().to_list() for m in ms})
        for name in names:
            factors.append(Factor(
                f"medication:{name}", f"after days you took {name}",
                f"after days you did not log {name}", "medications",
                pl.col("medications").list.contains(name)))
    return factors


def _fmt_ci(ci: tuple[float, float]) -> str:
    hi = "inf" if math.isinf(ci[1]) else f"{ci[1]:.2f}"
    return f"{ci[0]:.2f}-{hi}"


def _split(nights: pl.DataFrame, factor: Factor) -> FactorSplit:
    if factor.column == "medications":
        known = nights.with_columns(pl.col("medications").fill_null([]))
        flag = known.select(factor.expr.fill_null(False).alias("f"))["f"]
        # A medication is "unknown" only on nights with no journal at all for the day.
        has_day = known["n_entries"].is_not_null() if "n_entries" in known.columns else None
        if has_day is not None:
            known, flag = known.filter(has_day), flag.filter(has_day)
    else:
        present = nights[factor.column].is_not_null() if factor.column in nights.columns else (
            pl.Series([False] * nights.height))
        known = nights.filter(present)
        flag = known.select(factor.expr.alias("f"))["f"].fill_null(False)
    n_unknown = nights.height - known.height
    ex, ot = known.filter(flag), known.filter(~flag)
    a, b = int(ex["cramps"].sum()), int(ot["cramps"].sum())
    na, nb = ex.height, ot.height
    rate_a = a / na if na else math.nan
    rate_b = b / nb if nb else math.nan
    sleep_a = float(ex["sleep_h"].sum()) if "sleep_h" in ex.columns else 0.0
    sleep_b = float(ot["sleep_h"].sum()) if "sleep_h" in ot.columns else 0.0
    has_sleep = (na and nb and ex["sleep_h"].null_count() == 0 and ot["sleep_h"].null_count() == 0
                 and sleep_a > 0 and sleep_b > 0)
    ci_a, ci_b = poisson_interval(a, na), poisson_interval(b, nb)
    enough = na >= MIN_NIGHTS_PER_GROUP and nb >= MIN_NIGHTS_PER_GROUP
    ratio = ratio_ci = None
    if enough:
        ratio = (rate_a / rate_b) if b else math.inf if a else math.nan
        ratio_ci = rate_ratio_interval(a, na, b, nb)
    if not enough:
        verdict = "too few nights"
        tail = (f"too few nights to say anything (need {MIN_NIGHTS_PER_GROUP} on each side; "
                f"have {na} and {nb})")
    elif ratio_ci is not None and ratio_ci[0] > 1.0:
        verdict = "more"
        tail = (f"more cramps went with these days in your records (rate ratio {ratio:.1f}, "
                f"95% CI {_fmt_ci(ratio_ci)})")
    elif ratio_ci is not None and ratio_ci[1] < 1.0:
        verdict = "fewer"
        tail = (f"fewer cramps went with these days in your records (rate ratio {ratio:.2f}, "
                f"95% CI {_fmt_ci(ratio_ci)})")
    else:
        verdict = "no clear difference"
        shown = "n/a" if ratio is None or math.isnan(ratio) else (
            "inf" if math.isinf(ratio) else f"{ratio:.2f}")
        tail = (f"no clear difference (rate ratio {shown}, 95% CI "
                f"{_fmt_ci(ratio_ci) if ratio_ci else 'n/a'})")
    text = (
        f"{factor.exposed}: {rate_a:.2f} cramps per night (95% CI {_fmt_ci(ci_a)}), n = {na} "
        f"nights; {factor.other}: {rate_b:.2f} ({_fmt_ci(ci_b)}), n = {nb}; {tail}"
        if na and nb else
        f"{factor.exposed}: n = {na} nights; {factor.other}: n = {nb}; {tail}"
    )
    if n_unknown:
        text += f"; {n_unknown} night(s) without data for this factor left out"
    return FactorSplit(
        key=factor.key, exposed=factor.exposed, other=factor.other, n_exposed=na, n_other=nb,
        n_unknown=n_unknown, cramps_exposed=a, cramps_other=b, rate_exposed=rate_a,
        rate_exposed_ci=ci_a, rate_other=rate_b, rate_other_ci=ci_b, rate_ratio=ratio,
        rate_ratio_ci=ratio_ci,
        rate_ph_exposed=a / sleep_a if has_sleep else None,
        rate_ph_other=b / sleep_b if has_sleep else None,
        verdict=verdict, text=text,
    )


def build_trends(nights: pl.DataFrame, days: pl.DataFrame, *, disclaimer: str) -> TrendsReport:
    """Split the nights by each factor of the day before.

    Parameters
    ----------
    nights : polars.DataFrame
        From :func:`crampsense.summaries.history.nights_history` (``night_date``, ``cramps``,
        ``sleep_h``...), already limited to the period wanted.
    days : polars.DataFrame
        From :func:`crampsense.summaries.day_table.day_table`.
    disclaimer : str
        The not-medical-advice line.

    Returns
    -------
    TrendsReport
    """
    joined = nights.join(days, left_on="night_date", right_on="date", how="left",
                         suffix="_day")
    if "sleep_h" in joined.columns and "sleep_asleep_min" in joined.columns:
        joined = joined.with_columns(
            pl.coalesce("sleep_h", pl.col("sleep_asleep_min") / 60.0).alias("sleep_h"))
    n_cramps = int(joined["cramps"].sum()) if joined.height else 0
    report = TrendsReport(
        first_night=joined["night_date"].min() if joined.height else None,  # type: ignore[arg-type]
        last_night=joined["night_date"].max() if joined.height else None,  # type: ignore[arg-type]
        n_nights=joined.height, n_cramps=n_cramps, disclaimer=disclaimer,
    )
    if joined.height == 0:
        report.headline = ("No stored nights yet: record or replay nights first (or try "
                           "`crampsense demo-history`).")
        return report
    cramp_nights = int((joined["cramps"] > 0).sum())
    ci = poisson_interval(n_cramps, joined.height)
    report.headline = (
        f"{joined.height} nights from {report.first_night} to {report.last_night}: "
        f"{n_cramps} cramps on {cramp_nights} nights, {n_cramps / joined.height:.2f} per night "
        f"(95% CI {_fmt_ci(ci)})."
    )
    report.splits = [_split(joined, f) for f in default_factors(joined)]
    last = joined.tail(RED_FLAG_WINDOW_NIGHTS)
    if int((last["cramps"] > 0).sum()) >= RED_FLAG_CRAMP_NIGHTS:
        report.notices.append(
            f"Cramps on {int((last['cramps'] > 0).sum())} of the last {last.height} nights. "
            "Persistent cramps are worth talking to a clinician about.")
    if n_cramps / joined.height >= RED_FLAG_MEAN_PER_NIGHT:
        report.notices.append(
            f"{n_cramps / joined.height:.1f} cramps per night on average. Frequent cramps are "
            "worth talking to a clinician about.")
    return report


def trends_json(report: TrendsReport) -> dict[str, object]:
    """Everything :func:`render_trends` shows, as JSON-ready data (``inf`` as null)."""
    def num(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(x, 4)

    return {
        "first_night": report.first_night.isoformat() if report.first_night else None,
        "last_night": report.last_night.isoformat() if report.last_night else None,
        "n_nights": report.n_nights, "n_cramps": report.n_cramps, "headline": report.headline,
        "min_nights_per_group": MIN_NIGHTS_PER_GROUP, "confidence": CONFIDENCE,
        "factors": [
            {
                "factor": s.key, "exposed": s.exposed, "other": s.other,
                "nights_exposed": s.n_exposed, "nights_other": s.n_other,
                "nights_unknown": s.n_unknown, "cramps_exposed": s.cramps_exposed,
                "cramps_other": s.cramps_other,
                "per_night_exposed": num(s.rate_exposed),
                "per_night_exposed_ci": [num(v) for v in s.rate_exposed_ci],
                "per_night_other": num(s.rate_other),
                "per_night_other_ci": [num(v) for v in s.rate_other_ci],
                "per_sleep_hour_exposed": num(s.rate_ph_exposed),
                "per_sleep_hour_other": num(s.rate_ph_other),
                "rate_ratio": num(s.rate_ratio),
                "rate_ratio_ci": [num(v) for v in s.rate_ratio_ci] if s.rate_ratio_ci else None,
                "verdict": s.verdict, "text": s.text,
            }
            for s in report.splits
        ],
        "notices": report.notices, "disclaimer": report.disclaimer,
    }


def render_trends(report: TrendsReport) -> str:
    """Plain text, one factor per paragraph."""
    lines = [report.headline, ""]
    if report.splits:
        lines.append("Cramps per night, split by the day before (associations in your own "
                     "records, not causes):")
        for s in report.splits:
            lines.append(f"- {s.text}")
            if s.rate_ph_exposed is not None and s.rate_ph_other is not None:
                lines.append(f"  per hour of sleep: {s.rate_ph_exposed:.3f} vs "
                             f"{s.rate_ph_other:.3f}")
        lines.append("")
    if report.notices:
        lines += [f"! {n}" for n in report.notices] + [""]
    lines.append(report.disclaimer)
    return "\n".join(lines) + "\n"
