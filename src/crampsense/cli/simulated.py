"""The one door from the command line to the firmware simulators (``--simulate`` and ``demo``).

Only this module of ``crampsense`` imports :mod:`firmware_sims`; the commands ask it for a
simulated transport, a simulated night or the demo's bedroom, and otherwise run exactly the
code that runs against real devices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from crampsense.clock import FakeClock, datetime_from_ns, ns_from_datetime
from crampsense.config import Config
from crampsense.pipeline.record import record_world, session_path_for
from crampsense.storage.paired import PairedDevice
from crampsense.transport.base import Transport
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import ReconnectPolicy
from firmware_sims.bedroom import (
    BAND_RIGHT,
    PLACEMENT_OF,
    bedroom,
    device_zoo,
    quiet_bedroom,
    quiet_zoo,
)
from firmware_sims.night import LOOKALIKE_KINDS, NightSpec, corpus, demo_spec, generate_night

__all__ = [
    "BAND_RIGHT",
    "LOOKALIKE_KINDS",
    "PLACEMENT_OF",
    "NightSpec",
    "bedroom",
    "corpus",
    "demo_spec",
    "generate_night",
    "night_start_ns",
    "night_world",
    "progress_bar",
    "record_simulated",
    "simulated_transport",
    "transport_for",
]


def simulated_transport(world: Any) -> BleTransport:
    """bleak's own scanner and client over a simulated ``world``'s backends."""
    return BleTransport(scanner_backend=world.scanner_backend, client_backend=world.client_backend)


@contextlib.contextmanager
def transport_for(simulate: bool, world: str = "bedroom") -> Iterator[Transport]:
    """The real Bluetooth stack, or a simulated world (``"bedroom"`` or ``"zoo"``)."""
    if not simulate:
        yield BleTransport()
        return
    sim = quiet_zoo() if world == "zoo" else quiet_bedroom()
    yield simulated_transport(sim)


def progress_bar(out: Console) -> Progress:
    """A progress bar over simulated night time (none when not on a terminal: piped output
    stays plain lines, without the blank line a finished transient bar leaves)."""
    return Progress(
        TextColumn("[bold]Recording[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=not out.is_terminal,
    )


def record_simulated(
    out: Console,
    devices: Sequence[PairedDevice],
    *,
    config: Config,
    sessions_dir: Path,
    out_path: Path | None,
    duration_s: float,
    seed: int,
    speed: float | None,
    policy: ReconnectPolicy,
    protocol_options: dict[str, dict[str, Any]],
    world: str = "bedroom",
    device_info: dict[str, dict[str, str]] | None = None,
    append: bool = False,
) -> Path:
    """``crampsense record --simulate``: a synthetic night from the simulated bedroom, or
    (``world="zoo"``) from the device zoo, one simulator of every device family."""
    emg_fs_hz = float(protocol_options["crampsense-band"]["emg_fs_hz"])
    spec = NightSpec(seed=seed, duration_s=duration_s, emg_fs_hz=emg_fs_hz,
                     acc_fs_hz=float(protocol_options["crampsense-band"]["imu_fs_hz"]))
    night = generate_night(spec)
    wanted = {d.address for d in devices}
    make = device_zoo if world == "zoo" else bedroom
    sim = make(night, speed=speed, include=lambda a: a in wanted)
    path = out_path or session_path_for(sessions_dir, spec.start)
    with progress_bar(out) as bar:
        task = bar.add_task(path.name, total=duration_s, clock="")

        def progress(sim_s: float) -> None:
            now = datetime_from_ns(sim.clock.now_ns()).astimezone(UTC)
            bar.update(task, completed=sim_s, clock=now.strftime("%H:%M UTC"))

        report = asyncio.run(
            record_world(
                sim, devices, path,
                commit_interval_s=config["recording.commit_interval_s"], policy=policy,
                protocol_options=protocol_options, duration_s=duration_s,
                metadata={"simulated": "true", "seed": str(seed), "world": world},
                on_progress=progress, handle_signals=True, device_info=device_info,
                append=append,
            )
        )
    out.print(
        f"Recorded {report.frames:,} notifications ({report.bytes_on_disk / 1e6:.0f} MB) of "
        f"{report.simulated_s / 3600:.2f} h in {report.wall_s:.1f} s wall "
        f"({report.drops} drops, {report.stalls} stalls)."
    )
    for d in report.never_connected:
        out.print(f"  {d.placement.replace('-', ' ')} ({d.name or d.family}, {d.address}): "
                  "never connected; nothing was recorded from it.", markup=False)
    if report.simulated_s < duration_s - 1.0:
        out.print(
            f"Stopped early: {report.simulated_s / 3600:.2f} h of the {duration_s / 3600:g} h "
            "asked for were recorded (interrupted); everything received is in the session."
        )
    return path


def night_world(
    devices: Sequence[PairedDevice],
    *,
    seed: int,
    duration_s: float,
    speed: float | None,
    protocol_options: dict[str, dict[str, Any]],
    world: str = "bedroom",
    resume_ns: int | None = None,
) -> tuple[Any, int]:
    """The simulated world of ``crampsense night --simulate``, and its night's start (Unix ns).

    The world holds the simulators of the paired ``devices`` only (a paired device the world
    does not have never appears). ``resume_ns``: continue a night that was interrupted, with
    the world's clock (and every simulator's signal) at that host time instead of the start.
    """
    band = protocol_options.get("crampsense-band", {})
    spec = NightSpec(seed=seed, duration_s=duration_s,
                     emg_fs_hz=float(band.get("emg_fs_hz", 1000)),
                     acc_fs_hz=float(band.get("imu_fs_hz", 50)))
    night = generate_night(spec)
    wanted = {d.address for d in devices}
    clock = FakeClock(spec.start)
    start_ns = clock.now_ns()
    if resume_ns is not None and resume_ns > start_ns:
        clock.advance((resume_ns - start_ns) / 1e9)
    make = device_zoo if world == "zoo" else bedroom
    return make(night, speed=speed, clock=clock, include=lambda a: a in wanted), start_ns


def night_start_ns(seed: int, duration_s: float) -> int:
    """Host time (Unix ns) at which the simulated night of ``seed`` starts."""
    return ns_from_datetime(NightSpec(seed=seed, duration_s=duration_s).start)
