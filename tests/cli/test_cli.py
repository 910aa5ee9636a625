"""The command line: help, bad input as one line with a non-zero exit, end to end on simulators."""

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
from crampsense.cli.main import main
from crampsense.cli.utils import EXIT_ERROR, EXIT_USAGE
from crampsense.errors import ForeignFileError
from crampsense.storage.session_log import SessionReader
from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT
from firmware_sims.night import NightSpec, generate_night

EMG_FS_HZ = 500
NIGHT_S = 900.0




@pytest.fixture
def home(crampsense_home: Path) -> Path:
    (crampsense_home / "config.toml").write_text(f"[band]\nemg_fs_hz = {EMG_FS_HZ}\n")
    return crampsense_home




def _seed_with_cramps() -> int:
    for seed in range(1, 200):
        spec = NightSpec(seed=seed, duration_s=NIGHT_S, emg_fs_hz=EMG_FS_HZ)
        if generate_night(spec).cramps().height >= 1:
            return seed
    raise AssertionError("no seed with a cramp in 200 tries")


def test_help_lists_every_command(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("demo", "scan", "pair", "devices", "record", "replay", "summary", "log"):
        assert command in out
    assert "not a medical device" in out


def test_unknown_config_key_is_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "config.toml").write_text("[band]\nemg_rate = 500\n")
    code, _, err = run_cli(["devices"], capsys)
    assert code == EXIT_ERROR
    line = one_error_line(err)
    assert "band.emg_rate" in line
    assert "band.emg_fs_hz" in line  # names the fix


def test_unknown_device_address_changes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_cli(["pair", BAND_LEFT, "--placement", "left-calf", "--simulate"], capsys)
    assert code == 0
    before = (home / "devices.json").read_bytes()
    code, _, err = run_cli(
        ["pair", "00:11:22:33:44:55", "--placement", "right-calf", "--simulate"], capsys
    )
    assert code == EXIT_ERROR
    assert "00:11:22:33:44:55" in one_error_line(err)
    assert (home / "devices.json").read_bytes() == before


def test_bad_placement_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["pair", BAND_LEFT, "--placement", "left-knee"], capsys)
    assert code == EXIT_USAGE
    assert "left-knee" in one_error_line(err)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"03:12 left calf cramp\n", "not a crampsense session"),
        (b"", "empty"),
        (b"SQLite format 3\x00" + b"\x00" * 84, "session"),
    ],
)
def test_foreign_session_file_is_one_line_and_untouched(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, fragment: str
) -> None:
    path = tmp_path / "night.session"
    path.write_bytes(content)
    code, _, err = run_cli(["replay", str(path)], capsys)
    assert code == EXIT_ERROR
    line = one_error_line(err)
    assert str(path) in line
    assert fragment.lower() in line.lower()
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "night.session"]


def test_missing_session_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["replay", str(home / "nope.session")], capsys)
    assert code == EXIT_ERROR
    assert "nope.session" in one_error_line(err)


def test_debug_shows_the_real_exception(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "x.session"
    path.write_text("hello")
    with pytest.raises(ForeignFileError):
        main(["--debug", "replay", str(path)])


def test_bad_log_entry_writes_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["log", "water", "500", "ml"], capsys)
    assert code == 0
    assert "water 500 ml" in out
    before = (home / "journal.txt").read_bytes()
    code, _, err = run_cli(["log", "water", "5", "lbs"], capsys)
    assert code == EXIT_ERROR
    line = one_error_line(err)
    assert "lbs" in line
    assert "ml" in line  # says what is allowed
    assert (home / "journal.txt").read_bytes() == before
    assert (home / "journal.txt").stat().st_mode & 0o077 == 0


def test_record_without_paired_devices_is_an_error_not_a_usage_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the README: 1 for bad input or state, 2 only for command-line usage (issue 10, item 10)
    code, _, err = run_cli(["record", "--simulate", "--hours", "0.1"], capsys)
    assert code == EXIT_ERROR
    assert "pair" in one_error_line(err)


def test_summary_without_sessions(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["summary"], capsys)
    assert code == EXIT_ERROR
    assert "crampsense record" in one_error_line(err)


def test_forgetting_an_unknown_device_is_an_error(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["devices", "--forget", "AA:BB:CC:DD:EE:FF"], capsys)
    assert code == EXIT_ERROR
    assert "crampsense devices" in one_error_line(err)


def test_pair_record_replay_summary_end_to_end(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = _seed_with_cramps()
    truth = generate_night(
        NightSpec(seed=seed, duration_s=NIGHT_S, emg_fs_hz=EMG_FS_HZ)
    ).cramps()
    for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf")):
        code, _, err = run_cli(["pair", address, "--placement", placement, "--simulate"], capsys)
        assert code == 0, err
    code, out, err = run_cli(["devices"], capsys)
    assert code == 0
    assert "left-calf" in out
    assert "right-calf" in out

    code, out, err = run_cli(
        ["record", "--simulate", "--hours", str(NIGHT_S / 3600), "--seed", str(seed)], capsys
    )
    assert code == 0, err
    sessions = sorted((home / "sessions").glob("*.session"))
    assert len(sessions) == 1
    assert sessions[0].stat().st_mode & 0o077 == 0

    code, out, err = run_cli(["replay", "--json", str(sessions[0])], capsys)
    assert code == 0, err
    doc = json.loads(out)
    events = [e for e in doc["events"] if e["kind"] == "cramp"]
    assert len(events) == truth.height
    start = NightSpec(seed=seed).start.timestamp()
    for event, row in zip(
        sorted(events, key=lambda e: e["onset"]), truth.iter_rows(named=True), strict=True
    ):
        assert event["leg"] == row["leg"]
        onset_s = _iso_seconds(event["onset"]) - start
        assert onset_s == pytest.approx(row["onset_s"], abs=5.0)
    assert doc["lost_packets"] == 0
    assert set(doc["coverage"]) == {"left", "right"}

    code, out, err = run_cli(["summary"], capsys)
    assert code == 0, err
    assert "not a medical device" in out
    assert "calf" in out
    # the bands' accelerometers feed the sleep section (a 15-min night has no sleep period)
    assert "No sleep period found in the leg accelerometer" in " ".join(out.split())
    assert "\x1b[" not in out  # NO_COLOR / piped: no escape codes
    nights = list((home / "nights").rglob("events.parquet"))
    assert nights, "the night's events are stored as a Parquet table"


def _iso_seconds(text: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text).timestamp()


def _start_recording(home: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Pair the left band and start ``record --simulate`` at 100x real time in a subprocess;
    returns once its session file exists."""
    env = {**os.environ, "CRAMPSENSE_HOME": str(home), "NO_COLOR": "1"}
    subprocess.run(
        [sys.executable, "-m", "crampsense", "pair", BAND_LEFT, "--placement", "left-calf",
         "--simulate"], env=env, check=True, capture_output=True, timeout=60,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "crampsense", "record", "--simulate", "--hours", "8",
         "--speed", "100"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    sessions = home / "sessions"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(sessions.glob("*.session")):
        time.sleep(0.1)
    return proc, next(sessions.glob("*.session"))


def test_sigterm_stops_recording_cleanly(home: Path) -> None:
    proc, path = _start_recording(home)
    time.sleep(1.5)  # a second and a half of real time: ~150 simulated seconds
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10, "SIGTERM must end the recording within seconds"
    assert proc.returncode == 0, err.decode()
    with SessionReader(path) as reader:
        kinds = [m.kind for m in reader.marks()]
        frames = reader.frame_count()
    assert frames > 100
    assert kinds[-1] == "stopped"


def test_kill_9_mid_night_leaves_a_replayable_session(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, path = _start_recording(home)
    time.sleep(2.0)
    proc.kill()
    proc.communicate(timeout=10)
    code, out, err = run_cli(["replay", "--json", str(path)], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["frames"] > 100
    assert doc["undecodable_frames"] == 0
    assert doc["clean_end"] is False  # the replay says the recording was cut short
