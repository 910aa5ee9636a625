"""Helper process for ``test_storage_kill.py``: record counter frames until killed.

Usage: ``python tests/storage/_kill_writer.py SESSION PROGRESS COMMIT_INTERVAL_S``

Opens ``SESSION`` with ``append=True`` (creating it if missing), continues the counter from the
number of frames already committed, prints ``ready <first counter>`` on stdout, then appends a
frame about every millisecond with the real :class:`~crampsense.clock.SystemClock`. The payload
starts with the counter (8 bytes, big-endian). After each append it writes
``<counter> <host_monotonic_ns>`` as one line to ``PROGRESS`` (unbuffered ``os.write``), so that
the test knows which frames were produced, and when, even after ``kill -9``.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from pathlib import Path

from crampsense.clock import SystemClock
from crampsense.models import DeviceInfo, Frame
from crampsense.storage.session_log import SessionWriter

ADDRESS = "AA:00:00:00:00:01"
UUID = "0000fe41-cc7a-482a-984a-7f2ed5b3e58f"
#: Pause between frames (s): ~1000 frames/s, 50x a real wearable, so every commit holds many.
PERIOD_S = 0.001


def main() -> None:
    session, progress, interval = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    clock = SystemClock()
    writer = SessionWriter(session, clock=clock, commit_interval_s=interval, append=True)
    if writer.frames_written == 0:
        writer.add_device(DeviceInfo(ADDRESS, "kill-test", "crampsense-band", "left-calf"))
    i = writer.frames_written
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    sys.stdout.write(f"ready {i}\n")
    sys.stdout.flush()
    padding = bytes(232)
    while True:
        mono = clock.monotonic_ns()
        writer.append(Frame(ADDRESS, UUID, struct.pack(">Q", i) + padding, clock.now_ns(), mono))
        os.write(fd, f"{i} {mono}\n".encode())
        i += 1
        time.sleep(PERIOD_S)


if __name__ == "__main__":
    main()
