"""``crampsense import SOURCE FILE``: bring in what the phone and other apps already know."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from crampsense.cli.utils import get_context, local_tz
from crampsense.journal.importers import SOURCES, ImportResult, import_file

__all__ = ["run"]


def _result_json(result: ImportResult) -> dict[str, object]:
    return {
        "source": result.source,
        "file": result.file,
        "records_read": result.records_read,
        "records_used": result.records_used,
        "days_added": result.days_added,
        "days_changed": result.days_changed,
        "days_unchanged": result.days_unchanged,
        "first_date": result.first_date.isoformat() if result.first_date else None,
        "last_date": result.last_date.isoformat() if result.last_date else None,
        "notes": result.notes,
        "store": result.store,
    }


@click.command("import", short_help="Import Apple Health, Cronometer or Gadgetbridge data.")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("file", type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print what was imported as JSON.")
@click.pass_context
def run(ctx: click.Context, source: str, file: Path, as_json: bool) -> None:
    """Import an export from another app into your data folder.

    \b
    SOURCE is one of:
      apple-health   export.zip from Health > profile > Export All Health Data
                     (or the unzipped apple_health_export folder)
      cronometer     dailySummary.csv, servings.csv or exercises.csv
      gadgetbridge   Gadgetbridge.db, or the zip of Gadgetbridge's data export
    \b
    The file is read completely and checked before anything is stored; importing the same file
    again, or a newer export that overlaps it, changes nothing twice. Where both your journal
    (`crampsense log`) and an import say how much you drank or took on a day, your journal wins.
    """

    c = get_context(ctx)
    show = not as_json and c.err.is_terminal
    with Progress(
        TextColumn(f"Reading {file.name}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=c.err, transient=True, disable=not show,
    ) as bar:
        task = bar.add_task("read", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        result = import_file(source, file, c.data_dir, tz=local_tz(), progress=progress)
    if as_json:
        c.out.print_json(json.dumps(_result_json(result)))
        return
    span = (
        f" covering {result.first_date} to {result.last_date}" if result.first_date else ""
    )
    c.out.print(
        f"Read {result.records_read:,} records from {result.file}; "
        f"{result.records_used:,} are about water, electrolytes, caffeine, alcohol, "
        f"activity or sleep{span}."
    )
    if result.changed_anything:
        c.out.print(
            f"Stored {result.days_added:,} new and {result.days_changed:,} updated "
            f"day values ({result.days_unchanged:,} already there) in {result.store}."
        )
    else:
        c.out.print(f"Nothing new: all {result.days_unchanged:,} day values were already imported.")
    for note in result.notes:
        c.out.print(f"Note: {note}")
