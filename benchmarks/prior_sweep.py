"""Widen one prior group of the tuning world at a time and print which one hurts the detector.

    python benchmarks/prior_sweep.py                    # 8 one-hour nights per group
    python benchmarks/prior_sweep.py --nights 4 --by 1.0

Each group's ranges (``firmware_sims.night.world.TUNING_PRIORS``, grouped by the key's first
word: cramp, plm, reposition, tone, ...) are widened by ``--by`` x their width on both sides
(clipped to physiological limits) while every other prior stays at the tuning world's. The
same seeds (from 20 000, never used in tuning) run for the baseline and for every group: half
the nights hold two cramps among every look-alike, half only look-alikes. Rows are sorted by
how much the group lowers F1 and raises false cramps per night.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from crampsense.detection.scoring import EMG, score_records
from firmware_sims.night import ALL_KINDS, NightSpec, tuning_world
from firmware_sims.night.corpus import EvalSet, NightCase, run_corpus
from firmware_sims.night.world import TUNING_PRIORS, World


def groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in TUNING_PRIORS:
        out.setdefault(k.split("_")[0], []).append(k)
    return out


def night_set(name: str, world: World, seeds: range, hours: float) -> EvalSet:
    cases = tuple(NightCase(name, NightSpec(seed=s, duration_s=hours * 3600.0, emg_fs_hz=500.0,
                                            n_cramps=2 if i % 2 == 0 else 0, world=world,
                                            lookalikes=ALL_KINDS))
                  for i, s in enumerate(seeds))
    return EvalSet(name, "mixed", f"{world.name}", cases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nights", type=int, default=8)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--by", type=float, default=1.0, help="widening (x width, each side)")
    ap.add_argument("--seed-base", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    seeds = range(a.seed_base, a.seed_base + a.nights)
    base = tuning_world()
    sets = [night_set("baseline", base, seeds, a.hours)]
    for g, keys in groups().items():
        sets.append(night_set(g, base.widened(keys, by=a.by), seeds, a.hours))
    t0 = time.perf_counter()
    recs = run_corpus(sets, workers=a.workers)
    rows: list[dict[str, Any]] = []
    for s in sets:
        r = [x for x in recs if x["set"] == s.name]
        sc = score_records(r, EMG)
        rows.append({"group": s.name, "f1": sc["f1"] or 0.0, "tp": sc["tp"], "fp": sc["fp"],
                     "fn": sc["fn"], "fa_per_night": sc["fa_per_night"] or 0.0})
    b = rows[0]
    print(f"one prior group widened by {a.by:g} x its width on each side; {a.nights} nights of "
          f"{a.hours:g} h per row (seeds {seeds.start}-{seeds.stop - 1}); "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"{'group':12s} {'F1':>6s} {'dF1':>6s} {'TP':>4s} {'FP':>4s} {'FN':>4s} "
          f"{'FA/night':>9s} {'dFA':>6s}")
    for r in sorted(rows[1:], key=lambda r: (r["f1"] - b["f1"]) - (r["fa_per_night"]
                                                                   - b["fa_per_night"])):
        print(f"{r['group']:12s} {r['f1']:6.3f} {r['f1'] - b['f1']:+6.3f} {r['tp']:4d} "
              f"{r['fp']:4d} {r['fn']:4d} {r['fa_per_night']:9.3f} "
              f"{r['fa_per_night'] - b['fa_per_night']:+6.3f}")
    print(f"{'baseline':12s} {b['f1']:6.3f} {'':6s} {b['tp']:4d} {b['fp']:4d} {b['fn']:4d} "
          f"{b['fa_per_night']:9.3f}")


if __name__ == "__main__":
    main()
