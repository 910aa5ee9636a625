"""kill -9 of a recording process at random moments, then restart (RELIABILITY.md test 1).

A helper process (``tests/storage/_kill_writer.py``) appends counter frames with the real clock and
logs every frame it produced. After each ``SIGKILL`` the session must open, hold a contiguous
prefix ``0..k-1`` of the counters (no holes, no duplicates), and every frame it lost must have
been produced within one commit interval (plus a little slack for the commit itself).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from crampsense.storage.session_log import SessionReader

WRITER = Path(__file__).with_name("_kill_writer.py")
#: Allowed span of lost frames beyond the commit interval (s): one commit (a few ms of fsync)
#: plus scheduling delays on a busy 2-core machine.
SLACK_S = 0.3
#: Seconds to wait for the helper to start (imports polars through the package).
START_TIMEOUT_S = 60.0


def spawn(session: Path, progress: Path, interval_s: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(session), str(progress), str(interval_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")


def produced_frames(progress: Path) -> dict[int, int]:
    """Counter -> monotonic ns of every frame the helper logged (complete lines only)."""
    if not progress.exists():
        return {}
    out: dict[int, int] = {}
    for line in progress.read_text().split("\n")[:-1]:
        number, mono = line.split()
        out[int(number)] = int(mono)
    return out


def check_after_kill(session: Path, progress: Path, interval_s: float, floor: int) -> int:
    """Verify the session after a kill; return the number of committed frames."""
    with SessionReader(session) as reader:
        frames = list(reader.frames())
        assert reader.frame_count() == len(frames)
    counters = [int(struct.unpack(">Q", f.payload[:8])[0]) for f in frames]
    k = len(counters)
    assert counters == list(range(k)), "committed frames must be a contiguous prefix"
    assert k >= floor, "frames committed by an earlier run were lost"
    produced = produced_frames(progress)
    for frame, number in zip(frames[floor:], counters[floor:], strict=True):
        if number in produced:
            assert frame.host_monotonic_ns == produced[number]
    lost = sorted(n for n in produced if n >= k)
    if lost:
        assert lost == list(range(k, lost[-1] + 1))
        span_s = (produced[lost[-1]] - produced[lost[0]]) / 1e9
        assert span_s <= interval_s + SLACK_S, (
            f"lost {len(lost)} frames spanning {span_s:.3f} s (interval {interval_s} s)"
        )
    return k


def kill_loop(tmp_path: Path, kills: int, seed: int, *, early_kills: bool) -> None:
    rng = np.random.default_rng(seed)
    session = tmp_path / "night.session"
    committed = 0
    total_commits_seen = 0
    for run in range(kills):
        interval_s = float(rng.choice([0.2, 0.5, 1.0])) if early_kills else 0.25
        progress = tmp_path / f"progress-{run}.txt"
        proc = spawn(session, progress, interval_s)
        try:
            if early_kills and rng.random() < 0.2:
                time.sleep(float(rng.uniform(0.0, 0.6)))  # maybe during start-up
            else:
                assert proc.stdout is not None
                line = proc.stdout.readline()
                assert line.startswith(b"ready "), line
                assert int(line.split()[1]) == committed
                time.sleep(float(rng.uniform(0.05, 1.5 if early_kills else 0.9)))
        finally:
            kill(proc)
        if not session.exists():  # killed before the file was complete: nothing to check
            assert committed == 0
            continue
        k = check_after_kill(session, progress, interval_s, committed)
        total_commits_seen += k > committed
        committed = k
    assert committed > 0
    assert total_commits_seen >= kills // 3
    with SessionReader(session) as reader:
        segments = reader.segments()
        assert len(segments) >= 1
        assert [s.first_frame_id for s in segments] == sorted(s.first_frame_id for s in segments)


def test_kill_minus_nine_loses_at_most_one_commit_interval(tmp_path: Path) -> None:
    kill_loop(tmp_path, kills=5, seed=20240301, early_kills=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_minus_nine_fifty_times(tmp_path: Path) -> None:
    kill_loop(tmp_path, kills=60, seed=7, early_kills=True)
