"""``crampsense summary``: the morning summary of the latest night (or of ``--night`` /
``--session``), as text, one JSON object, or an offline HTML page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from crampsense.cli.replay import replay_command
from crampsense.cli.report import summary_report
from crampsense.cli.utils import get_context, local_tz
from crampsense.errors import StorageError
from crampsense.pipeline.record import latest_session

__all__ = ["run"]


@click.command("summary")
@click.option("--session", type=click.Path(path_type=Path, dir_okay=False),
              help="Summarise this session (default: the most recent one).")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Journal to join with (default: <data dir>/journal.txt).")
@click.option("--night", "night_date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The night to show, by the evening it starts (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the report as one offline HTML page.")
@click.pass_context
def run(ctx: click.Context, session: Path | None, journal_path: Path | None,
        night_date: datetime | None, as_json: bool, html_path: Path | None) -> None:
    """The morning summary of the latest night (or of --night / --session)."""
    c = get_context(ctx)
    if night_date is not None or as_json or html_path is not None:
        summary_report(c, session=session, journal_path=journal_path, as_json=as_json,
                       night_date=night_date.date() if night_date else None,
                       html_path=html_path, tz=local_tz())
        return
    if session is None:
        latest = latest_session(c.sessions_dir()) if c.sessions_dir().is_dir() else None
        if latest is None:
            raise StorageError(
                f"no recorded sessions in {c.sessions_dir()}; record one with "
                "`crampsense record` (or try `crampsense demo`)"
            )
        session = latest
    replay_command(c, session, journal_path=journal_path, as_json=False)
