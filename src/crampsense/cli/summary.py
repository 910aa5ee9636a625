"""``crampsense summary``: the morning summary of the latest night (or of ``--session``)."""

from __future__ import annotations

from pathlib import Path

import click

from crampsense.cli.replay import replay_command
from crampsense.cli.utils import get_context
from crampsense.errors import StorageError
from crampsense.pipeline.record import latest_session

__all__ = ["run"]


@click.command("summary")
@click.option("--session", type=click.Path(path_type=Path, dir_okay=False),
              help="Summarise this session (default: the most recent one).")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Journal to join with (default: <data dir>/journal.txt).")
@click.pass_context
def run(ctx: click.Context, session: Path | None, journal_path: Path | None) -> None:
    """The morning summary of the latest night (or of --session)."""
    c = get_context(ctx)
    if session is None:
        latest = latest_session(c.sessions_dir()) if c.sessions_dir().is_dir() else None
        if latest is None:
            raise StorageError(
                f"no recorded sessions in {c.sessions_dir()}; record one with "
                "`crampsense record` (or try `crampsense demo`)"
            )
        session = latest
    replay_command(c, session, journal_path=journal_path, as_json=False)
