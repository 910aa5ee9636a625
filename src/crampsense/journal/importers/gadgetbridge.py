"""Gadgetbridge database exports: ``Gadgetbridge.db`` (SQLite), or the zip of its data export.

Format
------
Gadgetbridge (the open-source Android companion for fitness bands) keeps one SQLite table of
per-minute samples per device family, named ``<FAMILY>_ACTIVITY_SAMPLE``
(``MI_BAND_ACTIVITY_SAMPLE`` for Mi Band / Amazfit (Huami), ``HUAWEI_ACTIVITY_SAMPLE``,
``XIAOMI_ACTIVITY_SAMPLE``, ``GARMIN_ACTIVITY_SAMPLE``, ``PEBBLE_HEALTH_ACTIVITY_SAMPLE``, ...)
with ``TIMESTAMP``, ``DEVICE_ID``, ``USER_ID`` and, depending on the family, ``STEPS``,
``RAW_INTENSITY``, ``RAW_KIND`` and ``HEART_RATE``. ``DEVICE`` maps ``_id`` to ``NAME``.
``TIMESTAMP`` is Unix seconds in the activity tables; some families and the sleep/stress tables
use milliseconds, so values above 10^11 are read as milliseconds. ``RAW_KIND`` is
device-specific; the sleep kinds known here are listed in :data:`SLEEP_KINDS`; tables of other
families contribute steps and heart rate only. Heart rates of 0 and 255 (and negatives) mean
"no reading".

Hostile or damaged files are refused before anything is stored: not SQLite, truncated (the
header's page count does not match the file size) or malformed, no activity sample table, or a
sample table without ``TIMESTAMP``/``DEVICE_ID`` (an unknown layout).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from crampsense.errors import ImportFileError
from crampsense.journal.importers.base import (
    MAX_ZIP_ENTRY_BYTES,
    MAX_ZIP_RATIO,
    MIN_BOMB_BYTES,
    ImportResult,
    Progress,
    Windows,
)
from crampsense.storage.files import private_dir

__all__ = ["SLEEP_KINDS", "read_gadgetbridge"]

#: Per table: (mask applied to RAW_KIND, {raw kind: metric}). Mi Band 2 and later Huami
#: devices: the low 4 bits, 9 light and 11 deep sleep, 12 woke; Huawei: 6 light, 7 deep.
SLEEP_KINDS: Final[dict[str, tuple[int, dict[int, str]]]] = {
    "MI_BAND_ACTIVITY_SAMPLE": (0xF, {9: "sleep_asleep_min", 11: "sleep_asleep_min",
                                      12: "sleep_awake_min"}),
    "HUAWEI_ACTIVITY_SAMPLE": (0xFF, {6: "sleep_asleep_min", 7: "sleep_asleep_min"}),
}
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_MS_THRESHOLD: Final = 10**11  # a seconds timestamp reaches this in the year 5138
_ROWS_PER_STEP: Final = 50_000
_DB_NAMES: Final = ("gadgetbridge", "gadgetbridge.db")
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


def _check_sqlite(path: Path, name: str) -> None:
    with path.open("rb") as fh:
        head = fh.read(100)
    if not head.startswith(_SQLITE_MAGIC):
        raise ImportFileError(f"{name} is not an SQLite database (Gadgetbridge.db); nothing "
                              "was imported")
    if len(head) < 100:
        raise ImportFileError(f"{name} is cut short ({len(head)} bytes); nothing was imported")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    size = path.stat().st_size
    if pages and page_size * pages != size:
        raise ImportFileError(
            f"{name} is truncated or damaged: its header says {pages} pages of {page_size} "
            f"bytes but the file has {size:,} bytes; export it again; nothing was imported"
        )


@contextmanager
def _database(path: Path) -> Iterator[tuple[Path, str]]:
    """Yield the path of the SQLite file (extracted to a private temp dir from a zip)."""
    if not path.is_file():
        raise ImportFileError(f"{path} is not a file; pass Gadgetbridge.db or the export zip")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if not magic.startswith(b"PK"):
        yield path, path.name
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportFileError(f"{path} is not a complete zip archive ({exc}); nothing was "
                              "imported") from exc
    with archive:
        entries = [i for i in archive.infolist()
                   if Path(i.filename).name.lower() in _DB_NAMES and not i.is_dir()]
        if not entries:
            raise ImportFileError(f"{path}: the zip holds no Gadgetbridge database "
                                  "(database/Gadgetbridge); nothing was imported")
        info = entries[0]
        if info.file_size > MAX_ZIP_ENTRY_BYTES or (
            info.file_size > MIN_BOMB_BYTES and info.compress_size > 0
            and info.file_size / info.compress_size > MAX_ZIP_RATIO
        ):
            raise ImportFileError(
                f"{path}: zip entry {info.filename!r} claims {info.file_size:,} bytes from "
                f"{info.compress_size:,} (a zip bomb?); refused, nothing was imported"
            )
        with tempfile.TemporaryDirectory(prefix="crampsense-gb-") as tmp:
            private_dir(Path(tmp))
            target = Path(tmp) / "Gadgetbridge.db"
            try:
                with archive.open(info) as src, target.open("wb") as out:
                    written = 0
                    while chunk := src.read(1 << 20):
                        written += len(chunk)
                        if written > info.file_size:
                            raise ImportFileError(
                                f"{path}: zip entry {info.filename!r} is larger than it claims;"
                                " refused, nothing was imported"
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise ImportFileError(f"{path}: {info.filename} cannot be read ({exc}); the zip "
                                      "is damaged or cut short; nothing was imported") from exc
            yield target, f"{path.name}:{info.filename}"


def _columns(con: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]).upper() for r in con.execute(f'PRAGMA table_info("{table}")')]


def read_gadgetbridge(
    path: Path, *, tz: dt.tzinfo | None = None, progress: Progress | None = None
) -> tuple[Windows, ImportResult]:
    """Read the activity sample tables of a Gadgetbridge database into hour windows.

    Parameters
    ----------
    path : Path
        ``Gadgetbridge.db`` or the zip of Gadgetbridge's data export.
    tz : tzinfo, optional
        The person's time zone for calendar days (timestamps are UTC); default: this machine's.
    progress : callable, optional
        ``progress(rows_done, rows_total)``.

    Returns
    -------
    windows : Windows
        ``steps`` (sum), ``heart_rate_bpm`` (mean of valid readings), sleep minutes (one per
        sleep sample, families of :data:`SLEEP_KINDS`); origin: the device's name.
    result : ImportResult
    """
    local = tz or dt.datetime.now(dt.UTC).astimezone().tzinfo or dt.UTC
    result = ImportResult(source="gadgetbridge", file=path.name, feed="database")
    windows = Windows()
    with _database(path) as (db, name):
        _check_sqlite(db, name)
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            tables = [str(r[0]) for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND "
                "upper(name) LIKE '%ACTIVITY_SAMPLE'")]
            if not tables:
                raise ImportFileError(
                    f"{name} has no *_ACTIVITY_SAMPLE table; it is not a Gadgetbridge database "
                    "(or one without activity data); nothing was imported"
                )
            devices: dict[int, str] = {}
            if "DEVICE" in {str(r[0]).upper() for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}:
                cols = _columns(con, "DEVICE")
                if "_ID" in cols and "NAME" in cols:
                    devices = {int(i): str(n) for i, n in con.execute(
                        'SELECT "_id", NAME FROM DEVICE')}
            plans = []
            total = 0
            for table in tables:
                cols = _columns(con, table)
                if "TIMESTAMP" not in cols or "DEVICE_ID" not in cols:
                    raise ImportFileError(
                        f"{name}: table {table} has columns {', '.join(cols)}, without "
                        "TIMESTAMP and DEVICE_ID; an unknown layout, nothing was imported"
                    )
                picked = [c if c in cols else "NULL" for c in ("STEPS", "HEART_RATE", "RAW_KIND")]
                # Table names come from sqlite_master and are quoted; columns from a fixed list.
                count_sql = f'SELECT count(*) FROM "{table}"'  # noqa: S608
                total += int(con.execute(count_sql).fetchone()[0])
                plans.append((table, picked))
            done = 0
            offsets: dict[int, int] = {}
            for table, (steps_c, hr_c, kind_c) in plans:
                mask, kinds = SLEEP_KINDS.get(table.upper(), (0, {}))
                query = (f'SELECT TIMESTAMP, DEVICE_ID, {steps_c}, {hr_c}, {kind_c} '  # noqa: S608
                         f'FROM "{table}"')
                for ts, device, steps, hr, kind in con.execute(query):
                    done += 1
                    if progress is not None and done % _ROWS_PER_STEP == 0:
                        progress(done, total)
                    if ts is None:
                        continue
                    seconds = int(ts) // 1000 if int(ts) >= _MS_THRESHOLD else int(ts)
                    hour = seconds // 3600
                    offset = offsets.get(hour)
                    if offset is None:
                        when = dt.datetime.fromtimestamp(hour * 3600, dt.UTC)
                        offset = offsets[hour] = (
                            when.astimezone(local).date() - when.date()
                        ).days
                    origin = devices.get(int(device or 0), f"device {device}")
                    used = False
                    if steps is not None and int(steps) > 0:
                        windows.add("steps", origin, hour, offset, float(steps))
                        used = True
                    if hr is not None and 0 < int(hr) < 255:
                        windows.add("heart_rate_bpm", origin, hour, offset, float(hr))
                        used = True
                    if kind is not None and kinds:
                        metric = kinds.get(int(kind) & mask)
                        if metric is not None:
                            when = dt.datetime.fromtimestamp(seconds, dt.UTC).astimezone(local)
                            label = (when - dt.timedelta(hours=12)).date()
                            utc_day = dt.date.fromordinal(_EPOCH_ORDINAL + seconds // 86400)
                            windows.add(metric, origin, hour, (label - utc_day).days, 1.0)
                            used = True
                    result.records_used += used
            result.records_read = done
        except sqlite3.DatabaseError as exc:
            raise ImportFileError(f"{name} is damaged ({exc}); nothing was imported") from None
        finally:
            con.close()
    if progress is not None:
        progress(result.records_read, result.records_read)
    return windows, result
