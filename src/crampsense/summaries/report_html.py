"""The morning report as one self-contained, offline HTML page, with hand-written inline SVG.

Why hand-written SVG and no plotting library: the page must open offline, forever, on any
browser and be safe to send to a clinician; matplotlib would add a large dependency to produce
PNGs (not searchable, blurry when zoomed), and Plotly/Bokeh/Altair pages carry (or fetch)
megabytes of JavaScript. The figures here are rectangles, lines and text on a time axis: a few
hundred lines of SVG strings, no script, no font, no request. A Content-Security-Policy meta tag
forbids every network fetch, so even a mistake cannot make the page phone home. Every piece of
user text (journal notes, medication names, app names) goes through :func:`html.escape`.

Sections: headline and coverage; the night timeline (sleep period and wake bouts; per leg the
activity trace when stored, cramps, and "not covered" spans from gaps and lead-off); the cramp
log; the day before against the person's own usual (median of up to 30 earlier days); a 30-night
calendar of cramp nights; the trends (rate ratios with 95% intervals on a log axis) when given;
the notices and the disclaimer.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Final

import polars as pl

from crampsense.models import Night
from crampsense.summaries.daily import monitored_legs
from crampsense.summaries.history import WakeBouts
from crampsense.summaries.morning import MorningSummary, format_duration
from crampsense.summaries.trends import TrendsReport

__all__ = ["CALENDAR_NIGHTS", "render_report_html"]

#: Nights shown in the calendar (the label night and the ones before it).
CALENDAR_NIGHTS: Final = 30
_W: Final = 960  # timeline width (px)
_LEFT: Final = 90  # label gutter (px)
_LANE: Final = 54  # per-leg lane height (px)
_SEVERITY_COLOUR: Final = {"mild": "#f4a261", "moderate": "#e76f51", "severe": "#b5172b"}
_CSP: Final = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "base-uri 'none'; form-action 'none'")

_CSS: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1000px;color:#1d1d1f;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#ddd;padding-bottom:4px}.muted{color:#666}.notice{background:#fff4e5;border-left:4px solid
#e76f51;padding:8px 12px;margin:6px 0}.disclaimer{margin-top:28px;font-size:13px;color:#555}
table{border-collapse:collapse}td,th{padding:3px 12px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600}ul{padding-left:20px}svg text{font:12px system-ui,sans-serif;fill:#333}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;
height:12px;vertical-align:-1px;margin-right:4px;border-radius:2px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hhmm(when: datetime, tz: tzinfo) -> str:
    return when.astimezone(tz).strftime("%H:%M")


class _Axis:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.span_s = max(1.0, (end - start).total_seconds())

    def x(self, when: datetime) -> float:
        frac = (when - self.start).total_seconds() / self.span_s
        return _LEFT + max(0.0, min(1.0, frac)) * (_W - _LEFT - 10)


def _hour_ticks(axis: _Axis, tz: tzinfo, y0: float, y1: float) -> list[str]:
    out = []
    local = axis.start.astimezone(tz)
    tick = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    end = axis.start + timedelta(seconds=axis.span_s)
    while tick <= end:
        x = axis.x(tick)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#e5e5e5"/>'
                   f'<text x="{x:.1f}" y="{y1 + 14}" text-anchor="middle">{tick:%H:%M}</text>')
        tick += timedelta(hours=1)
    return out


def _timeline_svg(night: Night, wake: WakeBouts, activity: pl.DataFrame, tz: tzinfo) -> str:
    axis = _Axis(night.start, night.end)
    legs = monitored_legs(night) or ("left", "right")
    top = 30
    height = top + len(legs) * (_LANE + 12) + 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
              f'viewBox="0 0 {_W} {height}" role="img" aria-label="Night timeline">')]
    parts += _hour_ticks(axis, tz, 4, height - 24)
    # Sleep period and wake bouts (the leg with most sleep).
    found = [s for s in night.sleep if s.onset is not None and s.offset is not None]
    parts.append(f'<text x="4" y="{top - 12}">sleep</text>')
    if found:
        best = max(found, key=lambda s: s.sleep_s)
        if best.onset is not None and best.offset is not None:
            x0, x1 = axis.x(best.onset), axis.x(best.offset)
            parts.append(f'<rect x="{x0:.1f}" y="{top - 24}" width="{max(1.0, x1 - x0):.1f}" '
                         f'height="14" fill="#4c78a8" opacity="0.75"><title>sleep period '
                         f'{_hhmm(best.onset, tz)}-{_hhmm(best.offset, tz)}</title></rect>')
        for a, b in wake.get(best.leg, ()):
            x0, x1 = axis.x(a), axis.x(b)
            parts.append(f'<rect x="{x0:.1f}" y="{top - 24}" width="{max(2.0, x1 - x0):.1f}" '
                         f'height="14" fill="#f2cf5b"><title>awake {_hhmm(a, tz)}-'
                         f'{_hhmm(b, tz)}</title></rect>')
    else:
        parts.append(f'<text x="{_LEFT}" y="{top - 12}" class="muted">no sleep period found'
                     "</text>")
    for i, leg in enumerate(legs):
        y = top + 8 + i * (_LANE + 12)
        parts.append(f'<text x="4" y="{y + _LANE / 2 + 4:.0f}">{_e(leg)} leg</text>'
                     f'<rect x="{_LEFT}" y="{y}" width="{_W - _LEFT - 10}" height="{_LANE}" '
                     'fill="#f7f7f7"/>')
        line = ""
        trace = activity.filter(pl.col("leg") == leg).sort("start") if activity.height else None
        if trace is not None and trace.height:
            # Log scale from the leg's floor (1) to at least 10x: a cramp's sustained rise and
            # a brief jerk both stay visible.
            peak = float(trace["level_rel"].max() or 1.0)  # type: ignore[arg-type]
            log_top = math.log(max(10.0, peak))
            pts = " ".join(
                f"{axis.x(t):.1f},{y + _LANE - math.log(max(1.0, v)) / log_top * (_LANE - 4):.1f}"
                for t, v in trace.select("start", "level_rel").iter_rows())
            line = (f'<polyline points="{pts}" fill="none" stroke="#333" stroke-width="1">'
                    "<title>activity (relative to the leg's floor)</title></polyline>")
        for g in (g for g in night.gaps if g.leg == leg):
            x0, x1 = axis.x(g.start), axis.x(g.end)
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{max(2.0, x1 - x0):.1f}" height="{_LANE}" '
                'fill="url(#nc)" stroke="#999"><title>not covered '
                f'{_hhmm(g.start, tz)}-{_hhmm(g.end, tz)} ({_e(g.reason)})</title></rect>'
                f'<text x="{x0 + 2:.1f}" y="{y + 12}" font-size="10">not covered</text>')
        for ev in (e for e in night.events if e.leg == leg):
            x0, x1 = axis.x(ev.onset), axis.x(ev.offset)
            colour = _SEVERITY_COLOUR.get(str(ev.severity), "#e76f51")
            label = "possible cramp" if ev.kind != "cramp" else f"{ev.severity} cramp"
            opacity = 0.9 if ev.kind == "cramp" else 0.4
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(4.0, x1 - x0):.1f}" '
                f'height="{_LANE - 8}" fill="{colour}" opacity="{opacity}">'
                f"<title>{_e(label)} {_hhmm(ev.onset, tz)}, "
                f"{_e(format_duration(ev.duration_s))}</title></rect>"
                f'<text x="{x0:.1f}" y="{y + _LANE + 10}" font-size="10">'
                f"{_hhmm(ev.onset, tz)}</text>")
        parts.append(line)  # drawn last: the trace stays visible over cramps and gaps
    defs = ('<defs><pattern id="nc" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#aaa" stroke-width="2"/></pattern></defs>')
    parts.insert(1, defs)
    parts.append("</svg>")
    return "".join(parts)


def _calendar_svg(history: pl.DataFrame, last: date) -> str:
    cell, gap = 30, 4
    first = last - timedelta(days=CALENDAR_NIGHTS - 1)
    counts = {d: int(c) for d, c in history.select("night_date", "cramps").iter_rows()
              if d is not None and first <= d <= last}
    weeks = math.ceil((CALENDAR_NIGHTS + first.weekday()) / 7)
    width, height = 7 * (cell + gap) + 10, weeks * (cell + gap) + 30
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" role="img" aria-label="Cramp nights">')]
    for k, name in enumerate(("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")):
        parts.append(f'<text x="{k * (cell + gap) + cell / 2:.0f}" y="12" '
                     f'text-anchor="middle">{name}</text>')
    for n in range(CALENDAR_NIGHTS):
        d = first + timedelta(days=n)
        slot = n + first.weekday()
        x, y = (slot % 7) * (cell + gap), 20 + (slot // 7) * (cell + gap)
        if d not in counts:
            fill, tip = "#ffffff", "no night recorded"
        else:
            c = counts[d]
            fill = ("#e8f1e4", "#f4a261", "#e76f51", "#b5172b")[min(c, 3)]
            tip = f"{c} cramp{'s' * (c != 1)}"
        stroke = "#222" if d == last else "#bbb"
        ink = "#fff" if counts.get(d, 0) >= 2 else "#333"
        parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" rx="3" '
                     f'fill="{fill}" stroke="{stroke}"><title>night of {d.isoformat()}: {tip}'
                     f'</title></rect><text x="{x + 3}" y="{y + 12}" font-size="10" '
                     f'style="fill:{ink}">{d.day}</text>')
        if counts.get(d):
            parts.append(f'<text x="{x + cell - 4}" y="{y + cell - 5}" font-size="11" '
                         f'text-anchor="end" font-weight="600" style="fill:{ink}">{counts[d]}'
                         "</text>")
    parts.append("</svg>")
    return "".join(parts)


def _forest_svg(report: TrendsReport) -> str:
    rows = [s for s in report.splits if s.rate_ratio_ci is not None and s.rate_ratio is not None]
    if not rows:
        return ""
    label_w, plot_w, row_h = 380, 440, 26
    lo_v, hi_v = 1 / 16, 16.0

    def x(v: float) -> float:
        v = min(max(v, lo_v), hi_v)
        return label_w + (math.log(v) - math.log(lo_v)) / (math.log(hi_v) - math.log(lo_v)) * plot_w

    height = len(rows) * row_h + 40
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 130}" '
              f'height="{height}" role="img" aria-label="Rate ratios with 95% intervals">')]
    for v in (0.125, 0.25, 0.5, 1, 2, 4, 8):
        parts.append(f'<line x1="{x(v):.1f}" y1="6" x2="{x(v):.1f}" y2="{height - 24}" '
                     f'stroke="{"#888" if v == 1 else "#e5e5e5"}"/><text x="{x(v):.1f}" '
                     f'y="{height - 10}" text-anchor="middle">{v:g}</text>')
    for i, s in enumerate(rows):
        y = 16 + i * row_h
        if s.rate_ratio_ci is None or s.rate_ratio is None:  # pragma: no cover - filtered above
            continue
        lo, hi = s.rate_ratio_ci
        colour = {"more": "#b5172b", "fewer": "#2a9d8f"}.get(s.verdict, "#555")
        dot = x(s.rate_ratio) if math.isfinite(s.rate_ratio) else x(hi_v)
        parts.append(
            f'<text x="0" y="{y + 4}">{_e(s.exposed[:58])}</text>'
            f'<line x1="{x(lo):.1f}" y1="{y}" x2="{x(hi):.1f}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"/><circle cx="{dot:.1f}" '
            f'cy="{y}" r="4" fill="{colour}"><title>{_e(s.text)}</title></circle>'
            f'<text x="{label_w + plot_w + 8}" y="{y + 4}">n = {s.n_exposed} / {s.n_other}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rows(cells: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report_html(
    summary: MorningSummary,
    night: Night,
    *,
    tz: tzinfo,
    wake: WakeBouts | None = None,
    activity: pl.DataFrame | None = None,
    history: pl.DataFrame | None = None,
    trends: TrendsReport | None = None,
    day_before_text: Sequence[tuple[str, str]] = (),
    contributor_cells: Sequence[tuple[str, str, str, str, str]] = (),
) -> str:
    """The whole report as one HTML document (UTF-8 text, no external references).

    Parameters
    ----------
    summary : MorningSummary
        The night's summary (headline, coverage, cramp log, notices, disclaimer).
    night : Night
        The same night, for the timeline.
    tz : tzinfo
        The person's time zone (clock times on the page).
    wake, activity : optional
        Wake bouts per leg and the per-minute activity trace (see
        :mod:`crampsense.summaries.history`).
    history : polars.DataFrame, optional
        :func:`~crampsense.summaries.history.nights_history`, for the calendar.
    trends : TrendsReport, optional
        Shown as a forest plot and text when given.
    day_before_text : sequence of (time, entry)
        The day before's entries as the terminal summary prints them.
    contributor_cells : sequence of (factor, day before, usual, days, compared)
    """
    label = date.fromisoformat(summary.night_label)
    act = activity if activity is not None else pl.DataFrame(
        schema={"leg": pl.String, "start": pl.Datetime("us", "UTC"), "level_rel": pl.Float64})
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>crampsense: night of {_e(summary.night_label)}</title>",
        f"<style>{_CSS}</style></head><body>",
        (f"<h1>Night of {label:%a} {_e(summary.night_label)}, woke "
         f"{date.fromisoformat(summary.wake_date):%a} {_e(summary.wake_date)}</h1>"),
        f"<p>{_e(summary.headline)}</p>",
        "<p class=\"muted\">" + "<br>".join(_e(x) for x in summary.coverage_text.splitlines())
        + "</p>",
    ]
    if summary.sleep_text:
        out.append(f'<p class="muted">{_e(summary.sleep_text)}</p>')
    out += [
        "<h2>The night</h2>",
        _timeline_svg(night, wake or {}, act, tz),
        '<p class="legend muted"><span><i class="sw" style="background:#4c78a8"></i>sleep '
        'period</span><span><i class="sw" style="background:#f2cf5b"></i>awake</span><span>'
        '<i class="sw" style="background:#b5172b"></i>severe</span><span><i class="sw" '
        'style="background:#e76f51"></i>moderate</span><span><i class="sw" '
        'style="background:#f4a261"></i>mild cramp</span><span><i class="sw" '
        'style="background:#ccc"></i>not covered (no usable signal: cramps there would be '
        'missed)</span>' + ("" if act.height else "<span>activity trace not stored for this "
                            "night</span>") + "</p>",
        "<h2>Cramp log</h2>",
    ]
    if summary.lines:
        out.append("<ul>" + "".join(f"<li>{_e(x.text)}</li>" for x in summary.lines) + "</ul>")
    else:
        out.append("<p>No cramps detected in the covered time.</p>")
    out.append(f"<h2>The day before ({label:%a} {_e(summary.night_label)})</h2>")
    if day_before_text:
        out.append("<ul>" + "".join(f"<li>{_e(t)} {_e(x)}</li>" for t, x in day_before_text)
                   + "</ul>")
    else:
        out.append("<p>Nothing logged in the journal.</p>")
    if contributor_cells:
        out += [("<p class=\"muted\">Compared with your usual: the median of up to 30 earlier "
                 "days with data. Associations, not causes.</p>"),
                _rows(contributor_cells, ("factor", "day before", "your usual", "days",
                                          "compared"))]
    if history is not None:
        n_rec = history.filter(
            (pl.col("night_date") <= label)
            & (pl.col("night_date") > label - timedelta(days=CALENDAR_NIGHTS))).height
        out += [f"<h2>Cramp nights, last {CALENDAR_NIGHTS} nights</h2>",
                _calendar_svg(history, label),
                (f'<p class="muted">{n_rec} of {CALENDAR_NIGHTS} nights recorded; white: no '
                 "night recorded (not the same as no cramps).</p>")]
    if trends is not None and trends.splits:
        out += ["<h2>What went with more or fewer cramps</h2>",
                f"<p>{_e(trends.headline)}</p>",
                ("<p class=\"muted\">Rate ratio of cramps per night (dot) with its 95% "
                 "interval (line), log scale; an interval crossing 1 means no clear difference. "
                 "Associations in your own records, never causes.</p>"),
                _forest_svg(trends),
                "<ul>" + "".join(f"<li>{_e(s.text)}</li>" for s in trends.splits) + "</ul>"]
    notices = [*summary.notices, *(trends.notices if trends is not None else [])]
    if notices:
        out.append("<h2>Notices</h2>")
        out += [f'<div class="notice">{_e(n)}</div>' for n in dict.fromkeys(notices)]
    out += [f'<p class="disclaimer">{_e(summary.disclaimer)}</p>', "</body></html>"]
    return "\n".join(out) + "\n"
