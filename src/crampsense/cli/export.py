"""``crampsense export DIR``: every night and journal entry, Hive-partitioned."""

from __future__ import annotations

from pathlib import Path

import click

from crampsense.cli.utils import PARTICIPANT, get_context, local_tz
from crampsense.journal import entries_frame, read_journal
from crampsense.journal.importers import read_imports
from crampsense.summaries.day_table import day_table
from crampsense.summaries.export import export_all
from crampsense.summaries.history import nights_history

__all__ = ["run"]


@click.command("export", short_help="Export nights and journal (Hive-partitioned).")
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet",
              show_default=True)
@click.pass_context
def run(ctx: click.Context, out_dir: Path, fmt: str) -> None:
    """Write every stored night, its events and every journal entry to OUT_DIR.

    Folders are Hive-partitioned (participant=.../night=YYYY-MM-DD/), so polars, DuckDB,
    pyarrow and Spark read them as tables, e.g. in DuckDB:
    SELECT * FROM read_parquet('OUT_DIR/nights/*/*/*.parquet', hive_partitioning = true).
    """

    c = get_context(ctx)
    tz = local_tz()
    journal = entries_frame(read_journal(c.data_dir / "journal.txt", tz=tz))
    counts = export_all(
        out_dir, data_dir=c.data_dir, participant=PARTICIPANT,
        nights=nights_history(c.data_dir, tz=tz), journal=journal, tz=tz, fmt=fmt,
        days=day_table(journal, read_imports(c.data_dir), tz=tz),
    )
    c.out.print(f"Exported {counts['nights']} nights, {counts['events']} events and "
                f"{counts['journal']} journal entries to {out_dir} ({fmt}).")
