"""``crampsense log``: add one entry to the journal, or show its last days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crampsense.cli.utils import get_context, local_tz
from crampsense.errors import UsageError
from crampsense.journal.log import (
    append_entry,
    format_entry,
    parse_log_args,
    read_journal_partial,
)

__all__ = ["log_entry", "run", "show_journal"]


def log_entry(path: Path, words: list[str], *, at_time: str | None, tz: tzinfo) -> str:
    """Validate and append one journal entry; returns the line written."""
    entry = parse_log_args(words, now=datetime.now(tz), at=at_time)
    append_entry(path, entry)
    return format_entry(entry)


def show_journal(out: Console, path: Path, *, days: int, tz: tzinfo) -> None:
    """Print the journal's last ``days`` days."""
    entries, bad_lines = read_journal_partial(path, tz=tz)
    for error in bad_lines:
        out.print(f"note: skipped {error}", markup=False, highlight=False)
    since = datetime.now(tz) - timedelta(days=days)
    recent = [e for e in entries if e.time >= since]
    if not recent:
        out.print(f"No journal entries in the last {days} days ({path}).")
        return
    table = Table(title=f"Journal, last {days} days", title_justify="left")
    table.add_column("entry")
    for e in recent:
        table.add_row(format_entry(e))
    out.print(table)


@click.command(
    "log",
    context_settings={"ignore_unknown_options": True},
    short_help="Log water, electrolytes, caffeine, alcohol, medication, exercise.",
)
@click.argument("words", nargs=-1, required=False)
@click.option("--at", "at_time", metavar="TIME",
              help='When it happened: "21:30", "yesterday 21:30" or "2026-11-20 21:30".')
@click.option("--show", type=click.IntRange(1, 3650), default=None, metavar="DAYS",
              help="Show the last DAYS days of the journal instead of logging.")
@click.pass_context
def run(ctx: click.Context, words: Sequence[str], at_time: str | None, show: int | None) -> None:
    """Log what you drank, took or did: `log water 500 ml`, `log magnesium 300 mg`.

    \b
    Examples:
      crampsense log water 500 ml
      crampsense log caffeine 1 cup --at 08:00
      crampsense log exercise run 45 min
      crampsense log medication atorvastatin 20 mg
      crampsense log cramp left calf 3 min severe
      crampsense log --show 7
    The journal is a plain text file (<data dir>/journal.txt) you may also edit by hand.
    """
    c = get_context(ctx)
    path = c.data_dir / "journal.txt"
    if show is not None:
        show_journal(c.out, path, days=show, tz=local_tz())
        return
    if not words:
        raise UsageError("nothing to log; e.g. `crampsense log water 500 ml` (see --help)")
    line = log_entry(path, list(words), at_time=at_time, tz=local_tz())
    c.out.print(f"Logged: {line}")
