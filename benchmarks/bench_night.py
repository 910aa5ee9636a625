"""What the overnight service costs: CPU per device, memory over a night, alarm latency,
reconnect time, session growth.

Usage::

    python benchmarks/bench_night.py cpu [--minutes 30]
    python benchmarks/bench_night.py night --world bedroom|zoo [--hours 8]
    python benchmarks/bench_night.py latency [--nights 5] [--hours 1]

``cpu``
    Records ``--minutes`` of each reference stream (the band at 1 kHz EMG + 50 Hz IMU, a
    Polar Verity Sense's accelerometer, a Movesense's accelerometer) from the simulators, then
    times what the service does with those notifications *as it would at real time*: append
    to a new session file (committing every second of frame time) and decode and detect live
    (:class:`~crampsense.pipeline.night.LiveDetection`, stepped every second). CPU seconds /
    recorded seconds = share of one core per device (the radio's own cost excluded).
``night``
    Runs the whole service over an ``--hours`` simulated night of the bedroom or the zoo, as
    fast as the CPU allows, and prints the resident memory at each simulated hour and at the
    end, the peak, the session's size per hour per device, the reconnect time after the drops
    it injects (one every 30 simulated minutes per leg device), and the CPU time.
``latency``
    Fresh simulated 1-hour nights (seeds 1.. with cramps): for each true cramp, the time from
    the true start of its ramp to the provisional alarm (simulated seconds, including the
    service's push cadence).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crampsense.clock import FakeClock
from crampsense.models import DeviceInfo
from crampsense.pipeline.night import (
    LiveDetection,
    NightNotice,
    plan_night,
    run_night_world,
)
from crampsense.pipeline.record import configured_protocol
from crampsense.storage.paired import PairedDevice
from crampsense.storage.session_log import SessionReader, SessionWriter
from crampsense.transport.ingest import ReconnectPolicy
from firmware_sims.bedroom import (
    BAND_LEFT,
    BAND_RIGHT,
    HR_STRAP,
    PLACEMENT_OF,
    ZOO_BAND,
    ZOO_MOVESENSE,
    ZOO_PLACEMENT_OF,
    ZOO_POLAR_SENSE,
    bedroom,
    device_zoo,
)
from firmware_sims.night import NightSpec, generate_night

OPTIONS = {"crampsense-band": {"emg_fs_hz": 1000, "imu_fs_hz": 50}}
FAMILY = {ZOO_BAND: "crampsense-band", ZOO_POLAR_SENSE: "polar-pmd",
          ZOO_MOVESENSE: "movesense", BAND_LEFT: "crampsense-band",
          BAND_RIGHT: "crampsense-band", HR_STRAP: "heart-rate",
          "A0:9E:1A:00:0A:03": "polar-pmd", "E8:8A:00:00:0A:04": "openbci-ganglion",
          "C5:A3:00:00:0A:10": "heart-rate"}
INFO = {ZOO_POLAR_SENSE.lower(): {"model": "Polar Sense"},
        "a0:9e:1a:00:0a:03": {"model": "Polar H10"},
        "e8:8a:00:00:0a:04": {"software": "3.1.0"}}
POLICY = ReconnectPolicy(scan_timeout_s=0.5)


def _rss_mb() -> float:
    statm = Path("/proc/self/statm").read_text(encoding="ascii").split()
    return int(statm[1]) * resource.getpagesize() / 1e6


def _paired(placements: dict[str, str], keep: set[str]) -> list[PairedDevice]:
    return [PairedDevice(address=a, name=a, family=FAMILY[a], placement=p, simulated=True)
            for a, p in placements.items() if a in keep]


def _record(world: Any, devices: list[PairedDevice], home: Path, seconds: float,
            **options: Any) -> tuple[Path, list[NightNotice], Any]:
    now = world.central_clock.now_ns()
    plan = plan_night(home / "sessions", now, now + round(seconds * 1e9), simulated=True)
    notices: list[NightNotice] = []
    report = asyncio.run(run_night_world(
        world, devices, plan, policy=POLICY, commit_interval_s=1.0,
        metadata={"simulated": "true"}, protocol_options=OPTIONS, device_info=INFO,
        on_notice=notices.append, handle_signals=False, **options))
    return plan.path, notices, report


def bench_cpu(minutes: float) -> None:
    seconds = minutes * 60
    spec = NightSpec(seed=1, duration_s=seconds, emg_fs_hz=1000.0, acc_fs_hz=50.0)
    night = generate_night(spec)
    for label, address in (("reference band, EMG 1 kHz x2 + IMU 50 Hz", ZOO_BAND),
                           ("Polar Verity Sense, acc 52 Hz", ZOO_POLAR_SENSE),
                           ("Movesense, acc 52 Hz", ZOO_MOVESENSE)):
        home = Path(tempfile.mkdtemp(prefix="bench-night-"))
        try:
            world = device_zoo(night, include={address}.__contains__)
            devices = _paired(ZOO_PLACEMENT_OF, {address})
            path, _, _ = _record(world, devices, home, seconds, detect=False)
            with SessionReader(path) as reader:
                frames = list(reader.frames())
            device = DeviceInfo(address=address, name=address, family=FAMILY[address],
                                placement=ZOO_PLACEMENT_OF[address])
            protocol = configured_protocol(FAMILY[address], INFO.get(address.lower(), {}),
                                           OPTIONS.get(FAMILY[address], {}))
            clock = FakeClock(spec.start)
            t0 = frames[0].host_time_ns
            live = LiveDetection([device], {address: protocol}, start_ns=t0)
            out = home / "bench.session"
            cpu0 = time.process_time()
            with SessionWriter(out, clock=clock, commit_interval_s=1.0) as writer:
                writer.add_device(device, protocol.metadata())
                next_step = t0 + 10**9
                for frame in frames:
                    clock.advance(max(0.0, (frame.host_time_ns - clock.now_ns()) / 1e9))
                    writer.append(frame)
                    live.add(frame)
                    if frame.host_time_ns >= next_step:
                        live.step(frame.host_time_ns)
                        next_step += 10**9
                live.finish(frames[-1].host_time_ns)
            cpu_s = time.process_time() - cpu0
            span_s = (frames[-1].host_time_ns - t0) / 1e9
            print(f"{label}: {len(frames):,} notifications over {span_s:.0f} s: "
                  f"{cpu_s:.2f} CPU s = {100 * cpu_s / span_s:.2f} % of one core")
        finally:
            shutil.rmtree(home, ignore_errors=True)


def bench_night(world_name: str, hours: float) -> None:
    seconds = hours * 3600
    spec = NightSpec(seed=1, duration_s=seconds, emg_fs_hz=1000.0, acc_fs_hz=50.0)
    night = generate_night(spec)
    if world_name == "zoo":
        world = device_zoo(night)
        devices = _paired(ZOO_PLACEMENT_OF, set(ZOO_PLACEMENT_OF))
        legs = [ZOO_BAND, ZOO_POLAR_SENSE]
    else:
        world = bedroom(night)
        devices = _paired(PLACEMENT_OF, set(PLACEMENT_OF))
        legs = [BAND_LEFT, BAND_RIGHT]
    for k in range(1, int(hours * 2)):
        for address in legs:
            world.schedule(k * 1800.0 + 7.0, functools.partial(world.drop_link, address))
    rss: list[tuple[float, float]] = []

    def sample(hour: int) -> None:
        rss.append((hour, _rss_mb()))

    for h in range(int(hours) + 1):
        world.schedule(h * 3600.0 + 1.0, functools.partial(sample, h))
    home = Path(tempfile.mkdtemp(prefix="bench-night-"))
    try:
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        path, _, report = _record(world, devices, home, seconds)
        cpu_s = time.process_time() - cpu0
        wall_s = time.perf_counter() - wall0
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
        with SessionReader(path) as reader:
            marks = reader.marks()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        reconnect: list[float] = []
        down: dict[str, int] = {}
        for m in marks:
            if m.device_address is None:
                continue
            if m.kind == "disconnected":
                down[m.device_address] = m.host_monotonic_ns
            elif m.kind == "connected" and m.device_address in down:
                reconnect.append((m.host_monotonic_ns - down.pop(m.device_address)) / 1e9)
        print(f"{world_name}, {hours:g} h simulated in {wall_s:.0f} s wall, {cpu_s:.0f} CPU s; "
              f"{report.frames:,} notifications, {report.drops} drops")
        print("resident memory (MB) by simulated hour: "
              + ", ".join(f"{h}h {mb:.0f}" for h, mb in rss) + f"; peak {peak_mb:.0f} MB")
        print(f"session {size / 1e6:.0f} MB = {size / 1e6 / hours / len(devices):.1f} MB per "
              f"hour per device ({len(devices)} devices)")
        if reconnect:
            print(f"reconnect after a drop: median {statistics.median(reconnect):.2f} s, "
                  f"max {max(reconnect):.2f} s (simulated, n={len(reconnect)})")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def bench_latency(nights: int, hours: float) -> None:
    seconds = hours * 3600
    delays: list[float] = []
    missed = 0
    seed = 0
    done = 0
    while done < nights:
        seed += 1
        spec = NightSpec(seed=seed, duration_s=seconds, emg_fs_hz=1000.0, acc_fs_hz=50.0)
        night = generate_night(spec)
        cramps = night.cramps()
        if cramps.height == 0:
            continue
        done += 1
        home = Path(tempfile.mkdtemp(prefix="bench-night-"))
        try:
            devices = _paired(PLACEMENT_OF, {BAND_LEFT, BAND_RIGHT})
            _, notices, _ = _record(bedroom(night, include=lambda a: a != HR_STRAP), devices,
                                    home, seconds)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        t0 = spec.start.timestamp()
        alarms = [(n.data["leg"], n.time_ns / 1e9 - t0) for n in notices if n.kind == "alarm"]
        for leg, onset_s, offset_s in cramps.select("leg", "onset_s", "offset_s").iter_rows():
            hits = [t for lg, t in alarms if lg == leg and onset_s <= t <= offset_s + 30]
            if hits:
                delays.append(min(hits) - onset_s)
            else:
                missed += 1
    if delays:
        print(f"alarm latency from the true ramp start: median {statistics.median(delays):.1f} "
              f"s, max {max(delays):.1f} s over {len(delays)} cramps in {nights} nights "
              f"({missed} cramps without an alarm)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--minutes", type=float, default=30.0)
    nt = sub.add_parser("night")
    nt.add_argument("--world", choices=("bedroom", "zoo"), default="bedroom")
    nt.add_argument("--hours", type=float, default=8.0)
    lat = sub.add_parser("latency")
    lat.add_argument("--nights", type=int, default=5)
    lat.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.what == "cpu":
        bench_cpu(args.minutes)
    elif args.what == "night":
        bench_night(args.world, args.hours)
    else:
        bench_latency(args.nights, args.hours)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main(sys.argv[1:])
