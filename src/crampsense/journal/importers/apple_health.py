"""Apple Health ``export.zip`` (or its unzipped folder, or the XML file itself).

Format (as the Health app on iOS 8-18 writes it)
------------------------------------------------
``apple_health_export/export.xml`` (the name is localised: ``Exportieren.xml``, ``exportar.xml``,
...; ``export_cda.xml`` next to it is a different, clinical document and is skipped) holds one
``<HealthData locale="...">`` root with an internal DTD before it, then ``<ExportDate>``,
``<Me>``, and a flat list of ``<Record>``, ``<Workout>``, ``<ActivitySummary>`` and
``<Correlation>`` elements. A ``Record`` carries ``type``, ``sourceName``, ``unit`` (the
person's *display* unit: ``mL`` or ``fl_oz_us``, ``mg`` or ``g``, ``kcal`` or ``kJ``...),
``value`` and ``startDate``/``endDate`` such as ``2024-08-07 12:58:00 +1200``. Sleep is a
``Record`` of ``HKCategoryTypeIdentifierSleepAnalysis`` whose ``value`` is a category
(``HKCategoryValueSleepAnalysisInBed``, ``...AsleepCore``/``Deep``/``REM``/``Unspecified``,
``...Awake``). ``Workout`` has ``duration``/``durationUnit`` and, in older versions,
``totalDistance``/``totalDistanceUnit``; newer versions put the distance in
``<WorkoutStatistics type="HKQuantityTypeIdentifierDistance..." sum=".." unit="km">`` children.
Records inside a ``Correlation`` repeat top-level records and are not counted again.

How it is read
--------------
The XML is streamed from the zip entry (never extracted) through expat in 1 MiB chunks: no
element tree is built, so memory stays flat whatever the export's size. Before parsing, the
DOCTYPE is cut out of the stream: some iOS versions write an internal DTD that no XML parser
accepts, and a DTD is the only place an entity-expansion attack can live, so a DTD that declares
an ``<!ENTITY`` is refused outright.

Overlapping sources (iPhone, Watch, apps that write to Health) are never summed: values are
aggregated per metric, ``sourceName`` and UTC hour, and the day table later keeps, for each
hour, only the source with the largest value (see
:func:`crampsense.summaries.day_table.imported_day_values`). Interval records (sleep) are split
across the hours they span.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final
from xml.parsers import expat

from crampsense.errors import ImportFileError
from crampsense.journal.importers.base import (
    MAX_ZIP_ENTRY_BYTES,
    MAX_ZIP_RATIO,
    METRICS,
    MIN_BOMB_BYTES,
    ImportResult,
    Progress,
    Windows,
    convert,
)

__all__ = ["QUANTITY_TYPES", "SLEEP_CATEGORIES", "read_apple_health"]

#: Quantity record types read, and the metric each one feeds.
QUANTITY_TYPES: Final[dict[str, str]] = {
    "HKQuantityTypeIdentifierDietaryWater": "water_ml",
    "HKQuantityTypeIdentifierDietaryMagnesium": "magnesium_mg",
    "HKQuantityTypeIdentifierDietaryPotassium": "potassium_mg",
    "HKQuantityTypeIdentifierDietaryCalcium": "calcium_mg",
    "HKQuantityTypeIdentifierDietarySodium": "sodium_mg",
    "HKQuantityTypeIdentifierDietaryCaffeine": "caffeine_mg",
    "HKQuantityTypeIdentifierNumberOfAlcoholicBeverages": "alcohol_drinks",
    "HKQuantityTypeIdentifierStepCount": "steps",
    "HKQuantityTypeIdentifierActiveEnergyBurned": "active_energy_kcal",
}
_SLEEP_TYPE: Final = "HKCategoryTypeIdentifierSleepAnalysis"
#: Sleep analysis categories (iOS 16+ stages, and the older ``Asleep``) -> metric.
SLEEP_CATEGORIES: Final[dict[str, str]] = {
    "HKCategoryValueSleepAnalysisInBed": "sleep_in_bed_min",
    "HKCategoryValueSleepAnalysisAsleep": "sleep_asleep_min",
    "HKCategoryValueSleepAnalysisAsleepUnspecified": "sleep_asleep_min",
    "HKCategoryValueSleepAnalysisAsleepCore": "sleep_asleep_min",
    "HKCategoryValueSleepAnalysisAsleepDeep": "sleep_asleep_min",
    "HKCategoryValueSleepAnalysisAsleepREM": "sleep_asleep_min",
    "HKCategoryValueSleepAnalysisAwake": "sleep_awake_min",
}
_DISTANCE_PREFIX: Final = "HKQuantityTypeIdentifierDistance"
#: Bytes fed to the parser at a time.
CHUNK_BYTES: Final = 1 << 20
#: The root element must start within this many bytes (the DTD of a real export is ~10 kB).
MAX_HEAD_BYTES: Final = 8 << 20
#: Bytes read from each candidate XML file to recognise the export.
SNIFF_BYTES: Final = 64 << 10
#: A night's sleep record starting before this local hour belongs to the previous evening.
EVENING_CUTOFF: Final = dt.timedelta(hours=12)
_HOUR_S: Final = 3600
_ROOT_RE: Final = re.compile(rb"<HealthData[\s>/]")
_DOCTYPE_RE: Final = re.compile(rb"<!DOCTYPE")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL: Final = _EPOCH.date().toordinal()
_DAY_S: Final = 86400


def _parse_time(text: str) -> dt.datetime:
    """``2024-08-07 12:58:00 +1200`` -> aware datetime (fast path, then a tolerant one)."""
    try:
        return dt.datetime.fromisoformat(
            f"{text[:10]}T{text[11:19]}{text[20:23]}:{text[23:25]}"
        )
    except (ValueError, IndexError):
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ImportFileError(
            f"date {text!r} is not an Apple Health date like '2024-08-07 12:58:00 +1200'; "
            "nothing was imported"
        )
    return parsed


# --------------------------------------------------------------------------- finding the XML


def _refuse_entry(info: zipfile.ZipInfo, zip_path: Path) -> None:
    if info.file_size > MAX_ZIP_ENTRY_BYTES:
        raise ImportFileError(
            f"{zip_path}: zip entry {info.filename!r} claims {info.file_size:,} bytes, more than "
            f"the {MAX_ZIP_ENTRY_BYTES // 1024**3} GiB any real export reaches; refused, "
            "nothing was imported"
        )
    if (info.file_size > MIN_BOMB_BYTES and info.compress_size > 0
            and info.file_size / info.compress_size > MAX_ZIP_RATIO):
        raise ImportFileError(
            f"{zip_path}: zip entry {info.filename!r} claims to expand "
            f"{info.file_size / info.compress_size:,.0f} times (a zip bomb?); refused, "
            "nothing was imported"
        )


def _is_candidate(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    base = parts[-1].lower() if parts else ""
    return (
        len(parts) <= 2 and base.endswith(".xml") and not base.endswith("_cda.xml")
        and not base.startswith(".")
    )


def _looks_like_export(head: bytes) -> bool:
    return _ROOT_RE.search(head) is not None


@contextmanager
def _open_export(path: Path) -> Iterator[tuple[IO[bytes], int, str]]:
    """Yield (binary stream of the export XML, its size in bytes, its name)."""
    if not path.exists():
        raise ImportFileError(f"{path} does not exist; pass export.zip or its folder")
    if path.is_dir():
        found = sorted(
            p for p in [*path.glob("*.xml"), *path.glob("*/*.xml")]
            if _is_candidate(str(p.relative_to(path)))
        )
        for candidate in found:
            with candidate.open("rb") as fh:
                if _looks_like_export(fh.read(SNIFF_BYTES)):
                    break
        else:
            raise ImportFileError(
                f"{path}: no Apple Health export XML (a file with a <HealthData> root) in this "
                "folder; pass the export.zip or the apple_health_export folder"
            )
        with candidate.open("rb") as fh:
            yield fh, candidate.stat().st_size, candidate.name
        return
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"PK"):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImportFileError(
                f"{path} is not a complete zip archive ({exc}); it may be cut short: "
                "export again from the Health app; nothing was imported"
            ) from exc
        with archive:
            infos = [i for i in archive.infolist() if _is_candidate(i.filename)]
            for info in archive.infolist():
                _refuse_entry(info, path)
            for info in infos:
                try:
                    with archive.open(info) as fh:
                        head = fh.read(SNIFF_BYTES)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ImportFileError(
                        f"{path}: zip entry {info.filename!r} cannot be read ({exc}); the "
                        "archive may be cut short or damaged; nothing was imported"
                    ) from exc
                if _looks_like_export(head):
                    with archive.open(info) as fh:
                        yield fh, info.file_size, info.filename
                    return
        raise ImportFileError(
            f"{path}: the zip holds no Apple Health export XML (a file with a <HealthData> "
            "root); is it the export.zip from Health > profile > Export All Health Data?"
        )
    with path.open("rb") as fh:
        if not _looks_like_export(fh.read(SNIFF_BYTES)):
            raise ImportFileError(
                f"{path} is not an Apple Health export (no <HealthData> root near the start)"
            )
        fh.seek(0)
        yield fh, path.stat().st_size, path.name


# --------------------------------------------------------------------------- parsing


class _Reader:
    """expat handlers that aggregate records into hour windows."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.depth = 0
        self.saw_root = False
        self.windows = Windows()
        self.records_read = 0
        self.records_used = 0
        self.workout: dict[str, str] | None = None
        self.workout_km = 0.0
        self.parser: expat.XMLParserType | None = None
        self._factors: dict[tuple[str, str], float] = {}

    def _line(self) -> str:
        return f" (line {self.parser.CurrentLineNumber})" if self.parser is not None else ""

    def _add(self, metric: str, origin: str, hour: int, day: dt.date, value: float) -> None:
        delta = day.toordinal() - _EPOCH_ORDINAL - (hour * _HOUR_S) // _DAY_S
        self.windows.add(metric, origin, hour, delta, value)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            if tag != "HealthData":
                raise ImportFileError(
                    f"{self.name}: root element is <{tag}>, not <HealthData>; not an Apple "
                    "Health export, nothing was imported"
                )
            self.saw_root = True
            return
        if self.depth == 2:
            if tag == "Record":
                self.records_read += 1
                self._record(attrs)
            elif tag == "Workout":
                self.records_read += 1
                self.workout = attrs
                self.workout_km = 0.0
        elif self.depth == 3 and tag == "WorkoutStatistics" and self.workout is not None:
            kind = attrs.get("type", "")
            if kind.startswith(_DISTANCE_PREFIX) and "sum" in attrs:
                self.workout_km += convert(
                    self._number(attrs["sum"]), attrs.get("unit", "km"), "km",
                    what=f"{self.name}{self._line()} workout distance",
                )

    def end(self, tag: str) -> None:
        if self.depth == 2 and tag == "Workout" and self.workout is not None:
            self._workout(self.workout)
            self.workout = None
        self.depth -= 1

    def _number(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ImportFileError(
                f"{self.name}{self._line()}: value {text!r} is not a number; nothing was "
                "imported"
            ) from None

    def _record(self, attrs: dict[str, str]) -> None:
        kind = attrs.get("type", "")
        metric = QUANTITY_TYPES.get(kind)
        if metric is None and kind != _SLEEP_TYPE:
            return
        origin = attrs.get("sourceName") or "unknown source"
        start = _parse_time(attrs.get("startDate", ""))
        if metric is not None:
            unit = attrs.get("unit", "")
            factor = self._factors.get((unit, metric))
            if factor is None:  # first record of this unit and metric: check it once
                factor = self._factors[(unit, metric)] = convert(
                    1.0, unit, METRICS[metric][0], what=f"{self.name}{self._line()} {kind}")
            value = self._number(attrs.get("value", "")) * factor
            hour = int((start - _EPOCH).total_seconds()) // _HOUR_S
            self._add(metric, origin, hour, start.date(), value)
        else:
            sleep_metric = SLEEP_CATEGORIES.get(attrs.get("value", ""))
            if sleep_metric is None:
                return
            end = _parse_time(attrs.get("endDate", ""))
            self._spread(sleep_metric, origin, start, end, (start - EVENING_CUTOFF).date())
        self.records_used += 1

    def _spread(
        self, metric: str, origin: str, start: dt.datetime, end: dt.datetime, day: dt.date
    ) -> None:
        """Add an interval's minutes to each UTC hour it overlaps."""
        t0 = (start - _EPOCH).total_seconds()
        t1 = (end - _EPOCH).total_seconds()
        hour = int(t0) // _HOUR_S
        while t0 < t1:
            edge = min(t1, (hour + 1) * _HOUR_S)
            self._add(metric, origin, hour, day, (edge - t0) / 60.0)
            t0 = edge
            hour += 1

    def _workout(self, attrs: dict[str, str]) -> None:
        origin = attrs.get("sourceName") or "unknown source"
        start = _parse_time(attrs.get("startDate", ""))
        what = f"{self.name}{self._line()} workout"
        if "duration" in attrs:
            minutes = convert(self._number(attrs["duration"]), attrs.get("durationUnit", "min"),
                              "min", what=what)
        else:
            end = _parse_time(attrs.get("endDate", ""))
            minutes = (end - start).total_seconds() / 60.0
        km = self.workout_km
        if "totalDistance" in attrs and not km:
            km = convert(self._number(attrs["totalDistance"]),
                         attrs.get("totalDistanceUnit", "km"), "km", what=what)
        hour = int((start - _EPOCH).total_seconds()) // _HOUR_S
        self._add("exercise_min", origin, hour, start.date(), minutes)
        if km:
            self._add("exercise_km", origin, hour, start.date(), km)
        self.records_used += 1


def _refuse_entities(*_args: object) -> None:
    raise ImportFileError(
        "the export declares XML entities (possible entity-expansion attack); refused, "
        "nothing was imported"
    )


def _strip_doctype(head: bytes, name: str) -> bytes:
    """Cut the DOCTYPE (and anything up to the root) out of the head; refuse entity decls."""
    root = _ROOT_RE.search(head)
    if root is None:  # pragma: no cover - the caller only passes heads containing the root
        return head
    doctype = _DOCTYPE_RE.search(head, 0, root.start())
    if doctype is None:
        return head
    dtd = head[doctype.start() : root.start()]
    if b"<!ENTITY" in dtd:
        raise ImportFileError(
            f"{name}: the DTD declares XML entities (possible entity-expansion attack); real "
            "exports never do; refused, nothing was imported"
        )
    return head[: doctype.start()] + head[root.start() :]


def read_apple_health(
    path: Path, *, progress: Progress | None = None
) -> tuple[Windows, ImportResult]:
    """Stream an Apple Health export into hour windows.

    Parameters
    ----------
    path : Path
        ``export.zip``, the unzipped ``apple_health_export`` folder, or the XML file.
    progress : callable, optional
        ``progress(bytes_read, total_bytes)`` after each chunk (uncompressed bytes).

    Returns
    -------
    windows : Windows
        Values per metric, ``sourceName``, UTC hour and local date, in the canonical units
        of :data:`~crampsense.journal.importers.base.METRICS`.
    result : ImportResult
        Counts (records read and used); the store counts are filled by the caller.

    Raises
    ------
    ImportFileError
        Not an export, truncated, malformed XML, entity declarations, a zip entry claiming a
        huge size or ratio, a unit that cannot be converted. Raised before anything is stored.
    """
    result = ImportResult(source="apple-health", file=path.name, feed="export")
    with _open_export(path) as (fh, total, name):
        reader = _Reader(name)
        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.EntityDeclHandler = _refuse_entities
        parser.StartElementHandler = reader.start
        parser.EndElementHandler = reader.end
        reader.parser = parser
        done = 0
        head: bytes | None = b""  # until the root element is found
        try:
            while True:
                chunk = fh.read(CHUNK_BYTES)
                done += len(chunk)
                if head is not None:
                    head += chunk
                    if _ROOT_RE.search(head) is None:
                        if len(head) > MAX_HEAD_BYTES or not chunk:
                            raise ImportFileError(
                                f"{name}: no <HealthData> root in the first "
                                f"{MAX_HEAD_BYTES >> 20} MiB; not an Apple Health export"
                            )
                        continue
                    chunk, head = _strip_doctype(head, name), None
                if not chunk:
                    parser.Parse(b"", True)
                    break
                parser.Parse(chunk, False)
                if progress is not None:
                    progress(done, total)
        except expat.ExpatError as exc:
            what = (
                "ends before the export is complete (truncated? export again)"
                if "no element found" in str(exc) or "unclosed token" in str(exc)
                else f"is not well-formed XML ({expat.ErrorString(exc.code)})"
            )
            raise ImportFileError(
                f"{name} {what} at line {exc.lineno}, column {exc.offset}; nothing was imported"
            ) from None
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise ImportFileError(
                f"{path}: reading {name} failed ({exc}); the archive is damaged or cut short; "
                "nothing was imported"
            ) from None
    if not reader.saw_root:  # pragma: no cover - the sniff guarantees a root
        raise ImportFileError(f"{name}: no <HealthData> element; nothing was imported")
    result.records_read = reader.records_read
    result.records_used = reader.records_used
    return reader.windows, result
