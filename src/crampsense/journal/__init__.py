"""Journal layer: the project's own intake, activity, medication and cramp log.

See ``docs/journal.md`` for the line grammar and :mod:`crampsense.journal.log` for the API.
"""

from __future__ import annotations

from crampsense.journal.log import (
    KIND_UNITS,
    KINDS,
    JournalEntry,
    append_entry,
    entries_frame,
    example_journal_text,
    format_entry,
    parse_journal,
    parse_journal_partial,
    parse_log_args,
    read_journal,
)

__all__ = [
    "KINDS",
    "KIND_UNITS",
    "JournalEntry",
    "append_entry",
    "entries_frame",
    "example_journal_text",
    "format_entry",
    "parse_journal",
    "parse_journal_partial",
    "parse_log_args",
    "read_journal",
]
