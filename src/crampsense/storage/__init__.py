"""Storage layer: the crash-safe session log, night tables and owner-only files.

* :mod:`~crampsense.storage.session_log`: one SQLite file per recorded session
  (:class:`SessionWriter`, :class:`SessionReader`), see ``docs/session-format.md``.
* :mod:`~crampsense.storage.salvage`: page-by-page recovery of a damaged session (what
  ``SessionReader(path, salvage=True)`` and ``repair_session`` use).
* :mod:`~crampsense.storage.nights`: derived night tables as Hive-partitioned Parquet.
* :mod:`~crampsense.storage.files`: private folders and atomic, verified file writes.
* :mod:`~crampsense.storage.edf`: EDF/EDF+/BDF reader and writer.
* :mod:`~crampsense.storage.samples`: CSV/Parquet sample files (``docs/sample-files.md``).
"""

from __future__ import annotations

from crampsense.storage.edf import (
    EdfHeader,
    EdfSignal,
    EdfSignalHeader,
    read_edf_header,
    read_edf_signals,
    write_edf,
)
from crampsense.storage.files import (
    atomic_write_bytes,
    private_dir,
    read_parquet_checked,
    write_parquet_atomic,
)
from crampsense.storage.nights import night_dir, read_night_tables, write_night_table
from crampsense.storage.samples import (
    SampleChannel,
    SampleColumn,
    read_sample_columns,
    read_samples,
    write_samples,
)
from crampsense.storage.session_log import (
    APPLICATION_ID,
    FORMAT_VERSION,
    MARK_KINDS,
    Mark,
    Segment,
    SessionReader,
    SessionWriter,
    open_session,
)

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "MARK_KINDS",
    "EdfHeader",
    "EdfSignal",
    "EdfSignalHeader",
    "Mark",
    "SampleChannel",
    "SampleColumn",
    "Segment",
    "SessionReader",
    "SessionWriter",
    "atomic_write_bytes",
    "night_dir",
    "open_session",
    "private_dir",
    "read_edf_header",
    "read_edf_signals",
    "read_night_tables",
    "read_parquet_checked",
    "read_sample_columns",
    "read_samples",
    "write_edf",
    "write_night_table",
    "write_parquet_atomic",
    "write_samples",
]
