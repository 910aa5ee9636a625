"""Recording from the firmware simulators (``record --simulate`` and the demo).

The simulated bedroom runs on its own clock; the recorder gets the world's ``central_clock``
so every receive time and every wait (back-off, watchdog) is simulated time, and a whole night
passes in seconds through bleak's real ``BleakScanner``/``BleakClient`` code paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from crampsense.clock import datetime_from_ns
from crampsense.config import Config, PairedDevice
from crampsense.storage.session_log import SessionWriter
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import IngestSession, ReconnectPolicy

__all__ = ["RecordingReport", "record_simulated", "record_world"]

#: How often (real seconds) the progress bar looks at the simulated clock.
PROGRESS_PERIOD_S: Final = 0.1
#: Commit interval in *simulated* seconds when the night runs as fast as possible (see
#: :func:`record_world`); at the demo's ~800x real time this is under 0.1 s of real time.
SIMULATED_COMMIT_INTERVAL_S: Final = 60.0
#: Real seconds to wait for the simulated devices to connect before the night starts moving.
CONNECT_WAIT_S: Final = 5.0


@dataclass(frozen=True)
class RecordingReport:
    """What a simulated recording did."""

    path: Path
    frames: int
    bytes_on_disk: int
    wall_s: float
    simulated_s: float
    drops: int
    stalls: int
    failed_attempts: int


async def record_world(
    world: Any,
    devices: Sequence[PairedDevice],
    path: Path,
    *,
    commit_interval_s: float,
    policy: ReconnectPolicy,
    protocol_options: dict[str, dict[str, Any]],
    duration_s: float,
    metadata: dict[str, str],
    on_progress: Callable[[float], None] | None = None,
    handle_signals: bool = False,
    device_info: dict[str, dict[str, str]] | None = None,
) -> RecordingReport:
    """Record ``devices`` of a :class:`~firmware_sims.world.SimulatedWorld` into ``path``.

    With ``handle_signals``, SIGTERM and SIGINT end the night early and cleanly: everything
    received is committed and the session closes normally (Python's default SIGTERM handler
    would skip the ``finally`` blocks that do that). ``device_info`` (lower-case address ->
    Device Information strings stored at pairing) configures each device's protocol.
    """
    from crampsense.cli.runtime import record_devices  # noqa: PLC0415 - avoids a cycle

    clock = world.central_clock
    transport = BleTransport(
        scanner_backend=world.scanner_backend, client_backend=world.client_backend
    )
    t0 = time.perf_counter()
    sim0_ns = clock.monotonic_ns()
    stop = asyncio.Event()

    def end_of_night() -> None:
        stop.set()
        world.stop()

    sessions: list[IngestSession] = []
    meta = {"start_ns": str(clock.now_ns()), **metadata}
    # The promise is "a kill loses at most a second" of *real* time. Running as fast as
    # possible, a simulated minute passes in well under a second, so committing once per
    # simulated minute keeps that promise without an fsync per simulated second.
    if world.speed is None:
        commit_interval_s = max(commit_interval_s, SIMULATED_COMMIT_INTERVAL_S)
    with SessionWriter(path, clock=clock, commit_interval_s=commit_interval_s,
                       metadata=meta) as writer:
        live: list[IngestSession] = []
        recorder = asyncio.create_task(
            record_devices(transport, devices, writer, clock=clock, policy=policy, stop=stop,
                           protocol_options=protocol_options, sessions_out=live,
                           device_info=device_info)
        )
        # Connecting takes no simulated time (the simulators answer at once), so let every
        # device connect before the pump starts moving the night: nothing is lost at the start.
        await asyncio.sleep(0)  # let the recorder create its sessions
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.connected.wait() for s in live)), CONNECT_WAIT_S
            )
        world.schedule(sim0_ns / 1e9 + duration_s, end_of_night)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, end_of_night)
        pump = asyncio.create_task(world.run())
        while not pump.done():
            elapsed_s = (clock.monotonic_ns() - sim0_ns) / 1e9
            if on_progress is not None:
                on_progress(min(elapsed_s, duration_s))
            if elapsed_s >= duration_s:
                break
            await asyncio.sleep(PROGRESS_PERIOD_S)
        stop.set()
        world.stop()
        sessions = await recorder
        await pump
    if on_progress is not None:
        on_progress(duration_s)
    return RecordingReport(
        path=path,
        frames=sum(s.stats.frames for s in sessions),
        bytes_on_disk=sum(
            p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()
        ),
        wall_s=time.perf_counter() - t0,
        simulated_s=(clock.monotonic_ns() - sim0_ns) / 1e9,
        drops=sum(s.stats.drops for s in sessions),
        stalls=sum(s.stats.stalls for s in sessions),
        failed_attempts=sum(s.stats.failed_attempts for s in sessions),
    )


def progress_bar(out: Console) -> Progress:
    """A progress bar over simulated night time."""
    return Progress(
        TextColumn("[bold]Recording[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
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
) -> Path:
    """``crampsense record --simulate``: a synthetic night from the simulated bedroom, or
    (``world="zoo"``) from the device zoo, one simulator of every device family."""
    from firmware_sims.bedroom import bedroom, device_zoo  # noqa: PLC0415
    from firmware_sims.night import NightSpec, generate_night  # noqa: PLC0415

    from crampsense.cli.runtime import session_path_for  # noqa: PLC0415

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
            )
        )
    out.print(
        f"Recorded {report.frames:,} notifications ({report.bytes_on_disk / 1e6:.0f} MB) of "
        f"{report.simulated_s / 3600:.2f} h in {report.wall_s:.1f} s wall "
        f"({report.drops} drops, {report.stalls} stalls)."
    )
    return path
