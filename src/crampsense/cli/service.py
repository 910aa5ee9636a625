"""``crampsense service``: run ``crampsense night`` every evening as a systemd user service.

``install`` writes ``crampsense-night.service`` and ``crampsense-night.timer`` (shipped as
package data, filled in with this Python and the options given) into the user's systemd
folder (``$XDG_CONFIG_HOME/systemd/user``) and prints the two commands that enable them;
``show`` prints what would be written; ``uninstall`` removes them. Nothing is run with
``systemctl`` on the person's behalf. On macOS and Windows, see docs/night.md (launchd, Task
Scheduler).
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import time
from importlib import resources
from pathlib import Path
from typing import Final

import click

from crampsense.cli.utils import get_context
from crampsense.errors import StorageError, UsageError
from crampsense.storage.files import atomic_write_bytes

__all__ = ["UNIT_NAME", "render_units", "run", "unit_dir"]

UNIT_NAME: Final = "crampsense-night"
#: Unit files are configuration, not health data: readable by the owner's systemd only is
#: not required, but the folder may be shared, so owner read/write and others read.
UNIT_MODE: Final = 0o644


def unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def _quote(word: str) -> str:
    """One word of a systemd command line (double quotes and backslashes escaped)."""
    if word and all(c.isalnum() or c in "/._-+:=,@" for c in word):
        return word.replace("%", "%%")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _check_hhmm(text: str, option: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        msg = f"{option} {text!r} is not a time of day; give it as HH:MM, e.g. {option} 22:30"
        raise UsageError(msg) from exc


def render_units(*, start: str, until: str, on_cramp: str | None,
                 home: str | None) -> dict[str, str]:
    """The unit files' text, by file name: the shipped templates filled in."""
    start_t = _check_hhmm(start, "--start")
    _check_hhmm(until, "--until")
    data = resources.files("crampsense") / "data"
    service = (data / f"{UNIT_NAME}.service").read_text(encoding="utf-8")
    timer = (data / f"{UNIT_NAME}.timer").read_text(encoding="utf-8")
    args = ["--until", until]
    if on_cramp:
        args += ["--on-cramp", on_cramp]
    exec_start = f"{_quote(sys.executable)} -m crampsense"
    env = f"Environment={_quote('CRAMPSENSE_HOME=' + home)}" if home else ""
    service = (service.replace("@EXEC@", exec_start)
               .replace("@ARGS@", " ".join(_quote(a) for a in args))
               .replace("@ENVIRONMENT@\n", f"{env}\n" if env else ""))
    timer = timer.replace("@START@", f"{start_t.hour:02d}:{start_t.minute:02d}")
    return {f"{UNIT_NAME}.service": service, f"{UNIT_NAME}.timer": timer}


@click.group("service")
def run() -> None:
    """Run `crampsense night` every evening as a systemd user service (Linux).

    \b
    crampsense service install --start 22:30 --until 07:00
    systemctl --user daemon-reload
    systemctl --user enable --now crampsense-night.timer

    macOS and Windows: see docs/night.md (launchd, Task Scheduler).
    """


def _options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--start", default="22:30", show_default=True, metavar="HH:MM",
                     help="When the timer starts the night (local time).")(f)
    f = click.option("--until", default="07:00", show_default=True, metavar="HH:MM",
                     help="When the night ends (local time).")(f)
    return click.option("--on-cramp", "on_cramp", metavar="COMMAND",
                        help="Passed to `crampsense night --on-cramp`.")(f)


@run.command("show")
@_options
@click.pass_context
def show(ctx: click.Context, start: str, until: str, on_cramp: str | None) -> None:
    """Print the unit files `install` would write."""
    c = get_context(ctx)
    for name, text in render_units(start=start, until=until, on_cramp=on_cramp,
                                   home=os.environ.get("CRAMPSENSE_HOME")).items():
        c.out.print(f"# {unit_dir() / name}", markup=False)
        c.out.print(text, markup=False, highlight=False)


@run.command("install")
@_options
@click.option("--force", is_flag=True, help="Replace unit files that are already there.")
@click.pass_context
def install(ctx: click.Context, start: str, until: str, on_cramp: str | None,
            force: bool) -> None:
    """Write the user service and timer; print how to enable them."""
    c = get_context(ctx)
    if not sys.platform.startswith("linux"):
        msg = ("systemd user services are a Linux feature; on macOS use a launchd agent and on "
               "Windows the Task Scheduler, as docs/night.md shows")
        raise UsageError(msg)
    units = render_units(start=start, until=until, on_cramp=on_cramp,
                         home=os.environ.get("CRAMPSENSE_HOME"))
    folder = unit_dir()
    existing = [folder / n for n in units if (folder / n).exists()]
    if existing and not force:
        msg = (f"{existing[0]} already exists; use --force to replace it, or `crampsense "
               "service uninstall` first")
        raise UsageError(msg)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            atomic_write_bytes(folder / name, text.encode("utf-8"))
            (folder / name).chmod(UNIT_MODE)
    except OSError as exc:
        msg = f"cannot write the unit files to {folder}: {exc.strerror or exc}"
        raise StorageError(msg, path=str(folder)) from exc
    c.out.print(f"Wrote {folder / (UNIT_NAME + '.service')} and "
                f"{folder / (UNIT_NAME + '.timer')}.", markup=False)
    c.out.print("Enable them with:\n"
                "  systemctl --user daemon-reload\n"
                f"  systemctl --user enable --now {UNIT_NAME}.timer\n"
                "and, so that it runs while you are logged out:\n"
                f"  loginctl enable-linger {shlex.quote(os.environ.get('USER', 'USER'))}\n"
                f"Follow a night with: journalctl --user -u {UNIT_NAME} -f", markup=False)


@run.command("uninstall")
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    """Remove the unit files (disable the timer first: systemctl --user disable --now ...)."""
    c = get_context(ctx)
    removed = []
    for suffix in (".service", ".timer"):
        path = unit_dir() / f"{UNIT_NAME}{suffix}"
        if path.exists():
            path.unlink()
            removed.append(str(path))
    c.out.print(f"Removed {', '.join(removed)}." if removed else "Nothing was installed.",
                markup=False)
