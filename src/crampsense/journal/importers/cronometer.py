"""Cronometer CSV exports: ``dailySummary.csv``, ``servings.csv`` and ``exercises.csv``.

Format (Cronometer web: More > Account > Export Data)
-----------------------------------------------------
- ``dailySummary.csv``: one row per day, ``Date`` first, then one column per nutrient with its
  unit in the header (``Water (g)``, ``Caffeine (mg)``, ``Alcohol (g)``, ``Magnesium (mg)``,
  ``Selenium (µg)``...), and ``Completed`` (``true``/``false``: whether the person marked the day
  finished). Which nutrient columns appear depends on the account's settings.
- ``servings.csv``: one row per food eaten: ``Day``, ``Time``, ``Group``, ``Food Name``,
  ``Amount``, then the same nutrient columns; summed per day.
- ``exercises.csv``: ``Day``, ``Time``, ``Group``, ``Exercise``, ``Minutes``,
  ``Calories Burned``; minutes summed per day.

Every export ends with a line break; a file that does not was cut short (its last row may have
lost digits without losing a field) and is refused.

Locale traps handled: a ``;`` delimiter (spreadsheets in comma-decimal locales re-save that way)
and decimal commas (``"1,5"``); a UTF-8 byte-order mark. A nutrient column crampsense uses whose
unit it cannot convert is refused (e.g. ``Magnesium (IU)``); other columns are ignored.

Unfinished days: when the file marks some days ``Completed``, the days not marked are skipped
(their totals are whatever was logged so far) and counted in the result's notes; when it marks
none (many people never press "complete"), every day is imported.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Final

from crampsense.errors import ImportFileError
from crampsense.journal.importers.base import (
    METRICS,
    ImportResult,
    Progress,
    Windows,
    convert,
)

__all__ = ["NUTRIENT_COLUMNS", "read_cronometer"]

#: Nutrient name in a Cronometer header (lower case, without the unit) -> metric.
NUTRIENT_COLUMNS: Final[dict[str, str]] = {
    "water": "water_ml",
    "caffeine": "caffeine_mg",
    "alcohol": "alcohol_drinks",
    "calcium": "calcium_mg",
    "magnesium": "magnesium_mg",
    "potassium": "potassium_mg",
    "sodium": "sodium_mg",
}
#: Largest CSV read (bytes): ten years of daily rows with every nutrient is ~5 MB.
MAX_CSV_BYTES: Final = 256 << 20
_HEADER_RE: Final = re.compile(r"^\s*(.*?)\s*\(([^()]*)\)\s*$")
_ORIGIN: Final = "Cronometer"


def _number(text: str, where: str) -> float | None:
    """Parse ``1234.5``, ``1234,5``, ``1.234,5`` or ``1,234.5``; ``None`` for an empty cell."""
    t = text.strip().replace("\u00a0", "").replace(" ", "")
    if not t:
        return None
    if "," in t and "." in t:
        t = t.replace(".", "").replace(",", ".") if t.rfind(",") > t.rfind(".") else t.replace(
            ",", ""
        )
    elif "," in t:
        t = t.replace(",", ".")
    try:
        return float(t)
    except ValueError:
        raise ImportFileError(f"{where}: {text!r} is not a number; nothing was imported") from None


def _date(text: str, where: str) -> dt.date:
    t = text.strip()
    for fmt in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return dt.datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    raise ImportFileError(
        f"{where}: date {text!r} is not YYYY-MM-DD (export again from Cronometer's web app); "
        "nothing was imported"
    )


def _decode(path: Path) -> str:
    if not path.is_file():
        raise ImportFileError(f"{path} is not a file; pass dailySummary.csv, servings.csv or "
                              "exercises.csv")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ImportFileError(f"{path} is {size:,} bytes, larger than any Cronometer export; "
                              "refused")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise ImportFileError(f"{path} contains NUL bytes; it is not a Cronometer CSV export")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def read_cronometer(path: Path, *, progress: Progress | None = None) -> tuple[
    Windows, ImportResult
]:
    """Read a Cronometer CSV export into day windows.

    Parameters
    ----------
    path : Path
        ``dailySummary.csv``, ``servings.csv`` or ``exercises.csv`` (recognised by header).
    progress : callable, optional
        ``progress(rows_done, rows_total)``.

    Returns
    -------
    windows : Windows
        Day totals per metric (origin ``"Cronometer"``), canonical units.
    result : ImportResult
        ``feed`` is ``"dailySummary"``, ``"servings"`` or ``"exercises"``.

    Raises
    ------
    ImportFileError
        Unknown layout, a used column with no or an unknown unit, a bad number or date, a row
        cut short (truncated file). Raised before anything is stored.
    """
    text = _decode(path)
    if text.strip() and not text.endswith(("\n", "\r")):
        raise ImportFileError(
            f"{path.name} does not end with a line break, so its last row may be cut short "
            "(exports always end with one); export again; nothing was imported"
        )
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ImportFileError(
            f"{path.name} is not valid CSV ({exc}); it may be cut short; nothing was imported"
        ) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ImportFileError(f"{path.name} is empty; nothing was imported")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if "date" in lower:
        feed, date_col = "dailySummary", lower.index("date")
    elif "day" in lower and "food name" in lower:
        feed, date_col = "servings", lower.index("day")
    elif "day" in lower and "exercise" in lower and "minutes" in lower:
        feed, date_col = "exercises", lower.index("day")
    else:
        raise ImportFileError(
            f"{path.name}: header {', '.join(header[:6])}... is not a Cronometer dailySummary, "
            "servings or exercises export; nothing was imported"
        )
    columns: list[tuple[int, str, str]] = []  # (index, metric, unit)
    if feed == "exercises":
        columns.append((lower.index("minutes"), "exercise_min", "min"))
    else:
        for i, name in enumerate(header):
            match = _HEADER_RE.match(name)
            base = (match.group(1) if match else name).strip().lower()
            metric = NUTRIENT_COLUMNS.get(base)
            if metric is None:
                continue
            if match is None:
                raise ImportFileError(
                    f"{path.name}: column {name!r} has no unit in brackets, e.g. "
                    f"'{name} (mg)'; nothing was imported"
                )
            unit = match.group(2)
            convert(1.0, unit, METRICS[metric][0], what=f"{path.name}: column {name!r}")
            columns.append((i, metric, unit))
    completed_col = lower.index("completed") if "completed" in lower else None
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    marks = (
        [r[completed_col].strip().lower() == "true" for r in body if len(r) > completed_col]
        if completed_col is not None else []
    )
    skip_unfinished = any(marks)
    result = ImportResult(source="cronometer", file=path.name, feed=feed)
    windows = Windows()
    skipped = 0
    for n, row in enumerate(body, start=2):
        where = f"{path.name} row {n}"
        if len(row) != len(header):
            raise ImportFileError(
                f"{where} has {len(row)} of {len(header)} fields; the file is cut short or "
                "damaged; nothing was imported"
            )
        result.records_read += 1
        if skip_unfinished and completed_col is not None and (
            row[completed_col].strip().lower() != "true"
        ):
            skipped += 1
            continue
        day = _date(row[date_col], where)
        hour = (day - dt.date(1970, 1, 1)).days * 24
        used = False
        for i, metric, unit in columns:
            value = _number(row[i], f"{where}, {header[i]}")
            if value is None:
                continue
            windows.add(metric, _ORIGIN, hour, 0,
                        convert(value, unit, METRICS[metric][0], what=f"{where}, {header[i]}"))
            used = True
        result.records_used += used
        if progress is not None and n % 500 == 0:
            progress(n, len(body))
    if progress is not None:
        progress(len(body), len(body))
    if skipped:
        result.notes.append(
            f"{skipped} day(s) not marked completed in Cronometer were skipped (their totals "
            "may be partial); mark them completed and export again to import them"
        )
    return windows, result
