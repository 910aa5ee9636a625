"""``crampsense record``: a night from the paired wearables into a crash-safe session file."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console

from crampsense.cli.simulated import record_simulated
from crampsense.cli.utils import WORLDS, get_context
from crampsense.clock import SystemClock, datetime_from_ns
from crampsense.config import Config
from crampsense.errors import StorageError
from crampsense.pipeline.record import (
    latest_session,
    never_connected,
    paired_to_record,
    record_until_stopped,
    session_path_for,
)
from crampsense.storage.lock import HomeLock
from crampsense.storage.paired import PairedDevice, load_device_info
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import ReconnectPolicy

__all__ = ["record_night", "run"]


def record_night(
    out: Console,
    devices: Sequence[PairedDevice],
    *,
    config: Config,
    sessions_dir: Path,
    out_path: Path | None,
    simulate: bool,
    duration_s: float | None,
    seed: int,
    speed: float | None,
    world: str = "bedroom",
    data_dir: Path | None = None,
    append: bool = False,
) -> Path:
    """``crampsense record``: real devices until stopped, or a simulated night.

    ``world`` picks the simulated world (``"bedroom"`` or ``"zoo"``); ``data_dir`` holds the
    Device Information stored at pairing (default: the parent of ``sessions_dir``).
    """
    device_info = load_device_info(data_dir if data_dir is not None else sessions_dir.parent)
    policy = ReconnectPolicy(
        scan_timeout_s=config["recording.scan_timeout_s"],
        max_backoff_s=config["recording.reconnect_max_backoff_s"],
        stall_timeout_s=config["recording.stall_timeout_s"],
    )
    options = {
        "crampsense-band": {
            "emg_fs_hz": config["band.emg_fs_hz"],
            "imu_fs_hz": config["band.imu_fs_hz"],
        }
    }
    if simulate:
        return record_simulated(
            out, devices, config=config, sessions_dir=sessions_dir, out_path=out_path,
            duration_s=duration_s or 8 * 3600.0, seed=seed, speed=speed, policy=policy,
            protocol_options=options, world=world, device_info=device_info, append=append,
        )
    clock = SystemClock()
    start = datetime_from_ns(clock.now_ns())
    path = out_path or session_path_for(sessions_dir, start)
    sessions = asyncio.run(record_until_stopped(
        BleTransport(), devices, path, clock=clock, policy=policy,
        commit_interval_s=config["recording.commit_interval_s"], duration_s=duration_s,
        protocol_options=options, device_info=device_info, append=append,
        on_start=lambda p: out.print(
            f"{'Continuing' if append else 'Recording to'} {p}. Stop with Ctrl-C "
            "(everything received is kept)."),
    ))
    out.print(
        f"Recorded {sum(s.stats.frames for s in sessions):,} notifications "
        f"({sum(s.stats.drops for s in sessions)} drops, "
        f"{sum(s.stats.stalls for s in sessions)} stalls)."
    )
    for d in never_connected(sessions):
        out.print(f"  {d.placement.replace('-', ' ')} ({d.name or d.family}, {d.address}): "
                  "never connected; nothing was recorded from it.", markup=False)
    return path


@click.command("record", short_help="Record a night from the paired wearables (crash-safe).")
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
@click.option("--world", type=click.Choice(WORLDS), default="bedroom",
              show_default=True,
              help="--simulate only: the bedroom (bands + strap) or the zoo (every family).")
@click.option("--continue", "continue_night", is_flag=True,
              help="Continue the latest session (or --out) in a new segment, after a crash "
                   "or a stop, instead of starting a new one.")
@click.pass_context
def run(
    ctx: click.Context,
    simulate: bool,
    hours: float | None,
    seed: int,
    speed: float | None,
    out_path: Path | None,
    world: str,
    continue_night: bool,
) -> None:
    """Record a night from the paired wearables into a crash-safe session file.

    Reconnects after every drop and never gives up; Ctrl-C or SIGTERM stop it cleanly with
    everything received so far committed.
    """
    c = get_context(ctx)
    usable = paired_to_record(c.data_dir, simulate=simulate)
    if continue_night:
        out_path = out_path or latest_session(c.sessions_dir())
        if out_path is None or not out_path.exists():
            raise StorageError(
                f"no session to continue in {out_path or c.sessions_dir()}; record a new night "
                "without --continue"
            )
    with HomeLock(c.data_dir, "crampsense record"):
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
            append=continue_night,
        )
    c.out.print(f"Session saved: {result}")
    c.out.print(f"See the night with: crampsense replay {result}")
