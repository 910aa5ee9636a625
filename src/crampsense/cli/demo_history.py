"""``crampsense demo-history``: 60 simulated nights and their journal, for trends and reports."""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from crampsense.cli.utils import PARTICIPANT, get_context, local_tz
from crampsense.summaries.demo_history import write_demo_history

__all__ = ["run"]


@click.command("demo-history", short_help="Write 60 simulated nights and a journal (demo).")
@click.option("--nights", type=click.IntRange(7, 400), default=60, show_default=True)
@click.option("--seed", type=int, default=60, show_default=True)
@click.pass_context
def run(ctx: click.Context, nights: int, seed: int) -> None:
    """Fill an EMPTY data folder with simulated nights and a journal of the days before.

    Planted: low-water days (under 1.5 L) and hard-exercise days (60 min or more) are followed
    by more cramps; caffeine, alcohol and magnesium are logged with no effect. Then try
    `crampsense trends` and `crampsense summary --night DATE --html report.html`.
    Use a throw-away folder: CRAMPSENSE_HOME=/tmp/crampsense-demo crampsense demo-history
    """

    c = get_context(ctx)
    tz = local_tz()
    end = (datetime.now(tz) - timedelta(days=1)).date()
    with c.err.status(f"Writing {nights} simulated nights..."):
        journal = write_demo_history(c.data_dir, PARTICIPANT, nights=nights, end=end, tz=tz,
                                     seed=seed)
    c.out.print(f"Wrote {nights} nights (to the night of {end}) and {journal}.")
    c.out.print("Next: crampsense trends, crampsense summary --night "
                f"{end} --html report.html")
