"""The night service against the firmware simulators, the real session writer and the real
streaming detector: live events equal the replay's, hooks, never-connected devices, planning,
and the faults of RELIABILITY.md that run in seconds (clean disconnect, silent stall, a device
that stops its stream, disk full with resume)."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crampsense.clock import FakeClock, ns_from_datetime
from crampsense.journal.log import entries_frame
from crampsense.pipeline.night import (
    PUSH_EVERY_S,
    TICK_S,
    HookRunner,
    NightNotice,
    NightReport,
    plan_night,
    run_night_world,
)
from crampsense.pipeline.replay import analyze_session
from crampsense.storage.paired import PairedDevice
from crampsense.storage.session_log import SessionReader, SessionWriter
from crampsense.summaries.morning import build_morning_summary, render_summary
from crampsense.transport.ingest import ReconnectPolicy
from firmware_sims.bedroom import (
    BAND_LEFT,
    BAND_RIGHT,
    ZOO_BAND,
    ZOO_POLAR_SENSE,
    bedroom,
    device_zoo,
)
from firmware_sims.night import NightSpec, generate_night
from firmware_sims.world import SimulatedWorld

EMG_FS_HZ = 500
OPTIONS = {"crampsense-band": {"emg_fs_hz": EMG_FS_HZ, "imu_fs_hz": 50}}
POLICY = ReconnectPolicy(scan_timeout_s=0.3, max_backoff_s=5.0, stall_timeout_s=5.0)
#: A seed whose right leg cramps twice in the first 25 minutes (757-819 s, 1160-1411 s).
CRAMP_SEED = 8


def _band(address: str, placement: str) -> PairedDevice:
    return PairedDevice(address=address, name=f"band {placement}", family="crampsense-band",
                        placement=placement, simulated=True)


#: Simulated seconds per real second for the reconnect-timing tests. As fast as possible, the
#: real-time waits of a reconnect (a scan, bleak's own awaits) let an unbounded amount of
#: simulated time pass on a busy machine; paced, a tenth of a real second is four simulated.
PACED = 40.0


def _world(seed: int, duration_s: float, keep: Sequence[str],
           speed: float | None = None) -> SimulatedWorld:
    spec = NightSpec(seed=seed, duration_s=duration_s, emg_fs_hz=EMG_FS_HZ, acc_fs_hz=50.0)
    return bedroom(generate_night(spec), include=lambda a: a in keep, speed=speed)


def _night(world: SimulatedWorld, devices: Sequence[PairedDevice], home: Path,
           duration_s: float, **options: Any) -> tuple[NightReport, list[NightNotice], Path]:
    now_ns = world.central_clock.now_ns()
    plan = plan_night(home / "sessions", now_ns, now_ns + round(duration_s * 1e9),
                      simulated=True)
    notices: list[NightNotice] = []
    options.setdefault("commit_interval_s", 1.0)
    report = asyncio.run(run_night_world(
        world, devices, plan, policy=POLICY, metadata={"simulated": "true"},
        protocol_options=OPTIONS, on_notice=notices.append, handle_signals=False,
        log_path=home / "night.log.jsonl", **options))
    return report, notices, plan.path


def _hook_script(tmp_path: Path) -> tuple[list[str], Path]:
    out = tmp_path / "hook.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import sys\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(sys.stdin.read().strip() + '\\n')\n"
    )
    return [sys.executable, str(script)], out


def test_live_events_equal_the_replay_and_each_reaches_the_hook(tmp_path: Path) -> None:
    duration_s = 1800.0
    world = _world(CRAMP_SEED, duration_s, [BAND_RIGHT])
    argv, hook_out = _hook_script(tmp_path)
    report, notices, path = _night(world, [_band(BAND_RIGHT, "right-calf")], tmp_path,
                                   duration_s, hook_argv=argv)
    replay = analyze_session(path).night.events
    live = [n for n in notices if n.kind == "event"]
    assert len(replay) >= 2
    assert [n.data["leg"] for n in live] == [e.leg for e in replay]
    for n, e in zip(live, replay, strict=True):
        assert abs(datetime.fromisoformat(n.data["onset"]) - e.onset).total_seconds() < 1.0
        assert n.data["event_kind"] == e.kind
    # each cramp was alarmed within seconds of its evidence, long before it was final
    alarms = [n for n in notices if n.kind == "alarm"]
    assert len(alarms) >= sum(e.kind == "cramp" for e in replay)
    # evidence complete -> alarm: at most one push interval and tick, plus the detector's own
    # wait for the other streams (ALARM_WAIT_S, 10 s)
    assert all(0.0 <= n.data["delay_s"] <= PUSH_EVERY_S + TICK_S + 10.0 + 1.0 for n in alarms)
    # the hook got every alarm, event and retraction as JSON on stdin, and its exit was logged
    hooked = [json.loads(line) for line in hook_out.read_text().splitlines()]
    told = [n for n in notices if n.kind in ("alarm", "event", "retracted")]
    assert sorted(h["kind"] for h in hooked) == sorted(n.kind for n in told)
    assert report.hook_runs == len(told)
    assert report.hook_failures == 0
    assert sum(n.kind == "hook" and n.data["exit_status"] == 0 for n in notices) == len(told)
    # the night log has them all, owner-only
    log = tmp_path / "night.log.jsonl"
    logged = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
    assert logged.count("event") == len(live)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_a_device_that_never_appears_is_named_in_the_report_log_and_summary(
    tmp_path: Path,
) -> None:
    world = _world(1, 120.0, [BAND_LEFT])
    devices = [_band(BAND_LEFT, "left-calf"), _band("C5:A3:00:00:00:99", "right-calf")]
    report, notices, path = _night(world, devices, tmp_path, 120.0)
    assert [d.address for d in report.never_connected] == ["C5:A3:00:00:00:99"]
    missing = [n.text for n in notices if n.kind == "missing"]
    assert any("right calf" in t and "not connected yet" in t for t in missing)
    assert any("right calf" in t and "never connected" in t for t in missing)
    night = analyze_session(path).night
    assert night.legs == ("left", "right")
    assert [(g.leg, g.reason) for g in night.gaps if g.leg == "right"] == [
        ("right", "never connected")]
    text = render_summary(build_morning_summary(night, entries_frame([]), tz=UTC))
    assert "right calf: never connected" in text


def test_clean_disconnect_reconnects_into_the_same_night_with_exact_gap(
    tmp_path: Path,
) -> None:
    world = _world(1, 240.0, [BAND_LEFT], speed=PACED)
    world.schedule(200.0, lambda: world.drop_link(BAND_LEFT))
    report, notices, path = _night(world, [_band(BAND_LEFT, "left-calf")], tmp_path, 240.0)
    assert report.drops == 1
    assert [n.data["status"] for n in notices if n.kind == "link"] == [
        "connected", "lost", "connected"]
    with SessionReader(path) as reader:
        start_ns = int(reader.metadata["start_ns"])
        marks = [(m.kind, (m.host_time_ns - start_ns) / 1e9) for m in reader.marks()
                 if m.device_address == BAND_LEFT]
    # exact bounds of the gap in the session: the drop at 200 s, the link back a second later
    assert [k for k, _ in marks[:3]] == ["connected", "disconnected", "connected"]
    assert marks[1][1] == pytest.approx(200.0, abs=0.3)
    assert 0.0 < marks[2][1] - marks[1][1] <= POLICY.initial_backoff_s * 1.25 + 3.0
    analysis = analyze_session(path)
    emg = analysis.timelines[(BAND_LEFT, "emg")]
    assert emg.lost_packets == 0  # nothing lost: only the time without a link is missing
    dropped = [g for g in analysis.night.gaps if g.reason == "link dropped"]
    assert len(dropped) == 1
    start_s = (dropped[0].start - analysis.night.start).total_seconds()
    assert 198.0 <= start_s <= 201.0
    assert dropped[0].duration_s <= 6.0  # the summary's whole-second gap around it


def test_silent_stall_is_caught_by_the_watchdog_and_the_gap_recorded(tmp_path: Path) -> None:
    world = _world(1, 240.0, [BAND_LEFT], speed=PACED)
    world.schedule(200.0, lambda: world.stall(BAND_LEFT, 30.0))
    report, notices, path = _night(world, [_band(BAND_LEFT, "left-calf")], tmp_path, 240.0)
    assert report.stalls == 1
    assert any(n.kind == "link" and "went silent" in n.text for n in notices)
    night = analyze_session(path).night
    (gap,) = [g for g in night.gaps if g.reason == "link dropped"]
    start_s = (gap.start - night.start).total_seconds()
    # the watchdog reconnects within stall timeout + one watchdog period + the first back-off
    assert 198.0 <= start_s <= 201.0
    assert gap.duration_s <= POLICY.stall_timeout_s + 1.0 + POLICY.initial_backoff_s * 1.25 + 6


def test_a_device_that_stops_its_stream_is_restarted(tmp_path: Path) -> None:
    spec = NightSpec(seed=2, duration_s=300.0, emg_fs_hz=EMG_FS_HZ, acc_fs_hz=50.0)
    world = device_zoo(generate_night(spec), include=lambda a: a in (ZOO_POLAR_SENSE, ZOO_BAND))
    sensor = world.peripheral(ZOO_POLAR_SENSE)
    world.schedule(100.0, sensor.interrupt)  # type: ignore[attr-defined]
    devices = [
        _band(ZOO_BAND, "left-calf"),
        PairedDevice(address=ZOO_POLAR_SENSE, name="Polar Sense", family="polar-pmd",
                     placement="right-calf", simulated=True),
    ]
    report, _, path = _night(world, devices, tmp_path, 300.0,
                             device_info={ZOO_POLAR_SENSE.lower(): {"model": "Polar Sense"}})
    assert report.restarts == 1
    assert report.drops == 0
    with SessionReader(path) as reader:
        stopped = [m for m in reader.marks() if m.kind == "device-stopped"]
    assert len(stopped) == 1
    night = analyze_session(path).night
    right = [g for g in night.gaps if g.leg == "right"]
    assert sum(g.duration_s for g in right) < 5.0  # restarted at once


def test_disk_full_is_survived_and_recording_resumes_when_space_returns(
    tmp_path: Path,
) -> None:
    world = _world(1, 600.0, [BAND_LEFT])
    writers: list[SessionWriter] = []

    def on_start(service: Any) -> None:
        writers.append(service.writer)

    def fill_disk() -> None:
        conn = writers[0]._conn
        assert conn is not None
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        writers[0].set_max_page_count(pages + 2)

    # the disk is full from 100 s; at 300 s it has room again
    world.schedule(100.0, fill_disk)
    world.schedule(300.0, lambda: writers[0].set_max_page_count(1_000_000))
    report, notices, path = _night(world, [_band(BAND_LEFT, "left-calf")], tmp_path, 600.0,
                                   on_start=on_start)
    storage = [n for n in notices if n.kind == "storage"]
    assert [n.data["status"] for n in storage] == ["failing", "resumed"]
    assert "disk full" in storage[0].text
    assert str(path) in storage[0].text
    assert "MB free" in storage[0].text
    assert report.refused_frames == 0  # held in memory until the disk had room
    analysis = analyze_session(path)
    assert analysis.clean_end
    emg = analysis.timelines[(BAND_LEFT, "emg")]
    assert emg.lost_packets == 0
    assert emg.n_samples / EMG_FS_HZ == pytest.approx(600.0, abs=2.0)


def test_hooks_are_time_limited_and_failures_logged(tmp_path: Path) -> None:
    results: list[NightNotice] = []
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    notice = NightNotice("alarm", clock.now_ns(), "test", {"leg": "left"})

    async def run(argv: list[str], timeout_s: float) -> None:
        hooks = HookRunner(argv, on_result=results.append, clock=clock, timeout_s=timeout_s)
        hooks.submit(notice)
        await hooks.drain(10.0)

    asyncio.run(run([sys.executable, "-c", "import time; time.sleep(30)"], 0.5))
    asyncio.run(run([sys.executable, "-c", ("import sys; print('no', file=sys.stderr); "
                                           "sys.exit(3)")], 5.0))
    asyncio.run(run([str(tmp_path / "missing")], 5.0))
    assert [r.data["status"] for r in results] == ["timed out", "exited", "not started"]
    assert results[1].data["exit_status"] == 3
    assert "no" in results[1].text


def test_plan_continues_an_unfinished_night_and_never_a_finished_one(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    start = ns_from_datetime(datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    until = start + 8 * 3600 * 10**9
    plan = plan_night(sessions, start, until)
    assert not plan.append
    clock = FakeClock(datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    meta = {"service": "night", "start_ns": str(start), "night_until_ns": str(until),
            "simulated": "false"}
    with SessionWriter(plan.path, clock=clock, metadata=meta):
        pass
    again = plan_night(sessions, start + 3600 * 10**9, None)
    assert again.append
    assert again.path == plan.path
    assert again.until_ns == until
    assert plan_night(sessions, until + 1, None).append is False  # the night is over
    assert plan_night(sessions, start + 10**9, None, simulated=True).append is False
    with SessionWriter(plan.path, clock=clock, append=True) as w:
        w.set_metadata("night_ended", "true")
    assert plan_night(sessions, start + 3600 * 10**9, None).append is False
