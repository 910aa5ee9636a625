"""``crampsense night``: the service left running by the bed, from evening to morning summary.

Connects to every paired device, never gives up on one, records every notification into the
night's session, detects cramps live (alarms within seconds, ``--on-cramp`` for each), shows a
live status (plain lines when not on a terminal), and ends with the morning summary.
"""

from __future__ import annotations

import asyncio
import gc
import shlex
import shutil
from collections.abc import Sequence
from datetime import datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from crampsense.cli.replay import replay_and_summarise
from crampsense.cli.simulated import night_start_ns, night_world
from crampsense.cli.utils import WORLDS, get_context, local_tz
from crampsense.clock import SystemClock, datetime_from_ns, ns_from_datetime
from crampsense.config import Config
from crampsense.detection import DetectionParams
from crampsense.errors import StorageError, UsageError
from crampsense.pipeline.night import (
    NightNotice,
    NightReport,
    NightService,
    NightStatus,
    describe_device,
    plan_night,
    run_night,
    run_night_world,
)
from crampsense.pipeline.record import paired_to_record
from crampsense.storage.lock import HomeLock
from crampsense.storage.paired import PairedDevice, load_device_info
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import ReconnectPolicy

__all__ = ["parse_until", "run"]

#: Real seconds between refreshes of the live status on a terminal.
REFRESH_S: Final = 0.5
#: Clock seconds between plain status lines when not on a terminal (a log, a journal):
#: a line every ten minutes tells a reader of the journal the service is alive.
PLAIN_STATUS_EVERY_S: Final = 600.0
#: The night log, beside the session: ``<session>.log.jsonl``.
LOG_SUFFIX: Final = ".log.jsonl"


def parse_until(text: str, now: datetime, tz: tzinfo) -> datetime:
    """The next ``HH:MM`` (local time in ``tz``) after ``now``.

    Raises
    ------
    UsageError
        ``text`` is not a time of day.
    """
    try:
        hhmm = time.fromisoformat(text)
    except ValueError as exc:
        msg = f"--until {text!r} is not a time of day; give it as HH:MM, e.g. --until 07:00"
        raise UsageError(msg) from exc
    local = now.astimezone(tz)
    end = local.replace(hour=hhmm.hour, minute=hhmm.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def _hook_argv(command: str | None) -> list[str] | None:
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        msg = f"--on-cramp {command!r} cannot be split into words ({exc}); check its quotes"
        raise UsageError(msg) from exc
    if not argv:
        msg = "--on-cramp is empty; give the command to run for each cramp"
        raise UsageError(msg)
    if shutil.which(argv[0]) is None:
        msg = (f"--on-cramp: {argv[0]!r} is not a program that can be run (not found or not "
               "executable); give its full path")
        raise UsageError(msg)
    return argv


def _hhmm(ns: int, tz: tzinfo) -> str:
    return f"{datetime_from_ns(ns).astimezone(tz):%H:%M:%S}"


def _duration(seconds: float) -> str:
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def status_line(status: NightStatus, tz: tzinfo) -> str:
    """One plain line: time, elapsed, coverage per leg, cramps, and each device's link."""
    elapsed = status.elapsed_s
    cov = ", ".join(f"{leg} {min(1.0, s / elapsed) if elapsed else 0.0:.0%}"
                    for leg, s in status.coverage_s.items()) or "no leg sensor"
    links = "; ".join(
        f"{d.device.placement} {d.link}"
        + (f" {d.battery_percent}%" if d.battery_percent is not None else "")
        for d in status.devices)
    store = f"; STORAGE: {status.storage_problem}" if status.storage_problem else ""
    return (f"{_hhmm(status.now_ns, tz)} night {_duration(elapsed)}: covered {cov}; "
            f"{status.alarms} alarm(s), {status.cramps} cramp(s); {links}; "
            f"{status.frames_written:,} notifications saved{store}")


def status_table(status: NightStatus, tz: tzinfo) -> Group:
    """The live status on a terminal."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("device", "worn on", "link", "battery", "data", "drops/stalls"):
        table.add_column(column)
    for d in status.devices:
        style = "green" if d.link == "streaming" else "red" if d.link == "never connected" \
            else "yellow"
        table.add_row(
            d.device.name or d.device.address, d.device.placement, Text(d.link, style=style),
            "-" if d.battery_percent is None else f"{d.battery_percent} %",
            f"{d.frames_per_s:.0f} /s", f"{d.drops}/{d.stalls}")
    elapsed = status.elapsed_s
    until = f" until {_hhmm(status.until_ns, tz)}" if status.until_ns else ""
    cov = ", ".join(f"{leg} {min(1.0, s / elapsed) if elapsed else 0.0:.0%}"
                    for leg, s in status.coverage_s.items()) or "no leg sensor"
    head = Text(f"crampsense night: {_hhmm(status.now_ns, tz)}{until}, running "
                f"{_duration(elapsed)}; covered {cov}; {status.alarms} alarm(s), "
                f"{status.cramps} cramp(s) so far; {status.frames_written:,} saved")
    parts: list[Any] = [head, table]
    if status.storage_problem:
        parts.append(Text(f"STORAGE: {status.storage_problem}", style="bold red"))
    return Group(*parts)


class _Display:
    """Notices as lines; the status live on a terminal, or as a plain line now and then."""

    def __init__(self, out: Console, tz: tzinfo, plain_every_s: float) -> None:
        self.out = out
        self.tz = tz
        self.plain_every_ns = round(plain_every_s * 1e9)
        self.service: NightService | None = None
        self.live: Live | None = None
        self._last_plain_ns: int | None = None

    def notice(self, notice: NightNotice) -> None:
        line = f"{_hhmm(notice.time_ns, self.tz)} {notice.kind}: {notice.text}"
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.out.print(line, markup=False, highlight=False, soft_wrap=True)

    def refresh(self) -> None:
        if self.service is None:
            return
        status = self.service.status()
        if self.live is not None:
            self.live.update(status_table(status, self.tz))
            return
        if self._last_plain_ns is None or status.now_ns - self._last_plain_ns >= \
                self.plain_every_ns:
            self._last_plain_ns = status.now_ns
            self.out.print(status_line(status, self.tz), markup=False, highlight=False,
                           soft_wrap=True)


async def _with_display(display: _Display, night: Any) -> NightReport:
    task: asyncio.Task[NightReport] = asyncio.ensure_future(night)
    while not task.done():
        display.refresh()
        await asyncio.wait({task}, timeout=REFRESH_S if display.live else 0.05)
    display.refresh()
    return task.result()


def _policy(config: Config) -> ReconnectPolicy:
    return ReconnectPolicy(
        scan_timeout_s=config["recording.scan_timeout_s"],
        max_backoff_s=config["recording.reconnect_max_backoff_s"],
        stall_timeout_s=config["recording.stall_timeout_s"],
    )


def night_service(
    out: Console,
    devices: Sequence[PairedDevice],
    *,
    config: Config,
    data_dir: Path,
    hours: float | None,
    until: str | None,
    hook_argv: Sequence[str] | None,
    hook_timeout_s: float,
    simulate: bool,
    seed: int,
    speed: float | None,
    world: str,
    plain_every_s: float,
    tz: tzinfo,
) -> NightReport:
    """Run the night (real or simulated); returns its report. Prints notices and status."""
    options: dict[str, dict[str, Any]] = {"crampsense-band": {
        "emg_fs_hz": config["band.emg_fs_hz"], "imu_fs_hz": config["band.imu_fs_hz"]}}
    device_info = load_device_info(data_dir)
    sessions_dir = data_dir / "sessions"
    display = _Display(out, tz, plain_every_s)
    service_options: dict[str, Any] = {
        "protocol_options": options, "device_info": device_info,
        "params": DetectionParams.from_mapping(config.section("detection")),
        "hook_argv": hook_argv, "hook_timeout_s": hook_timeout_s,
        "on_notice": display.notice,
    }

    def on_start(service: NightService) -> None:
        display.service = service
        if service.log_path is None:
            service.log_path = service.writer.path.with_name(
                service.writer.path.name + LOG_SUFFIX)
        out.print(f"Recording the night to {service.writer.path} (log: {service.log_path}). "
                  "Stop with Ctrl-C; everything received is kept.", markup=False)

    if simulate:
        now_ns = night_start_ns(seed, 8 * 3600.0)
        length_s = _length_s(hours, until, now_ns, tz)
        until_ns = now_ns + round(length_s * 1e9)
        plan = plan_night(sessions_dir, now_ns, until_ns, simulated=True)
        sim, _start_ns = night_world(devices, seed=seed, duration_s=length_s, speed=speed,
                                    protocol_options=options, world=world,
                                    resume_ns=plan.resume_ns if plan.append else None)
        meta = {"simulated": "true", "seed": str(seed), "world": world}
        coro: Any = run_night_world(
            sim, devices, plan, policy=_policy(config),
            commit_interval_s=config["recording.commit_interval_s"], metadata=meta,
            on_start=on_start, **service_options)
    else:
        clock = SystemClock()
        now_ns = clock.now_ns()
        end_ns = (now_ns + round(_length_s(hours, until, now_ns, tz) * 1e9)
                  if (hours or until) else None)
        plan = plan_night(sessions_dir, now_ns, end_ns)
        coro = run_night(
            BleTransport(), devices, plan, clock=clock, policy=_policy(config),
            commit_interval_s=config["recording.commit_interval_s"],
            metadata={"simulated": "false"}, on_start=on_start, **service_options)
    if plan.append:
        out.print(f"Continuing tonight's session {plan.path.name} (a new segment).",
                  markup=False)

    async def main() -> NightReport:
        if out.is_terminal:
            with Live(console=out, refresh_per_second=1 / REFRESH_S, transient=True) as live:
                display.live = live
                try:
                    return await _with_display(display, coro)
                finally:
                    display.live = None
        return await _with_display(display, coro)

    return asyncio.run(main())


def _length_s(hours: float | None, until: str | None, now_ns: int, tz: tzinfo) -> float:
    if hours is not None:
        return hours * 3600.0
    if until is not None:
        now = datetime_from_ns(now_ns)
        return (ns_from_datetime(parse_until(until, now, tz)) - now_ns) / 1e9
    return 8 * 3600.0


def report_lines(report: NightReport) -> list[str]:
    """What the night did, with every paired device that never connected named."""
    lines = [
        (f"Night recorded: {report.frames:,} notifications this run ({report.drops} drops, "
        f"{report.stalls} stalls, {report.failed_attempts} failed connection attempts, "
        f"{report.restarts} streams restarted by the device); {report.alarms} alarm(s), "
        f"{report.cramps} cramp(s) found live.")
    ]
    lines += [f"  {describe_device(d)}: never connected; nothing was recorded from it."
              for d in report.never_connected]
    if report.refused_frames:
        lines.append(f"  {report.refused_frames:,} notifications could not be saved (disk "
                     "full).")
    if report.hook_runs or report.hook_failures:
        lines.append(f"  on-cramp command: {report.hook_runs} run(s), "
                     f"{report.hook_failures} failed or timed out (see the night log).")
    return lines


@click.command("night", short_help="Run the night: record, detect live, morning summary.")
@click.option("--until", "until", metavar="HH:MM",
              help="End at this local time (default: until stopped; --simulate: 8 h).")
@click.option("--hours", type=click.FloatRange(0.01, 16.0), default=None,
              help="End after this long.")
@click.option("--on-cramp", "on_cramp", metavar="COMMAND",
              help="Run COMMAND for each alarm, event and retraction, with it as JSON on "
                   "standard input (time-limited; never blocks recording).")
@click.option("--hook-timeout", "hook_timeout_s", type=click.FloatRange(0.1, 600.0),
              default=30.0, show_default=True, help="Seconds before --on-cramp is killed.")
@click.option("--simulate", is_flag=True, help="A synthetic night from the simulators.")
@click.option("--seed", type=int, default=1, show_default=True, help="Simulated night seed.")
@click.option("--speed", type=click.FloatRange(min=1.0), default=None,
              help="--simulate only: times real time (default: as fast as possible).")
@click.option("--world", type=click.Choice(WORLDS), default="bedroom", show_default=True,
              help="--simulate only: the bedroom or the zoo.")
@click.option("--status-every", "status_every_s", type=click.FloatRange(0.1), hidden=True,
              default=PLAIN_STATUS_EVERY_S)
@click.option("--no-summary", is_flag=True, help="Do not replay the night at the end.")
@click.pass_context
def run(
    ctx: click.Context,
    until: str | None,
    hours: float | None,
    on_cramp: str | None,
    hook_timeout_s: float,
    simulate: bool,
    seed: int,
    speed: float | None,
    world: str,
    status_every_s: float,
    no_summary: bool,
) -> None:
    """Record the night from every paired wearable, detect cramps live, then summarise.

    Reconnects after every drop and never gives up; a restart the same night continues
    the same session. Ends at --until, after --hours, or on Ctrl-C/SIGTERM, then prints
    the morning summary (the same as `crampsense summary`). See docs/night.md for running
    it every night as a systemd user service (`crampsense service install`).
    """
    c = get_context(ctx)
    if until is not None and hours is not None:
        msg = "give --until or --hours, not both"
        raise UsageError(msg)
    tz = local_tz()
    if until is not None:
        parse_until(until, datetime_from_ns(SystemClock().now_ns()), tz)  # check it early
    hook_argv = _hook_argv(on_cramp)
    usable = paired_to_record(c.data_dir, simulate=simulate)
    with HomeLock(c.data_dir, "crampsense night"):
        report = night_service(
            c.out, usable, config=c.config, data_dir=c.data_dir, hours=hours, until=until,
            hook_argv=hook_argv, hook_timeout_s=hook_timeout_s, simulate=simulate, seed=seed,
            speed=speed, world=world, plain_every_s=status_every_s, tz=tz)
    for line in report_lines(report):
        c.out.print(line, markup=False)
    if no_summary:
        c.out.print(f"See the night with: crampsense replay {report.path}", markup=False)
        return
    gc.collect()  # the night's live state is garbage now: free it before the replay's arrays
    try:
        replay_and_summarise(c.out, report.path, config=c.config,
                             journal_path=c.data_dir / "journal.txt", as_json=False, tz=tz,
                             store_root=c.data_dir)
    except StorageError as exc:
        missing = "; ".join(f"{describe_device(d)}: never connected"
                            for d in report.never_connected)
        msg = f"{exc}" + (f" ({missing})" if missing else "")
        raise StorageError(msg, path=str(report.path)) from exc
