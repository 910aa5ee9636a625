"""The nights kept for reports and trends, next to each night's events table.

Every replayed night already stores its detected events as
``nights/participant=<p>/night=<YYYY-MM-DD>/events.parquet``. This module stores three small
tables beside it, so that reports and trends never need to replay a session:

- ``night``: one row: ``start``, ``end`` (Datetime UTC), ``legs`` (List[str]),
  ``session_path`` (str), ``lost_frames`` (Int64);
- ``gaps``: ``leg``, ``start``, ``end`` (UTC), ``reason``: uncovered time, never "no cramp";
- ``sleep``: per leg with an accelerometer: ``leg``, ``onset``, ``offset`` (UTC, null when no
  sleep period was found), ``sleep_s``, ``wake_bouts``, ``wake_s``;
- ``wake``: the wake bouts inside the sleep period: ``leg``, ``start``, ``end`` (UTC);
- ``activity`` (optional): an activity trace per leg (about one point a minute) for the
  report's timeline: ``leg``, ``start`` (UTC), ``level_rel`` (EMG activity relative to the
  leg's own floor, 1 = floor, or accelerometer movement on the same scale).

Written atomically and owner-only (:mod:`crampsense.storage.nights`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from crampsense.detection import CrampResults
from crampsense.errors import StorageError
from crampsense.models import (
    CoverageGap,
    CrampEvent,
    DeviceInfo,
    Leg,
    Night,
    Severity,
    SleepSummary,
    night_label,
    placement_leg,
)
from crampsense.storage.files import read_parquet_checked
from crampsense.storage.nights import night_dir, read_night_tables, write_night_table
from crampsense.summaries.daily import local_naive

__all__ = [
    "HISTORY_TABLES",
    "StoredNight",
    "WakeBouts",
    "activity_trace",
    "load_night",
    "nights_history",
    "store_night_history",
    "wake_bouts_of",
]

#: The tables this module writes per night (besides ``events``).
HISTORY_TABLES: Final = ("night", "gaps", "sleep", "wake")
#: Wake bouts per leg: (start, end) UTC pairs.
WakeBouts = Mapping[str, Sequence[tuple[datetime, datetime]]]
_UTC: Final = pl.Datetime("us", "UTC")


def _tables(night: Night, wake: WakeBouts) -> dict[str, pl.DataFrame]:
    return {
        "night": pl.DataFrame(
            {"start": [night.start], "end": [night.end], "legs": [list(night.legs)],
             "session_path": [night.session_path], "lost_frames": [night.lost_frames]},
            schema={"start": _UTC, "end": _UTC, "legs": pl.List(pl.String),
                    "session_path": pl.String, "lost_frames": pl.Int64},
        ),
        "gaps": pl.DataFrame(
            [(g.leg, g.start, g.end, g.reason) for g in night.gaps],
            schema={"leg": pl.String, "start": _UTC, "end": _UTC, "reason": pl.String},
            orient="row",
        ),
        "sleep": pl.DataFrame(
            [(s.leg, s.onset, s.offset, s.sleep_s, s.wake_bouts, s.wake_s) for s in night.sleep],
            schema={"leg": pl.String, "onset": _UTC, "offset": _UTC, "sleep_s": pl.Float64,
                    "wake_bouts": pl.Int64, "wake_s": pl.Float64},
            orient="row",
        ),
        "wake": pl.DataFrame(
            [(leg, a, b) for leg, bouts in wake.items() for a, b in bouts],
            schema={"leg": pl.String, "start": _UTC, "end": _UTC}, orient="row",
        ),
    }


def wake_bouts_of(results: CrampResults) -> dict[str, list[tuple[datetime, datetime]]]:
    """Wake bouts per leg from detection results (their times are seconds from the start)."""
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for leg, period in results.sleep.items():
        out[leg] = [(results.start + timedelta(seconds=float(a)),
                     results.start + timedelta(seconds=float(b)))
                    for a, b in period.wake_bouts.select("start_s", "end_s").iter_rows()]
    return out


#: Minutes of the night whose activity is at or below this quantile define a leg's floor.
ACTIVITY_FLOOR_QUANTILE: Final = 0.1
#: Points of the stored activity trace per night (about one a minute for a night of 8 h);
#: the step is kept between :data:`ACTIVITY_MIN_STEP_S` and :data:`ACTIVITY_MAX_STEP_S`.
ACTIVITY_POINTS: Final = 500
ACTIVITY_MIN_STEP_S: Final = 5
ACTIVITY_MAX_STEP_S: Final = 60
#: Steps worked on at once (bounded memory: 64 steps of 60 s at 2 kHz are 61 MB of float64).
_SPREAD_BLOCKS: Final = 64


def _minute_spread(
    values: npt.NDArray[np.floating[Any]], valid: npt.NDArray[np.bool_], per: int
) -> npt.NDArray[np.float64]:
    """Standard deviation of each ``per``-sample block over valid samples (nan if none), the
    largest over channels. Works through :data:`_SPREAD_BLOCKS` blocks at a time, so a night
    of EMG is never copied whole."""
    steps = values.shape[-1] // per
    out = np.full(steps, np.nan)
    rows = values.reshape(-1, values.shape[-1])
    for b0 in range(0, steps, _SPREAD_BLOCKS):
        b1 = min(steps, b0 + _SPREAD_BLOCKS)
        m = valid[b0 * per : b1 * per].reshape(-1, per).astype(np.float64)
        cnt = m.sum(axis=-1)
        best = np.full(b1 - b0, np.nan)
        for row in rows:
            x = row[b0 * per : b1 * per].astype(np.float64).reshape(-1, per)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (x * m).sum(axis=-1) / cnt
                spread = np.sqrt((((x - mean[:, None]) ** 2) * m).sum(axis=-1) / cnt)
            best = np.fmax(best, spread)
        out[b0:b1] = best
    return out


class Timeline(Protocol):
    """What :func:`activity_trace` reads of a decoded stream (a
    :class:`crampsense.devices.timeline.StreamTimeline`)."""

    @property
    def fs_hz(self) -> float: ...
    @property
    def t0_host_ns(self) -> int: ...
    @property
    def values(self) -> npt.NDArray[np.float32]: ...
    @property
    def valid(self) -> npt.NDArray[np.bool_]: ...
    @property
    def n_samples(self) -> int: ...


def activity_trace(
    devices: Sequence[DeviceInfo], timelines: Mapping[tuple[str, str], Timeline]
) -> pl.DataFrame:
    """A per-minute activity level per leg for the report's timeline.

    The EMG of the leg's device (else its accelerometer magnitude): the standard deviation of
    each step's valid samples (largest channel; a step is about a minute for a whole night, see
    :data:`ACTIVITY_POINTS`), divided by the leg's floor, the :data:`ACTIVITY_FLOOR_QUANTILE`
    quantile of its steps. 1 = the leg at rest; minutes
    without valid samples are left out (the timeline shows them as not covered anyway).

    Returns
    -------
    polars.DataFrame
        ``leg`` (str), ``start`` (Datetime UTC), ``level_rel`` (Float64).
    """
    frames = []
    done: set[str] = set()
    for device in devices:
        leg = placement_leg(device.placement)
        if leg is None or leg in done:
            continue
        for stream in ("emg", "acc"):
            tl = timelines.get((device.address, stream))
            if tl is None or tl.fs_hz <= 0 or tl.n_samples == 0:
                continue
            step_s = min(ACTIVITY_MAX_STEP_S, max(
                ACTIVITY_MIN_STEP_S, round(tl.n_samples / tl.fs_hz / ACTIVITY_POINTS)))
            per = max(1, round(tl.fs_hz * step_s))
            values = tl.values
            if stream == "acc":
                values = np.sqrt((tl.values.astype(np.float64) ** 2).sum(axis=0))[None, :]
            spread = _minute_spread(values, tl.valid, per)
            ok = np.isfinite(spread)
            if not ok.any():
                continue
            floor = float(np.quantile(spread[ok], ACTIVITY_FLOOR_QUANTILE)) or 1.0
            t0 = datetime.fromtimestamp(tl.t0_host_ns / 1e9, UTC)
            idx = np.flatnonzero(ok)
            frames.append(pl.DataFrame(
                {"leg": [leg] * len(idx),
                 "start": [t0 + timedelta(seconds=int(i) * step_s) for i in idx],
                 "level_rel": np.round(spread[idx] / floor, 2)},
                schema={"leg": pl.String, "start": _UTC, "level_rel": pl.Float64}))
            done.add(leg)
            break
    if not frames:
        return pl.DataFrame(schema={"leg": pl.String, "start": _UTC, "level_rel": pl.Float64})
    return pl.concat(frames)


def store_night_history(
    root: Path, participant: str, night: Night, *, tz: tzinfo, wake: WakeBouts | None = None,
    activity: pl.DataFrame | None = None, session: str | None = None,
) -> Path:
    """Write the :data:`HISTORY_TABLES` of ``night`` (its events are written elsewhere), and
    its per-minute ``activity`` trace when given, filed under ``session`` (the key of the
    session that produced it; ``None`` for nights without one, such as the demo history).

    Returns
    -------
    Path
        The folder written.
    """
    day = night_label(night.start, tz).isoformat()
    for name, df in _tables(night, wake or {}).items():
        write_night_table(root, participant, day, name, df, session=session)
    if activity is not None:
        write_night_table(root, participant, day, "activity", activity, session=session)
    return night_dir(root, participant, day, session)


def _night_folder(root: Path, participant: str, night_date: str) -> Path | None:
    """The folder holding the night's tables: of its sessions, the one whose night ends last
    (a night recorded twice shows its longer, later recording); ``None`` if none is stored."""
    base = night_dir(root, participant, night_date)
    folders = [p.parent for p in base.glob("session=*/night.parquet")]
    if (base / "night.parquet").is_file():
        folders.append(base)
    if not folders:
        return None
    return max(folders, key=lambda f: read_parquet_checked(f / "night.parquet")["end"][0])


def _events(df: pl.DataFrame) -> tuple[CrampEvent, ...]:
    out = []
    for r in df.iter_rows(named=True):
        out.append(CrampEvent(
            onset=r["onset"], offset=r["offset"], leg=r["leg"],
            channels=tuple(r.get("channels") or ()), peak_rel=float(r.get("peak_rel") or 0.0),
            mean_rel=float(r.get("mean_rel") or 0.0),
            severity=Severity[str(r["severity"]).upper()],
            confidence=float(r.get("confidence") or 0.0), kind=r.get("kind") or "cramp",
            evidence=r.get("evidence") or "emg", woke=bool(r.get("woke")),
            got_up=bool(r.get("got_up")), stretched=bool(r.get("stretched")),
        ))
    return tuple(sorted(out, key=lambda e: e.onset))


@dataclass(frozen=True)
class StoredNight:
    """A night rebuilt from its stored tables."""

    night: Night
    wake: WakeBouts
    activity: pl.DataFrame  # leg, start, level_rel; empty when none was stored


def load_night(root: Path, participant: str, night_date: str) -> StoredNight:
    """Rebuild a stored night (with its wake bouts and activity) without replaying it.

    Raises
    ------
    StorageError
        No stored night of that date (the message says how to make one).
    """
    found = _night_folder(root, participant, night_date)
    folder = found if found is not None else night_dir(root, participant, night_date)
    if found is None:
        raise StorageError(
            f"no stored night {night_date} in {folder.parent}; replay its session with "
            "`crampsense replay SESSION` (or make a demo history with `crampsense demo-history`)"
        )
    meta = read_parquet_checked(folder / "night.parquet").row(0, named=True)
    events = (read_parquet_checked(folder / "events.parquet")
              if (folder / "events.parquet").is_file() else pl.DataFrame())
    tables = {n: read_parquet_checked(folder / f"{n}.parquet")
              for n in ("gaps", "sleep", "wake", "activity")
              if (folder / f"{n}.parquet").is_file()}
    gaps = tuple(CoverageGap(r["start"], r["end"], r["leg"], r["reason"])
                 for r in tables.get("gaps", pl.DataFrame()).iter_rows(named=True))
    sleep = tuple(SleepSummary(r["leg"], r["onset"], r["offset"], r["sleep_s"], r["wake_bouts"],
                               r["wake_s"])
                  for r in tables.get("sleep", pl.DataFrame()).iter_rows(named=True))
    wake: dict[str, list[tuple[datetime, datetime]]] = {}
    for r in tables.get("wake", pl.DataFrame()).iter_rows(named=True):
        wake.setdefault(r["leg"], []).append((r["start"], r["end"]))
    legs: tuple[Leg, ...] = tuple(meta["legs"] or ())
    night = Night(
        start=meta["start"], end=meta["end"], events=_events(events) if events.height else (),
        gaps=gaps, legs=legs, session_path=meta["session_path"] or "",
        lost_frames=int(meta["lost_frames"] or 0), sleep=sleep,
    )
    activity = tables.get("activity", pl.DataFrame(
        schema={"leg": pl.String, "start": _UTC, "level_rel": pl.Float64}))
    return StoredNight(night, wake, activity)


def _one_session_per_night(nights: pl.DataFrame) -> pl.DataFrame:
    """Per participant and night, the session whose night ends last (see ``_night_folder``)."""
    if nights.is_empty() or "end" not in nights.columns:
        return nights
    return (nights.sort("end").group_by(["participant", "night"], maintain_order=True).last()
            .sort(["participant", "night"]))


def nights_history(root: Path, *, tz: tzinfo) -> pl.DataFrame:
    """Every stored night as one row, for trends and the report's calendar.

    Returns
    -------
    polars.DataFrame
        ``participant``, ``night_date`` (Date: the evening it starts), ``wake_date`` (Date),
        ``duration_h``, ``covered_h`` (the least-covered monitored leg), ``sleep_h`` (mean over
        legs with a sleep period; null without), ``cramps`` (UInt32, kind "cramp"),
        ``possible_cramps`` (UInt32), ``cramp_minutes``; sorted by night.
    """
    nights = _one_session_per_night(read_night_tables(root, "night"))
    schema = {"participant": pl.String(), "night_date": pl.Date(), "wake_date": pl.Date(),
              "duration_h": pl.Float64(), "covered_h": pl.Float64(), "sleep_h": pl.Float64(),
              "cramps": pl.UInt32(), "possible_cramps": pl.UInt32(),
              "cramp_minutes": pl.Float64()}
    if nights.is_empty() or "start" not in nights.columns:
        return pl.DataFrame(schema=schema)
    key = ["participant", "night"]
    chosen = nights.select("participant", "night", "session")

    def of_chosen(table: pl.DataFrame) -> pl.DataFrame:
        # the tables of the session each night shows (a session's own events, gaps, sleep)
        if table.is_empty() or "session" not in table.columns:
            return table
        return table.join(chosen, on=["participant", "night", "session"], how="semi",
                          nulls_equal=True)

    events = of_chosen(read_night_tables(root, "events"))
    if events.is_empty() or "kind" not in events.columns:
        counts = nights.select(key).with_columns(cramps=pl.lit(0), possible_cramps=pl.lit(0),
                                                 cramp_minutes=pl.lit(0.0))
    else:
        counts = events.group_by(key).agg(
            (pl.col("kind") == "cramp").sum().alias("cramps"),
            (pl.col("kind") != "cramp").sum().alias("possible_cramps"),
            pl.col("duration_s").filter(pl.col("kind") == "cramp").sum().truediv(60.0)
            .alias("cramp_minutes"),
        )
    gaps = of_chosen(read_night_tables(root, "gaps"))
    lost = (gaps.group_by([*key, "leg"]).agg(
        ((pl.col("end") - pl.col("start")).dt.total_seconds()).sum().alias("lost_s"))
        if "leg" in gaps.columns else pl.DataFrame(schema={"participant": pl.String,
                                                             "night": pl.Date, "leg": pl.String,
                                                             "lost_s": pl.Int64}))
    sleep = of_chosen(read_night_tables(root, "sleep"))
    sleep_h = (sleep.group_by(key).agg((pl.col("sleep_s").filter(pl.col("onset").is_not_null())
                                        .mean() / 3600.0).alias("sleep_h"))
               if "sleep_s" in sleep.columns else
               pl.DataFrame(schema={"participant": pl.String, "night": pl.Date,
                                    "sleep_h": pl.Float64}))
    base = nights.with_columns(
        ((pl.col("end") - pl.col("start")).dt.total_seconds() / 3600.0).alias("duration_h"))
    per_leg = base.explode("legs").rename({"legs": "leg"}).join(
        lost, on=[*key, "leg"], how="left").with_columns(
        (pl.col("duration_h") - pl.col("lost_s").fill_null(0) / 3600.0).clip(0.0)
        .alias("leg_h"))
    covered = per_leg.group_by(key).agg(pl.col("leg_h").min().alias("covered_h"))
    out = (
        base.join(covered, on=key, how="left").join(sleep_h, on=key, how="left")
        .join(counts, on=key, how="left")
        .with_columns(
            pl.col("night").alias("night_date"),
            local_naive(pl.col("end"), tz).dt.date().alias("wake_date"),
            pl.col("cramps").fill_null(0), pl.col("possible_cramps").fill_null(0),
            pl.col("cramp_minutes").fill_null(0.0),
        )
    )
    return out.select(list(schema)).cast(schema).sort("night_date")  # type: ignore[arg-type]
