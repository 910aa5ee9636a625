"""The morning summary: last night's cramps next to the day before, rendered for a terminal.

What it shows (``../shared/design/JOURNAL_AND_SUMMARY.md``, "The morning summary people expect"):

1. a headline: cramps (count, worst severity, total time, legs) and how much of the night each
   leg was covered by a working sensor; uncovered time is never called "no cramps";
2. one cramp-log line per event: ``"03:12, left calf, 2 min 10 s, severe, woke and got up"``;
3. the day before compared with the person's own median of up to ``baseline_days`` earlier days
   with data, as associations with counts, never causes;
4. red-flag notices ("talk to a clinician") and, always, the not-medical-advice line.

Cramp-log line rules
--------------------
Duration (rounded to whole seconds): under a minute ``"45 s"``; under ten minutes
``"2 min 10 s"`` (``"2 min"`` on the minute); from ten minutes ``"12 min"`` (rounded).

What happened after: getting up or stretching implies waking, so the phrase lists ``woke``
followed by ``got up`` and ``stretched`` where flagged, joined as English: ``"woke"``,
``"woke and got up"``, ``"woke and stretched"``, ``"woke, got up and stretched"``; no flag at
all reads ``"stayed asleep"``.

Events of kind ``"possible_cramp"`` (weaker evidence, e.g. accelerometer only) read
``"possible cramp"`` in the severity slot, since their grade is not reliable; they are counted
separately from cramps and never raise red flags.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Final

import polars as pl
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from crampsense.models import CoverageGap, CrampEvent, Leg, Night, Severity, night_label
from crampsense.summaries.daily import (
    DAY_METRICS,
    covered_fraction,
    day_totals,
    join_nights_with_days,
    local_naive,
    monitored_legs,
    night_date_expr,
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
    "render_summary",
]

#: Cramps in one night from which frequency alone is a red flag. Self-help guides send people
#: to a clinician for *frequent* cramps; three in one night is well above the typical one.
RED_FLAG_CRAMPS_PER_NIGHT: Final = 3
#: Nights with cramps, within :data:`RED_FLAG_WINDOW_NIGHTS`, that make cramps "persistent":
#: more nights with cramps than without in a week.
RED_FLAG_CRAMP_NIGHTS: Final = 4
RED_FLAG_WINDOW_NIGHTS: Final = 7
#: Symptoms logged this many days before the night (up to the morning) are shown as red flags.
SYMPTOM_LOOKBACK_DAYS: Final = 7
#: Journal entries up to this long after the night ends still belong to "this morning".
MORNING_SPAN: Final = timedelta(hours=12)
#: Word stems in a logged symptom that guides name as reasons to see a clinician: weakness,
#: numbness (and tingling, its neighbour), swelling, skin changes and discolouration.
RED_FLAG_SYMPTOM_PATTERN: Final = r"\b(weak|numb|tingl|swell|swollen|skin|discolo)"
#: A leg covered for less than this fraction of the night gets its own notice.
LOW_COVERAGE_FRACTION: Final = 0.8
#: Within this fraction of the person's median counts as "about your usual"; day-to-day
#: intake varies by about this much, so smaller differences mean little.
USUAL_BAND_FRACTION: Final = 0.2
#: Fewer baseline days than this are too few for a median to mean anything.
MIN_BASELINE_DAYS: Final = 5
#: Gaps listed by time per leg; the rest are summarised as a count and a total.
MAX_GAPS_LISTED: Final = 4

DISCLAIMER: Final = (
    "crampsense is not a medical device and this is not medical advice: it shows associations "
    "in your own records, not causes. See a clinician for cramps that are severe, frequent or "
    "persistent, or that come with weakness, numbness, swelling or skin changes."
)

_LABELS: Final[dict[str, str]] = {
    "water_ml": "water",
    "magnesium_mg": "magnesium",
    "potassium_mg": "potassium",
    "calcium_mg": "calcium",
    "sodium_mg": "sodium",
    "caffeine_mg": "caffeine",
    "alcohol_drinks": "alcohol",
    "exercise_min": "exercise",
    "steps": "steps",
}


@dataclass(frozen=True)
class CrampLogLine:
    """One cramp as a line of the person's cramp log (local time)."""

    time_local: str  # "03:12"
    leg: str  # "left"
    duration_s: float
    severity: str  # "severe", or "possible cramp"
    after: str  # "woke and got up"
    site: str = "calf"

    @property
    def text(self) -> str:
        """``"03:12, left calf, 2 min 10 s, severe, woke and got up"``."""
        return (
            f"{self.time_local}, {self.leg} {self.site}, {format_duration(self.duration_s)}, "
            f"{self.severity}, {self.after}"
        )

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Contributor:
    """The day before compared with the person's own baseline, for one factor.

    ``last_day`` is in ``unit`` (``None``: not logged); ``baseline_median`` is the median of up
    to ``baseline_days`` earlier days on which the factor was logged, ``n_days`` of them. For a
    medication, ``unit`` is ``"taken"``, ``last_day`` 1 or 0 and ``baseline_median`` ``None``
    (``n_days`` counts the earlier days it was taken).
    """

    name: str
    last_day: float | None
    baseline_median: float | None
    n_days: int
    unit: str
    note: str


@dataclass(frozen=True)
class MorningSummary:
    """Everything the morning summary shows; :func:`render_summary` draws it.

    ``day_before`` holds the journal entries of the day before in time order, with columns
    ``time`` (UTC), ``time_local`` (``"HH:MM"``), ``kind``, ``amount``, ``unit``, ``name``,
    ``note``, ``distance_km``, ``severity``.
    """

    night_label: str  # "2026-11-20": the evening the night starts
    wake_date: str  # "2026-11-21"
    headline: str
    coverage_text: str  # one line per leg, "\n"-separated
    lines: list[CrampLogLine]
    contributors: list[Contributor]
    day_before: pl.DataFrame
    notices: list[str]
    disclaimer: str
    sleep_text: str = ""  # "" when no leg accelerometer gave a sleep period


# --------------------------------------------------------------------------- wording


def format_duration(duration_s: float) -> str:
    """``45 s``, ``2 min 10 s``, ``2 min``, ``12 min`` (see the module docstring).

    Examples
    --------
    >>> [format_duration(s) for s in (44.6, 130.0, 120.2, 725.0)]
    ['45 s', '2 min 10 s', '2 min', '12 min']
    """
    seconds = round(duration_s)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{round(seconds / 60)} min"


def format_after(event: CrampEvent) -> str:
    """What followed a cramp, from its ``woke``/``got_up``/``stretched`` flags."""
    if not (event.woke or event.got_up or event.stretched):
        return "stayed asleep"
    actions = ["woke"] + ["got up"] * event.got_up + ["stretched"] * event.stretched
    if len(actions) == 1:
        return actions[0]
    return f"{', '.join(actions[:-1])} and {actions[-1]}"


def _hours_text(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    if hours == 0:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _hhmm(when: datetime, tz: tzinfo) -> str:
    return f"{when.astimezone(tz):%H:%M}"


def _english_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _site(night: Night, leg: Leg) -> str:
    """``"calf"``, or ``"shin"`` when the leg's only sensor is on the shin."""
    places = {d.placement for d in night.devices if d.placement.startswith(f"{leg}-")}
    return "shin" if places == {f"{leg}-shin"} else "calf"


def _log_line(event: CrampEvent, night: Night, tz: tzinfo) -> CrampLogLine:
    return CrampLogLine(
        time_local=_hhmm(event.onset, tz),
        leg=event.leg,
        duration_s=event.duration_s,
        severity="possible cramp" if event.kind == "possible_cramp" else str(event.severity),
        after=format_after(event),
        site=_site(night, event.leg),
    )


def _gap_text(gap: CoverageGap, night: Night, tz: tzinfo) -> str:
    start = max(gap.start, night.start)
    end = min(gap.end, night.end)
    if (end - start).total_seconds() < 60:
        length = format_duration((end - start).total_seconds())
        return f"{_hhmm(start, tz)} for {length} ({gap.reason})"
    return f"{_hhmm(start, tz)}–{_hhmm(end, tz)} ({gap.reason})"


def _coverage_line(night: Night, leg: Leg, tz: tzinfo) -> str:
    tail = (
        f"covered {_hours_text(night.covered_s(leg))} of {_hours_text(night.duration_s)} "
        f"({covered_fraction(night, leg):.0%})"
    )
    gaps = sorted(
        (g for g in night.gaps if g.leg == leg and g.end > night.start and g.start < night.end),
        key=lambda g: g.start,
    )
    if not gaps:
        return f"{leg} leg: {tail}"
    if any(g.reason == "never connected" and g.start <= night.start and g.end >= night.end
           for g in gaps):
        return (f"{leg} {_site(night, leg)}: never connected, nothing was recorded from it; "
                f"{tail}")
    listed = [_gap_text(g, night, tz) for g in gaps[:MAX_GAPS_LISTED]]
    rest = gaps[MAX_GAPS_LISTED:]
    if rest:
        listed.append(
            f"and {len(rest)} more ({_hours_text(sum(g.duration_s for g in rest))} in total)"
        )
    return f"{leg} leg: not covered {', '.join(listed)}; {tail}"


def _sleep_line(night: Night, tz: tzinfo) -> str:
    """One line on the sleep period the leg accelerometer showed ("" without one).

    The leg with the most time asleep is used (both legs' figures nearly always agree; a leg
    whose sensor was off part of the night shows less).
    """
    found = [(s, s.onset, s.offset) for s in night.sleep
             if s.onset is not None and s.offset is not None]
    if not found:
        if night.sleep:
            return ("No sleep period found in the leg accelerometer (it needs 30 min of "
                    "stillness); rates per hour of sleep are not available.")
        return ""
    best, onset, offset = max(found, key=lambda f: f[0].sleep_s)
    cramps = sum(1 for e in night.events if e.kind == "cramp")
    bouts = (f"{best.wake_bouts} wake bout{'s' * (best.wake_bouts != 1)} "
             f"({_hours_text(best.wake_s)})") if best.wake_bouts else "no wake bouts"
    rate = (f"; {cramps / (best.sleep_s / 3600.0):.2f} cramps per hour of sleep"
            if best.sleep_s > 0 else "")
    return (f"Sleep period {_hhmm(onset, tz)}–{_hhmm(offset, tz)} "
            f"({best.leg} leg accelerometer): {_hours_text(best.sleep_s)} asleep, {bouts}"
            f"{rate}.")


def _headline(night: Night, legs: Sequence[Leg]) -> str:
    if not legs:
        return "No leg sensor recorded this night, so nothing is known about cramps."
    cramps = [e for e in night.events if e.kind == "cramp"]
    possible = len(night.events) - len(cramps)
    shares = ", ".join(f"{leg} {covered_fraction(night, leg):.0%}" for leg in legs)
    coverage = f"Sensors covered {shares} of {_hours_text(night.duration_s)}."
    possible_text = f"{possible} possible cramp{'s' * (possible != 1)}"
    if not cramps:
        found = "No cramps detected while the sensors worked"
        found += f" ({possible_text})." if possible else "."
        return f"{found} {coverage}"
    worst = max(e.severity for e in cramps)
    total_s = sum(e.duration_s for e in cramps)
    cramp_legs = sorted({e.leg for e in cramps})
    where = "both calves" if len(cramp_legs) == 2 else f"the {cramp_legs[0]} calf"
    count = f"{len(cramps)} cramp{'s' * (len(cramps) != 1)}"
    also = f"; also {possible_text}" if possible else ""
    return (
        f"{count} in {where} (worst {worst}, {format_duration(total_s)} in total){also}. "
        f"{coverage}"
    )


# --------------------------------------------------------------------------- contributors


def _fmt_amount(value: float, unit: str) -> str:
    if unit == "drinks":
        text = f"{value:.1f}".rstrip("0").rstrip(".")
        return f"{text} drink" if value == 1 else f"{text} drinks"
    if unit == "steps":
        return f"{value:,.0f}"
    return f"{value:,.0f} {unit}"


def _comparison_note(last: float | None, median: float | None, n_days: int, unit: str) -> str:
    if last is None:
        return "not logged the day before"
    if n_days < MIN_BASELINE_DAYS or median is None:
        return f"too few earlier days to compare (n = {n_days})"
    if median == 0:
        return "same as your usual (none)" if last == 0 else "more than your usual (none)"
    change = (last - median) / median
    if abs(change) <= USUAL_BAND_FRACTION:
        return "about your usual"
    direction = "below" if change < 0 else "above"
    return f"{abs(change):.0%} {direction} your usual of {_fmt_amount(median, unit)}"


def _contributors(days: pl.DataFrame, day: date, baseline_days: int) -> list[Contributor]:
    before = days.filter(pl.col("date") < day).sort("date")
    last_row = days.filter(pl.col("date") == day)
    columns = [c for c, _, _, _ in DAY_METRICS]
    stats = before.select(
        *(pl.col(c).drop_nulls().tail(baseline_days).median().alias(f"{c}__median")
          for c in columns),
        *(pl.col(c).drop_nulls().tail(baseline_days).len().alias(f"{c}__n") for c in columns),
    ).row(0, named=True)
    last = last_row.row(0, named=True) if last_row.height else {}
    out: list[Contributor] = []
    for column, _, unit, _ in DAY_METRICS:
        value = last.get(column)
        median = stats[f"{column}__median"]
        n_days = int(stats[f"{column}__n"])
        if value is None and n_days == 0:
            continue
        out.append(
            Contributor(
                name=_LABELS[column],
                last_day=value,
                baseline_median=median,
                n_days=n_days,
                unit=unit,
                note=_comparison_note(value, median, n_days, unit),
            )
        )
    return out + _medication_contributors(before.tail(baseline_days), last)


def _medication_contributors(
    baseline: pl.DataFrame, last: dict[str, object]
) -> list[Contributor]:
    taken_before = (
        baseline.select(pl.col("medications").explode().drop_nulls())
        .group_by("medications")
        .agg(pl.len().alias("n"))
    )
    counts = dict(zip(taken_before["medications"], taken_before["n"], strict=True))
    raw = last.get("medications")
    taken_last = set(raw) if isinstance(raw, list) else set()
    out = []
    for name in sorted(taken_last | set(counts)):
        n_days = int(counts.get(name, 0))
        taken = name in taken_last
        earlier = f"on {n_days} of {baseline.height} earlier days with entries"
        out.append(
            Contributor(
                name=name,
                last_day=1.0 if taken else 0.0,
                baseline_median=None,
                n_days=n_days,
                unit="taken",
                note=f"{'taken' if taken else 'not logged'} the day before; taken {earlier}",
            )
        )
    return out


# --------------------------------------------------------------------------- notices


def _history_notice(history: pl.DataFrame, night_day: date, n_cramps: int) -> str | None:
    if "night_date" not in history.columns or "cramps" not in history.columns:
        return None
    first = night_day - timedelta(days=RED_FLAG_WINDOW_NIGHTS - 1)
    window = (
        history.select(night_date_expr(history).alias("night_date"), pl.col("cramps"))
        .filter(pl.col("night_date").is_between(first, night_day - timedelta(days=1)))
        .group_by("night_date")
        .agg(pl.col("cramps").max())
    )
    recorded = window.height + 1
    with_cramps = int(window.filter(pl.col("cramps") > 0).height) + (n_cramps > 0)
    if with_cramps < RED_FLAG_CRAMP_NIGHTS:
        return None
    return (
        f"Cramps on {with_cramps} of the {recorded} nights recorded in the last "
        f"{RED_FLAG_WINDOW_NIGHTS} days. Cramps that persist night after night are worth "
        "talking to a clinician about."
    )


def _symptom_notices(journal: pl.DataFrame, night: Night, night_day: date, tz: tzinfo) -> list[
    str
]:
    if journal.is_empty():
        return []
    since_local = datetime.combine(night_day - timedelta(days=SYMPTOM_LOOKBACK_DAYS - 1),
                                   datetime.min.time())
    until = night.end + MORNING_SPAN
    flagged = (
        journal.with_columns(local=local_naive(pl.col("time"), tz))
        .filter(
            (pl.col("kind") == "symptom")
            & (pl.col("local") >= since_local)
            & (pl.col("time") <= until)
            & (
                pl.concat_str([pl.col("name"), pl.col("note")], separator=" ", ignore_nulls=True)
                .str.to_lowercase()
                .str.contains(RED_FLAG_SYMPTOM_PATTERN)
            )
        )
        .sort("time")
    )
    if flagged.is_empty():
        return []
    logged = [
        f"'{name}' ({when:%a %d %b})"
        for name, when in zip(flagged["name"], flagged["local"], strict=True)
    ]
    return [
        (
            f"You logged {_english_list(logged)}. Cramps together with weakness, numbness, "
            "swelling or skin changes need a clinician's look: talk to a clinician."
        )
    ]


def _notices(
    night: Night,
    legs: Sequence[Leg],
    journal: pl.DataFrame,
    *,
    history: pl.DataFrame | None,
    night_day: date,
    tz: tzinfo,
) -> list[str]:
    cramps = sorted((e for e in night.events if e.kind == "cramp"), key=lambda e: e.onset)
    notices: list[str] = []
    severe = [e for e in cramps if e.severity == Severity.SEVERE]
    if severe:
        when = _english_list(
            [f"{_hhmm(e.onset, tz)} {e.leg} {_site(night, e.leg)}" for e in severe]
        )
        notices.append(
            f"Severe cramp{'s' * (len(severe) > 1)} ({when}). Severe cramps, especially "
            "repeated ones, are worth talking to a clinician about."
        )
    if len(cramps) >= RED_FLAG_CRAMPS_PER_NIGHT:
        notices.append(
            f"{len(cramps)} cramps in one night. Frequent cramps are worth talking to a "
            "clinician about."
        )
    if history is not None:
        notice = _history_notice(history, night_day, len(cramps))
        if notice:
            notices.append(notice)
    notices += _symptom_notices(journal, night, night_day, tz)
    for leg in legs:
        share = covered_fraction(night, leg)
        if share < LOW_COVERAGE_FRACTION:
            notices.append(
                f"The {leg} leg was covered for only {share:.0%} of the night; cramps in the "
                "uncovered time would have been missed. Check the band's fit and battery."
            )
    return notices


# --------------------------------------------------------------------------- summary


def build_morning_summary(
    night: Night,
    journal: pl.DataFrame,
    *,
    tz: tzinfo,
    history: pl.DataFrame | None = None,
    baseline_days: int = 30,
    days: pl.DataFrame | None = None,
) -> MorningSummary:
    """Build the morning summary of one night.

    Parameters
    ----------
    night : Night
        The night to summarise (events, gaps and legs).
    journal : polars.DataFrame
        Journal entries, from :func:`crampsense.journal.entries_frame` (may be empty).
    tz : tzinfo
        The person's time zone: cramp times, the night's label and "days" are local.
    history : polars.DataFrame, optional
        Earlier nights, at least ``night_date`` and ``cramps`` columns (e.g. from
        :func:`crampsense.summaries.nights_frame`), for the "cramps on many nights" red flag.
        A row with this night's date is ignored in favour of ``night``.
    baseline_days : int
        How many earlier days with data the day before is compared with (median).
    days : polars.DataFrame, optional
        Day totals to compare (e.g. :func:`crampsense.summaries.day_table.day_table`, which
        adds imported values); default: :func:`day_totals` of ``journal``.

    Returns
    -------
    MorningSummary
    """
    day = night_label(night.start, tz)
    legs = monitored_legs(night)
    days = day_totals(journal, tz=tz) if days is None else days
    events = sorted(night.events, key=lambda e: e.onset)
    day_before = (
        journal.with_columns(local=local_naive(pl.col("time"), tz))
        .filter(pl.col("local").dt.date() == day)
        .sort("time")
        .select(
            "time",
            pl.col("local").dt.strftime("%H:%M").alias("time_local"),
            "kind", "amount", "unit", "name", "note", "distance_km", "severity",
        )
    )
    return MorningSummary(
        night_label=day.isoformat(),
        wake_date=night.end.astimezone(tz).date().isoformat(),
        headline=_headline(night, legs),
        coverage_text="\n".join(_coverage_line(night, leg, tz) for leg in legs),
        lines=[_log_line(e, night, tz) for e in events],
        contributors=_contributors(days, day, baseline_days),
        day_before=day_before,
        notices=_notices(night, legs, journal, history=history, night_day=day, tz=tz),
        disclaimer=DISCLAIMER,
        sleep_text=_sleep_line(night, tz),
    )


# --------------------------------------------------------------------------- rendering


def _weekday(iso: str) -> str:
    return f"{date.fromisoformat(iso):%a} {iso}"


def _entry_text(row: dict[str, object]) -> str:
    parts = [str(row["kind"])]
    if row["name"]:
        parts.append(str(row["name"]))
    amount, unit = row["amount"], row["unit"]
    if isinstance(amount, float) and isinstance(unit, str):
        if row["kind"] == "cramp":
            parts.append(format_duration(amount))
        else:
            parts.append(_fmt_amount(amount, unit))
    if isinstance(row["distance_km"], float):
        parts.append(f"{row['distance_km']:g} km")
    if row["severity"]:
        parts.append(str(row["severity"]))
    if row["note"]:
        parts.append(f'"{row["note"]}"')
    return " ".join(parts)


def _contributor_cells(c: Contributor) -> tuple[str, str, str]:
    if c.unit == "taken":
        return ("taken" if c.last_day else "not logged"), "", str(c.n_days)
    last = "not logged" if c.last_day is None else _fmt_amount(c.last_day, c.unit)
    usual = "" if c.baseline_median is None else _fmt_amount(c.baseline_median, c.unit)
    return last, usual, str(c.n_days)


def render_summary(summary: MorningSummary, *, width: int = 100, color: bool = False) -> str:
    """Render the summary as terminal text with rich.

    Parameters
    ----------
    summary : MorningSummary
    width : int
        Console width in characters.
    color : bool
        Emit ANSI colour codes; without colour the text has no escape sequences at all.

    Returns
    -------
    str
        The rendered text, ending in a newline.
    """
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, color_system="standard" if color else None,
        force_terminal=color, no_color=not color, highlight=False, emoji=False,
        legacy_windows=False,
    )
    bold = "bold" if color else ""
    parts: list[Text | Padding] = [
        Text(
            f"Night of {_weekday(summary.night_label)}, woke {_weekday(summary.wake_date)}",
            style=bold,
        ),
        Text(summary.headline),
        Text(""),
        Text("Coverage", style=bold),
        *(Text(f"  {line}") for line in summary.coverage_text.splitlines()),
        *((Text(""), Text("Sleep", style=bold), Text(f"  {summary.sleep_text}"))
          if summary.sleep_text else ()),
        Text(""),
        Text("Cramp log", style=bold),
        *(Text(f"  {line.text}") for line in summary.lines),
    ]
    if not summary.lines:
        parts.append(Text("  (no cramps detected in the covered time)"))
    parts += [Text(""), Text(f"The day before ({_weekday(summary.night_label)})", style=bold)]
    if summary.day_before.is_empty():
        parts.append(Text("  nothing logged in the journal"))
    for row in summary.day_before.iter_rows(named=True):
        parts.append(Text(f"  {row['time_local']}  {_entry_text(row)}"))
    if summary.contributors:
        table = Table(
            title=None, show_edge=False, box=None, pad_edge=False, padding=(0, 2, 0, 0),
        )
        for header in ("factor", "day before", "your usual", "days", "compared"):
            table.add_column(Text(header, style=bold))
        for c in summary.contributors:
            last, usual, n_days = _contributor_cells(c)
            table.add_row(Text(c.name), Text(last), Text(usual), Text(n_days), Text(c.note))
        parts += [
            Text(""),
            Text(
                "Compared with your usual (median of earlier days with data; associations, "
                "not causes)",
                style=bold,
            ),
            Padding(table, (0, 0, 0, 2)),
        ]
    if summary.notices:
        parts += [Text(""), Text("Notices", style=bold)]
        parts += [Padding(Text(f"! {notice}"), (0, 0, 0, 2)) for notice in summary.notices]
    parts += [Text(""), Text(summary.disclaimer, style="dim" if color else "")]
    console.print(Group(*parts), markup=False)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())
