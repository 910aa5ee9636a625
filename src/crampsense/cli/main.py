"""The ``crampsense`` command line.

The only place that prints or configures logging. Every :class:`~crampsense.errors.CrampsenseError`
becomes one line on stderr and a non-zero exit; tracebacks only with ``--debug``.

Exit codes: 0 ok, 1 a crampsense error (bad file, device, config...), 2 a usage error,
70 an internal error (a bug: rerun with ``--debug`` and report it), 130 interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from crampsense import __version__
from crampsense.config import Config, load_config, load_paired, save_paired
from crampsense.errors import CrampsenseError, UsageError
from crampsense.models import PLACEMENTS

__all__ = ["cli", "main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
PIPED_WIDTH = 100


@dataclass
class Context:
    """What every subcommand gets: config, consoles, options."""

    config: Config
    out: Console
    err: Console
    debug: bool

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"


def _local_tz() -> tzinfo:
    tz = datetime.now(UTC).astimezone().tzinfo
    return tz if tz is not None else UTC


def _setup_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("crampsense")
    root.handlers[:] = [handler]
    root.setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    _setup_logging(verbose, debug)
    os.umask(0o077)  # every file crampsense creates is owner-only
    no_color = no_color or bool(os.environ.get("NO_COLOR"))
    # Piped output (a file, CI) gets 100 columns instead of rich's 80, so tables stay whole.
    width = None if sys.stdout.isatty() else PIPED_WIDTH
    ctx.obj = Context(
        config=load_config(config_path),
        out=Console(no_color=no_color, highlight=False, soft_wrap=False, width=width),
        err=Console(stderr=True, no_color=no_color, highlight=False),
        debug=debug,
    )


def _obj(ctx: click.Context) -> Context:
    obj = ctx.find_object(Context)
    if obj is None:  # pragma: no cover - click always runs the group callback first
        msg = "internal: no context"
        raise RuntimeError(msg)
    return obj


# --- demo -----------------------------------------------------------------------------------


@cli.command()
@click.option("--seed", type=int, default=20261120, show_default=True, help="Night generator seed.")
@click.option(
    "--emg-rate",
    "emg_fs_hz",
    type=click.IntRange(200, 2000),
    default=500,
    show_default=True,
    help="EMG sample rate of the simulated bands (Hz; clinical leg EMG uses 500).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the demo's session and tables (default: <data dir>/demo).",
)
@click.pass_context
def demo(ctx: click.Context, seed: int, emg_fs_hz: int, out_dir: Path | None) -> None:
    """Record, replay and summarise a whole simulated night, end to end.

    Pairs two simulated calf bands (EMG + accelerometer) and a heart-rate strap through bleak,
    records an accelerated night with cramps and look-alikes into a session file, replays it,
    detects the cramps, checks them against the simulator's ground truth, and prints the
    morning summary joined with a bundled example journal of the day before.
    """
    from crampsense.cli.demo import run_demo  # noqa: PLC0415 - keeps `--help` fast

    c = _obj(ctx)
    ok = run_demo(
        c.out,
        out_dir=out_dir or c.data_dir / "demo",
        seed=seed,
        emg_fs_hz=emg_fs_hz,
        config=c.config,
    )
    if not ok:
        raise CrampsenseError(
            "the detected cramps did not match the simulator's ground truth (see the table above)"
        )


# --- devices ----------------------------------------------------------------------------------


@cli.command()
@click.option("--simulate", is_flag=True, help="Scan the built-in firmware simulators.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.1, 120.0),
    default=None,
    help="Seconds to listen (default from config: recording.scan_timeout_s).",
)
@click.option("--all", "show_all", is_flag=True, help="Also list devices crampsense cannot use.")
@click.option("--world", type=click.Choice(["bedroom", "zoo"]), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.pass_context
def scan(
    ctx: click.Context, simulate: bool, timeout_s: float | None, show_all: bool, world: str
) -> None:
    """List nearby wearables, what they are and what they can stream."""
    from crampsense.cli.runtime import transport_for  # noqa: PLC0415

    c = _obj(ctx)
    timeout = timeout_s if timeout_s is not None else c.config["recording.scan_timeout_s"]
    if simulate:
        timeout = min(timeout, 0.5)
    with (
        transport_for(simulate, world) as transport,
        c.err.status(f"Scanning for {timeout:g} s..."),
    ):
        found = asyncio.run(transport.scan(timeout, only_known=not show_all))
    if not found:
        c.out.print(
            "No wearables found. Wake the device (off the charger, electrodes touched), "
            "move closer, or try --simulate."
        )
        return
    table = Table(title="Wearables in range", title_justify="left")
    for col in ("address", "name", "family", "rssi", "streams"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.address, d.name, d.family or "(unknown)", f"{d.rssi} dBm", ", ".join(d.streams)
        )
    c.out.print(table)
    c.out.print("Pair one with: crampsense pair ADDRESS --placement left-calf" + (
        (" --simulate" + (" --world zoo" if world == "zoo" else "")) if simulate else ""
    ))


@cli.command()
@click.argument("address")
@click.option(
    "--placement",
    type=click.Choice(PLACEMENTS),
    required=True,
    help="Where the device is worn (bands: left-calf / right-calf).",
)
@click.option("--simulate", is_flag=True, help="Pair a built-in firmware simulator.")
@click.option("--world", type=click.Choice(["bedroom", "zoo"]), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(0.1, 120.0), default=None)
@click.pass_context
def pair(
    ctx: click.Context,
    address: str,
    placement: str,
    simulate: bool,
    world: str,
    timeout_s: float | None,
) -> None:
    """Remember a wearable and where it is worn."""
    from crampsense.cli.runtime import pair_device, save_device_info  # noqa: PLC0415
    from crampsense.transport.ble import describe_streams  # noqa: PLC0415

    c = _obj(ctx)
    timeout = timeout_s if timeout_s is not None else c.config["recording.scan_timeout_s"]
    paired, protocol, info = asyncio.run(
        pair_device(address, placement, simulate=simulate, timeout_s=timeout, world=world)
    )
    devices = [d for d in load_paired(c.data_dir) if d.address.lower() != address.lower()]
    clash = [d for d in devices if d.placement == placement and d.family == paired.family]
    devices.append(paired)
    path = save_paired(c.data_dir, devices)
    save_device_info(c.data_dir, paired.address, info)
    c.out.print(
        f"Paired {paired.name} ({paired.address}, {paired.family}, firmware "
        f"{paired.firmware or 'unknown'}) as {placement}. Saved in {path}."
    )
    c.out.print(f"Streams: {', '.join(describe_streams(protocol)) or 'none'}.")
    for d in clash:
        c.out.print(f"Note: {d.name} ({d.address}) is also paired as {placement}.")


@cli.command()
@click.option("--forget", metavar="ADDRESS", help="Forget a paired device.")
@click.pass_context
def devices(ctx: click.Context, forget: str | None) -> None:
    """List paired wearables (or forget one)."""
    c = _obj(ctx)
    paired = load_paired(c.data_dir)
    if forget:
        kept = [d for d in paired if d.address.lower() != forget.lower()]
        if len(kept) == len(paired):
            raise UsageError(
                f"no paired device has address {forget!r}; `crampsense devices` lists them"
            )
        save_paired(c.data_dir, kept)
        c.out.print(f"Forgot {forget}.")
        return
    if not paired:
        c.out.print("No paired devices. Find one with `crampsense scan`, then `crampsense pair`.")
        return
    table = Table(title="Paired wearables", title_justify="left")
    for col in ("address", "name", "family", "placement", "firmware", "simulated"):
        table.add_column(col)
    for d in paired:
        table.add_row(
            d.address, d.name, d.family, d.placement, d.firmware, "yes" if d.simulated else ""
        )
    c.out.print(table)


# --- recording --------------------------------------------------------------------------------


@cli.command(short_help="Record a night from the paired wearables (crash-safe).")
@click.option("--simulate", is_flag=True, help="Record a synthetic night from the simulators.")
@click.option(
    "--hours",
    type=click.FloatRange(0.01, 14.0),
    default=None,
    help="Stop after this long (default: until Ctrl-C; --simulate: 8 h).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Simulated night seed.")
@click.option("--speed", type=click.FloatRange(min=1.0), default=None,
              help="--simulate only: times real time (default: as fast as possible).")
@click.option("--out", "out_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Session file to write (default: <data dir>/sessions/<start>.session).")
@click.option("--world", type=click.Choice(["bedroom", "zoo"]), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.pass_context
def record(
    ctx: click.Context,
    simulate: bool,
    hours: float | None,
    seed: int,
    speed: float | None,
    out_path: Path | None,
    world: str,
) -> None:
    """Record a night from the paired wearables into a crash-safe session file.

    Reconnects after every drop and never gives up; Ctrl-C or SIGTERM stop it cleanly with
    everything received so far committed.
    """
    from crampsense.cli.runtime import record_night  # noqa: PLC0415

    c = _obj(ctx)
    paired = load_paired(c.data_dir)
    usable = [d for d in paired if d.simulated == simulate]
    if not usable:
        how = "crampsense scan --simulate, then pair ADDRESS --placement left-calf --simulate" if (
            simulate
        ) else "crampsense scan, then crampsense pair ADDRESS --placement left-calf"
        raise UsageError(
            f"no {'simulated ' if simulate else ''}devices are paired; pair one first ({how})"
        )
    result = record_night(
        c.out,
        usable,
        config=c.config,
        sessions_dir=c.sessions_dir(),
        out_path=out_path,
        simulate=simulate,
        duration_s=hours * 3600.0 if hours else (8 * 3600.0 if simulate else None),
        seed=seed,
        speed=speed,
        world=world,
        data_dir=c.data_dir,
    )
    c.out.print(f"Session saved: {result}")
    c.out.print(f"See the night with: crampsense replay {result}")


@cli.command(short_help="Replay a recorded session: decode, detect, summarise.")
@click.argument("session", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the events as one JSON object.")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Journal to join with (default: <data dir>/journal.txt).")
@click.pass_context
def replay(ctx: click.Context, session: Path, as_json: bool, journal_path: Path | None) -> None:
    """Replay a recorded session through decoding and detection; print its summary."""
    from crampsense.cli.runtime import replay_and_summarise  # noqa: PLC0415

    c = _obj(ctx)
    replay_and_summarise(
        c.out,
        session,
        config=c.config,
        journal_path=journal_path or c.data_dir / "journal.txt",
        as_json=as_json,
        tz=_local_tz(),
        store_root=c.data_dir,
    )


@cli.command()
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
def summary(ctx: click.Context, session: Path | None, journal_path: Path | None,
            night_date: datetime | None, as_json: bool, html_path: Path | None) -> None:
    """The morning summary of the latest night (or of --night / --session)."""
    c = _obj(ctx)
    if night_date is not None or as_json or html_path is not None:
        from crampsense.cli.report import summary_report  # noqa: PLC0415

        summary_report(c, session=session, journal_path=journal_path, as_json=as_json,
                       night_date=night_date.date() if night_date else None,
                       html_path=html_path, tz=_local_tz())
        return
    if session is None:
        candidates = sorted(c.sessions_dir().glob("*.session")) if c.sessions_dir().is_dir() else []
        if not candidates:
            raise UsageError(
                f"no recorded sessions in {c.sessions_dir()}; record one with "
                "`crampsense record` (or try `crampsense demo`)"
            )
        session = candidates[-1]
    ctx.invoke(replay, session=session, as_json=False, journal_path=journal_path)


@cli.command(
    context_settings={"ignore_unknown_options": True},
    short_help="Log water, electrolytes, caffeine, alcohol, medication, exercise.",
)
@click.argument("words", nargs=-1, required=False)
@click.option("--at", "at_time", metavar="TIME",
              help='When it happened: "21:30", "yesterday 21:30" or "2026-11-20 21:30".')
@click.option("--show", type=click.IntRange(1, 3650), default=None, metavar="DAYS",
              help="Show the last DAYS days of the journal instead of logging.")
@click.pass_context
def log(ctx: click.Context, words: Sequence[str], at_time: str | None, show: int | None) -> None:
    """Log what you drank, took or did: `log water 500 ml`, `log magnesium 300 mg`.

    \b
    Examples:
      crampsense log water 500 ml
      crampsense log caffeine 1 cup --at 08:00
      crampsense log exercise run 45 min
      crampsense log medication atorvastatin 20 mg
      crampsense log cramp left calf 3 min severe
      crampsense log --show 7
    The journal is a plain text file (<data dir>/journal.txt) you may also edit by hand.
    """
    from crampsense.cli.runtime import log_entry, show_journal  # noqa: PLC0415

    c = _obj(ctx)
    path = c.data_dir / "journal.txt"
    if show is not None:
        show_journal(c.out, path, days=show, tz=_local_tz())
        return
    if not words:
        raise UsageError("nothing to log; e.g. `crampsense log water 500 ml` (see --help)")
    line = log_entry(path, list(words), at_time=at_time, tz=_local_tz())
    c.out.print(f"Logged: {line}")


from crampsense.cli.analyze import analyze  # noqa: E402 - registered after the group exists

cli.add_command(analyze)

from crampsense.cli.evaluate import evaluate  # noqa: E402 - registered after the group exists

cli.add_command(evaluate)

from crampsense.cli import imports as _imports  # noqa: E402

cli.add_command(_imports.run)
from crampsense.cli import trends as _trends  # noqa: E402

cli.add_command(_trends.run)
from crampsense.cli import demo_history as _demo_history  # noqa: E402

cli.add_command(_demo_history.run)
from crampsense.cli import experiment as _experiment  # noqa: E402

cli.add_command(_experiment.run)
from crampsense.cli import export as _export  # noqa: E402

cli.add_command(_export.run)


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
        _fail(exc.format_message().replace("\n", " ") + hint, EXIT_USAGE)
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
    except Exception as exc:
        if debug:
            raise
        _fail(
            f"internal error: {type(exc).__name__}: {exc}; rerun with --debug and report it",
            EXIT_INTERNAL,
        )

