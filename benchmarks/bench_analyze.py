"""Speed of ``crampsense analyze`` on an 8-h EDF night, and of detection beside NeuroKit2.

Run: ``python benchmarks/bench_analyze.py [--hours 8] [--repeat 5] [--seed 7] [--nk-seconds 60]``

1. Builds (once, cached in ``--dir``) an EDF+ of a synthetic night (``firmware_sims.night``,
   seed < 1000): one calf EMG channel per leg at 1 kHz and one 3-axis accelerometer per leg
   at 50 Hz (8 signals, 133 MB for 8 h).
2. Runs ``python -m crampsense analyze FILE --json`` as a child process ``--repeat`` times and
   reports wall time (start-up, imports and file reading included), the child's CPU time
   (user + sys) and peak RSS (``os.wait4``), best and median. Targets: <= 3 s and <= 600 MB.
3. Times ``detect_cramps`` alone on one EMG channel-night (x real time; target >= 20 000x).
4. Runs NeuroKit2's ``nk.emg_process`` on ``--nk-seconds`` of the same EMG and extrapolates
   its per-sample cost to the channel-night (skipped when NeuroKit2 is not installed).

Other work may share the machine: repeat and read the best as the machine's capability and
the median as what to expect; the CPU time is the figure least moved by other work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from crampsense.detection import LegSignals, detect_cramps
from crampsense.storage.edf import EdfSignal, read_edf_header, read_edf_signals, write_edf

EMG_FS_HZ = 1000.0
ACC_FS_HZ = 50.0
WALL_TARGET_S = 3.0
RSS_TARGET_MB = 600.0
SPEED_TARGET_X = 20_000.0


def build_night(path: Path, *, seed: int, hours: float) -> None:
    from firmware_sims.night import NightSpec, generate_night  # noqa: PLC0415

    night = generate_night(NightSpec(seed=seed, duration_s=hours * 3600.0,
                                     emg_fs_hz=EMG_FS_HZ, acc_fs_hz=ACC_FS_HZ))
    sigs = []
    for leg in ("left", "right"):
        emg, acc, _ = night.render(leg)
        side = leg[0].upper()
        sigs.append(EdfSignal(f"EMG {side} gastroc", emg[0], EMG_FS_HZ, "uV", -10000, 10000))
        del emg
        sigs += [EdfSignal(f"ACC {side} {a}", acc[k] / 1000.0, ACC_FS_HZ, "g", -8, 8)
                 for k, a in enumerate("XYZ")]
    write_edf(path, sigs, start=night.spec.start)
    print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB; truth: "
          f"{night.cramps().height} cramps)")


def run_child(path: Path, home: Path) -> tuple[float, float, int, float]:
    """(wall s, peak RSS MB, events, CPU s) of one ``crampsense analyze --json`` child.

    Called before this process holds anything large: Linux carries a process's peak RSS
    across fork and exec, so a child forked from a big parent would report the parent's.
    """
    env = {**os.environ, "CRAMPSENSE_HOME": str(home), "NO_COLOR": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "crampsense", "analyze", str(path),
                                 "--json"], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"analyze failed: {err.read().decode()}")
        n_events = len(json.loads(out.read())["events"])
    return wall, usage.ru_maxrss / 1024.0, n_events, usage.ru_utime + usage.ru_stime


def import_time(home: Path, code: str) -> float:
    env = {**os.environ, "CRAMPSENSE_HOME": str(home)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


#: Everything ``analyze`` of an EDF needs, without the other commands main.py registers.
OWN_IMPORTS = ("import click, rich.console, crampsense.config, crampsense.cli.analyze, "
               "crampsense.detection, crampsense.storage.edf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=1)  # 3 cramps and every look-alike
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--nk-seconds", type=float, default=60.0)
    parser.add_argument("--dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "crampsense-bench")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = args.dir / f"night-seed{args.seed}-{args.hours:g}h.edf"
    if args.build_only:
        build_night(path, seed=args.seed, hours=args.hours)
        return
    if not path.exists():  # in a child, so this process stays small (see run_child)
        subprocess.run([sys.executable, __file__, "--build-only", "--seed", str(args.seed),
                        "--hours", str(args.hours), "--dir", str(args.dir)], check=True)
    home = args.dir / "home"
    home.mkdir(exist_ok=True, mode=0o700)

    runs = [run_child(path, home) for _ in range(args.repeat)]
    walls = [r[0] for r in runs]
    rss = [r[1] for r in runs]
    cpu = [r[3] for r in runs]
    startup = [import_time(home, "import crampsense.cli.main") for _ in range(3)]
    own = [import_time(home, OWN_IMPORTS) for _ in range(3)]

    header = read_edf_header(path)
    t0 = time.perf_counter()
    emg = read_edf_signals(header, [0])[0]
    read_s = time.perf_counter() - t0
    night_s = emg.size / EMG_FS_HZ
    det = []
    det_cpu = []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        detect_cramps([LegSignals("left", emg[None, :], EMG_FS_HZ, ("EMG L",))],
                      start=header.start)
        det.append(time.perf_counter() - t0)
        det_cpu.append(time.process_time() - c0)

    try:
        import neurokit2 as nk  # noqa: PLC0415
    except ImportError:
        nk = None
    n_nk = int(args.nk_seconds * EMG_FS_HZ)
    x = emg[len(emg) // 3:len(emg) // 3 + n_nk].astype(np.float64)
    nk_s = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2 if nk is not None else 0):
            t0 = time.perf_counter()
            nk.emg_process(x, sampling_rate=int(EMG_FS_HZ))
            nk_s.append(time.perf_counter() - t0)
    best_det = min(det)

    def row(name: str, best: str, median: str, target: str) -> None:
        print(f"{name:<44} {best:>12} {median:>12} {target:>12}")

    print(f"\n{args.hours:g}-h night, 2 EMG x {EMG_FS_HZ:g} Hz + 2 x 3-axis acc x {ACC_FS_HZ:g} Hz "
          f"({path.stat().st_size / 1e6:.0f} MB EDF+), {args.repeat} runs, {os.cpu_count()} CPUs")
    print(f"command: {sys.executable} -m crampsense analyze {path} --json "
          f"(events found: {runs[0][2]})\n")
    row("measure", "best", "median", "target")
    row("analyze --json wall (child process)", f"{min(walls):.2f} s",
        f"{statistics.median(walls):.2f} s", f"<= {WALL_TARGET_S:g} s")
    row("analyze --json CPU time (user+sys; load-proof)", f"{min(cpu):.2f} s",
        f"{statistics.median(cpu):.2f} s", "")
    row("analyze --json peak RSS", f"{min(rss):.0f} MB", f"{statistics.median(rss):.0f} MB",
        f"<= {RSS_TARGET_MB:g} MB")
    row("  start-up: import crampsense.cli.main", f"{min(startup):.2f} s",
        f"{statistics.median(startup):.2f} s", "")
    row("  start-up: analyze's own imports", f"{min(own):.2f} s",
        f"{statistics.median(own):.2f} s", "")
    row("  of which reading one 1-kHz EMG signal", f"{read_s:.2f} s", "", "")
    row("detect_cramps, one EMG channel-night", f"{best_det:.2f} s",
        f"{statistics.median(det):.2f} s", "")
    row("  x real time", f"{night_s / best_det:,.0f}x",
        f"{night_s / statistics.median(det):,.0f}x", f">= {SPEED_TARGET_X:,.0f}x")
    row("  CPU time", f"{min(det_cpu):.2f} s", f"{statistics.median(det_cpu):.2f} s", "")
    if not nk_s:
        print("\nNeuroKit2 is not installed: no comparison (pip install neurokit2)")
        return
    nk_per_sample = min(nk_s) / n_nk
    nk_night_s = nk_per_sample * emg.size
    row(f"nk.emg_process on {args.nk_seconds:g} s", f"{min(nk_s):.2f} s",
        f"{statistics.median(nk_s):.2f} s", "")
    row("  per sample", f"{nk_per_sample * 1e6:.2f} us", "", "")
    row("  extrapolated to the channel-night", f"{nk_night_s / 60:.1f} min", "", "")
    row("  x real time", f"{night_s / nk_night_s:,.0f}x", "", "")
    row("detect_cramps speed-up over NeuroKit2", f"{nk_night_s / best_det:,.0f}x", "", "")


if __name__ == "__main__":
    main()
