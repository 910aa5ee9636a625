"""What every importer shares: the metric vocabulary, unit conversion, hostile-input limits, and
the owner-only store of imported values.

Imported values are stored *per metric and local day*, never as raw records: one row per
metric, *feed* and date. A feed is one independent stream of a source: the whole Apple Health
export is one feed, Gadgetbridge is one, and Cronometer's ``dailySummary.csv`` and
``servings.csv`` are two. That keeps a multi-gigabyte export down to a small table, and makes
importing idempotent by construction: a day's value from a newer export (which repeats the
older one's history) replaces the stored value for the same key instead of adding to it, and a
re-import of the same file finds nothing to change and writes nothing.

Overlapping origins inside a feed (iPhone, Watch and apps all writing steps or water to Apple
Health; two bands in Gadgetbridge) are never summed: within each UTC hour only the origin with
the largest value counts (the most complete recorder of that hour), and the day is the sum of
its hours. Across feeds and sources the day table keeps one value per metric and day (see
:func:`crampsense.summaries.day_table.imported_day_values`).

Store layout (``<data dir>/imports/<source>.parquet``, written atomically, mode ``0600``)
---------------------------------------------------------------------------------------
``metric`` (str, one of :data:`METRICS`), ``feed`` (str), ``date`` (Date, the local calendar
day the value belongs to; for sleep, the evening the night starts), ``value`` (Float64, in the
metric's unit), ``n_records`` (UInt32, records behind it), ``origins`` (str, the apps or
devices whose values were used, `` + ``-joined), ``file`` (str, the file it came from),
``imported_at`` (Datetime UTC). Key: (metric, feed, date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from crampsense.errors import ImportFileError, JournalError
from crampsense.storage.files import private_dir, read_parquet_checked, write_parquet_atomic

__all__ = [
    "IMPORT_SCHEMA",
    "MAX_ZIP_ENTRY_BYTES",
    "MAX_ZIP_RATIO",
    "METRICS",
    "MIN_BOMB_BYTES",
    "SOURCES",
    "ImportResult",
    "Progress",
    "Windows",
    "convert",
    "imports_dir",
    "merge_into_store",
    "read_imports",
]

#: Importable sources (the ``SOURCE`` argument of ``crampsense import``).
SOURCES: Final = ("apple-health", "cronometer", "gadgetbridge")

#: Metric -> (unit, how windows combine into a day: "sum" or "mean"). The day-table columns
#: with the same names as :data:`crampsense.summaries.daily.DAY_METRICS` mean the same thing.
METRICS: Final[Mapping[str, tuple[str, str]]] = {
    "water_ml": ("ml", "sum"),
    "magnesium_mg": ("mg", "sum"),
    "potassium_mg": ("mg", "sum"),
    "calcium_mg": ("mg", "sum"),
    "sodium_mg": ("mg", "sum"),
    "caffeine_mg": ("mg", "sum"),
    "alcohol_drinks": ("drinks", "sum"),
    "exercise_min": ("min", "sum"),
    "exercise_km": ("km", "sum"),
    "steps": ("steps", "sum"),
    "active_energy_kcal": ("kcal", "sum"),
    "sleep_asleep_min": ("min", "sum"),
    "sleep_in_bed_min": ("min", "sum"),
    "sleep_awake_min": ("min", "sum"),
    "heart_rate_bpm": ("bpm", "mean"),
}

#: Grams of ethanol in one standard drink (US; the journal uses the same, see docs/journal.md).
ETHANOL_G_PER_DRINK: Final = 14.0

#: Unit conversion factors into each canonical unit. Keys are lower-cased unit spellings as the
#: sources write them (Apple Health writes the person's display unit).
_FACTORS: Final[Mapping[str, Mapping[str, float]]] = {
    "ml": {"ml": 1.0, "l": 1000.0, "dl": 100.0, "cl": 10.0, "g": 1.0,  # water: 1 g = 1 ml
           "fl_oz_us": 29.5735295625, "fl_oz_imp": 28.4130625, "fl oz": 29.5735295625,
           "cup_us": 236.5882365, "cup_imp": 284.130625, "oz": 29.5735295625},
    "mg": {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "µg": 0.001, "ug": 0.001, "μg": 0.001},
    "kcal": {"kcal": 1.0, "cal": 1.0, "kj": 1.0 / 4.184},
    "min": {"min": 1.0, "s": 1.0 / 60.0, "sec": 1.0 / 60.0, "hr": 60.0, "h": 60.0},
    "km": {"km": 1.0, "m": 0.001, "mi": 1.609344, "yd": 0.0009144, "ft": 0.0003048},
    "steps": {"count": 1.0, "steps": 1.0},
    "drinks": {"count": 1.0, "drinks": 1.0, "g": 1.0 / ETHANOL_G_PER_DRINK},
    "bpm": {"count/min": 1.0, "bpm": 1.0},
}

#: A zip entry that claims to be larger than this is refused before reading (bytes). The
#: largest Apple Health exports people report are a few GB of XML.
MAX_ZIP_ENTRY_BYTES: Final = 16 * 1024**3
#: A zip entry that claims to expand more than this many times is refused: XML compresses
#: 10-40x, a zip bomb thousands of times.
MAX_ZIP_RATIO: Final = 1000
#: The ratio rule applies to entries claiming more than this (bytes): a small file of repeated
#: text can compress 1000x and harm nobody.
MIN_BOMB_BYTES: Final = 256 * 1024**2

#: Windows kept in dicts before they are folded into numpy arrays (see :class:`Windows`).
FLUSH_KEYS: Final = 100_000

IMPORT_SCHEMA: Final = pl.Schema(
    {
        "metric": pl.String(),
        "feed": pl.String(),
        "date": pl.Date(),
        "value": pl.Float64(),
        "n_records": pl.UInt32(),
        "origins": pl.String(),
        "file": pl.String(),
        "imported_at": pl.Datetime("us", "UTC"),
    }
)
_KEY: Final = ("metric", "feed", "date")

#: ``progress(done, total)`` in the importer's own units (bytes or rows); total may be 0.
Progress = Callable[[int, int], None]


def convert(value: float, unit: str, canonical: str, *, what: str) -> float:
    """Convert ``value`` from ``unit`` into the canonical unit ``canonical``.

    Raises
    ------
    JournalError
        The unit is not one crampsense knows for that quantity (the message names both).
    """
    factors = _FACTORS[canonical]
    factor = factors.get(unit.strip().lower())
    if factor is None:
        known = ", ".join(sorted(factors))
        raise ImportFileError(
            f"{what}: unit {unit!r} cannot be converted to {canonical} (known: {known}); "
            "nothing was imported"
        )
    return value * factor


@dataclass
class ImportResult:
    """What an import did (``days_*`` count stored rows: metric × feed × day)."""

    source: str
    file: str
    feed: str = ""
    records_read: int = 0
    records_used: int = 0
    days_added: int = 0
    days_changed: int = 0
    days_unchanged: int = 0
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    notes: list[str] = field(default_factory=list)
    store: str = ""

    @property
    def changed_anything(self) -> bool:
        return bool(self.days_added or self.days_changed)


def imports_dir(data_dir: Path) -> Path:
    """``<data dir>/imports`` (not created)."""
    return Path(data_dir) / "imports"


def _store_path(data_dir: Path, source: str) -> Path:
    if source not in SOURCES:  # programming error guard with a user-readable message
        raise JournalError(f"unknown import source {source!r}; use one of {', '.join(SOURCES)}")
    return imports_dir(data_dir) / f"{source}.parquet"


def read_imports(data_dir: Path, sources: tuple[str, ...] = SOURCES) -> pl.DataFrame:
    """Every stored imported window, with a ``source`` column in front.

    Returns
    -------
    polars.DataFrame
        ``source`` plus the :data:`IMPORT_SCHEMA` columns; empty when nothing was imported.
    """
    parts = []
    for source in sources:
        path = _store_path(data_dir, source)
        if path.is_file():
            parts.append(read_parquet_checked(path).select(pl.lit(source).alias("source"),
                                                           pl.all()))
    if not parts:
        return pl.DataFrame(schema={"source": pl.String(), **IMPORT_SCHEMA})
    return pl.concat(parts, how="vertical_relaxed")


class Windows:
    """Accumulates values into (metric, origin, UTC hour, local date) windows, compactly.

    Each window is one packed integer key in two dicts (sum and count); every
    ``flush_keys`` windows the dicts are folded into sorted numpy arrays (20 bytes a window
    instead of ~150), so memory stays bounded for exports of any length. The local date is
    stored as its difference from the UTC date of the window's hour (-4..+3 days).
    """

    _HOUR_BITS: Final = 22  # hours since 1970 up to the year 2448
    _ORIGIN_BITS: Final = 16
    _DELTA_BITS: Final = 3

    def __init__(self, flush_keys: int = FLUSH_KEYS) -> None:
        self.sums: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self._origins: dict[str, int] = {}
        self._metrics = {name: i for i, name in enumerate(METRICS)}
        self._flush_keys = flush_keys
        self._keys: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._sums: npt.NDArray[np.float64] = np.empty(0, dtype=np.float64)
        self._counts: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)

    def _flush(self) -> None:
        """Fold the dicts into the arrays (summing windows present in both)."""
        if not self.sums:
            return
        n = len(self.sums)
        keys = np.concatenate([self._keys, np.fromiter(self.sums.keys(), np.int64, count=n)])
        sums = np.concatenate([self._sums, np.fromiter(self.sums.values(), np.float64, count=n)])
        counts = np.concatenate(
            [self._counts, np.fromiter((self.counts[k] for k in self.sums), np.int64, count=n)])
        self.sums.clear()
        self.counts.clear()
        uniq, inverse = np.unique(keys, return_inverse=True)
        self._keys = uniq.astype(np.int64)
        self._sums = np.bincount(inverse, weights=sums, minlength=len(uniq)).astype(np.float64)
        self._counts = np.bincount(inverse, weights=counts, minlength=len(uniq)).astype(np.int64)

    def key(self, metric: str, origin: str, hour: int, delta_days: int) -> int:
        """Packed key; ``hour`` counts hours since 1970-01-01 UTC."""
        o = self._origins.get(origin)
        if o is None:
            if len(self._origins) >= 1 << self._ORIGIN_BITS:
                raise ImportFileError("the file names more than 65536 different sources; refused")
            o = self._origins[origin] = len(self._origins)
        if not 0 <= hour < 1 << self._HOUR_BITS or not -4 <= delta_days <= 3:
            raise ImportFileError(f"a time in the file is out of range (hour {hour}); refused")
        return (
            ((self._metrics[metric] << self._ORIGIN_BITS | o) << self._HOUR_BITS | hour)
            << self._DELTA_BITS
        ) | (delta_days + 4)

    def add(self, metric: str, origin: str, hour: int, delta_days: int, value: float) -> None:
        """Add ``value`` (canonical unit) to a window."""
        k = self.key(metric, origin, hour, delta_days)
        self.sums[k] = self.sums.get(k, 0.0) + value
        self.counts[k] = self.counts.get(k, 0) + 1
        if len(self.sums) >= self._flush_keys:
            self._flush()

    def __len__(self) -> int:
        self._flush()
        return len(self._keys)

    def to_frame(self, *, feed: str, file: str, now: dt.datetime) -> pl.DataFrame:
        """Days of this feed as a store frame (:data:`IMPORT_SCHEMA`).

        Per metric, UTC hour and date only the origin with the largest value (for "mean"
        metrics: the most records) is kept; a day sums its hours ("mean" metrics: the mean
        weighted by records).
        """
        self._flush()
        keys, sums, counts = self._keys, self._sums, self._counts.astype(np.uint32)
        db, hb, ob = self._DELTA_BITS, self._HOUR_BITS, self._ORIGIN_BITS
        delta_days = (keys & ((1 << db) - 1)) - 4
        hours = (keys >> db) & ((1 << hb) - 1)
        origin_ids = (keys >> (db + hb)) & ((1 << ob) - 1)
        metric_ids = keys >> (db + hb + ob)
        del keys
        names = list(METRICS)
        is_mean = np.array([METRICS[m][1] == "mean" for m in names])[metric_ids]
        # One origin per (metric, hour, date): the largest sum ("mean" metrics: most records).
        rank = np.where(is_mean, counts.astype(np.float64), sums)
        slot = (metric_ids << (hb + db)) | (hours << db) | (delta_days + 4)
        order = np.lexsort((-rank, slot))
        _, first = np.unique(slot[order], return_index=True)
        chosen = order[first]
        # Sum the chosen hours per (metric, date).
        day = (hours[chosen] * 3600) // 86400 + delta_days[chosen]
        day_key = (metric_ids[chosen] << 32) | (day + (1 << 31))
        uniq, inverse = np.unique(day_key, return_inverse=True)
        total = np.bincount(inverse, weights=sums[chosen], minlength=len(uniq))
        n_rec = np.bincount(inverse, weights=counts[chosen], minlength=len(uniq))
        day_mean = is_mean[chosen][np.unique(inverse, return_index=True)[1]]
        values = np.where(day_mean, total / np.maximum(n_rec, 1), total)
        origin_names = list(self._origins)
        used: list[set[int]] = [set() for _ in range(len(uniq))]
        for d, o in zip(inverse.tolist(), origin_ids[chosen].tolist(), strict=True):
            used[d].add(o)
        out = pl.DataFrame(
            {
                "metric": pl.Series(names, dtype=pl.String).gather(uniq >> 32),
                "feed": [feed] * len(uniq),
                "date": (uniq & ((1 << 32) - 1)) - (1 << 31),
                "value": values,
                "n_records": n_rec.astype(np.uint32),
                "origins": [" + ".join(sorted(origin_names[o] for o in u)) for u in used],
                "file": [file] * len(uniq),
                "imported_at": [now] * len(uniq),
            }
        ).with_columns(pl.col("date").cast(pl.Int32).cast(pl.Date))
        return out.filter(pl.col("value").is_finite()).cast(IMPORT_SCHEMA).sort("metric", "date")


def merge_into_store(data_dir: Path, source: str, new: pl.DataFrame, result: ImportResult) -> None:
    """Upsert ``new`` days into the source's store; write only if something changed.

    A (metric, feed, date) already stored with the same value (within 1e-9 relative) is left as
    it was, provenance included; a different value replaces it (a newer export knows more
    about a day an older export cut short). Days the new file does not mention are kept.
    """
    path = _store_path(data_dir, source)
    old = read_parquet_checked(path) if path.is_file() else pl.DataFrame(schema=IMPORT_SCHEMA)
    new = new.unique(subset=list(_KEY), keep="last", maintain_order=True)
    joined = new.join(old.select(*_KEY, pl.col("value").alias("old_value")), on=list(_KEY),
                      how="left", nulls_equal=True)
    is_new = pl.col("old_value").is_null()
    same = (pl.col("value") - pl.col("old_value")).abs() <= 1e-9 * pl.max_horizontal(
        pl.col("value").abs(), pl.lit(1.0)
    )
    counts = joined.select(
        added=is_new.sum(), unchanged=(~is_new & same).sum(), changed=(~is_new & ~same).sum()
    ).row(0)
    result.days_added, result.days_unchanged, result.days_changed = (
        int(counts[0]), int(counts[1]), int(counts[2])
    )
    if not new.is_empty():
        days = new.select(pl.col("date").min().alias("a"), pl.col("date").max().alias("b"))
        result.first_date, result.last_date = days.row(0)
    result.store = str(path)
    if not result.changed_anything:
        return
    replace = joined.filter(is_new | ~same).drop("old_value")
    kept = old.join(replace.select(_KEY), on=list(_KEY), how="anti", nulls_equal=True)
    merged = pl.concat([kept, replace], how="vertical").sort(["metric", "feed", "date"])
    private_dir(Path(data_dir))
    private_dir(imports_dir(data_dir))
    write_parquet_atomic(merged.cast(IMPORT_SCHEMA), path)
