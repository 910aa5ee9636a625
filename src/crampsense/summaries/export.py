"""``crampsense export``: every night and journal entry as Hive-partitioned tables.

Layout (readable by polars, DuckDB, pyarrow, Spark with Hive partitioning on)::

    DIR/nights/participant=<p>/night=<YYYY-MM-DD>/part-0.<parquet|csv>   one row per night
    DIR/events/participant=<p>/night=<YYYY-MM-DD>/part-0.<...>           detected events
    DIR/journal/participant=<p>/night=<YYYY-MM-DD>/part-0.<...>          journal entries

The partition keys live only in the folder names. A journal entry belongs to the night of its
local calendar day (the night that starts that evening; days without a recorded night still get
a folder). ``nights`` rows carry the night's figures (see
:func:`crampsense.summaries.history.nights_history`) and its day before from the day table
(journal and imports, with each value's source). Times are UTC. CSV has no list type: lists
(medications, symptoms, notes, channels) are joined with ``"; "``. Files are owner-only and
written atomically; exporting again rewrites the same files.
"""

from __future__ import annotations

import io
from datetime import tzinfo
from pathlib import Path
from typing import Final

import polars as pl

from crampsense.errors import StorageError, UsageError
from crampsense.storage.files import atomic_write_bytes, private_dir
from crampsense.storage.nights import read_night_tables
from crampsense.summaries.daily import local_naive

__all__ = ["EXPORT_FORMATS", "export_all"]

EXPORT_FORMATS: Final = ("parquet", "csv")
_TABLES: Final = ("nights", "events", "journal")


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    lists = [n for n, t in df.schema.items() if isinstance(t, pl.List)]
    return df.with_columns(pl.col(n).list.join("; ") for n in lists) if lists else df


def _write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    """Atomic and owner-only; an export is a regenerable copy, so Parquet files skip the
    store's checksum and read-back (plain files any engine reads)."""
    if fmt == "parquet":
        buffer = io.BytesIO()
        df.write_parquet(buffer, compression="zstd", statistics=True)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_bytes(path, _flatten(df).write_csv().encode("utf-8"))


def export_all(
    out_dir: Path, *, data_dir: Path, participant: str, nights: pl.DataFrame,
    days: pl.DataFrame, journal: pl.DataFrame, tz: tzinfo, fmt: str = "parquet",
) -> dict[str, int]:
    """Write the export; returns rows written per table.

    Parameters
    ----------
    out_dir : Path
        Destination folder; must be new, empty, or a previous export (only ``nights``,
        ``events`` and ``journal`` inside).
    data_dir : Path
        The data folder holding the stored nights.
    participant : str
    nights, days, journal : polars.DataFrame
        :func:`~crampsense.summaries.history.nights_history`,
        :func:`~crampsense.summaries.day_table.day_table`, and
        :func:`crampsense.journal.entries_frame`.
    tz : tzinfo
    fmt : {"parquet", "csv"}
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; use parquet or csv")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise StorageError(f"{out_dir} is a file; pass a folder for the export")
        stray = sorted(p.name for p in out_dir.iterdir() if p.name not in _TABLES)
        if stray:
            raise StorageError(f"{out_dir} already holds {', '.join(stray[:3])}; export into a "
                             "new or empty folder")
    ext = fmt
    counts = dict.fromkeys(_TABLES, 0)
    night_rows = nights.filter(pl.col("participant") == participant).drop("participant").join(
        days, left_on="night_date", right_on="date", how="left")
    events = read_night_tables(data_dir, "events")
    if events.height and "session" in nights.columns:  # the session each night shows
        events = events.join(nights.select("participant", "night_date", "session"),
                             left_on=["participant", "night", "session"],
                             right_on=["participant", "night_date", "session"], how="semi",
                             nulls_equal=True)
    if events.height:
        events = events.filter(pl.col("participant") == participant).drop("participant")
    entries = journal.with_columns(local_naive(pl.col("time"), tz).dt.date().alias("__night"))

    def folder(table: str, night: object) -> Path:
        return out_dir / table / f"participant={participant}" / f"night={night}"

    for table in _TABLES:
        private_dir(out_dir / table / f"participant={participant}")
    private_dir(out_dir)
    for row in night_rows.partition_by("night_date", as_dict=False):
        night = row["night_date"][0]
        path = folder("nights", night)
        private_dir(path)
        _write(row.drop("night_date"), path / f"part-0.{ext}", fmt)
        counts["nights"] += row.height
        ev = events.filter(pl.col("night") == night).drop("night") if events.height else None
        if ev is not None:
            private_dir(folder("events", night))
            _write(ev, folder("events", night) / f"part-0.{ext}", fmt)
            counts["events"] += ev.height
    for part in entries.partition_by("__night", as_dict=False) if entries.height else []:
        night = part["__night"][0]
        private_dir(folder("journal", night))
        _write(part.drop("__night"), folder("journal", night) / f"part-0.{ext}", fmt)
        counts["journal"] += part.height
    return counts
