"""Coverage of a replayed night: run-based spans equal a per-sample reference."""

from __future__ import annotations

import numpy as np
import pytest

from crampsense.devices.timeline import StreamTimeline
from crampsense.models import DeviceInfo
from crampsense.pipeline.legs import LegSource
from crampsense.pipeline.replay import (
    COVERAGE_RESOLUTION_S,
    _coverage_gaps,
    _on_grid,
)

FS_HZ = 50.0
START_NS = 1_800_000_000_000_000_000


def _timeline(rng: np.random.Generator, n: int, t0_s: float) -> StreamTimeline:
    valid = np.ones(n, dtype=np.bool_)
    gaps: list[tuple[int, int]] = []
    for _ in range(rng.integers(0, 4)):
        a = int(rng.integers(0, n - 10))
        b = min(n, a + int(rng.integers(1, 400)))
        gaps.append((a, b))
        valid[a:b] = False
    for _ in range(rng.integers(0, 6)):  # flagged runs (lead-off), some a single sample
        a = int(rng.integers(0, n - 1))
        valid[a : a + int(rng.integers(1, 300))] = False
    gaps.sort()
    return StreamTimeline(
        stream="emg", channels=("gm",), unit="uV", fs_hz=FS_HZ,
        t0_host_ns=START_NS + round(t0_s * 1e9),
        values=np.zeros((1, n), dtype=np.float32), valid=valid, lost_packets=0,
        duplicate_packets=0, gaps=gaps,
    )


def _reference(tl: StreamTimeline, duration_s: float) -> list[tuple[float, float, str]]:
    """Per sample: 2 missing, 1 flagged, 0 ok; worst per second; runs of equal state."""
    n_sec = int(duration_s // COVERAGE_RESOLUTION_S)
    per_s = round(FS_HZ * COVERAGE_RESOLUTION_S)
    received = np.ones(tl.valid.size, dtype=np.bool_)
    for a, b in tl.gaps:
        received[a:b] = False
    src = np.where(received, np.where(tl.valid, 0, 1), 2)
    state = np.full(n_sec * per_s, 2)
    offset = round((tl.t0_host_ns - START_NS) * FS_HZ / 1e9)
    for i, v in enumerate(src):
        if 0 <= offset + i < state.size:
            state[offset + i] = v
    worst = state.reshape(n_sec, per_s).max(axis=1)
    out: list[tuple[float, float, str]] = []
    k = 0
    while k < n_sec:
        j = k
        while j < n_sec and worst[j] == worst[k]:
            j += 1
        if worst[k]:
            out.append((float(k), float(j), "no data" if worst[k] == 2 else "lead-off"))
        k = j
    return out


@pytest.mark.parametrize("seed", range(25))
def test_run_based_coverage_equals_per_sample_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    duration_s = 120.0
    t0_s = float(rng.choice([0.0, 0.013, 2.5, -1.7]))
    tl = _timeline(rng, int(rng.integers(3000, 7000)), t0_s)
    device = DeviceInfo("AA", "band", "crampsense-band", "left-calf")
    source = LegSource("left", "AA", "emg", (0,))
    got = _coverage_gaps((device,), {("AA", "emg"): tl}, START_NS, duration_s, sources=[source])
    assert [(a, b, r) for _, a, b, r in got] == _reference(tl, duration_s)


def test_on_grid_shifts_pads_and_skips_the_copy_when_aligned() -> None:
    rng = np.random.default_rng(0)
    tl = _timeline(rng, 500, 0.0)
    values, valid = _on_grid(tl, START_NS, 500)
    assert values is tl.values  # aligned: no copy
    late = _timeline(rng, 500, 2.0)
    values, valid = _on_grid(late, START_NS, 600)
    assert not valid[:100].any()
    assert np.array_equal(valid[100:600], late.valid)
