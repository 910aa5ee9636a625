"""How much of a damaged night comes back: random overwrites of a recorded session.

Run: ``python benchmarks/bench_salvage.py [--session NIGHT.session] [--trials 5]``.

Without ``--session`` a 2-hour bedroom night (two calf bands and a heart-rate strap) is first
recorded with ``crampsense record --simulate --hours 2`` into a temporary home. For each
damage size (4 KB, 64 KB, 1 MB) and each seed, a copy of the session gets that many random
bytes at a random offset; it is then read page by page (``SessionReader(path,
salvage=True)``, what ``crampsense replay`` and ``crampsense repair`` do on a damaged file).

The ground truth is SQLite's own, from the intact file: each frame id is mapped to its leaf
page with the ``dbstat`` table, so "frames on hit pages" are those whose page the overwrite
touched, and the share is of the *other* frames that came back byte for byte (target: all).
"Frames recovered" also counts frames of partly hit pages that still parse; "altered" counts
recovered frames that differ from the original (an overwrite inside a payload's bytes cannot be
seen: the format has no checksums). Wall and CPU
time are medians over the trials of opening the damaged copy with salvage and reading every
frame (CPU time says what the work costs when other jobs share the machine).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crampsense.storage.session_log import SessionReader

PAGE_SIZE = 4096
SIZES = {"4 KB": 4096, "64 KB": 65536, "1 MB": 1 << 20}
Row = tuple[int, int, int, int, int, bytes]
BAND_LEFT, BAND_RIGHT, STRAP = "C5:A3:00:00:00:01", "C5:A3:00:00:00:02", "C5:A3:00:00:00:10"


def record_night(folder: Path, hours: float) -> Path:
    """Record a simulated bedroom night through the CLI into ``folder``."""
    env = {**os.environ, "CRAMPSENSE_HOME": str(folder / "home"), "NO_COLOR": "1"}
    cli = [sys.executable, "-m", "crampsense"]
    for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf"),
                               (STRAP, "chest")):
        subprocess.run([*cli, "pair", address, "--placement", placement, "--simulate"],
                       env=env, check=True, capture_output=True)
    path = folder / "night.session"
    subprocess.run([*cli, "record", "--simulate", "--hours", str(hours), "--out", str(path)],
                   env=env, check=True, capture_output=True)
    return path


def ground_truth(path: Path) -> tuple[dict[int, Row], dict[int, int]]:
    """Frames by id, and frame id -> leaf page number (from ``dbstat``), of an intact file."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    try:
        rows = {r[0]: r for r in conn.execute(
            "SELECT id, device_id, char_id, host_time_ns, host_monotonic_ns, payload "
            "FROM frames ORDER BY id")}
        leaves = conn.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'frames' AND pagetype = 'leaf' "
            "ORDER BY path").fetchall()
    finally:
        conn.close()
    pages: dict[int, int] = {}
    next_id = 1
    for pageno, ncell in leaves:
        for frame_id in range(next_id, next_id + ncell):
            pages[frame_id] = pageno
        next_id += ncell
    if sorted(rows) != sorted(pages):
        sys.exit(f"{path}: frame ids do not run 1..n; pass a cleanly closed session")
    return rows, pages


def recovered_rows(path: Path) -> dict[int, Row]:
    out: dict[int, Row] = {}
    with SessionReader(path, salvage=True) as reader:
        for b in reader.frame_batches():
            if b.frame_ids is None:
                continue
            for i, frame_id in enumerate(b.frame_ids.tolist()):
                out[frame_id] = (frame_id, int(b.device_ids[i]), int(b.char_ids[i]),
                                 int(b.host_time_ns[i]), int(b.host_monotonic_ns[i]),
                                 b.payloads[i])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", type=Path, help="a cleanly closed session to damage")
    parser.add_argument("--hours", type=float, default=2.0, help="length of the recorded night")
    parser.add_argument("--trials", type=int, default=5, help="seeds per damage size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = args.session or record_night(tmp, args.hours)
        rows, pages = ground_truth(source)
        size = source.stat().st_size
        print(f"session: {source.name}, {size / 1e6:.1f} MB, {len(rows):,} frames, "
              f"{size // PAGE_SIZE:,} pages")
        print("| damage | trials | frames total | frames on hit pages | frames recovered "
              "| altered | un-hit frames recovered | wall time | CPU time |")
        print("|---|---|---|---|---|---|---|---|---|")
        for label, n_bytes in SIZES.items():
            on_hit = recovered_total = unhit_total = unhit_back = altered = 0
            walls, cpus = [], []
            for seed in range(args.trials):
                rng = random.Random(seed)
                copy = tmp / "damaged.session"
                shutil.copy(source, copy)
                offset = rng.randrange(0, size - n_bytes)
                data = bytearray(copy.read_bytes())
                data[offset : offset + n_bytes] = rng.randbytes(n_bytes)
                copy.write_bytes(bytes(data))
                hit = set(range(offset // PAGE_SIZE + 1, (offset + n_bytes - 1) // PAGE_SIZE + 2))
                unhit = [i for i, page in pages.items() if page not in hit]
                t0, c0 = time.perf_counter(), time.process_time()
                back = recovered_rows(copy)
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                on_hit += len(rows) - len(unhit)
                recovered_total += len(back)
                unhit_total += len(unhit)
                unhit_back += sum(1 for i in unhit if back.get(i) == rows[i])
                altered += sum(1 for i, row in back.items() if rows.get(i) != row)
                copy.unlink()
            print(f"| {label} | {args.trials} | {len(rows):,} | {on_hit / args.trials:,.1f} "
                  f"(mean) | {recovered_total / args.trials:,.1f} (mean) | {altered} | "
                  f"{unhit_back:,} of {unhit_total:,} ({100 * unhit_back / unhit_total:.2f} %) | "
                  f"{statistics.median(walls):.1f} s | {statistics.median(cpus):.1f} s |")


if __name__ == "__main__":
    main()
