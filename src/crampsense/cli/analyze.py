"""``crampsense analyze FILE``: cramps in an EDF/EDF+/BDF recording, a sample file or a session.

Reading and channel mapping live in :mod:`crampsense.pipeline.files`; this module is the
command and its output.

JSON output (``--json``, one object on stdout)::

    {"file": str, "format": "EDF"|"EDF+C"|"BDF"|"BDF+C"|"csv"|"parquet"|"session",
     "start": ISO 8601, "duration_s": float,
     "channels": {"left": {"emg": [labels], "acc": [x, y, z] | null}, "right": {...}},
     "events": [{"onset_s", "offset_s", "duration_s", "leg", "kind", "severity",
                 "confidence", "evidence", "channels", "peak_rel", "woke", "got_up",
                 "stretched"}],
     "coverage": {"duration_s": float,
                  "legs": {"left": {"covered_s": float,
                                    "not_covered": [{"start_s", "end_s", "reason"}]},
                           "right": {...}}},
     "sleep": {"left": {SLEEP_FIELDS...} , "right": {...}}}

Times are seconds from ``start``. See ``docs/sample-files.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table

from crampsense.cli.utils import get_context, local_tz
from crampsense.detection import CrampResults, DetectionParams, detect_cramps
from crampsense.errors import UsageError
from crampsense.pipeline.files import LEGS, ChannelMap, load_legs, sniff
from crampsense.summaries.morning import DISCLAIMER, format_duration

__all__ = ["SLEEP_FIELDS", "analysis_json", "run"]

#: Per-leg sleep figures in the JSON ``sleep`` object (seconds from the start, durations in
#: seconds, events per hour of sleep); null where no sleep-period result exists.
SLEEP_FIELDS: Final = ("sleep_onset_s", "sleep_offset_s", "sleep_period_s", "sleep_s",
                       "wake_s", "wake_bouts", "non_wear_s", "events_per_sleep_h")


# --- results ------------------------------------------------------------------------------


def _num(value: Any, digits: int) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return round(x, digits) if math.isfinite(x) else None


def _sleep_json(results: CrampResults, n_events: Mapping[str, int]
                ) -> dict[str, dict[str, Any]]:
    """Per leg, the :data:`SLEEP_FIELDS` from ``results.sleep`` (HDCZA sleep period of the
    leg's accelerometer), null where a figure is not available (no accelerometer of 25 Hz or
    more on that leg, or no sleep period found)."""
    out: dict[str, dict[str, Any]] = {}
    for leg in LEGS:
        values: dict[str, Any] = dict.fromkeys(SLEEP_FIELDS)
        sp = results.sleep.get(leg)
        if sp is not None:
            onset = _num(sp.onset_s, 1)
            offset = _num(sp.offset_s, 1)
            wake = sp.wake_bouts
            sleep_s = round(sp.sleep_s, 1)
            values.update({
                "sleep_onset_s": onset, "sleep_offset_s": offset,
                "sleep_period_s": (round(offset - onset, 1)
                                   if onset is not None and offset is not None else None),
                "sleep_s": sleep_s,
                "wake_s": round(float((wake["end_s"] - wake["start_s"]).sum()), 1),
                "wake_bouts": wake.height,
                "non_wear_s": round(float((sp.nonwear["end_s"] - sp.nonwear["start_s"]).sum()),
                                    1),
                "events_per_sleep_h": (round(n_events.get(leg, 0) * 3600.0 / sleep_s, 3)
                                       if sleep_s > 0 else None),
            })
        out[leg] = values
    return out


def analysis_json(*, file: str, file_format: str, results: CrampResults,
                  gaps: Sequence[tuple[str, float, float, str]] | None = None,
                  channels: ChannelMap | None = None) -> dict[str, Any]:
    """The ``--json`` document (see the module docstring).

    Parameters
    ----------
    results : CrampResults
    gaps : sequence of (leg, start_s, end_s, reason), optional
        Uncovered spans to report instead of ``results.coverage`` (a session's own gaps).
    """
    duration_s = float(results.duration_s)
    events = []
    for row in results.events.iter_rows(named=True):
        events.append({
            "onset_s": round(row["onset_s"], 2), "offset_s": round(row["offset_s"], 2),
            "duration_s": round(row["duration_s"], 2), "leg": row["leg"], "kind": row["kind"],
            "severity": row["severity"], "confidence": round(row["confidence"], 3),
            "evidence": row["evidence"], "channels": list(row["channels"]),
            "peak_rel": _num(row["peak_rel"], 2), "woke": row["woke"],
            "got_up": row["got_up"], "stretched": row["stretched"],
        })
    spans = list(gaps) if gaps is not None else [
        (r["leg"], r["start_s"], r["end_s"], r["reason"])
        for r in results.coverage.iter_rows(named=True)]
    legs: dict[str, Any] = {}
    for leg in LEGS:
        if leg not in results.legs:
            legs[leg] = {"covered_s": 0.0, "not_covered": [
                {"start_s": 0.0, "end_s": round(duration_s, 2), "reason": "not recorded"}]}
            continue
        mine = sorted((a, b, r) for lg, a, b, r in spans if lg == leg)
        lost = sum(b - a for a, b, _ in mine)
        legs[leg] = {
            "covered_s": round(max(0.0, duration_s - lost), 1),
            "not_covered": [{"start_s": round(a, 2), "end_s": round(b, 2), "reason": r}
                            for a, b, r in mine],
        }
    n_events = {leg: sum(1 for e in events if e["leg"] == leg) for leg in LEGS}
    used: dict[str, Any] = {}
    if channels is not None:
        for leg in LEGS:
            acc = channels.acc.get(leg)
            used[leg] = {"emg": [c.label for c in channels.emg.get(leg, [])],
                         "acc": [c.label for c in acc] if acc else None}
    return {
        "file": file,
        "format": file_format,
        "start": results.start.isoformat(),
        "duration_s": round(duration_s, 3),
        "channels": used or None,
        "events": events,
        "coverage": {"duration_s": round(duration_s, 3), "legs": legs},
        "sleep": _sleep_json(results, n_events),
    }


def _report(out: Console, doc: dict[str, Any], start: datetime) -> None:
    hours = doc["duration_s"] / 3600.0
    out.print(f"[bold]{doc['file']}[/] ({doc['format']}, {hours:.1f} h from "
              f"{start:%Y-%m-%d %H:%M:%S %Z})")
    events = doc["events"]
    if events:
        table = Table(title=f"{len(events)} cramp event(s)", title_justify="left")
        for col in ("onset", "from start", "leg", "duration", "severity", "confidence",
                    "evidence", "kind"):
            table.add_column(col)
        for e in events:
            onset = start + timedelta(seconds=e["onset_s"])
            table.add_row(f"{onset:%H:%M:%S}", f"{e['onset_s']:.1f} s", e["leg"],
                          format_duration(e["duration_s"]), e["severity"], f"{e['confidence']:.2f}",
                          e["evidence"], e["kind"].replace("_", " "))
        out.print(table)
    else:
        out.print("No cramps found in the covered time.")
    for leg, cov in doc["coverage"]["legs"].items():
        gaps = cov["not_covered"]
        reasons = sorted({g["reason"] for g in gaps})
        lost = sum(g["end_s"] - g["start_s"] for g in gaps)
        extra = f"; not covered {format_duration(lost)} ({', '.join(reasons)})" if gaps else ""
        out.print(f"{leg} leg: covered {cov['covered_s'] / 3600:.2f} h{extra}")
    out.print(DISCLAIMER)


@click.command("analyze",
               short_help="Find cramps in an EDF/BDF, CSV/Parquet sample file or session.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--emg", "emg_args", multiple=True, metavar="LABEL=LEG",
              help="EMG channel of a leg (left/right); repeat for more channels.")
@click.option("--acc", "acc_args", multiple=True, metavar="X,Y,Z=LEG",
              help="The three accelerometer axes of a leg; repeat per leg.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object to stdout.")
@click.pass_context
def run(ctx: click.Context, file: Path, emg_args: tuple[str, ...],
            acc_args: tuple[str, ...], as_json: bool) -> None:
    """Detect cramps in FILE: EDF/EDF+/BDF, a crampsense CSV/Parquet sample file, or a session.

    Without --emg/--acc, channels are found from their labels (EMG, gastroc, calf, soleus,
    tib; ACC/accel X/Y/Z; L/R/left/right) and the choice is printed.
    """
    c = get_context(ctx)
    params = DetectionParams.from_mapping(c.config.section("detection"))
    info = c.err if as_json else c.out
    kind = sniff(file)
    cmap: ChannelMap | None = None
    gaps: list[tuple[str, float, float, str]] | None = None
    if kind == "session":
        if emg_args or acc_args:
            raise UsageError("--emg/--acc do not apply to session files: their devices carry "
                             "their placement; drop the options")
        # only sessions need these (and the device and salvage modules they pull in)
        from crampsense.cli.repair import describe_salvage  # noqa: PLC0415
        from crampsense.pipeline.replay import analyze_session  # noqa: PLC0415

        analysis = analyze_session(file, params=params)
        if analysis.salvage is not None:  # damaged: say what was recovered and lost where
            for line in describe_salvage(analysis.salvage, file.name, tz=local_tz()):
                info.print(line, markup=False, soft_wrap=True)
        results = analysis.results
        start = results.start
        gaps = [(g.leg, (g.start - start).total_seconds(), (g.end - start).total_seconds(),
                 g.reason) for g in analysis.night.gaps]
        file_format = "session"
    else:
        loaded = load_legs(file, emg=emg_args, acc=acc_args)
        cmap = loaded.channels
        for note in cmap.notes:
            info.print(f"note: {note}", markup=False)
        for line in cmap.describe():
            info.print(f"using {line}", markup=False)
        if not cmap.emg:
            info.print("note: no EMG mapped; events come from the accelerometer alone "
                       "(possible cramps; an accelerometer under 25 Hz is not covered)",
                       markup=False)
        start = loaded.start
        results = detect_cramps(loaded.legs, start=start, params=params)
        file_format = loaded.file_format
        del loaded
    doc = analysis_json(file=str(file), file_format=file_format, results=results, gaps=gaps,
                        channels=cmap)
    if as_json:
        click.echo(json.dumps(doc))
        return
    _report(c.out, doc, start)
