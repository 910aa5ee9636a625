"""Replay speed and memory: per-frame decode versus batch decode of a recorded night.

Run: ``python benchmarks/bench_replay.py [SESSION] [--zoo ZOO_SESSION] [--repeat 3]
[--no-analyze]``.

Without ``SESSION`` it uses the demo night under ``--home`` (default
``$TMPDIR/crampsense-bench-replay``), recording it first if it is not there: 8 h, two bands at
500 Hz EMG + 50 Hz IMU and a heart-rate strap, ~605,000 notifications, ~165 MB, made with
``CRAMPSENSE_HOME=<home> python -m crampsense demo`` (about 45 s, once).

Each path runs in its own child process, so that its peak RSS (``resource.getrusage``) is its
own: ``decode_session(reader, batch=False)`` (one ``Frame``, ``decode`` and
``TimelineBuilder.add`` per notification) and ``decode_session(reader)`` (column batches,
vectorised ``decode_batch``, ``TimelineBuilder.add_many``). Printed per path: decode time
(best of ``--repeat``), frames/s, peak RSS, and the full ``analyze_session`` time (decode plus
detection, what ``crampsense replay`` spends) with the peak RSS of the whole replay. Both
paths' results are hashed (every timeline's arrays and fields, frame counts, error messages)
and must agree.

``--zoo`` also replays a session of every device family (batch path only: the per-frame path
takes minutes there), e.g. an 8-h night recorded with ``CRAMPSENSE_HOME=/tmp/zoohome
crampsense record --simulate --world zoo --hours 8 --out /tmp/zoo.session`` after pairing the
zoo's devices (4.07 M notifications, 388 MB).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _digest(result: tuple[dict[tuple[str, str], object], int, int, list[str]]) -> str:
    timelines, n, bad, errors = result
    h = hashlib.sha256(repr((n, bad, errors, list(timelines))).encode())
    for tl in timelines.values():
        for f in dataclasses.fields(tl):  # type: ignore[arg-type]
            value = getattr(tl, f.name)
            if isinstance(value, np.ndarray):
                h.update(np.ascontiguousarray(value).tobytes())
            else:
                h.update(repr(value).encode())
    return h.hexdigest()


def _child(mode: str, session: Path, repeat: int, analyze: bool) -> None:
    from crampsense.pipeline import replay as session_replay  # noqa: PLC0415
    from crampsense.storage.session_log import SessionReader  # noqa: PLC0415

    batch = mode == "batch"
    best = float("inf")
    digest = ""
    n = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with SessionReader(session) as reader:
            result = session_replay.decode_session(reader, batch=batch)
        best = min(best, time.perf_counter() - t0)
        n = result[1]
        digest = _digest(result)  # type: ignore[arg-type]
        del result
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    analyze_s = analyze_rss_mb = None
    if analyze:
        reference = session_replay.decode_session

        def decode(reader: SessionReader, *, progress: object = None) -> object:
            del progress
            return reference(reader, batch=batch)

        session_replay.decode_session = decode  # type: ignore[assignment]
        t0 = time.perf_counter()
        session_replay.analyze_session(session)
        analyze_s = time.perf_counter() - t0
        analyze_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"decode_s": best, "frames": n, "rss_mb": rss_mb, "digest": digest,
                      "analyze_s": analyze_s, "analyze_rss_mb": analyze_rss_mb}))


def _demo_session(home: Path) -> Path:
    """The demo night's session under ``home``, recorded first if it is not there."""
    found = sorted((home / "demo" / "sessions").glob("*.session"))
    if not found:
        print(f"recording the demo night into {home} (about 45 s) ...", flush=True)
        env = {**os.environ, "CRAMPSENSE_HOME": str(home)}
        subprocess.run([sys.executable, "-m", "crampsense", "demo"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        found = sorted((home / "demo" / "sessions").glob("*.session"))
    return found[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("session", nargs="?", type=Path, help="a recorded .session file")
    parser.add_argument("--zoo", type=Path, help="also replay this session (batch path only)")
    parser.add_argument("--home", type=Path,
                        default=Path(tempfile.gettempdir()) / "crampsense-bench-replay",
                        help="where the demo night is recorded when no SESSION is given")
    parser.add_argument("--repeat", type=int, default=1, help="decode runs per path (best)")
    parser.add_argument("--no-analyze", action="store_true", help="skip analyze_session")
    parser.add_argument("--child", choices=["per-frame", "batch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.session, args.repeat, not args.no_analyze)
        return

    session = args.session or _demo_session(args.home)
    results = _run(session, ("per-frame", "batch"), args)
    speedup = results["per-frame"]["decode_s"] / results["batch"]["decode_s"]
    same = results["per-frame"]["digest"] == results["batch"]["digest"]
    print(f"speed-up {speedup:.1f}x; results identical: {same}")
    if args.zoo is not None:
        _run(args.zoo, ("batch",), args)
    if not same:
        sys.exit("batch and per-frame replay differ")


def _run(
    session: Path, modes: tuple[str, ...], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Run each mode in a child process over ``session``; print and return the results."""
    results = {}
    for mode in modes:
        cmd = [sys.executable, __file__, str(session), "--child", mode,
               "--repeat", str(args.repeat)]
        if args.no_analyze:
            cmd.append("--no-analyze")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    frames = results["batch"]["frames"]
    size_mb = session.stat().st_size / 1e6
    print(f"session: {session} ({size_mb:.0f} MB, {frames:,} frames)")
    for mode, r in results.items():
        line = (f"{mode:>9}: decode {r['decode_s']:6.2f} s  {r['frames'] / r['decode_s']:>10,.0f}"
                f" frames/s  peak RSS {r['rss_mb']:5.0f} MB")
        if r["analyze_s"] is not None:
            line += (f"  analyze_session {r['analyze_s']:6.2f} s"
                     f" (peak RSS of decode + analyze {r['analyze_rss_mb']:5.0f} MB)")
        print(line)
    return results


if __name__ == "__main__":
    main()
