"""Importers for other apps' exports: Apple Health, Cronometer, Gadgetbridge.

Every importer reads the whole file first (refusing a malformed or hostile one with one line
naming what is wrong) and only then merges its windows into the owner-only store under
``<data dir>/imports/`` (see :mod:`crampsense.journal.importers.base`). Importing the same
file twice, or a newer export that overlaps an older one, changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crampsense.errors import UsageError
from crampsense.journal.importers.base import (
    IMPORT_SCHEMA,
    METRICS,
    SOURCES,
    ImportResult,
    Progress,
    imports_dir,
    merge_into_store,
    read_imports,
)

__all__ = [
    "IMPORT_SCHEMA",
    "METRICS",
    "SOURCES",
    "ImportResult",
    "import_file",
    "imports_dir",
    "read_imports",
]


def import_file(
    source: str,
    path: Path,
    data_dir: Path,
    *,
    now: dt.datetime | None = None,
    tz: dt.tzinfo | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one export file into the store under ``data_dir``.

    Parameters
    ----------
    source : {"apple-health", "cronometer", "gadgetbridge"}
    path : Path
        The export (see each importer module for what it accepts).
    data_dir : Path
        The person's data directory (``$CRAMPSENSE_HOME``).
    now : datetime, optional
        Import time recorded as provenance (default: now, UTC).
    tz : tzinfo, optional
        The person's time zone, for sources whose times carry no offset (Gadgetbridge).
    progress : callable, optional
        ``progress(done, total)`` while reading.

    Returns
    -------
    ImportResult

    Raises
    ------
    ImportFileError
        The file is malformed, hostile or of an unknown layout; nothing was stored.
    UsageError
        Unknown source.
    """
    now = now or dt.datetime.now(dt.UTC)
    path = Path(path)
    if source == "apple-health":
        from crampsense.journal.importers.apple_health import (  # noqa: PLC0415
            read_apple_health,
        )

        windows, result = read_apple_health(path, progress=progress)
    elif source == "cronometer":
        from crampsense.journal.importers.cronometer import read_cronometer  # noqa: PLC0415

        windows, result = read_cronometer(path, progress=progress)
    elif source == "gadgetbridge":
        from crampsense.journal.importers.gadgetbridge import read_gadgetbridge  # noqa: PLC0415

        windows, result = read_gadgetbridge(path, tz=tz, progress=progress)
    else:
        raise UsageError(f"unknown import source {source!r}; use one of {', '.join(SOURCES)}")
    frame = windows.to_frame(feed=result.feed, file=result.file, now=now)
    del windows
    merge_into_store(data_dir, source, frame, result)
    return result
