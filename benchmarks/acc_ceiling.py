"""What evidence an accelerometer-only leg holds of each cramp, on tuning-world nights.

    python benchmarks/acc_ceiling.py                       # 40 2-h tuning nights
    python benchmarks/acc_ceiling.py --nights 20 --world shifted --seed-base 100

For every true cramp: is its mechanomyogram (MMG, 5-25 Hz on the skin-normal axis) above the
still leg's noise at all, did the awakening movement, getting up or stretching happen, and did
:func:`crampsense.detection.acc_only.possible_cramps` weigh a candidate that matches it (IoU
>= 0.2; the ceiling of the decision model) and report it.

"MMG visible": the cramp's mean vibration ratio (z-axis 5-25 Hz RMS over the night's floor,
over the cramp's still 1-s epochs) exceeds the 99th percentile of the same mean over windows
of the same length at event-free times of the same leg. A cramp without visible MMG leaves only
its context (the awakening movement of that one leg, getting up) to an accelerometer.

Seeds default to the tuning range (< 1000); the shifted world is allowed for a *look* at how
the priors move the ceiling (it widens the coupling of the MMG), never for tuning.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
import polars as pl

from crampsense.detection import compare_events
from crampsense.detection.acc_only import MMG_AXIS, possible_cramps, vibration_floor
from crampsense.detection.sleep import acc_epochs, sleep_period
from firmware_sims.night import ALL_KINDS, NightSpec, generate_night, shifted_world, tuning_world

#: Null windows are at least this far (s) from every truth event of the leg.
GUARD_S = 60.0
NULL_QUANTILE = 99.0


def one_night(args: tuple[int, float, str]) -> list[dict[str, Any]]:
    """One row per true cramp of the night."""
    seed, hours, world_name = args
    world = tuning_world() if world_name == "tuning" else shifted_world()
    spec = NightSpec(seed=seed, duration_s=hours * 3600.0, emg_fs_hz=500.0, n_cramps=3,
                     world=world, lookalikes=ALL_KINDS)
    night = generate_night(spec)
    eps, coupling = {}, {}
    for leg in spec.legs:
        sl = night.leg(leg)
        acc = sl.acc_mg(0, sl.n_acc).astype(np.float64)
        eps[leg] = acc_epochs(acc, sl.acc_fs_hz, epoch_s=1.0)
        coupling[leg] = float(sl._r.mmg_axis_mg[MMG_AXIS])
    out: list[dict[str, Any]] = []
    for leg in spec.legs:
        ep = eps[leg]
        other = next(e for name, e in eps.items() if name != leg)
        cands: list[dict[str, object]] = []
        events = possible_cramps(ep, sleep=sleep_period(ep), leg=leg, other=other,
                                 collect=cands)
        vib = np.where(ep.valid, ep.vib_mg[MMG_AXIS], np.nan)
        ratio = vib / vibration_floor(vib, ep.epoch_s)
        still = (ep.motion_mg <= 40.0) & (ep.vertical_frac <= 0.5)
        r = np.where(still & np.isfinite(ratio), ratio, np.nan)
        truth = night.truth.filter(pl.col("leg") == leg)
        busy = np.zeros(ep.n, dtype=bool)
        for a, b in zip(truth["onset_s"], truth["offset_s"], strict=True):
            busy[max(0, int(a - GUARD_S)):min(ep.n, int(b + GUARD_S) + 1)] = True
        cr = truth.filter(pl.col("kind") == "cramp")
        cand_df = (pl.DataFrame(cands).select("leg", "onset_s", "offset_s") if cands
                   else pl.DataFrame(schema={"leg": pl.String, "onset_s": pl.Float64,
                                             "offset_s": pl.Float64}))
        for row in cr.iter_rows(named=True):
            a, b = int(row["onset_s"]), max(int(row["onset_s"]) + 1, int(row["offset_s"]))
            n = b - a
            cramp_mean = float(np.nanmean(r[a:b])) if np.isfinite(r[a:b]).any() else np.nan
            # null: means over same-length windows in event-free still spans
            free = np.where(busy, np.nan, r)
            starts = np.arange(0, ep.n - n, max(1, n // 2))
            null = [np.nanmean(free[s:s + n]) for s in starts
                    if np.isfinite(free[s:s + n]).mean() > 0.9]
            thr = float(np.percentile(null, NULL_QUANTILE)) if null else np.nan
            one = pl.DataFrame([{"leg": leg, "onset_s": row["onset_s"],
                                 "offset_s": row["offset_s"]}])
            cand_hit = (cand_df.height > 0 and compare_events(
                cand_df, one, iou=0.2).matches.height > 0)
            rep_hit = (events.height > 0 and compare_events(
                events.select("leg", "onset_s", "offset_s"), one, iou=0.2).matches.height > 0)
            out.append({"seed": seed, "leg": leg, "duration_s": row["offset_s"] - row["onset_s"],
                        "peak_rel": row["peak_rel"], "coupling_mg": coupling[leg],
                        "mmg_mg": coupling[leg] * float(np.sqrt(max(row["peak_rel"] ** 2 - 1,
                                                                    0.0))),
                        "cramp_ratio": cramp_mean, "null_thr": thr,
                        "visible": bool(np.isfinite(cramp_mean) and cramp_mean > thr),
                        "woke": row["woke"], "got_up": row["got_up"],
                        "stretched": row["stretched"], "candidate": bool(cand_hit),
                        "reported": bool(rep_hit)})
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nights", type=int, default=40)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--seed-base", type=int, default=100)
    ap.add_argument("--world", choices=("tuning", "shifted"), default="tuning")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    jobs = [(a.seed_base + i, a.hours, a.world) for i in range(a.nights)]
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        rows = [r for night in pool.map(one_night, jobs) for r in night]
    df = pl.DataFrame(rows)
    n = df.height
    print(f"{a.world} world, seeds {jobs[0][0]}-{jobs[-1][0]}, {a.nights} x {a.hours:g} h, "
          f"{n} cramps")

    def share(expr: pl.Expr) -> str:
        k = df.filter(expr).height
        return f"{k:4d} ({k / n:5.1%})"

    vis, woke, up = pl.col("visible"), pl.col("woke"), pl.col("got_up")
    print(f"MMG above the still-leg noise        {share(vis)}")
    print(f"  not visible, woke                  {share(~vis & woke)}")
    print(f"  not visible, got up (not woke)     {share(~vis & ~woke & up)}")
    print(f"  not visible, no movement at all    {share(~vis & ~woke & ~up)}")
    print(f"evidence of any kind (MMG/woke/up)   {share(vis | woke | up)}")
    print(f"a candidate matches (IoU >= 0.2)     {share(pl.col('candidate'))}")
    print(f"  of MMG-visible cramps              "
          f"{df.filter(vis & pl.col('candidate')).height}/{df.filter(vis).height}")
    print(f"  of invisible, woke cramps          "
          f"{df.filter(~vis & woke & pl.col('candidate')).height}/"
          f"{df.filter(~vis & woke).height}")
    print(f"reported (IoU >= 0.2)                {share(pl.col('reported'))}")
    q = np.percentile(df["mmg_mg"].to_numpy(), [10, 25, 50, 75, 90])
    print("designed plateau MMG on z (mg), 10/25/50/75/90 %: "
          + " / ".join(f"{v:.2f}" for v in q))
    vis_mmg = df.filter(vis)["mmg_mg"]
    if vis_mmg.len():
        print(f"smallest designed MMG that was visible: {vis_mmg.min():.2f} mg; median "
              f"noise threshold (ratio) {df['null_thr'].median():.3f}")


if __name__ == "__main__":
    main()
