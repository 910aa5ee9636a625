"""Fit the detector's decision model on the tuning world and write its coefficient file.

    python benchmarks/fit_detector.py                 # ~60 tuning nights, a few minutes
    python benchmarks/fit_detector.py --nights 20     # quicker, for a look

Nights come from ``firmware_sims.night.tuning_world()`` with seeds from ``--seed-base``
(default 100; the evaluation's shifted world starts at 10 000 and never shares a seed). Every
candidate event the detector weighs (``CrampResults.candidates``) becomes one training row,
labelled 1 when it matches a true cramp one-to-one with interval IoU >= 0.2, else 0. The
same nights are run three ways: raw EMG (model ``emg``), the EMG as an analog envelope
(``envelope``) and accelerometer only (``acc``). Each
model is gradient-boosted depth-2 trees (:func:`crampsense.detection.model.fit_trees`); the
result is written to ``src/crampsense/detection/decision_model.json`` with the command, the
seeds and the fit's own figures (in-sample, so optimistic by construction).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from crampsense.detection import LegSignals, compare_events, detect_cramps
from crampsense.detection.model import FEATURES, fit_trees
from firmware_sims.night import ALL_KINDS, NightSpec, generate_night, tuning_world
from firmware_sims.night.corpus import analog_envelope

OUT = Path(__file__).resolve().parents[1] / "src" / "crampsense" / "detection" / (
    "decision_model.json")
#: Nights of the fit: (hours, EMG rate Hz, cramps or None for the world's 0-3, look-alikes).
NIGHT_PLAN = ((2.0, 500.0, 3, True), (2.0, 1000.0, 3, True), (2.0, 200.0, 3, True),
              (2.0, 500.0, 0, True))
#: Boosted trees: rounds, depth and learning rate. Chosen by 4-fold cross-validation by night
#: on 48 tuning nights (EMG candidates, F1 at p >= 0.5): logistic regression 0.69, with all
#: products of two features 0.80, these trees 0.90 (calibration error 0.008 over all
#: candidates); depth 3 / 200 rounds / 0.1 gave 0.885.
#: Short-cramp nights: cramps of 10-40 s (DETECTION.md: "seconds up to about 10 min"; the
#: log-normal draws few of them, and without them the model learns that short = look-alike).
SHORT_MAX_S = 40.0
SHORT_RATES_HZ = (500.0, 1000.0)
ROUNDS = 100
DEPTH = 2
RATE = 0.2


def _labelled(cands: pl.DataFrame, truth: pl.DataFrame) -> np.ndarray:
    y = np.zeros(cands.height)
    if cands.height == 0 or truth.height == 0:
        return y
    s = compare_events(cands.select("leg", "onset_s", "offset_s"),
                       truth.select("leg", "onset_s", "offset_s"), iou=0.2)
    y[np.asarray(s.matches["detected_index"].to_list(), dtype=int)] = 1.0
    return y


def _spec(seed: int, hours: float, fs: float, n_cramps: int | None,
          cramp_max_s: float = 900.0) -> NightSpec:
    return NightSpec(seed=seed, duration_s=hours * 3600.0, emg_fs_hz=fs, n_cramps=n_cramps,
                     world=tuning_world(), lookalikes=ALL_KINDS,
                     cramp_min_duration_s=min(10.0, cramp_max_s),
                     cramp_max_duration_s=cramp_max_s)


def _overlaps(row: dict[str, Any], truth: pl.DataFrame) -> bool:
    t = truth.filter(pl.col("leg") == row["leg"])
    return bool(((t["onset_s"] < row["offset_s"]) & (t["offset_s"] > row["onset_s"])).any())


def one_night(args: tuple[Any, ...]) -> dict[str, Any]:
    """Candidate features and labels of one tuning night, for each evidence kind."""
    spec = _spec(*args)
    fs = spec.emg_fs_hz
    night = generate_night(spec)
    truth = night.cramps()
    legs, env_legs, acc_legs = [], [], []
    for leg in spec.legs:
        emg, acc, lead_off = night.render(leg)
        legs.append(LegSignals(leg, emg, fs, tuple(spec.emg_channels), emg_valid=~lead_off,
                               acc_mg=acc, acc_fs_hz=spec.acc_fs_hz))
        env, env_fs = analog_envelope(emg, fs)
        step = max(1, round(fs / 50.0))
        env_legs.append(LegSignals(leg, None, None, tuple(spec.emg_channels),
                                   emg_valid=(~lead_off)[::step][:env.shape[1]], acc_mg=acc,
                                   acc_fs_hz=spec.acc_fs_hz, emg_envelope=env,
                                   envelope_fs_hz=env_fs))
        acc_legs.append(LegSignals(leg, None, None, acc_mg=acc, acc_fs_hz=spec.acc_fs_hz))
    out: dict[str, Any] = {}
    for kind, sig in (("emg", legs), ("envelope", env_legs)):
        c = detect_cramps(sig, start=spec.start).candidates
        out[kind] = (c.to_dicts(), _labelled(c, truth).tolist())
    c = detect_cramps(acc_legs, start=spec.start).candidates
    out["acc"] = (c.to_dicts(), _labelled(c, truth).tolist())
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nights", type=int, default=96, help="tuning nights (default 96)")
    ap.add_argument("--seed-base", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--dump", type=Path, help="also write every candidate row (JSON)")
    ap.add_argument("--short-nights", type=int, default=32,
                    help="extra 1-h nights whose cramps last 10-40 s (default 32)")
    ap.add_argument("--load", type=Path, nargs="+",
                    help="fit on rows written by --dump (no nights run)")
    ap.add_argument("--kinds", default=",".join(FEATURES),
                    help="models to refit, comma-separated (default: all); the others are "
                         "kept from --out as they are")
    a = ap.parse_args(argv)
    jobs: list[tuple[Any, ...]] = []
    for i in range(a.nights):
        hours, fs, cramps, _ = NIGHT_PLAN[i % len(NIGHT_PLAN)]
        jobs.append((a.seed_base + i, hours, fs, cramps))
    for i in range(a.short_nights):  # short cramps: the literature's "seconds up to 10 min"
        jobs.append((a.seed_base + a.nights + i, 1.0, SHORT_RATES_HZ[i % 2], 3, SHORT_MAX_S))
    t0 = time.perf_counter()
    if a.load is not None:
        nights, loaded = [], []
        for path in a.load:
            d = json.loads(path.read_text(encoding="utf-8"))
            nights += d["nights"] if isinstance(d, dict) else d
            loaded += d["jobs"] if isinstance(d, dict) else jobs[:len(d)]
        jobs = [tuple(j) for j in loaded]
    else:
        with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
            nights = list(pool.map(one_night, jobs))
    if a.dump is not None:
        a.dump.write_text(json.dumps({"jobs": jobs, "nights": nights}), encoding="utf-8")
    truths = [generate_night(_spec(*job)).cramps() for job in jobs]  # schedule only: fast
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(FEATURES))
    if unknown:
        ap.error(f"--kinds {','.join(unknown)}: not a model (use {', '.join(FEATURES)})")
    old: dict[str, Any] = (json.loads(a.out.read_text(encoding="utf-8"))
                           if a.out.exists() else {})
    models: dict[str, Any] = {k: v for k, v in old.get("models", {}).items()
                              if k not in kinds}
    report: dict[str, Any] = {k: v for k, v in old.get("fit", {}).items() if k not in kinds}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    command = (f"python benchmarks/fit_detector.py --nights {a.nights} --short-nights "
               f"{a.short_nights} --seed-base {a.seed_base} --kinds {','.join(kinds)}")
    for kind, names in FEATURES.items():
        if kind not in kinds:
            continue
        rows = [r for n in nights for r in n[kind][0]]
        y = np.array([v for n in nights for v in n[kind][1]])
        # A candidate that overlaps a true cramp without matching it (a fragment, or an onset
        # far off) is neither a clean cramp nor a clean look-alike: left out of the fit.
        keep = np.array([not (v == 0 and _overlaps(r, t)) for n, t in zip(nights, truths,
                                                                           strict=True)
                         for r, v in zip(n[kind][0], n[kind][1], strict=True)], dtype=bool)
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        y = y[keep]
        if not rows or y.sum() == 0:
            print(f"{kind}: no positive candidates; model left at 0.5", file=sys.stderr)
            continue
        x = np.array([[float(r[f]) for f in names] for r in rows])
        w = np.ones(len(y))
        if kind != "acc":  # the same rows without an accelerometer (EMG-only legs)
            acc_cols = [names.index(f) for f in ("onset_move_mg", "move_share", "both_moving",
                                                  "has_acc") if f in names]
            x2 = x.copy()
            x2[:, acc_cols] = 0.0
            x, y, w = np.vstack([x, x2]), np.concatenate([y, y]), np.concatenate([w, 0.5 * w])
        m = fit_trees(x, y, names, rounds=ROUNDS, depth=DEPTH, rate=RATE, weights=w)
        models[kind] = m.to_json()
        p = np.array([m.probability(dict(zip(names, row, strict=True))) for row in x])
        rep = p >= 0.5
        report[kind] = {"rows": len(y), "positives": int(y.sum()),
                        "in_sample_tp": int((rep & (y == 1)).sum()),
                        "in_sample_fp": int((rep & (y == 0)).sum()),
                        "in_sample_fn": int((~rep & (y == 1)).sum()),
                        "command": command, "fitted": today}
        print(kind, report[kind])
    doc = {"format": 1, "fitted": today,
           # the rows of --load are those of this command (its --dump); each model's own
           # command is in "fit" (a model left out of --kinds keeps the one it was fitted by)
           "command": command,
           "world": "tuning", "seeds": f"{min(j[0] for j in jobs)}-{max(j[0] for j in jobs)}",
           "nights": [*[list(j) for j in jobs][:4], "..."],
           "model": {"type": "gradient-boosted trees", "rounds": ROUNDS, "depth": DEPTH,
                     "rate": RATE}, "fit": report,
           "models": models}
    a.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {a.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
