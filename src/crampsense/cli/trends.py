"""``crampsense trends``: cramps per night split by each factor of the day before."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import polars as pl

from crampsense.cli.utils import PARTICIPANT, get_context, local_tz
from crampsense.journal import entries_frame, read_journal
from crampsense.journal.importers import read_imports
from crampsense.summaries.day_table import day_table
from crampsense.summaries.history import nights_history
from crampsense.summaries.morning import DISCLAIMER
from crampsense.summaries.trends import (
    build_trends,
    render_trends,
    trends_json,
)

__all__ = ["run"]


@click.command("trends", short_help="What goes with more or fewer cramps, with intervals.")
@click.option("--days", type=click.IntRange(7, 3650), default=90, show_default=True,
              help="Use the nights of the last DAYS days (counted back from the latest night).")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@click.pass_context
def run(ctx: click.Context, days: int, as_json: bool) -> None:
    """Which days before go with more or fewer cramps, with counts and 95% intervals.

    Splits your stored nights by each factor of the day before (water, each electrolyte,
    caffeine, alcohol, exercise, each medication, and the night's sleep), from your journal
    and imports. These are associations in your own records, never causes; with fewer than
    7 nights on either side it says there are too few to say anything.
    """

    c = get_context(ctx)
    tz = local_tz()
    nights = nights_history(c.data_dir, tz=tz).filter(pl.col("participant") == PARTICIPANT)
    if nights.height:
        last = nights["night_date"].max()
        nights = nights.filter(pl.col("night_date") > last - timedelta(days=days))  # type: ignore[operator]
    journal = entries_frame(read_journal(c.data_dir / "journal.txt", tz=tz))
    table = day_table(journal, read_imports(c.data_dir), tz=tz)
    report = build_trends(nights, table, disclaimer=DISCLAIMER)
    if as_json:
        c.out.print_json(json.dumps(trends_json(report)))
    else:
        c.out.print(render_trends(report), markup=False, highlight=False, end="")
