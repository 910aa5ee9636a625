"""One polars table of the day: what the person logged and what was imported, side by side.

Rules
-----
- Imported values: per metric and day, exactly one source and feed is used (the one with the
  largest value: Apple Health often already holds what Cronometer or a water app wrote into it,
  so adding sources would count the same glass twice). Its provenance is kept in
  ``<metric>_from`` (``"apple-health: Apple Watch + iPhone"``).
- The person's own log wins: where the journal has entries of a kind on a day, the day's value
  of that metric is the journal's (``<metric>_from`` = ``"journal"``), whatever was imported.
- Water, minerals and steps that nobody logged or imported stay unknown (null), as in
  :func:`crampsense.summaries.daily.day_totals`.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Final

import polars as pl

from crampsense.summaries.daily import DAY_METRICS, day_totals, local_naive

__all__ = ["EXTRA_METRICS", "day_table", "imported_day_values"]

#: Imported metrics that the journal has no kind for; they join the day table as they are.
EXTRA_METRICS: Final = ("active_energy_kcal", "sleep_asleep_min", "sleep_in_bed_min",
                        "sleep_awake_min", "heart_rate_bpm")
#: Journal kind behind each day-table column the journal can fill.
_JOURNAL_KIND: Final = {column: kind for column, kind, _, _ in DAY_METRICS} | {
    "exercise_km": "exercise"
}


def imported_day_values(imports: pl.DataFrame) -> pl.DataFrame:
    """One value per metric and day from the stored imports.

    Parameters
    ----------
    imports : polars.DataFrame
        From :func:`crampsense.journal.importers.read_imports`.

    Returns
    -------
    polars.DataFrame
        ``date`` (Date), ``metric`` (str), ``value`` (Float64), ``from`` (str provenance).
    """
    if imports.is_empty():
        return pl.DataFrame(schema={"date": pl.Date(), "metric": pl.String(),
                                    "value": pl.Float64(), "from": pl.String()})
    return (
        imports.sort(["value", "source", "feed"], descending=[True, False, False])
        .unique(subset=["metric", "date"], keep="first", maintain_order=True)
        .select(
            "date", "metric", "value",
            pl.format("{} ({}): {}", "source", "feed", "origins").alias("from"),
        )
        .sort("date", "metric")
    )


def day_table(journal: pl.DataFrame, imports: pl.DataFrame, *, tz: tzinfo) -> pl.DataFrame:
    """Journal day totals with imported values filled in where the journal is silent.

    Parameters
    ----------
    journal : polars.DataFrame
        Entries from :func:`crampsense.journal.entries_frame`.
    imports : polars.DataFrame
        From :func:`crampsense.journal.importers.read_imports` (may be empty).
    tz : tzinfo
        The person's time zone (journal days are local calendar days).

    Returns
    -------
    polars.DataFrame
        The columns of :func:`~crampsense.summaries.daily.day_totals`, plus
        :data:`EXTRA_METRICS`, plus ``<metric>_from`` for every numeric metric (``"journal"``,
        an import's provenance, or null), one row per date that has either, sorted by date.
    """
    days = day_totals(journal, tz=tz)
    logged = (
        journal.select(local_naive(pl.col("time"), tz).dt.date().alias("date"), "kind").unique()
        if not journal.is_empty()
        else pl.DataFrame(schema={"date": pl.Date(), "kind": pl.String()})
    )
    values = imported_day_values(imports)
    metrics = [c for c, _, _, _ in DAY_METRICS] + ["exercise_km", *EXTRA_METRICS]
    dates = pl.concat([days.select("date"), values.select("date")]).unique().sort("date")
    table = dates.join(days, on="date", how="left")
    for metric in metrics:
        imported = values.filter(pl.col("metric") == metric).select(
            "date", pl.col("value").alias("__imp"), pl.col("from").alias("__from"))
        kind = _JOURNAL_KIND.get(metric)
        was_logged = (
            logged.filter(pl.col("kind") == kind).select("date", pl.lit(True).alias("__log"))
            if kind else pl.DataFrame(schema={"date": pl.Date(), "__log": pl.Boolean()})
        )
        table = table.join(imported, on="date", how="left").join(was_logged, on="date",
                                                                  how="left")
        own = pl.col(metric) if metric in table.columns else pl.lit(None, dtype=pl.Float64)
        use_log = pl.col("__log").fill_null(False)
        table = table.with_columns(
            pl.when(use_log).then(own).otherwise(pl.col("__imp")).cast(pl.Float64).alias(metric),
            pl.when(use_log).then(pl.lit("journal")).otherwise(pl.col("__from"))
            .alias(f"{metric}_from"),
        ).drop("__imp", "__from", "__log")
    # Journal-only defaults (0 caffeine on a logged day with no caffeine entry) survive where
    # nothing was imported for that metric.
    zero_when_absent = [c for c, _, _, z in DAY_METRICS if z]
    table = table.with_columns(
        pl.when(pl.col(c).is_null() & pl.col("n_entries").is_not_null())
        .then(pl.lit(0.0)).otherwise(pl.col(c)).alias(c)
        for c in zero_when_absent
    )
    return table.sort("date")
