"""``crampsense night`` from the command line: bad input as one line, a device that never
appears, SIGTERM with a clean exit and a restart that continues the same night, two services
refused, and (slow) the whole simulated night ending with the replay's cramps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clihelp import one_error_line, run_cli
from crampsense.storage.paired import PairedDevice, save_paired
from crampsense.storage.session_log import SessionReader
from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT

EMG_FS_HZ = 500


@pytest.fixture
def home(crampsense_home: Path) -> Path:
    (crampsense_home / "config.toml").write_text(
        f"[band]\nemg_fs_hz = {EMG_FS_HZ}\n[recording]\nscan_timeout_s = 0.3\n")
    return crampsense_home


def _pair(home: Path, *extra: PairedDevice) -> None:
    bands = [PairedDevice(address=a, name=f"band {p}", family="crampsense-band", placement=p,
                          simulated=True)
             for a, p in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf"))]
    save_paired(home, [*bands, *extra])




@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--until", "07:00", "--hours", "2"], "not both"),
        (["--until", "7 am"], "HH:MM"),
        (["--on-cramp", "/no/such/program --x"], "not a program"),
        (["--on-cramp", "'unclosed"], "quotes"),
    ],
)
def test_bad_options_are_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    _pair(home)
    code, _, err = run_cli(["night", "--simulate", *args], capsys)
    assert code == 2
    assert needle in one_error_line(err)
    assert not (home / "sessions").exists()  # nothing started, nothing stored


def test_nothing_paired_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["night", "--simulate"], capsys)
    assert code == 1  # as record: a missing device, not a bad command line
    assert "pair" in one_error_line(err)


def test_a_paired_device_that_never_appears_is_named(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = PairedDevice(address="C5:A3:00:00:00:99", name="spare band", family="crampsense-band",
                         placement="right-calf", simulated=True)
    save_paired(home, [PairedDevice(address=BAND_LEFT, name="band L", family="crampsense-band",
                                    placement="left-calf", simulated=True), ghost])
    code, out, err = run_cli(["night", "--simulate", "--hours", "0.1"], capsys)
    assert code == 0, err
    assert "right calf (spare band, C5:A3:00:00:00:99): never connected" in out
    assert "right calf: never connected" in out  # in the morning summary too
    assert "Cramp log" in out or "No cramps" in out


def _start(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CRAMPSENSE_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "crampsense", "night", "--simulate", "--hours", "8",
         "--no-summary", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_session(home: Path, proc: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 60
    sessions = home / "sessions"
    while time.monotonic() < deadline:
        found = sorted(sessions.glob("*.session")) if sessions.is_dir() else []
        if found:
            return found[-1]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("no session file appeared")


def test_sigterm_ends_cleanly_and_a_restart_continues_the_same_night(home: Path) -> None:
    _pair(home)
    proc = _start(home, "--speed", "100")
    path = _wait_for_session(home, proc)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t0 < 10, "SIGTERM must end the night within seconds"
    assert proc.returncode == 0, err.decode()
    assert b"Night recorded:" in out
    with SessionReader(path) as reader:
        first = reader.frame_count()
        assert reader.marks()[-1].kind == "stopped"  # nothing to recover at the next start
    assert first > 100
    # the restart (systemctl restart, a crash) continues the same night in a new segment
    again = _start(home, "--speed", "100")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the new segment is open: signals are handled
        with SessionReader(path) as reader:
            if len(reader.segments()) == 2:
                break
        assert again.poll() is None, again.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    again.send_signal(signal.SIGTERM)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()
    assert b"Continuing tonight's session" in out
    assert sorted((home / "sessions").glob("*.session")) == [path]
    with SessionReader(path) as reader:
        assert len(reader.segments()) == 2
        assert reader.frame_count() > first
        ends = [m.host_time_ns for m in reader.marks() if m.kind in ("started", "stopped")]
    assert ends == sorted(ends)  # the second segment continues where the first ended


@pytest.mark.slow
def test_a_second_service_in_the_same_home_is_refused(home: Path) -> None:
    _pair(home)
    first = _start(home, "--speed", "20")
    try:
        _wait_for_session(home, first)
        env = {**os.environ, "CRAMPSENSE_HOME": str(home), "NO_COLOR": "1"}
        second = subprocess.run(
            [sys.executable, "-m", "crampsense", "night", "--simulate", "--hours", "1"],
            env=env, capture_output=True, timeout=60, check=False)
        assert second.returncode == 1
        line = one_error_line(second.stderr.decode())
        assert "already running" in line
        assert f"pid {first.pid}" in line
        assert "crampsense night" in line
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)


@pytest.mark.slow
def test_a_simulated_night_ends_with_the_replays_cramps_and_hooks_each_event(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pair(home)
    hook_out = tmp_path / "hook.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys\nopen({str(hook_out)!r}, 'a').write(sys.stdin.read())\n")
    code, out, err = run_cli(
        ["night", "--simulate", "--hours", "1", "--seed", "7",
         "--on-cramp", f"{sys.executable} {script}"], capsys)
    assert code == 0, err
    assert "Cramp log" in out
    session = next((home / "sessions").glob("*.session"))
    code, replay_out, err = run_cli(["replay", "--json", str(session)], capsys)
    assert code == 0, err
    replayed = json.loads(replay_out)["events"]
    hooked = [json.loads(line) for line in hook_out.read_text().splitlines()]
    live = [h for h in hooked if h["kind"] == "event"]
    assert len(live) == len(replayed)
    for h, e in zip(sorted(live, key=lambda h: h["onset"]), replayed, strict=True):
        assert h["leg"] == e["leg"]
        assert abs(time_of(h["onset"]) - time_of(e["onset"])) < 1.0
    # the summary printed at the end lists exactly the replay's cramp log
    for e in replayed:
        assert f"{e['leg']} calf" in out


def time_of(text: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text).timestamp()


def test_the_live_status_renders_devices_links_battery_coverage_and_cramps() -> None:
    from datetime import UTC  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415

    from crampsense.cli.night import status_line, status_table  # noqa: PLC0415
    from crampsense.models import DeviceInfo  # noqa: PLC0415
    from crampsense.pipeline.night import DeviceStatus, NightStatus  # noqa: PLC0415

    start = 1_790_000_000 * 10**9
    devices = (
        DeviceStatus(DeviceInfo(BAND_LEFT, "band L", "crampsense-band", "left-calf"),
                     "streaming", 87, 21.4, 1000, 1, 0, 0, 0, ""),
        DeviceStatus(DeviceInfo(BAND_RIGHT, "band R", "crampsense-band", "right-calf"),
                     "never connected", None, 0.0, 0, 0, 0, 0, 12, "no advertisement"),
    )
    status = NightStatus(now_ns=start + 3600 * 10**9, start_ns=start, until_ns=None,
                         devices=devices, coverage_s={"left": 3240.0, "right": 0.0}, alarms=2,
                         events=1, cramps=1, storage_problem=None, frames_written=12345,
                         recent=())
    console = Console(width=100, no_color=True, record=True)
    console.print(status_table(status, UTC))
    text = console.export_text()
    assert "band L" in text
    assert "streaming" in text
    assert "87 %" in text
    assert "never connected" in text
    assert "left 90%, right 0%" in text
    assert "2 alarm(s), 1 cramp(s)" in text
    line = status_line(status, UTC)
    assert "right-calf never connected" in line
    assert "12,345 notifications saved" in line


def test_record_names_a_paired_device_that_never_connected(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = PairedDevice(address="C5:A3:00:00:00:99", name="spare band", family="crampsense-band",
                         placement="right-calf", simulated=True)
    save_paired(home, [PairedDevice(address=BAND_LEFT, name="band L", family="crampsense-band",
                                    placement="left-calf", simulated=True), ghost])
    code, out, err = run_cli(["record", "--simulate", "--hours", "0.05"], capsys)
    assert code == 0, err
    assert "right calf (spare band, C5:A3:00:00:00:99): never connected" in out
    session = next((home / "sessions").glob("*.session"))
    code, out, err = run_cli(["summary", "--session", str(session)], capsys)
    assert code == 0, err
    assert "right calf: never connected" in out  # the leg is named, not left out
