"""Summaries layer: polars joins of nights and journal, and the morning summary.

See :mod:`crampsense.summaries.morning` (what the summary shows and its wording rules) and
:mod:`crampsense.summaries.daily` (day totals, night tables and their join).
"""

from __future__ import annotations

from crampsense.summaries.daily import (
    day_totals,
    join_nights_with_days,
    nights_frame,
)
from crampsense.summaries.morning import (
    DISCLAIMER,
    Contributor,
    CrampLogLine,
    MorningSummary,
    build_morning_summary,
    format_after,
    format_duration,
    render_summary,
)

__all__ = [
    "DISCLAIMER",
    "Contributor",
    "CrampLogLine",
    "MorningSummary",
    "build_morning_summary",
    "day_totals",
    "format_after",
    "format_duration",
    "join_nights_with_days",
    "nights_frame",
    "render_summary",
]
