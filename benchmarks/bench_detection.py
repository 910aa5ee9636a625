"""Detection speed on an 8-h channel-night, beside the plain scipy pipeline a user would write.

Run: ``python benchmarks/bench_detection.py [--rate 1000] [--hours 8] [--block-s 60]``.

Also times the same channel streamed through ``StreamingDetector`` in ``--block-s`` blocks
(generated block by block, so the night is never in memory) and prints the traced peak
memory of streaming (tracemalloc, a second run) beside offline detection's.

The baseline is what a careful user would write by hand with the same libraries: a zero-phase
Butterworth band-pass (``sosfiltfilt``, 20-450 Hz), a 1-s moving RMS by convolution, and a
fixed threshold at 3x the night's 10th percentile. It has none of the detector's rules
(adaptive floor, artefact gating, PLM and both-legs rejection, context flags), so it is a
floor for the cost of "filter, envelope, threshold", not a competitor on accuracy.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from scipy import signal

from crampsense.detection import LegSignals, detect_cramps
from crampsense.detection.stream import StreamingDetector, StreamLeg


def baseline(x: np.ndarray, fs_hz: float) -> int:
    sos = signal.butter(4, [20.0, min(450.0, 0.45 * fs_hz)], btype="band", fs=fs_hz,
                        output="sos")
    y = signal.sosfiltfilt(sos, x).astype(np.float32)
    win = int(fs_hz)
    rms = np.sqrt(np.convolve(y * y, np.ones(win, dtype=np.float32) / win, mode="same"))
    active = rms > 3.0 * np.percentile(rms, 10)
    return int(np.count_nonzero(np.diff(active.astype(np.int8)) == 1))


def stream(n: int, rate: float, block_s: float, start: datetime) -> int:
    """Stream ``n`` samples of one channel in blocks (same signal as ``main``'s array)."""
    det = StreamingDetector([StreamLeg("left", emg_fs_hz=rate, emg_channels=("gm",))],
                            start=start)
    rng = np.random.default_rng(1)
    block_n = round(block_s * rate)
    a, b = n // 3, n // 3 + int(90 * rate)
    emitted = 0
    for i in range(0, n, block_n):
        x = rng.standard_normal((1, min(block_n, n - i)), dtype=np.float32) * 3.0
        lo, hi = max(a, i) - i, min(b, i + x.shape[1]) - i
        if lo < hi:
            x[0, lo:hi] *= 5.0
        emitted += det.push("left", emg_uv=x).events.height
    return emitted + det.finish().events.height - emitted


def traced_peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--block-s", type=float, default=60.0)
    args = parser.parse_args()
    n = int(args.hours * 3600 * args.rate)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, n), dtype=np.float32) * 3.0
    a = n // 3
    x[0, a : a + int(90 * args.rate)] *= 5.0  # one 90-s sustained contraction
    start = datetime(2026, 1, 1, tzinfo=UTC)
    realtime_s = n / args.rate

    t0 = time.perf_counter()
    res = detect_cramps([LegSignals("left", x, args.rate, ("gm",))], start=start)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    onsets = baseline(x[0], args.rate)
    base_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"one channel, {args.hours:g} h at {args.rate:g} Hz ({n / 1e6:.1f} M samples)")
    print(f"  crampsense detect_cramps: {ours_s:6.2f} s  ({realtime_s / ours_s:,.0f}x real time)"
          f"  events: {res.events.height}")
    print(f"  plain scipy pipeline:     {base_s:6.2f} s  ({realtime_s / base_s:,.0f}x real time)"
          f"  threshold crossings: {onsets}")
    print(f"  ratio (baseline / crampsense): {base_s / ours_s:.1f}x; peak RSS {peak_mb:.0f} MB")
    t0 = time.perf_counter()
    n_stream = stream(n, args.rate, args.block_s, start)
    stream_s = time.perf_counter() - t0
    print(f"  StreamingDetector, {args.block_s:g}-s blocks: {stream_s:6.2f} s "
          f"({realtime_s / stream_s:,.0f}x real time, incl. generating the blocks)  "
          f"events: {n_stream}")
    off_mb = traced_peak_mb(lambda: detect_cramps([LegSignals("left", x, args.rate, ("gm",))],
                                                  start=start))
    str_mb = traced_peak_mb(lambda: stream(n, args.rate, args.block_s, start))
    print(f"  traced peak memory: offline {off_mb:.0f} MB beside the "
          f"{x.nbytes / 2**20:.0f}-MB input; streaming {str_mb:.1f} MB (no input held)")


if __name__ == "__main__":
    main()
