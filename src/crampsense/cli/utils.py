"""What every command module shares: the context object, exit codes, the local time zone.

Each command lives in its own module (``crampsense/cli/<command>.py``) and exposes a click
command named ``run``; :mod:`crampsense.cli.main` imports a command's module only when that
command runs, so ``crampsense --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Final

import click
from rich.console import Console

from crampsense.config import Config

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "PARTICIPANT",
    "PIPED_WIDTH",
    "WORLDS",
    "Context",
    "get_context",
    "local_tz",
]

#: A crampsense error: bad file, device, config, journal entry...
EXIT_ERROR: Final = 1
#: A command-line usage error.
EXIT_USAGE: Final = 2
#: A bug: rerun with ``--debug`` and report it.
EXIT_INTERNAL: Final = 70
EXIT_INTERRUPTED: Final = 130
#: Piped output (a file, CI) gets 100 columns instead of rich's 80, so tables stay whole.
PIPED_WIDTH: Final = 100
#: The participant key of the night tables (one person per data directory).
PARTICIPANT: Final = "me"
#: Simulated worlds ``--simulate`` can use: the standard bedroom (two calf bands and a strap)
#: and the device zoo (one simulator of every family).
WORLDS: Final = ("bedroom", "zoo")


@dataclass
class Context:
    """What every command gets: config, consoles, options."""

    config: Config
    out: Console
    err: Console
    debug: bool

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"


def get_context(ctx: click.Context) -> Context:
    """The :class:`Context` the ``crampsense`` group made for this run."""
    obj = ctx.find_object(Context)
    if obj is None:  # pragma: no cover - click always runs the group callback first
        msg = "internal: no context"
        raise RuntimeError(msg)
    return obj


def local_tz() -> tzinfo:
    """This machine's local time zone (UTC if it has none)."""
    tz = datetime.now(UTC).astimezone().tzinfo
    return tz if tz is not None else UTC

