"""Provisional streaming alarms on generated nights: sensitivity, false alarms, latency, speed.

Run (tuning range, seeds < 1000)::

    python benchmarks/bench_stream_alarms.py --seeds 30-45 --hours 1 --cramps 2
    python benchmarks/bench_stream_alarms.py --seeds 50-57 --hours 1 --cramps 0
    python benchmarks/bench_stream_alarms.py --seeds 60-61 --hours 8
    python benchmarks/bench_stream_alarms.py --timing

Each night (two legs, every look-alike of ``firmware_sims.night.LOOKALIKE_KINDS``) is streamed
through :class:`~crampsense.detection.stream.StreamingDetector` in uneven blocks of
0.3-1.7 x ``--block-s`` (both legs per block, EMG and accelerometer together). An alarm
*matches* a true cramp on the same leg when its ``onset_s`` lies in ``[truth onset - 30 s,
truth offset]``; unmatched alarms are false. Latency is measured from the true ramp start to
``alarm_s`` (signal time at which the evidence was complete) and to the end of the push that
raised the alarm (``raised``: what a service sees, up to one block later). Retractions
(``StreamUpdate.retracted`` and ``StreamingDetector.retracted`` after ``finish()``) are
counted separately: a false alarm that is later retracted still rang once.

``--timing`` streams a 1.5-h two-leg 500-Hz night in 60-s and 5-s blocks and prints the
mean time per push (the night is rendered first; only ``push`` is timed).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from crampsense.detection.stream import CrampAlarm, StreamingDetector, StreamLeg
from firmware_sims.night import LOOKALIKE_KINDS, NightSpec, generate_night

MATCH_BEFORE_S = 30.0


@dataclass
class NightResult:
    seed: int
    n_cramps: int
    detected: int = 0
    alarms: list[tuple[CrampAlarm, float]] = field(default_factory=list)
    retracted: list[CrampAlarm] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    raised_latency_s: list[float] = field(default_factory=list)
    missed: int = 0
    false: list[tuple[CrampAlarm, str]] = field(default_factory=list)
    wrongly_retracted: int = 0
    events: int = 0


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def stream_night(night: Any, raw: dict[str, Any], block_s: float, rng: np.random.Generator
                 ) -> tuple[Any, list[tuple[CrampAlarm, float]], list[CrampAlarm], float, int]:
    """Stream one night; return (results, [(alarm, raised_s)], retracted, push_s, n_push)."""
    spec = night.spec
    det = StreamingDetector(
        [StreamLeg(leg, emg_fs_hz=spec.emg_fs_hz, emg_channels=tuple(spec.emg_channels),
                   acc_fs_hz=spec.acc_fs_hz) for leg in spec.legs], start=spec.start)
    n = raw[spec.legs[0]][0].shape[1]
    ratio = spec.acc_fs_hz / spec.emg_fs_hz
    alarms: list[tuple[CrampAlarm, float]] = []
    retracted: list[CrampAlarm] = []
    emitted: list[pl.DataFrame] = []
    pos, spent, pushes = 0, 0.0, 0
    while pos < n:
        m = max(1, int(block_s * spec.emg_fs_hz * rng.uniform(0.3, 1.7)))
        for leg in spec.legs:
            emg, acc, lead_off = raw[leg]
            t0 = time.perf_counter()
            u = det.push(leg, emg_uv=emg[:, pos:pos + m], emg_valid=~lead_off[pos:pos + m],
                         acc_mg=acc[:, round(pos * ratio):round((pos + m) * ratio)])
            spent += time.perf_counter() - t0
            pushes += 1
            emitted.append(u.events)
            alarms.extend((a, min(n, pos + m) / spec.emg_fs_hz) for a in u.alarms)
            retracted.extend(getattr(u, "retracted", ()))
        pos += m
    res = det.finish()
    streamed = pl.concat(emitted).sort("onset_s", "leg")
    if not streamed.equals(res.events.head(streamed.height)):
        raise RuntimeError(f"events returned during the night differ from finish():\n"
                           f"{streamed}\n{res.events}")
    retracted.extend(a for a in getattr(det, "retracted", ()) if a not in retracted)
    return res, alarms, retracted, spent, pushes


def score_night(seed: int, hours: float, fs_hz: float, n_cramps: int, block_s: float
                ) -> NightResult:
    spec = NightSpec(seed=seed, duration_s=hours * 3600.0, emg_fs_hz=fs_hz,
                     n_cramps=n_cramps, lookalikes=LOOKALIKE_KINDS)
    night = generate_night(spec)
    raw = {leg: night.render(leg) for leg in spec.legs}
    res, alarms, retracted, _, _ = stream_night(night, raw, block_s,
                                                np.random.default_rng(seed))
    cramps = night.cramps()
    out = NightResult(seed, cramps.height, alarms=alarms, retracted=retracted,
                      events=res.events.height)
    used: set[int] = set()
    for truth in cramps.iter_rows(named=True):
        hit = [(i, a, r) for i, (a, r) in enumerate(alarms) if a.leg == truth["leg"]
               and truth["onset_s"] - MATCH_BEFORE_S <= a.onset_s <= truth["offset_s"]]
        if not hit:
            out.missed += 1
            continue
        i, a, r = hit[0]
        used.update(j for j, _, _ in hit)
        out.latency_s.append(a.alarm_s - truth["onset_s"])
        out.raised_latency_s.append(r - truth["onset_s"])
        if a in retracted:
            out.wrongly_retracted += 1
    other = night.truth.filter(pl.col("kind") != "cramp")
    for i, (a, _) in enumerate(alarms):
        if i in used:
            continue
        near = other.filter((pl.col("leg") == a.leg) & (pl.col("onset_s") <= a.alarm_s + 5.0)
                            & (pl.col("offset_s") >= a.onset_s - 5.0))
        kind = ",".join(sorted(set(near["kind"]))) or "none"
        out.false.append((a, kind))
    return out


def _q(x: list[float]) -> str:
    if not x:
        return "n/a"
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return f"median {med:.1f} s (IQR {q1:.1f}-{q3:.1f}), max {max(x):.1f} s"


def run_eval(args: argparse.Namespace) -> None:
    rows = []
    for seed in _seeds(args.seeds):
        r = score_night(seed, args.hours, args.fs, args.cramps, args.block_s)
        rows.append(r)
        desc = "; ".join(f"{a.leg} {a.onset_s:.0f}s {k}{' (retracted)' if a in r.retracted else ''}"
                         for a, k in r.false)
        print(f"seed {seed}: cramps {r.n_cramps}, alarmed {r.n_cramps - r.missed}, "
              f"false {len(r.false)} [{desc}], retracted {len(r.retracted)}, "
              f"latency {[round(v, 1) for v in r.latency_s]}", flush=True)
    n_cr = sum(r.n_cramps for r in rows)
    n_hit = sum(r.n_cramps - r.missed for r in rows)
    n_false = sum(len(r.false) for r in rows)
    n_false_kept = sum(1 for r in rows for a, _ in r.false if a not in r.retracted)
    lat = [v for r in rows for v in r.latency_s]
    raised = [v for r in rows for v in r.raised_latency_s]
    print(f"\nseeds {args.seeds}, {args.hours:g} h, {args.fs:g} Hz, ~{args.block_s:g}-s blocks,"
          f" {len(rows)} nights, cramps per night {args.cramps}, every look-alike")
    print(f"  sensitivity: {n_hit}/{n_cr} cramps alarmed; wrongly retracted "
          f"{sum(r.wrongly_retracted for r in rows)}")
    print(f"  false alarms: {n_false} ({n_false / len(rows):.3f} per night); "
          f"not retracted by the end: {n_false_kept}")
    print(f"  latency from true onset to alarm_s: {_q(lat)}")
    print(f"  latency from true onset to the raising push: {_q(raised)}")


def run_timing(args: argparse.Namespace) -> None:
    spec = NightSpec(seed=7, duration_s=5400.0, emg_fs_hz=500.0, n_cramps=3)
    night = generate_night(spec)
    raw = {leg: night.render(leg) for leg in spec.legs}
    for block_s in (60.0, 5.0):
        best = np.inf
        for _ in range(args.repeat):
            _, _, _, spent, pushes = stream_night(night, raw, block_s,
                                                  np.random.default_rng(4))
            best = min(best, spent)
        print(f"1.5-h two-leg 500-Hz night, ~{block_s:g}-s blocks: {pushes} pushes, "
              f"{best:.2f} s in push ({1e3 * best / pushes:.2f} ms per push), "
              f"best of {args.repeat}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="30-37")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--fs", type=float, default=500.0)
    ap.add_argument("--cramps", type=int, default=2)
    ap.add_argument("--block-s", type=float, default=5.0)
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if args.timing:
        run_timing(args)
    else:
        run_eval(args)


if __name__ == "__main__":
    main()
