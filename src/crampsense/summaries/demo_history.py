"""A simulated history: nights with cramps and a journal in which two factors are planted.

``crampsense demo-history`` writes, into an empty data folder, ``nights`` stored nights (the
same tables a replayed night leaves: events, night, gaps, sleep, wake) and a ``journal.txt`` of
the days before them. The planted truth (:data:`PLANTED`): after days under 1.5 L of water the
expected cramps per night are multiplied by 4, after days with 60 min or more of exercise by 3;
caffeine, alcohol and magnesium are logged on random days with **no** effect. ``trends`` and the
HTML report should show the first two and not the others.

The nights are drawn directly (seeded Poisson counts), not rendered and detected: this history
exercises the bookkeeping (joins, intervals, report), not the detector, which
``crampsense demo`` covers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from crampsense.detection.schema import EVENT_SCHEMA
from crampsense.errors import StorageError
from crampsense.models import CoverageGap, Night, SleepSummary, grade_severity
from crampsense.storage.files import atomic_write_bytes
from crampsense.storage.nights import write_night_table
from crampsense.summaries.history import store_night_history

__all__ = ["BASE_CRAMPS_PER_NIGHT", "PLANTED", "write_demo_history"]

#: Expected cramps per night with no planted factor present.
BASE_CRAMPS_PER_NIGHT: Final = 0.2
#: Planted multipliers of the expected cramps per night.
PLANTED: Final = {"low_water": 4.0, "hard_exercise": 3.0, "caffeine": 1.0, "alcohol": 1.0,
                  "magnesium": 1.0}


def _offset(day: date, clock: time, tz: tzinfo) -> str:
    stamp = datetime.combine(day, clock, tzinfo=tz).strftime("%z")
    return f"{stamp[:3]}:{stamp[3:]}"


def _activity(rng: np.random.Generator, night: Night,
              wake: list[tuple[datetime, datetime]], cramps: list[dict[str, object]]
              ) -> pl.DataFrame:
    """Per-minute activity per leg: a quiet floor, movement outside sleep and in wake bouts,
    and the sustained contraction of each cramp on its leg."""
    minutes = int(night.duration_s // 60)
    start = night.start.astimezone(UTC)
    times = [start + timedelta(minutes=m) for m in range(minutes)]
    onset = night.sleep[0].onset or night.start
    offset = night.sleep[0].offset or night.end
    frames = []
    for leg in ("left", "right"):
        level = 1.0 + rng.gamma(2.0, 0.15, size=minutes)
        for m, t in enumerate(times):
            if t < onset or t > offset or any(a <= t <= b for a, b in wake):
                level[m] += float(rng.uniform(1.5, 4.0))
        for c in cramps:
            if c["leg"] == leg:
                a = int((c["onset"] - night.start).total_seconds() // 60)  # type: ignore[operator]
                b = int((c["offset"] - night.start).total_seconds() // 60)  # type: ignore[operator]
                level[max(0, a): min(minutes, b + 1)] = float(rng.uniform(8.0, 14.0))
        frames.append(pl.DataFrame({"leg": [leg] * minutes, "start": times,
                                    "level_rel": level.round(2)},
                                   schema={"leg": pl.String, "start": pl.Datetime("us", "UTC"),
                                           "level_rel": pl.Float64}))
    return pl.concat(frames)


def write_demo_history(
    root: Path, participant: str, *, nights: int, end: date, tz: tzinfo, seed: int = 60
) -> Path:
    """Write ``nights`` simulated nights ending on the evening ``end``, and their journal.

    Returns
    -------
    Path
        The journal written.

    Raises
    ------
    StorageError
        ``root`` already holds a journal or nights (a demo never mixes with real data).
    """
    journal = root / "journal.txt"
    if journal.exists() or (root / "nights").exists():
        raise StorageError(
            f"{root} already holds a journal or nights; make the demo history in an empty "
            "folder, e.g. CRAMPSENSE_HOME=/tmp/crampsense-demo crampsense demo-history"
        )
    rng = np.random.default_rng(seed)
    lines = ["# crampsense demo history: simulated, see `crampsense demo-history --help`"]
    for k in range(nights):
        day = end - timedelta(days=nights - 1 - k)

        def log(clock: time, words: str, day: date = day) -> None:
            lines.append(f"{day.isoformat()} {clock:%H:%M}{_offset(day, clock, tz)}  {words}")

        low_water = rng.random() < 0.35
        glasses = rng.integers(3, 6) if low_water else rng.integers(7, 11)
        for g in range(int(glasses)):
            log(time(8 + g, 10), "water 200 ml" if low_water else "water 250 ml")
        hard = rng.random() < 0.3
        if hard:
            log(time(17, 30), f"exercise run {int(rng.integers(60, 95))} min")
        elif rng.random() < 0.5:
            log(time(18, 0), f"exercise walk {int(rng.integers(15, 40))} min")
        caffeine = rng.random() < 0.5
        if caffeine:
            log(time(8, 0), f"caffeine coffee {int(rng.integers(1, 4))} cups")
        if rng.random() < 0.3:
            log(time(20, 0), "alcohol wine 1 drink")
        if rng.random() < 0.5:
            log(time(21, 0), "magnesium citrate 300 mg")
        rate = BASE_CRAMPS_PER_NIGHT * (PLANTED["low_water"] if low_water else 1.0) * (
            PLANTED["hard_exercise"] if hard else 1.0)
        n_cramps = min(int(rng.poisson(rate)), 5)
        start = datetime.combine(day, time(22, 0), tzinfo=tz) + timedelta(
            minutes=float(rng.integers(0, 60)))
        stop = datetime.combine(day + timedelta(days=1), time(6, 0), tzinfo=tz) + timedelta(
            minutes=float(rng.integers(0, 60)))
        onset = start + timedelta(minutes=float(rng.integers(10, 30)))
        offset = stop - timedelta(minutes=float(rng.integers(5, 20)))
        span_s = (offset - onset).total_seconds()
        wakes = sorted(float(x) for x in rng.uniform(0.1, 0.9, size=int(rng.integers(1, 4))))
        wake = [(onset + timedelta(seconds=w * span_s),
                 onset + timedelta(seconds=w * span_s + float(rng.integers(120, 900))))
                for w in wakes]
        wake_s = sum((b - a).total_seconds() for a, b in wake)
        gaps = []
        if rng.random() < 0.15:
            g0 = start + timedelta(seconds=float(rng.uniform(0.2, 0.7)) * span_s)
            gaps.append(CoverageGap(g0, g0 + timedelta(minutes=float(rng.integers(10, 40))),
                                    "left" if rng.random() < 0.5 else "right", "lead-off"))
        rows = []
        for _ in range(n_cramps):
            at = onset + timedelta(seconds=float(rng.uniform(0.05, 0.95)) * span_s)
            dur = float(rng.uniform(20, 300))
            leg = "left" if rng.random() < 0.6 else "right"
            sev = grade_severity(dur, float(rng.uniform(3, 12)))
            rows.append({
                "onset_s": (at - start).total_seconds(),
                "offset_s": (at - start).total_seconds() + dur, "duration_s": dur,
                "onset": at, "offset": at + timedelta(seconds=dur), "leg": leg,
                "channels": ["gastrocnemius"], "peak_rel": 8.0, "mean_rel": 5.0,
                "severity": str(sev), "confidence": 0.9, "kind": "cramp", "evidence": "emg",
                "woke": True, "got_up": bool(rng.random() < 0.4),
                "stretched": bool(rng.random() < 0.6),
            })
        events = pl.DataFrame(rows, schema=dict(EVENT_SCHEMA), orient="row") if rows else (
            pl.DataFrame(schema=dict(EVENT_SCHEMA)))
        sleep_s = span_s - wake_s
        night = Night(
            start=start, end=stop, legs=("left", "right"), session_path="(simulated)",
            gaps=tuple(gaps),
            sleep=tuple(SleepSummary(leg, onset, offset, sleep_s, len(wake), wake_s)
                        for leg in ("left", "right")),
        )
        write_night_table(root, participant, day.isoformat(), "events",
                          events.with_columns(pl.col("onset", "offset")
                                              .dt.convert_time_zone("UTC")))
        store_night_history(root, participant, night, tz=tz,
                            wake={"left": wake, "right": wake},
                            activity=_activity(rng, night, wake, rows))
    atomic_write_bytes(journal, ("\n".join(lines) + "\n").encode())
    return journal
