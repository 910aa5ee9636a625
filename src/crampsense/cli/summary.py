"""``crampsense summary``: the morning summary of the latest night (or of ``--session``)."""

from __future__ import annotations

from pathlib import Path

import click

from crampsense.cli.replay import replay_and_summarise
from crampsense.cli.utils import get_context, local_tz
from crampsense.errors import StorageError

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
        candidates = sorted(c.sessions_dir().glob("*.session")) if c.sessions_dir().is_dir() else []
        if not candidates:
            raise StorageError(
                f"no recorded sessions in {c.sessions_dir()}; record one with "
                "`crampsense record` (or try `crampsense demo`)"
            )
        session = candidates[-1]
    replay_and_summarise(
        c.out,
        session,
        config=c.config,
        journal_path=journal_path or c.data_dir / "journal.txt",
        as_json=False,
        tz=local_tz(),
        store_root=c.data_dir,
        err=c.err,
        journal_explicit=journal_path is not None,
    )
