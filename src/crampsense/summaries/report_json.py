"""The morning summary as JSON-ready data: everything the terminal text shows, and the night."""

from __future__ import annotations

import math
from typing import Any

from crampsense.models import Night
from crampsense.summaries.morning import (
    MorningSummary,
    _contributor_cells,
    _entry_text,
)

__all__ = ["contributor_rows", "day_before_rows", "summary_json"]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


def day_before_rows(summary: MorningSummary) -> list[tuple[str, str]]:
    """The day before's entries as (local time, text), as the terminal shows them."""
    return [(str(r["time_local"]), _entry_text(r))
            for r in summary.day_before.iter_rows(named=True)]


def contributor_rows(summary: MorningSummary) -> list[tuple[str, str, str, str, str]]:
    """(factor, day before, your usual, days, compared) per contributor, as text."""
    return [(c.name, *_contributor_cells(c), c.note) for c in summary.contributors]


def summary_json(summary: MorningSummary, night: Night) -> dict[str, Any]:
    """Everything :func:`~crampsense.summaries.morning.render_summary` shows, plus the night's
    events and gaps with exact times (ISO 8601)."""
    return {
        "night": summary.night_label,
        "wake_date": summary.wake_date,
        "headline": summary.headline,
        "coverage": summary.coverage_text.splitlines(),
        "sleep": summary.sleep_text or None,
        "cramp_log": [
            {"time_local": x.time_local, "leg": x.leg, "site": x.site,
             "duration_s": round(x.duration_s, 1), "severity": x.severity, "after": x.after,
             "text": x.text}
            for x in summary.lines
        ],
        "day_before": [
            {"time_local": r["time_local"], "kind": r["kind"], "name": r["name"],
             "amount": _num(r["amount"]), "unit": r["unit"], "note": r["note"],
             "text": _entry_text(r)}
            for r in summary.day_before.iter_rows(named=True)
        ],
        "contributors": [
            {"factor": c.name, "day_before": _num(c.last_day),
             "usual_median": _num(c.baseline_median), "days": c.n_days, "unit": c.unit,
             "compared": c.note}
            for c in summary.contributors
        ],
        "notices": summary.notices,
        "disclaimer": summary.disclaimer,
        "start": night.start.isoformat(),
        "end": night.end.isoformat(),
        "events": [
            {"onset": e.onset.isoformat(), "offset": e.offset.isoformat(), "leg": e.leg,
             "kind": e.kind, "severity": str(e.severity), "duration_s": round(e.duration_s, 1),
             "woke": e.woke, "got_up": e.got_up, "stretched": e.stretched}
            for e in night.events
        ],
        "gaps": [{"leg": g.leg, "start": g.start.isoformat(), "end": g.end.isoformat(),
                  "reason": g.reason} for g in night.gaps],
    }
