"""``crampsense summary --night/--json/--html``: the glue between stored nights and the report.

Kept apart from ``main.py`` so the summary command itself stays a few lines.
"""

from __future__ import annotations

import json
from datetime import date, timedelta, tzinfo
from pathlib import Path

import polars as pl

from crampsense.cli.replay import replay_session, session_in_home, store_night
from crampsense.cli.utils import PARTICIPANT, Context
from crampsense.errors import StorageError
from crampsense.journal import entries_frame, read_journal
from crampsense.journal.importers import read_imports
from crampsense.models import night_label
from crampsense.pipeline.record import session_start_of
from crampsense.storage.files import atomic_write_bytes
from crampsense.summaries.day_table import day_table
from crampsense.summaries.history import (
    StoredNight,
    activity_trace,
    load_night,
    nights_history,
    wake_bouts_of,
)
from crampsense.summaries.morning import DISCLAIMER, build_morning_summary, render_summary
from crampsense.summaries.report_html import render_report_html
from crampsense.summaries.report_json import contributor_rows, day_before_rows, summary_json
from crampsense.summaries.trends import build_trends

__all__ = ["summary_report"]

#: Nights of history the report's trends section uses.
TRENDS_DAYS = 90


def _session_label(path: Path, tz: tzinfo) -> date | None:
    start = session_start_of(path)
    return None if start is None else night_label(start, tz)


def summary_report(
    c: Context,
    *,
    session: Path | None,
    journal_path: Path | None,
    night_date: date | None,
    as_json: bool,
    html_path: Path | None,
    tz: tzinfo,
) -> None:
    """Pick the night (``--night``, ``--session`` or the latest), build and print/write."""
    sessions = sorted(c.sessions_dir().glob("*.session")) if c.sessions_dir().is_dir() else []
    history = nights_history(c.data_dir, tz=tz).filter(pl.col("participant") == PARTICIPANT)
    stored = set(history["night_date"].to_list())
    shown: StoredNight | None = None
    if session is not None:
        analysis = replay_session(c.err, session, config=c.config, show_progress=not as_json)
        night_date = date.fromisoformat(analysis.night.label_date)
        if session_in_home(session, c.data_dir):
            store_night(analysis, c.data_dir)
            history = nights_history(c.data_dir, tz=tz).filter(
                pl.col("participant") == PARTICIPANT)
        else:  # shown, never filed with this home's nights
            shown = StoredNight(analysis.night, wake_bouts_of(analysis.results),
                                activity_trace(analysis.devices, analysis.timelines))
    elif night_date is None:
        if not sessions and not stored:
            raise StorageError(f"no recorded sessions in {c.sessions_dir()} and no stored nights; "
                             "record one with `crampsense record` (or try `crampsense demo`)")
        latest_session = max((d for s in sessions if (d := _session_label(s, tz))), default=None)
        latest_stored = max(stored, default=None)
        night_date = max(d for d in (latest_session, latest_stored) if d is not None)
    if shown is None and night_date not in set(history["night_date"].to_list()):
        match = [s for s in sessions if _session_label(s, tz) == night_date]
        if not match:
            known = ", ".join(str(d) for d in sorted(stored)[-5:]) or "none"
            raise StorageError(f"no night {night_date} is stored or recorded (latest stored: "
                             f"{known}); nights are labelled by the evening they start")
        analysis = replay_session(c.err, match[-1], config=c.config, show_progress=not as_json)
        store_night(analysis, c.data_dir)
        history = nights_history(c.data_dir, tz=tz).filter(pl.col("participant") == PARTICIPANT)
    stored_night = shown or load_night(c.data_dir, PARTICIPANT, night_date.isoformat())
    journal = entries_frame(read_journal(journal_path or c.data_dir / "journal.txt", tz=tz))
    days = day_table(journal, read_imports(c.data_dir), tz=tz)
    summary = build_morning_summary(
        stored_night.night, journal, tz=tz, history=history,
        baseline_days=c.config["summary.baseline_days"], days=days,
    )
    if html_path is not None:
        recent = history.filter((pl.col("night_date") <= night_date)
                                & (pl.col("night_date") > night_date - timedelta(TRENDS_DAYS)))
        page = render_report_html(
            summary, stored_night.night, tz=tz, wake=stored_night.wake,
            activity=stored_night.activity, history=history,
            trends=build_trends(recent, days, disclaimer=DISCLAIMER),
            day_before_text=day_before_rows(summary), contributor_cells=contributor_rows(summary),
        )
        atomic_write_bytes(html_path, page.encode("utf-8"))
    if as_json:
        payload = summary_json(summary, stored_night.night)
        if html_path is not None:
            payload["html"] = str(html_path)
        c.out.print_json(json.dumps(payload))
        return
    color = c.out.is_terminal and not c.out.no_color
    c.out.print(render_summary(summary, width=min(c.out.width, 100), color=color), end="")
    if html_path is not None:
        c.out.print(f"Report written: {html_path} (one offline page; open it in any browser).")
