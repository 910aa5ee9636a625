"""Helper process for ``test_night_faults.py``: the night service in a simulated bedroom until
killed.

Usage: ``python tests/pipeline/_night_child.py HOME SPEED PERIOD_S [DROP_EVERY_S]``

Runs :func:`~crampsense.pipeline.night.run_night_world` exactly as ``crampsense night
--simulate`` does (continuing the night's session if one is unfinished, with the simulated
world's clock at the session's last record), for the left band at 200 Hz, at ``SPEED`` times
real time. Every ``PERIOD_S`` real seconds it prints ``<received> <committed> <frames/s>``:
notifications received by this process, committed frames in the file (all segments), and the
rate of notifications per simulated second, so that the test can tell, after ``kill -9``,
how much was received but not yet committed. With ``DROP_EVERY_S`` the band's link is dropped
that often (simulated seconds).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from crampsense.cli.simulated import night_start_ns, night_world
from crampsense.pipeline.night import NightService, plan_night, run_night_world
from crampsense.storage.paired import PairedDevice
from crampsense.transport.ingest import ReconnectPolicy
from firmware_sims.bedroom import BAND_LEFT

HOURS = 10.0
#: The band's lowest rates that the detector still reads (EMG >= 200 Hz): ten simulated hours
#: in as little CPU as possible.
OPTIONS = {"crampsense-band": {"emg_fs_hz": 200, "imu_fs_hz": 25}}


async def main() -> None:
    home, period_s = Path(sys.argv[1]), float(sys.argv[3])
    speed = float(sys.argv[2]) or None  # 0: as fast as possible
    drop_every_s = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    devices = [PairedDevice(address=BAND_LEFT, name="band L", family="crampsense-band",
                            placement="left-calf", simulated=True)]
    now_ns = night_start_ns(1, HOURS * 3600)
    plan = plan_night(home / "sessions", now_ns, now_ns + round(HOURS * 3600e9), simulated=True)
    world, _ = night_world(devices, seed=1, duration_s=HOURS * 3600, speed=speed,
                           protocol_options=OPTIONS,
                           resume_ns=plan.resume_ns if plan.append else None)
    if drop_every_s:
        t0 = world.central_clock.monotonic_ns() / 1e9
        for k in range(1, 2000):
            world.schedule(t0 + k * drop_every_s, lambda: world.drop_link(BAND_LEFT))
    services: list[NightService] = []
    started = asyncio.Event()

    def on_start(service: NightService) -> None:
        services.append(service)
        started.set()

    async def report() -> None:
        await started.wait()
        s = services[0]
        mono0 = s.clock.monotonic_ns()
        while True:
            received = sum(x.stats.frames for x in s.sessions)
            elapsed_s = (s.clock.monotonic_ns() - mono0) / 1e9
            rate = received / elapsed_s if elapsed_s > 0 else 0.0
            sys.stdout.write(f"{received} {s.writer.frames_written} {rate:.3f}\n")
            sys.stdout.flush()
            await asyncio.sleep(period_s)

    reporter = asyncio.create_task(report())
    await run_night_world(
        world, devices, plan, policy=ReconnectPolicy(scan_timeout_s=0.5, max_backoff_s=5.0),
        commit_interval_s=1.0, metadata={"simulated": "true"}, protocol_options=OPTIONS,
        on_start=on_start, log_path=home / "night.log.jsonl")
    reporter.cancel()


if __name__ == "__main__":
    asyncio.run(main())
