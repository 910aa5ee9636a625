"""Per-day journal totals, per-night tables, and the join of each night with its day before.

A night is labelled by the evening it starts (local time; a recording that starts before noon
belongs to the previous evening), and its *day before* is the local calendar day of that label:
the night labelled 2026-11-20 starts on the evening of 2026-11-20 and is joined with the journal
totals of 2026-11-20.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

import polars as pl

from crampsense.errors import UsageError
from crampsense.models import Leg, Night, night_label, placement_leg

__all__ = [
    "DAY_METRICS",
    "covered_fraction",
    "day_totals",
    "join_nights_with_days",
    "local_naive",
    "monitored_legs",
    "night_date_expr",
    "nights_frame",
]

#: Numeric day-total columns: (column, journal kind, unit, zero when absent). Water, minerals
#: and steps that were not logged are *unknown* (null): nobody drinks nothing all day, they just
#: did not write it down. Caffeine, alcohol and exercise not logged on a day with other entries
#: count as none (0), because people log these when they happen.
DAY_METRICS: Final[tuple[tuple[str, str, str, bool], ...]] = (
    ("water_ml", "water", "ml", False),
    ("magnesium_mg", "magnesium", "mg", False),
    ("potassium_mg", "potassium", "mg", False),
    ("calcium_mg", "calcium", "mg", False),
    ("sodium_mg", "sodium", "mg", False),
    ("caffeine_mg", "caffeine", "mg", True),
    ("alcohol_drinks", "alcohol", "drinks", True),
    ("exercise_min", "exercise", "min", True),
    ("steps", "steps", "steps", False),
)

_DAY_SCHEMA: Final = pl.Schema(
    {
        "date": pl.Date(),
        **{column: pl.Float64() for column, _, _, _ in DAY_METRICS},
        "exercise_km": pl.Float64(),
        "medications": pl.List(pl.String()),
        "symptoms": pl.List(pl.String()),
        "notes": pl.List(pl.String()),
        "self_cramps": pl.UInt32(),
        "n_entries": pl.UInt32(),
    }
)


def local_naive(expr: pl.Expr, tz: tzinfo) -> pl.Expr:
    """Turn a UTC ``Datetime`` expression into naive local wall time in ``tz``.

    ``zoneinfo.ZoneInfo`` zones and fixed offsets (``datetime.timezone``) are supported.
    """
    if isinstance(tz, ZoneInfo):
        return expr.dt.convert_time_zone(tz.key).dt.replace_time_zone(None)
    if isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        return (expr + pl.duration(seconds=offset.total_seconds())).dt.replace_time_zone(None)
    raise UsageError(
        f"time zone {tz!r} is not supported for summaries; use a zoneinfo.ZoneInfo "
        "(e.g. ZoneInfo('Europe/Berlin')) or datetime.timezone"
    )


def night_date_expr(nights: pl.DataFrame) -> pl.Expr:
    """``night_date`` of a nights table as a Date expression (it may be text or Date)."""
    key = pl.col("night_date")
    if nights.schema["night_date"] == pl.String:
        key = key.str.to_date("%Y-%m-%d")
    return key.cast(pl.Date)


def _kind(kind: str) -> pl.Expr:
    return pl.col("kind") == kind


def _metric_expr(column: str, kind: str, zero_when_absent: bool) -> pl.Expr:
    total = pl.col("amount").filter(_kind(kind)).sum()
    if zero_when_absent:
        return total.cast(pl.Float64).alias(column)
    return pl.when(_kind(kind).any()).then(total).otherwise(None).cast(pl.Float64).alias(column)


def day_totals(journal: pl.DataFrame, *, tz: tzinfo) -> pl.DataFrame:
    """Sum journal entries per local calendar day.

    Parameters
    ----------
    journal : polars.DataFrame
        Entries as made by :func:`crampsense.journal.entries_frame` (``time`` in UTC).
    tz : tzinfo
        The person's time zone; days are local calendar days.

    Returns
    -------
    polars.DataFrame
        One row per local date with at least one entry, sorted by date. Columns:

        - ``date`` (Date)
        - ``water_ml``, ``magnesium_mg``, ``potassium_mg``, ``calcium_mg``, ``sodium_mg``,
          ``steps`` (Float64): sums; null when that kind was not logged that day
        - ``caffeine_mg``, ``alcohol_drinks`` (standard drinks), ``exercise_min`` (Float64):
          sums; 0 when not logged that day (see :data:`DAY_METRICS`)
        - ``exercise_km`` (Float64): logged exercise distance; null when none was logged
        - ``medications`` (List[str]): distinct medication names taken, lower case, sorted
        - ``symptoms``, ``notes`` (List[str]): symptom words and notes, in time order
        - ``self_cramps`` (UInt32): cramps the person reported in the journal that day
        - ``n_entries`` (UInt32): journal entries that day
    """
    if journal.is_empty():
        return pl.DataFrame(schema=_DAY_SCHEMA)
    local = journal.sort("time").with_columns(date=local_naive(pl.col("time"), tz).dt.date())
    exercise_km = pl.col("distance_km").filter(_kind("exercise"))
    totals = local.group_by("date").agg(
        *(_metric_expr(c, k, z) for c, k, _, z in DAY_METRICS),
        pl.when(exercise_km.is_not_null().any())
        .then(exercise_km.sum())
        .otherwise(None)
        .cast(pl.Float64)
        .alias("exercise_km"),
        pl.col("name").filter(_kind("medication")).str.to_lowercase().unique().sort()
        .alias("medications"),
        pl.col("name").filter(_kind("symptom")).alias("symptoms"),
        pl.col("note").filter(_kind("note")).alias("notes"),
        _kind("cramp").sum().cast(pl.UInt32).alias("self_cramps"),
        pl.len().cast(pl.UInt32).alias("n_entries"),
    )
    return totals.select(_DAY_SCHEMA.names()).cast(_DAY_SCHEMA).sort("date")


def join_nights_with_days(nights: pl.DataFrame, days: pl.DataFrame) -> pl.DataFrame:
    """Attach to each night the journal totals of its day before.

    Parameters
    ----------
    nights : polars.DataFrame
        One row per night with a ``night_date`` column (the evening the night starts, as
        ``YYYY-MM-DD`` text or Date), e.g. from :func:`nights_frame`.
    days : polars.DataFrame
        From :func:`day_totals` (``date`` column).

    Returns
    -------
    polars.DataFrame
        Every night row, in order, with every column of ``days`` except ``date`` (null where
        the journal has nothing for that day). Day columns whose names clash with night
        columns get the suffix ``_day``.
    """
    if "night_date" not in nights.columns:
        raise UsageError(
            f"nights table has no 'night_date' column (columns: {', '.join(nights.columns)}); "
            "build it with crampsense.summaries.nights_frame"
        )
    if "date" not in days.columns:
        raise UsageError("days table has no 'date' column; build it with day_totals")
    left = nights.with_columns(night_date_expr(nights).alias("__day"))
    joined = left.join(
        days, left_on="__day", right_on="date", how="left", suffix="_day", maintain_order="left"
    )
    return joined.drop("__day")


def covered_fraction(night: Night, leg: Leg) -> float:
    """Share of the night (0-1) in which ``leg`` had usable signal."""
    return night.covered_s(leg) / night.duration_s if night.duration_s > 0 else 0.0


def monitored_legs(night: Night) -> tuple[Leg, ...]:
    """Legs monitored during a night: ``night.legs``, else the legs of its devices, else of its
    events and gaps; sorted left first."""
    legs: set[Leg] = set(night.legs)
    if not legs:
        legs = {leg for d in night.devices if (leg := placement_leg(d.placement)) is not None}
    if not legs:
        legs = {e.leg for e in night.events} | {g.leg for g in night.gaps}
    return tuple(sorted(legs))


def nights_frame(nights: Sequence[Night], *, tz: tzinfo) -> pl.DataFrame:
    """One row per night, ready for :func:`join_nights_with_days` and summary history.

    Returns
    -------
    polars.DataFrame
        Columns ``night_date`` and ``wake_date`` (Date, local), ``start`` and ``end``
        (Datetime UTC), ``cramps`` (UInt32, events of kind "cramp"), ``possible_cramps``
        (UInt32), ``worst_severity`` (str, null without cramps), ``cramp_minutes`` (Float64,
        total duration of cramps), ``covered_h_left`` and ``covered_h_right`` (Float64 hours
        with usable signal, null when that leg was not monitored), ``covered_h`` (Float64,
        the least-covered monitored leg's hours), ``session_path``.
    """
    rows = []
    for night in nights:
        cramps = [e for e in night.events if e.kind == "cramp"]
        legs = monitored_legs(night)
        covered = {leg: night.covered_s(leg) / 3600.0 for leg in legs}
        rows.append(
            {
                "night_date": night_label(night.start, tz),
                "wake_date": night.end.astimezone(tz).date(),
                "start": night.start,
                "end": night.end,
                "cramps": len(cramps),
                "possible_cramps": len(night.events) - len(cramps),
                "worst_severity": str(max(e.severity for e in cramps)) if cramps else None,
                "cramp_minutes": sum(e.duration_s for e in cramps) / 60.0,
                "covered_h_left": covered.get("left"),
                "covered_h_right": covered.get("right"),
                "covered_h": min(covered.values()) if covered else None,
                "session_path": night.session_path,
            }
        )
    schema = pl.Schema(
        {
            "night_date": pl.Date(),
            "wake_date": pl.Date(),
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
            "cramps": pl.UInt32(),
            "possible_cramps": pl.UInt32(),
            "worst_severity": pl.String(),
            "cramp_minutes": pl.Float64(),
            "covered_h_left": pl.Float64(),
            "covered_h_right": pl.Float64(),
            "covered_h": pl.Float64(),
            "session_path": pl.String(),
        }
    )
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema
    )
