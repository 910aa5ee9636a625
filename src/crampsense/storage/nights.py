"""Derived night tables (decoded samples, envelopes, events) as Hive-partitioned Parquet.

Layout, readable by any engine (polars, DuckDB, pyarrow, Spark)::

    <root>/nights/participant=<participant>/night=<YYYY-MM-DD>/session=<key>/<name>.parquet

A night's tables are filed under the session that produced them: a second recording of the
same night, or a replay of another session, adds its own tables and never replaces another
session's; re-analysing the same session replaces only its own table, atomically. (Tables
written before sessions had keys sit directly in the night folder and read with a null
``session``.) The partition keys (``participant``, ``night``, ``session``) live only in the
folder names, never inside the files; :func:`read_night_tables` adds them back as columns.
Timestamps are stored as timezone-aware UTC datetimes, and column names carry their units
(``emg_rms_uv``, ``duration_s``). Every file is written atomically and owner-only (see
:mod:`crampsense.storage.files`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Final

import polars as pl

from crampsense.errors import StorageError
from crampsense.storage.files import private_dir, read_parquet_checked, write_parquet_atomic

__all__ = ["PARTITION_KEYS", "night_dir", "read_night_tables", "write_night_table"]

#: Hive partition columns, in folder order.
PARTITION_KEYS: Final = ("participant", "night", "session")
#: Participants and table names: letters, digits, ``_``, ``-`` and ``.`` (safe as folder and
#: file names on every OS, and unambiguous inside ``key=value`` folders).
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def _check_name(value: str, what: str) -> None:
    if not _NAME_RE.fullmatch(value):
        msg = (
            f"invalid {what} {value!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "not starting with '.' or '-'"
        )
        raise StorageError(msg)


def _check_date(night_date: str) -> None:
    try:
        parsed = dt.date.fromisoformat(night_date)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != night_date:
        msg = f"invalid night date {night_date!r}: use YYYY-MM-DD (the evening the night starts)"
        raise StorageError(msg)


def night_dir(root: Path, participant: str, night_date: str, session: str | None = None) -> Path:
    """Folder of one night's tables: ``root/nights/participant=<p>/night=<YYYY-MM-DD>``, and
    within it ``session=<key>`` when ``session`` is given.

    The folder is not created (see :func:`write_night_table`).

    Raises
    ------
    StorageError
        ``participant`` is not a safe name or ``night_date`` is not ``YYYY-MM-DD``.
    """
    _check_name(participant, "participant")
    _check_date(night_date)
    folder = Path(root) / "nights" / f"participant={participant}" / f"night={night_date}"
    if session is None:
        return folder
    _check_name(session, "session key")
    return folder / f"session={session}"


def _utc_columns(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Check that every datetime column is timezone-aware; convert the aware ones to UTC."""
    fixes: list[pl.Expr] = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                msg = (
                    f"column {name!r} for {path} holds naive datetimes; make them "
                    "timezone-aware (e.g. .dt.replace_time_zone('UTC')) before writing"
                )
                raise StorageError(msg, path=str(path))
            if dtype.time_zone != "UTC":
                fixes.append(pl.col(name).dt.convert_time_zone("UTC"))
    return df.with_columns(fixes) if fixes else df


def write_night_table(
    root: Path,
    participant: str,
    night_date: str,
    name: str,
    df: pl.DataFrame,
    *,
    session: str | None = None,
) -> Path:
    """Write one night table atomically as ``<night_dir>/<name>.parquet``.

    Parameters
    ----------
    root : Path
        Data root (folders created ``0700``).
    participant : str
        Participant key (folder ``participant=<participant>``).
    night_date : str
        ``YYYY-MM-DD``, the evening the night starts.
    name : str
        Table name (``"events"``, ``"envelopes"``, ...).
    df : polars.DataFrame
        The table, units in column names. It must not contain the partition columns
        ``participant``, ``night`` or ``session``; datetime columns must be timezone-aware
        (stored as UTC).
    session : str, optional
        Key of the session that produced the table
        (:attr:`~crampsense.storage.session_log.SessionReader.session_key`); the table then
        replaces only that session's table of the night.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    StorageError
        Bad names, partition columns inside ``df``, naive datetimes, or a write failure
        (:class:`~crampsense.errors.DiskFullError` when the disk is full).
    """
    _check_name(name, "table name")
    night = night_dir(root, participant, night_date)
    folder = night_dir(root, participant, night_date, session)
    path = folder / f"{name}.parquet"
    clash = [key for key in PARTITION_KEYS if key in df.columns]
    if clash:
        msg = (
            f"table {name!r} for {path} contains partition column(s) {clash}; drop them "
            "(they are stored in the folder names)"
        )
        raise StorageError(msg, path=str(path))
    df = _utc_columns(df, path)
    private_dir(Path(root))
    private_dir(night.parent.parent)
    private_dir(night.parent)
    private_dir(night)
    private_dir(folder)
    write_parquet_atomic(df, path)
    return path


def _parse_partition(folder: Path, key: str) -> str | None:
    prefix = f"{key}="
    return folder.name[len(prefix) :] if folder.name.startswith(prefix) else None


def read_night_tables(root: Path, name: str) -> pl.DataFrame:
    """Read table ``name`` from every night of every participant under ``root``.

    Each file is checked (:func:`~crampsense.storage.files.read_parquet_checked`) and gets the
    partition columns ``participant`` (String), ``night`` (Date) and ``session`` (String, null
    for tables written before sessions had keys) added in front. Files with
    different columns are combined with missing columns as nulls.

    Returns
    -------
    polars.DataFrame
        Sorted by participant, night and session; an empty frame with just the partition
        columns when nothing is stored yet.

    Raises
    ------
    CorruptFileError
        A stored table is damaged (the message names the file).
    """
    _check_name(name, "table name")
    base = Path(root) / "nights"
    parts: list[pl.DataFrame] = []
    found: list[tuple[Path, Path, str | None]] = [
        (p, p.parent, None) for p in base.glob(f"participant=*/night=*/{name}.parquet")
    ]
    found += [(p, p.parent.parent, _parse_partition(p.parent, "session"))
              for p in base.glob(f"participant=*/night=*/session=*/{name}.parquet")]
    for path, night_folder, session in sorted(found, key=lambda f: str(f[0])):
        participant = _parse_partition(night_folder.parent, "participant")
        night = _parse_partition(night_folder, "night")
        if participant is None or night is None:  # pragma: no cover - glob guarantees both
            continue
        try:
            night_value = dt.date.fromisoformat(night)
        except ValueError:
            msg = f"folder {night_folder} does not name a night (YYYY-MM-DD); rename or remove it"
            raise StorageError(msg, path=str(path)) from None
        table = read_parquet_checked(path)
        parts.append(
            table.select(
                pl.lit(participant, dtype=pl.String).alias("participant"),
                pl.lit(night_value, dtype=pl.Date).alias("night"),
                pl.lit(session, dtype=pl.String).alias("session"),
                pl.all(),
            )
        )
    if not parts:
        return pl.DataFrame(
            schema={"participant": pl.String, "night": pl.Date, "session": pl.String}
        )
    combined = pl.concat(parts, how="diagonal_relaxed")
    return combined.sort(["participant", "night", "session"], maintain_order=True,
                         nulls_last=False)
