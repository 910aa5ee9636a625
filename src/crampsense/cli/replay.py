"""``crampsense replay SESSION``: decode a recorded session, detect, summarise, store the night.

Also what ``summary`` and ``demo`` print after a replay: the progress line, the night table
written to the data directory, and the morning summary or one JSON object.
"""

from __future__ import annotations

import json
import time
from datetime import tzinfo
from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from crampsense.cli.repair import describe_salvage
from crampsense.cli.utils import PARTICIPANT, Context, get_context, local_tz
from crampsense.config import Config
from crampsense.detection import DetectionParams
from crampsense.errors import StorageError
from crampsense.journal.importers import read_imports
from crampsense.journal.log import entries_frame, read_journal_partial
from crampsense.pipeline.replay import SessionAnalysis, analyze_session
from crampsense.storage.nights import write_night_table
from crampsense.summaries.day_table import day_table
from crampsense.summaries.history import activity_trace, store_night_history, wake_bouts_of
from crampsense.summaries.morning import build_morning_summary, render_summary

__all__ = [
    "replay_and_summarise",
    "replay_command",
    "replay_session",
    "run",
    "session_in_home",
    "store_night",
]

#: Bad journal lines named after a summary; more are counted, not listed.
MAX_JOURNAL_ERRORS_SHOWN: Final = 5


def replay_session(
    out: Console, session: Path, *, config: Config, show_progress: bool = True, prefix: str = ""
) -> SessionAnalysis:
    """Replay with a progress bar; ``prefix`` goes before the report line."""
    t0 = time.perf_counter()
    with Progress(
        TextColumn("[bold]Replaying[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} frames"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=not (show_progress and out.is_terminal),
    ) as bar:
        task = bar.add_task(session.name, total=1)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1))

        analysis = analyze_session(
            session, params=DetectionParams.from_mapping(config.section("detection")),
            progress=progress,
        )
    analysis_s = time.perf_counter() - t0
    if show_progress:
        out.print(
            f"{prefix}Replayed {analysis.frames:,} notifications from {session.name} in "
            f"{analysis_s:.1f} s ({analysis.undecodable_frames} undecodable, "
            f"{analysis.night.lost_frames} packets lost in transit)."
        )
    if show_progress and analysis.salvage is not None:
        for line in describe_salvage(analysis.salvage, session.name, tz=local_tz()):
            out.print(line, soft_wrap=True)
    for message in analysis.decode_errors:
        out.print(f"  skipped: {message}")
    if show_progress and not analysis.clean_end:
        out.print(
            "  Note: this recording ended without a clean stop (killed or power lost); "
            "everything committed is here, at most the last second before the end is missing."
        )
    return analysis


def store_night(analysis: SessionAnalysis, root: Path) -> Path:
    """Write the night's events (and the tables reports and trends read) as Hive-partitioned
    Parquet tables, filed under its session (a re-analysis of the same session replaces only
    that session's tables)."""
    path = write_night_table(
        root, PARTICIPANT, analysis.night.label_date, "events", analysis.results.events,
        session=analysis.session_key,
    )
    store_night_history(
        root, PARTICIPANT, analysis.night, tz=local_tz(), wake=wake_bouts_of(analysis.results),
        activity=activity_trace(analysis.devices, analysis.timelines),
        session=analysis.session_key,
    )
    return path


def replay_and_summarise(
    out: Console,
    session: Path,
    *,
    config: Config,
    journal_path: Path,
    as_json: bool,
    tz: tzinfo,
    store_root: Path,
    err: Console | None = None,
    journal_explicit: bool = False,
) -> SessionAnalysis:
    """``crampsense replay`` / ``summary``: replay, store the night (sessions of this home
    only), print the summary; a journal line that does not parse is skipped and named."""
    notes = err or out
    # read the journal first: a mistyped --journal fails before minutes of replay
    entries, bad_lines = read_journal_partial(
        journal_path, tz=tz, must_exist=journal_explicit
    )
    journal = entries_frame(entries)
    analysis = replay_session(out, session, config=config, show_progress=not as_json)
    note = _store(analysis, session, store_root)
    if as_json:
        out.print_json(json.dumps(_night_json(analysis)))
    else:
        summary = build_morning_summary(
            analysis.night, journal, tz=tz, baseline_days=config["summary.baseline_days"],
            days=day_table(journal, read_imports(store_root), tz=tz),  # imports fill in the log
        )
        color = out.is_terminal and not out.no_color
        out.print(render_summary(summary, width=min(out.width, 100), color=color))
    for error in bad_lines[:MAX_JOURNAL_ERRORS_SHOWN]:
        notes.print(f"note: skipped {error} (fix the line; `crampsense log --show 7` shows the "
                  "journal)", markup=False, highlight=False)
    if len(bad_lines) > MAX_JOURNAL_ERRORS_SHOWN:
        notes.print(f"note: {len(bad_lines) - MAX_JOURNAL_ERRORS_SHOWN} more journal lines "
                  "skipped", markup=False, highlight=False)
    if note:
        notes.print(f"note: {note}", markup=False, highlight=False)
    return analysis


def session_in_home(session: Path, home: Path) -> bool:
    """Whether ``session`` is one of ``home``'s own (in its ``sessions`` folder): only those
    are filed with the home's nights."""
    return session.resolve().parent == (home / "sessions").resolve()


def _store(analysis: SessionAnalysis, session: Path, store_root: Path) -> str:
    """Store the night if ``session`` belongs to this home; returns a note for the person."""
    if not session_in_home(session, store_root):
        return (f"the night was not stored: {session} is not in {store_root / 'sessions'} "
                "(only this home's sessions are kept with its nights)")
    try:
        store_night(analysis, store_root)
    except StorageError as exc:
        return f"the night was shown but not saved: {exc}"
    return ""


def _night_json(analysis: SessionAnalysis) -> dict[str, Any]:
    night = analysis.night
    return {
        "session": night.session_path,
        "start": night.start.isoformat(),
        "end": night.end.isoformat(),
        "events": [
            {
                "onset": e.onset.isoformat(),
                "offset": e.offset.isoformat(),
                "duration_s": round(e.duration_s, 2),
                "leg": e.leg,
                "kind": e.kind,
                "severity": str(e.severity),
                "confidence": round(e.confidence, 3),
                "evidence": e.evidence,
                "woke": e.woke,
                "got_up": e.got_up,
                "stretched": e.stretched,
            }
            for e in night.events
        ],
        "coverage": {
            leg: {"covered_s": round(night.covered_s(leg), 1)} for leg in night.legs
        },
        "gaps": [
            {"leg": g.leg, "start": g.start.isoformat(), "end": g.end.isoformat(),
             "reason": g.reason}
            for g in night.gaps
        ],
        "frames": analysis.frames,
        "undecodable_frames": analysis.undecodable_frames,
        "lost_packets": night.lost_frames,
        "clean_end": analysis.clean_end,
        "salvage": None if analysis.salvage is None else {
            "frames_recovered": analysis.salvage.frames_recovered,
            "frames_missing": analysis.salvage.frames_missing,
            "pages": analysis.salvage.pages,
            "pages_unreadable": analysis.salvage.pages_unreadable,
            "holes": [[h.first_id, h.last_id] for h in analysis.salvage.holes],
        },
    }


@click.command("replay", short_help="Replay a recorded session: decode, detect, summarise.")
@click.argument("session", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the events as one JSON object.")
@click.option("--journal", "journal_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Journal to join with (default: <data dir>/journal.txt).")
@click.pass_context
def run(ctx: click.Context, session: Path, as_json: bool, journal_path: Path | None) -> None:
    """Replay a recorded session through decoding and detection; print its summary."""
    replay_command(get_context(ctx), session, journal_path=journal_path, as_json=as_json)


def replay_command(
    c: Context, session: Path, *, journal_path: Path | None, as_json: bool
) -> SessionAnalysis:
    """What ``replay`` and ``summary`` run: :func:`replay_and_summarise` with the home's
    journal (or the one the person named), storing into the home."""
    return replay_and_summarise(
        c.out,
        session,
        config=c.config,
        journal_path=journal_path or c.data_dir / "journal.txt",
        as_json=as_json,
        tz=local_tz(),
        store_root=c.data_dir,
        err=c.err,
        journal_explicit=journal_path is not None,
    )
