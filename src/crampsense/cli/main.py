"""The ``crampsense`` command line: the group, its options, and errors turned into exit codes.

The only place that prints or configures logging. Every :class:`~crampsense.errors.CrampsenseError`
becomes one line on stderr and a non-zero exit; tracebacks only with ``--debug``.

Exit codes: 0 ok, 1 a crampsense error (bad file, device, config...), 2 a usage error,
70 an internal error (a bug: rerun with ``--debug`` and report it), 130 interrupted.

Each command is one module of this package with a click command named ``run``
(``crampsense/cli/<module>.py``). :data:`COMMANDS` names them; a command's module is imported
only when that command runs (or its ``--help`` is asked for), so ``crampsense --help`` loads
none of the signal processing.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import click
from rich.console import Console

from crampsense import __version__
from crampsense.cli.utils import (
    EXIT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PIPED_WIDTH,
    Context,
)
from crampsense.config import load_config
from crampsense.errors import CrampsenseError, UsageError

__all__ = ["COMMANDS", "LazyGroup", "cli", "main", "setup_logging"]

#: Every command: name -> (module under ``crampsense.cli``, attribute, one-line help for the
#: command list). In the order ``crampsense --help`` lists them.
COMMANDS: Final[dict[str, tuple[str, str, str]]] = {
    "demo": ("demo", "run", "Record, replay and summarise a whole simulated night, end to end."),
    "scan": ("scan", "run", "List nearby wearables, what they are and what they can stream."),
    "pair": ("pair", "run", "Remember a wearable and where it is worn."),
    "devices": ("devices", "run", "List paired wearables (or forget one)."),
    "record": ("record", "run", "Record a night from the paired wearables (crash-safe)."),
    "night": ("night", "run",
              "Run the night by the bed: record, detect cramps live, then the morning summary."),
    "service": ("service", "run", "Install the night as a systemd user service (Linux)."),
    "replay": ("replay", "run", "Replay a recorded session: decode, detect, summarise."),
    "repair": ("repair", "run", "Recover every intact frame of a damaged session."),
    "summary": ("summary", "run", "The morning summary of the latest night (or of --session)."),
    "log": ("log", "run", "Log water, electrolytes, caffeine, alcohol, medication, exercise."),
    "analyze": ("analyze", "run", "Find cramps in an EDF/BDF, CSV/Parquet sample file or session."),
    "evaluate": ("evaluate", "evaluate",
                 "Score the detector on held-out synthetic nights and real recordings."),
    "import": ("imports", "run", "Import Apple Health, Cronometer or Gadgetbridge data."),
    "trends": ("trends", "run", "What goes with more or fewer cramps, with intervals."),
    "experiment": ("experiment", "run", "Before/after comparisons of your own changes."),
    "export": ("export", "run", "Export nights and journal (Hive-partitioned)."),
    "demo-history": ("demo_history", "run", "Write 60 simulated nights and a journal (demo)."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used (MNE's ``mne <command>`` pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"crampsense.cli.{entry[0]}")
        command = getattr(module, entry[1])
        if not isinstance(command, click.Command):  # pragma: no cover - a packaging bug
            msg = f"crampsense.cli.{entry[0]}.{entry[1]} is not a click command"
            raise TypeError(msg)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the list comes from the table: listing commands imports none of them
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in COMMANDS.items()])


def setup_logging(verbose: int, debug: bool) -> None:
    """Log crampsense's records to stderr: warnings, ``-v`` info, ``--debug`` everything."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("crampsense")
    root.handlers[:] = [handler]
    root.setLevel(level)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default: $CRAMPSENSE_HOME/config.toml or the OS config dir).",
)
@click.option("-v", "--verbose", count=True, help="Log progress details to stderr.")
@click.option("--debug", is_flag=True, help="Log everything and show tracebacks on errors.")
@click.option("--no-color", is_flag=True, help="Plain text output.")
@click.version_option(__version__, prog_name="crampsense")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, verbose: int, debug: bool, no_color: bool
) -> None:
    """Detect night-time leg cramps from Bluetooth wearables and keep the cramp log for you.

    \b
    Start here:   crampsense demo            (a whole simulated night, no hardware needed)
    Real devices: crampsense scan, pair ADDRESS --placement left-calf, record
    Afterwards:   crampsense summary, replay SESSION, log water 500 ml

    Data stays on this machine ($CRAMPSENSE_HOME or the OS data directory), owner-only.
    crampsense is not a medical device: it reports associations, never causes.
    """
    setup_logging(verbose, debug)
    os.umask(0o077)  # every file crampsense creates is owner-only
    no_color = no_color or bool(os.environ.get("NO_COLOR"))
    # Piped output (a file, CI) gets 100 columns instead of rich's 80, so tables stay whole.
    width = None if sys.stdout.isatty() else PIPED_WIDTH
    ctx.obj = Context(
        config=load_config(config_path),
        out=Console(no_color=no_color, highlight=False, soft_wrap=True, width=width),
        err=Console(stderr=True, no_color=no_color, highlight=False),
        debug=debug,
    )


# --- entry point ------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"crampsense: error: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; turn errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="crampsense", standalone_mode=False)
    except click.ClickException as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp"):  # `crampsense` alone: show help
            click.echo(exc.format_message())
            sys.exit(0)
        if debug:
            raise
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see `{exc.ctx.command_path} --help`)"
        # one line: click's choice lists come with newlines and tabs
        _fail(" ".join(exc.format_message().split()) + hint, EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _fail("interrupted", EXIT_INTERRUPTED)
    except UsageError as exc:
        if debug:
            raise
        _fail(str(exc), EXIT_USAGE)
    except CrampsenseError as exc:
        if debug:
            raise
        _fail(str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        # The environment, not a bug: a folder that is not writable, a full disk, a path that
        # is not a folder. Layers translate what they expect; this is the net for the rest.
        if debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot access{where}: {exc.strerror or exc}; check that the path exists, is "
              "yours and is writable, and that the disk has space", EXIT_ERROR)
    except Exception as exc:
        if debug:
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc}; rerun with --debug and report it",
            EXIT_INTERNAL,
        )

