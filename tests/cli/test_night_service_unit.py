"""``crampsense service``: the shipped systemd user unit and timer, filled in, written where
systemd looks, and valid (``systemd-analyze verify`` where it is installed, a parser check
everywhere)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import run_cli


@pytest.fixture
def units(crampsense_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "systemd" / "user"


def _parse(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",),
                                          comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd is Linux only")
def test_install_writes_a_valid_user_service_and_timer(
    units: Path, crampsense_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["service", "install", "--start", "22:15", "--until", "06:45",
                              "--on-cramp", "notify-send 'leg cramp'"], capsys)
    assert code == 0, err
    assert "systemctl --user enable --now crampsense-night.timer" in out
    service, timer = units / "crampsense-night.service", units / "crampsense-night.timer"
    unit = _parse(service)
    exec_start = unit.get("Service", "ExecStart")
    assert exec_start.startswith(f"{sys.executable} -m crampsense night --until 06:45")
    assert "--on-cramp \"notify-send 'leg cramp'\"" in exec_start
    assert unit.get("Service", "Restart") == "on-failure"
    assert unit.get("Install", "WantedBy") == "default.target"
    assert f"CRAMPSENSE_HOME={crampsense_home}" in service.read_text()
    assert "@" not in exec_start  # every placeholder filled
    assert _parse(timer).get("Timer", "OnCalendar") == "*-*-* 22:15:00"
    # a second install does not silently replace the first
    code, _, err = run_cli(["service", "install"], capsys)
    assert code == 2
    assert "--force" in err
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed: parser check only")
    runtime = units.parent / "run"
    runtime.mkdir(exist_ok=True)
    done = subprocess.run(["systemd-analyze", "--user", "verify", str(service), str(timer)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 0, done.stderr
    assert "crampsense-night" not in done.stderr, done.stderr  # no warning about our units


def test_bad_times_are_one_line_and_nothing_is_written(
    units: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["service", "show", "--start", "10pm"], capsys)
    assert code == 2
    assert "HH:MM" in err
    assert not units.exists()


def test_uninstall_removes_the_units(units: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("systemd is Linux only")
    run_cli(["service", "install"], capsys)
    code, out, _ = run_cli(["service", "uninstall"], capsys)
    assert code == 0
    assert "Removed" in out
    assert not any(units.iterdir())
