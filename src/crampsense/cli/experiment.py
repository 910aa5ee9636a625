"""``crampsense experiment start/stop/list``: before/after comparisons of your own changes."""

from __future__ import annotations

import json
from datetime import datetime, time

import click
import polars as pl

from crampsense.cli.utils import PARTICIPANT, get_context, local_tz
from crampsense.journal import entries_frame, read_journal
from crampsense.journal.experiments import load_experiments, start_experiment, stop_experiment
from crampsense.journal.importers import read_imports
from crampsense.summaries.day_table import day_table
from crampsense.summaries.experiments import (
    CAVEAT,
    compare_experiment,
    experiment_json,
)
from crampsense.summaries.history import nights_history
from crampsense.summaries.morning import DISCLAIMER

__all__ = ["run"]


def _when(at: datetime | None) -> datetime:

    tz = local_tz()
    if at is None:
        return datetime.now(tz)
    return datetime.combine(at.date(), time(12, 0), tzinfo=tz)


@click.group("experiment", short_help="Before/after comparisons of your own changes.")
def run() -> None:
    """Try one change at a time and compare the nights before and after it.

    \b
      crampsense experiment start "magnesium 300 mg at bedtime"
      crampsense experiment stop
      crampsense experiment list [--json]
    Comparisons give nights and cramps on each side, 95% intervals, and what else changed in
    the same period; they show associations, never causes.
    """


@run.command("start")
@click.argument("description")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%d"]),
              help="The day you started, if not today (YYYY-MM-DD).")
@click.pass_context
def start(ctx: click.Context, description: str, at: datetime | None) -> None:
    """Start an experiment: DESCRIPTION says what you changed."""

    c = get_context(ctx)
    e = start_experiment(c.data_dir, description, now=_when(at))
    c.out.print(f"Started {e.name!r} on {e.start:%Y-%m-%d}. Keep everything else as usual; "
                "after two weeks or more, `crampsense experiment list` compares.")


@run.command("stop")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%d"]),
              help="The day you stopped, if not today (YYYY-MM-DD).")
@click.pass_context
def stop(ctx: click.Context, at: datetime | None) -> None:
    """Stop the running experiment."""

    c = get_context(ctx)
    e = stop_experiment(c.data_dir, now=_when(at))
    c.out.print(f"Stopped {e.name!r} ({e.start:%Y-%m-%d} to {e.stop:%Y-%m-%d}).")


@run.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every experiment with its before/after comparison."""


    c = get_context(ctx)
    tz = local_tz()
    experiments = load_experiments(c.data_dir)
    nights = nights_history(c.data_dir, tz=tz).filter(pl.col("participant") == PARTICIPANT)
    journal = entries_frame(read_journal(c.data_dir / "journal.txt", tz=tz))
    days = day_table(journal, read_imports(c.data_dir), tz=tz)
    today = datetime.now(tz).date()
    results = [compare_experiment(e, nights, days, tz=tz, today=today) for e in experiments]
    if as_json:
        c.out.print_json(json.dumps({"experiments": [experiment_json(r) for r in results],
                                     "disclaimer": DISCLAIMER}))
        return
    if not results:
        c.out.print('No experiments yet: `crampsense experiment start "magnesium 300 mg at '
                    'bedtime"`.')
        return
    for r in results:
        c.out.print(f"{r.name}", markup=False)
        c.out.print(f"  {r.text}", markup=False)
        if r.also_changed:
            c.out.print("  Also changed between the two periods:", markup=False)
            for line in r.also_changed:
                c.out.print(f"    - {line}", markup=False)
        else:
            c.out.print("  None of the other logged factors changed by more than 20%.")
        c.out.print()
    c.out.print(CAVEAT)
    c.out.print(DISCLAIMER)
