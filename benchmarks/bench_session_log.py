"""Throughput of the session log: append (with 1 s commits) and read-back.

Run: ``python benchmarks/bench_session_log.py [--frames 600000] [--payload-bytes 240]``.
Prints frames/s for appending (real SystemClock, commit every second, WAL + synchronous=FULL)
and for streaming every frame back with :meth:`SessionReader.frames`; beside it, in the same
run, the log a user would write by hand: one CSV line per notification (time, address, hex
payload) with flush + fsync once a second, read back with the csv module.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from crampsense.clock import SystemClock
from crampsense.models import DeviceInfo, Frame
from crampsense.storage.session_log import SessionReader, SessionWriter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=600_000)
    parser.add_argument("--payload-bytes", type=int, default=240)
    parser.add_argument("--devices", type=int, default=2)
    args = parser.parse_args()

    clock = SystemClock()
    payload = os.urandom(args.payload_bytes)
    addresses = [f"AA:BB:CC:DD:EE:{i:02X}" for i in range(args.devices)]
    uuid = "0000fe40-cc7a-482a-984a-7f2ed5b3e58f"
    frames = [
        Frame(addresses[i % args.devices], uuid, payload, 1_700_000_000_000_000_000 + i, i)
        for i in range(args.frames)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.session"
        t0 = time.perf_counter()
        with SessionWriter(path, clock=clock, commit_interval_s=1.0) as writer:
            for address in addresses:
                writer.add_device(DeviceInfo(address, "bench", "crampsense-band", "left-calf"))
            for frame in frames:
                writer.append(frame)
        t_write = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6

        t0 = time.perf_counter()
        with SessionReader(path) as reader:
            n = sum(1 for _ in reader.frames())
        t_read = time.perf_counter() - t0

        csv_path = Path(tmp) / "bench.csv"
        t0 = time.perf_counter()
        last_sync = time.monotonic()
        with csv_path.open("w", newline="") as fh:
            out = csv.writer(fh)
            for f in frames:
                out.writerow((f.host_time_ns, f.device_address, f.characteristic_uuid,
                              f.payload.hex()))
                if time.monotonic() - last_sync >= 1.0:
                    fh.flush()
                    os.fsync(fh.fileno())
                    last_sync = time.monotonic()
            fh.flush()
            os.fsync(fh.fileno())
        t_csv_write = time.perf_counter() - t0
        csv_mb = csv_path.stat().st_size / 1e6
        t0 = time.perf_counter()
        with csv_path.open(newline="") as fh:
            n_csv = sum(1 for row in csv.reader(fh) if bytes.fromhex(row[3]))
        t_csv_read = time.perf_counter() - t0

    print(f"frames: {args.frames}, payload {args.payload_bytes} B")
    print(f"session log (SQLite WAL, synchronous=FULL, 1 s commits), file {size_mb:.0f} MB")
    print(f"  append+commit: {args.frames / t_write:,.0f} frames/s ({t_write:.2f} s)")
    print(f"  read back:     {n / t_read:,.0f} frames/s ({t_read:.2f} s)")
    print(f"hand-written CSV log (hex payload, fsync each second), file {csv_mb:.0f} MB")
    print(f"  append+fsync:  {args.frames / t_csv_write:,.0f} frames/s ({t_csv_write:.2f} s)")
    print(f"  read back:     {n_csv / t_csv_read:,.0f} frames/s ({t_csv_read:.2f} s)")


if __name__ == "__main__":
    main()
