"""Score the detector on fresh synthetic nights it was never tuned on.

Run: ``python benchmarks/eval_detection.py --first 1000 --stop 1040 --hours 2 --emg-rate 500``.
The detector was tuned on seeds 1-20 only; seeds from 1000 on are held out. Each night has
0-3 cramps and every look-alike kind of DETECTION.md; matching is one-to-one by IoU >= 0.2
(``compare_events``). Prints one line per night and the pooled score.
"""

from __future__ import annotations

import argparse
import time

import polars as pl
from firmware_sims.night import NightSpec, generate_night

from crampsense.detection import LegSignals, compare_events, detect_cramps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", type=int, default=1000, help="first seed (held out: >= 1000)")
    parser.add_argument("--stop", type=int, default=1010, help="one past the last seed")
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--emg-rate", type=float, default=500.0)
    parser.add_argument("--gain", type=float, default=1.0)
    args = parser.parse_args()

    det, tru = [], []
    false_alarms = 0
    t0 = time.perf_counter()
    for seed in range(args.first, args.stop):
        spec = NightSpec(seed=seed, duration_s=args.hours * 3600.0, emg_fs_hz=args.emg_rate,
                         gain=args.gain)
        night = generate_night(spec)
        legs = []
        for leg in spec.legs:
            emg, acc, lead_off = night.render(leg)
            legs.append(LegSignals(leg, emg, args.emg_rate, tuple(spec.emg_channels),
                                   emg_valid=~lead_off, acc_mg=acc, acc_fs_hz=spec.acc_fs_hz))
        res = detect_cramps(legs, start=spec.start)
        scores = compare_events(res.events, night.cramps())
        false_alarms += scores.fp
        print(f"seed {seed}: {scores.n_true} true, {scores.tp} found, {scores.fp} false")
        # pool nights by moving each onto its own stretch of the time axis
        shift = [(pl.col(c) + seed * 1e6).alias(c) for c in ("onset_s", "offset_s")]
        det.append(res.events.select("onset_s", "offset_s", "leg").with_columns(shift))
        tru.append(night.cramps().select("onset_s", "offset_s", "leg").with_columns(shift))
    n = args.stop - args.first
    print(f"\n{n} nights of {args.hours:g} h at {args.emg_rate:g} Hz, gain x{args.gain:g}, "
          f"in {time.perf_counter() - t0:.1f} s")
    print(compare_events(pl.concat(det), pl.concat(tru)))
    print(f"false cramps per night: {false_alarms / n:.3f}")


if __name__ == "__main__":
    main()
