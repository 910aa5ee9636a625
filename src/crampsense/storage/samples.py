"""crampsense sample files: signals at their own rates in one CSV or Parquet table.

Format (``docs/sample-files.md``)
---------------------------------
* One column per signal. Its name carries label, unit and sample rate::

      LABEL [UNIT] @ RATE Hz          e.g.  "EMG L gastroc [uV] @ 1000 Hz", "ACC L X [mg] @ 50 Hz"

* Row ``k`` of a column is that signal's sample ``k``, at ``k / RATE`` seconds from the start.
  Slower signals simply end earlier: their cells after the last sample are empty (CSV) or
  null (Parquet). An empty cell *inside* a signal is a missing sample (a gap).
* The start time (ISO 8601 with a UTC offset) is a comment line ``# start: ...`` before the
  CSV header, or the Parquet key-value metadata entry ``crampsense.start``. Without it the
  start is the Unix epoch (1970-01-01T00:00:00Z) and only relative times mean anything.

The header is parsed and every column's rate and unit validated before any data is read.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from crampsense.errors import CorruptFileError, StorageError
from crampsense.storage.files import atomic_write_bytes

__all__ = [
    "SAMPLES_START_KEY",
    "SampleChannel",
    "SampleColumn",
    "column_name",
    "parse_column_name",
    "read_sample_columns",
    "read_samples",
    "write_samples",
]

logger = logging.getLogger(__name__)

#: Parquet key-value metadata key holding the ISO 8601 start.
SAMPLES_START_KEY: Final = "crampsense.start"
#: The start used when a file names none (only relative times are meaningful then).
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: Highest rate accepted in a column name (Hz); as for EDF, far above any surface signal.
MAX_FS_HZ: Final = 100_000.0
#: Most columns accepted: a leg study needs a handful; thousands mean a wrong file.
MAX_COLUMNS: Final = 1024
#: The CSV header (comment lines and column names) must fit in this many bytes.
MAX_CSV_HEADER_BYTES: Final = 1024 * 1024
_COLUMN_RE: Final = re.compile(
    r"^\s*(?P<label>[^\[\]@]*?\S)\s*\[\s*(?P<unit>[^\[\]]+?)\s*\]\s*@\s*"
    r"(?P<fs>\d+(?:\.\d+)?)\s*(?:Hz)?\s*$", re.IGNORECASE)
_START_RE: Final = re.compile(r"^#\s*start\s*[:=]\s*(?P<value>\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SampleColumn:
    """One column of a sample file: its name and what the name says."""

    index: int
    name: str
    label: str
    dimension: str
    fs_hz: float


@dataclass(frozen=True, slots=True, eq=False)
class SampleChannel:
    """One signal to write with :func:`write_samples` (``data`` in ``dimension``)."""

    label: str
    dimension: str
    fs_hz: float
    data: NDArray[np.floating]


def column_name(label: str, dimension: str, fs_hz: float) -> str:
    """The column name ``"LABEL [UNIT] @ RATE Hz"``."""
    return f"{label} [{dimension}] @ {fs_hz:g} Hz"


def parse_column_name(name: str, index: int = 0, *, path: str = "") -> SampleColumn:
    """Parse ``"LABEL [UNIT] @ RATE Hz"``.

    Raises
    ------
    CorruptFileError
        The name does not follow the format, or the rate is not in ``(0, MAX_FS_HZ]``.
    """
    m = _COLUMN_RE.match(name)
    where = f"{path}: " if path else ""
    if m is None:
        raise CorruptFileError(
            f"{where}column {index + 1} is named {name!r}, not 'LABEL [UNIT] @ RATE Hz' "
            "(e.g. 'EMG L [uV] @ 1000 Hz'); see docs/sample-files.md", path=path or None)
    fs_hz = float(m.group("fs"))
    if not 0 < fs_hz <= MAX_FS_HZ:
        raise CorruptFileError(
            f"{where}column {name!r} has rate {fs_hz:g} Hz; it must be above 0 and at most "
            f"{MAX_FS_HZ:g} Hz", path=path or None)
    return SampleColumn(index, name, m.group("label"), m.group("unit"), fs_hz)


def _parse_start(text: str, path: str) -> datetime:
    try:
        start = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CorruptFileError(f"{path}: start {text!r} is not an ISO 8601 time such as "
                               "2026-11-20T22:30:00+00:00", path=path) from exc
    if start.tzinfo is None:
        raise CorruptFileError(f"{path}: start {text!r} has no UTC offset; add one such as "
                               "+00:00", path=path)
    return start


def _csv_header(path: Path) -> tuple[datetime, list[str]]:
    try:
        with path.open("rb") as fh:
            head = fh.read(MAX_CSV_HEADER_BYTES)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    start = EPOCH
    for raw in head.split(b"\n"):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise CorruptFileError(f"{path}: the header is not UTF-8 text ({exc.reason}); "
                                   "save the file as UTF-8 CSV", path=str(path)) from exc
        if not line:
            continue
        if line.startswith("#"):
            m = _START_RE.match(line)
            if m is not None:
                start = _parse_start(m.group("value"), str(path))
            continue
        return start, [c.strip().strip('"') for c in line.split(",")]
    raise CorruptFileError(f"{path}: no column header line in the first "
                           f"{MAX_CSV_HEADER_BYTES} bytes; see docs/sample-files.md",
                           path=str(path))


def _parquet_header(path: Path) -> tuple[datetime, list[str]]:
    try:
        names = list(pl.read_parquet_schema(path))
        meta = pl.read_parquet_metadata(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CorruptFileError(f"{path} cannot be read as Parquet ({first}); re-export it",
                               path=str(path)) from exc
    text = meta.get(SAMPLES_START_KEY)
    return (_parse_start(text, str(path)) if text else EPOCH), names


def read_sample_columns(path: Path) -> tuple[datetime, tuple[SampleColumn, ...]]:
    """Read only the header of a CSV or Parquet sample file (start and columns).

    Raises
    ------
    StorageError
        The file cannot be read.
    CorruptFileError
        Malformed column names, rates out of range, duplicate names, a bad start.
    """
    is_parquet = path.suffix.lower() in (".parquet", ".pq")
    start, names = _parquet_header(path) if is_parquet else _csv_header(path)
    if not names or len(names) > MAX_COLUMNS:
        raise CorruptFileError(f"{path} has {len(names)} columns; a sample file needs 1 to "
                               f"{MAX_COLUMNS}", path=str(path))
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CorruptFileError(f"{path}: column {dup!r} appears twice; name each signal once",
                               path=str(path))
    return start, tuple(parse_column_name(n, i, path=str(path)) for i, n in enumerate(names))


def read_samples(
    path: Path, columns: Sequence[SampleColumn], *, scales: Sequence[float] | None = None
) -> list[NDArray[np.float32]]:
    """Read the given columns as ``float32`` (times ``scales``), each cut at its last sample.

    Empty cells inside a signal become NaN (a gap); trailing empty cells are not samples.

    Raises
    ------
    CorruptFileError
        A cell does not parse as a number, or the file is damaged.
    """
    factors = [1.0] * len(columns) if scales is None else list(scales)
    names = [c.name for c in columns]
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pl.read_parquet(path, columns=names, memory_map=False)
        else:
            df = pl.read_csv(path, comment_prefix="#", columns=names,
                             schema_overrides=dict.fromkeys(names, pl.Float64))
        df = df.select(pl.col(names).cast(pl.Float32))
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise CorruptFileError(f"{path}: cannot read the samples ({first}); every cell must be "
                               "a number or empty", path=str(path)) from exc
    out: list[NDArray[np.float32]] = []
    for name, factor in zip(names, factors, strict=True):
        x = df.get_column(name).to_numpy(allow_copy=True).astype(np.float32, copy=False)
        present = np.flatnonzero(~np.isnan(x))
        x = x[: int(present[-1]) + 1] if present.size else x[:0]
        if factor != 1.0:
            x = x * np.float32(factor)
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    return out


def write_samples(path: Path, channels: Sequence[SampleChannel], *, start: datetime) -> None:
    """Write a CSV (``.csv``) or Parquet (``.parquet``) sample file, atomically and owner-only.

    Raises
    ------
    StorageError
        No channels, a naive ``start``, or the file cannot be written.
    """
    if not channels:
        raise StorageError("no channels to write; pass at least one SampleChannel")
    if start.tzinfo is None:
        raise StorageError(f"start {start.isoformat()} has no time zone; pass an aware datetime")
    n = max(int(np.shape(c.data)[0]) for c in channels)
    cols = []
    for c in channels:
        if not (math.isfinite(c.fs_hz) and c.fs_hz > 0):
            raise StorageError(f"channel {c.label!r} has rate {c.fs_hz}; pass a positive rate")
        x = np.full(n, np.nan, dtype=np.float32)
        x[: np.shape(c.data)[0]] = c.data
        cols.append(pl.Series(column_name(c.label, c.dimension, c.fs_hz), x).fill_nan(None))
    df = pl.DataFrame(cols)
    buf = io.BytesIO()
    if path.suffix.lower() in (".parquet", ".pq"):
        df.write_parquet(buf, compression="zstd",
                         metadata={SAMPLES_START_KEY: start.isoformat()})
    else:
        buf.write(f"# start: {start.isoformat()}\n".encode())
        df.write_csv(buf, null_value="")
    atomic_write_bytes(path, buf.getvalue())
