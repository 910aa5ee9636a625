"""Day totals, the night/day join, cramp-log wording, headline coverage, red flags, rendering."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from crampsense.journal import entries_frame, example_journal_text, parse_journal
from crampsense.models import (
    CoverageGap,
    CrampEvent,
    DeviceInfo,
    Leg,
    Night,
    Severity,
    SleepSummary,
)
from crampsense.summaries import (
    DISCLAIMER,
    build_morning_summary,
    day_totals,
    format_after,
    format_duration,
    join_nights_with_days,
    nights_frame,
    render_summary,
)

T0 = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
BANDS = (
    DeviceInfo("AA:01", "band L", "crampsense-band", "left-calf"),
    DeviceInfo("AA:02", "band R", "crampsense-band", "right-calf"),
)


def journal(text: str, tz: ZoneInfo | None = None) -> pl.DataFrame:
    return entries_frame(parse_journal(text, tz=tz or UTC))


def cramp(
    minute: float,
    seconds: float,
    leg: Leg = "left",
    severity: Severity = Severity.MODERATE,
    **kw: object,
) -> CrampEvent:
    onset = T0 + timedelta(minutes=minute)
    return CrampEvent(
        onset=onset, offset=onset + timedelta(seconds=seconds), leg=leg, channels=("gm",),
        peak_rel=5.0, mean_rel=3.0, severity=severity, confidence=0.9,
        **kw,  # type: ignore[arg-type]
    )


def night(
    events: tuple[CrampEvent, ...] = (),
    gaps: tuple[CoverageGap, ...] = (),
    hours: float = 8.0,
) -> Night:
    return Night(
        start=T0, end=T0 + timedelta(hours=hours), devices=BANDS, events=events, gaps=gaps,
        legs=("left", "right"),
    )


def gap(start_min: float, end_min: float, leg: Leg = "right", reason: str = "lead-off"
        ) -> CoverageGap:
    return CoverageGap(T0 + timedelta(minutes=start_min), T0 + timedelta(minutes=end_min), leg,
                       reason)


# --------------------------------------------------------------------------- day totals

DAYS_TEXT = """
2026-11-19 08:00Z water 1 l
2026-11-19 12:00Z water 500 ml
2026-11-19 12:30Z magnesium 0.3 g
2026-11-19 13:00Z caffeine coffee 2 cups
2026-11-19 17:00Z exercise run 30 min 5 km
2026-11-19 18:00Z exercise walk 20 min
2026-11-19 19:00Z alcohol 28 g
2026-11-19 21:00Z medication Atorvastatin 20 mg
2026-11-19 21:05Z medication furosemide 1 tablet
2026-11-19 22:00Z steps 9000
2026-11-19 22:10Z note "hot day"
2026-11-19 23:30Z water 250 ml
2026-11-20 07:00Z symptom numbness left foot
2026-11-20 07:10Z cramp left calf 2 min
"""


def test_day_totals_sums_per_local_day() -> None:
    days = day_totals(journal(DAYS_TEXT), tz=UTC)
    assert days["date"].to_list() == [date(2026, 11, 19), date(2026, 11, 20)]
    d19 = days.row(0, named=True)
    assert d19["water_ml"] == 1750.0
    assert d19["magnesium_mg"] == 300.0
    assert d19["caffeine_mg"] == 190.0
    assert d19["exercise_min"] == 50.0
    assert d19["exercise_km"] == 5.0
    assert d19["alcohol_drinks"] == 2.0
    assert d19["steps"] == 9000.0
    assert d19["medications"] == ["atorvastatin", "furosemide"]
    assert d19["notes"] == ["hot day"]
    assert d19["potassium_mg"] is None  # not logged is unknown, not zero
    assert d19["n_entries"] == 12
    d20 = days.row(1, named=True)
    assert d20["water_ml"] is None
    assert d20["alcohol_drinks"] == 0.0  # logged-when-it-happens kinds: absent means none
    assert d20["symptoms"] == ["numbness left foot"]
    assert d20["self_cramps"] == 1


def test_day_totals_use_local_days() -> None:
    # 23:30 UTC on the 19th is 00:30 on the 20th in Berlin (UTC+1 in November)
    days = day_totals(journal(DAYS_TEXT), tz=BERLIN)
    assert days.filter(pl.col("date") == date(2026, 11, 20))["water_ml"].item() == 250.0
    assert days.filter(pl.col("date") == date(2026, 11, 19))["water_ml"].item() == 1500.0


def test_day_totals_of_an_empty_journal_have_the_schema() -> None:
    empty = day_totals(entries_frame([]), tz=UTC)
    full = day_totals(journal(DAYS_TEXT), tz=UTC)
    assert empty.height == 0
    assert empty.schema == full.schema


# --------------------------------------------------------------------------- the join


def test_join_nights_with_their_day_before() -> None:
    days = day_totals(journal(DAYS_TEXT), tz=UTC)
    nights = pl.DataFrame(
        {"night_date": ["2026-11-19", "2026-11-18", "2026-11-20"], "cramps": [2, 0, 1]}
    )
    joined = join_nights_with_days(nights, days)
    assert joined["night_date"].to_list() == ["2026-11-19", "2026-11-18", "2026-11-20"]
    assert joined["cramps"].to_list() == [2, 0, 1]
    assert joined["water_ml"].to_list() == [1750.0, None, None]
    assert joined["self_cramps"].to_list() == [0, None, 1]
    assert "date" not in joined.columns


def test_nights_frame_labels_by_evening_and_joins() -> None:
    early = Night(start=datetime(2026, 11, 20, 1, 0, tzinfo=UTC),
                  end=datetime(2026, 11, 20, 7, 0, tzinfo=UTC), legs=("left",))
    late = night(events=(cramp(60, 130, severity=Severity.SEVERE), cramp(90, 30)),
                 gaps=(gap(0, 30),))
    frame = nights_frame([early, late], tz=UTC)
    assert frame["night_date"].to_list() == [date(2026, 11, 19), date(2026, 11, 20)]
    assert frame["wake_date"].to_list() == [date(2026, 11, 20), date(2026, 11, 21)]
    assert frame["cramps"].to_list() == [0, 2]
    assert frame["worst_severity"].to_list() == [None, "severe"]
    assert frame["cramp_minutes"][1] == pytest.approx(160 / 60)
    assert frame["covered_h_right"].to_list() == [None, 7.5]
    assert frame["covered_h"].to_list() == [6.0, 7.5]
    joined = join_nights_with_days(frame, day_totals(journal(DAYS_TEXT), tz=UTC))
    assert joined["water_ml"].to_list() == [1750.0, None]


# --------------------------------------------------------------------------- wording


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(8.0, "8 s"), (45.4, "45 s"), (59.6, "1 min"), (130.0, "2 min 10 s"), (120.0, "2 min"),
     (599.0, "9 min 59 s"), (600.0, "10 min"), (725.0, "12 min")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        ({}, "stayed asleep"),
        ({"woke": True}, "woke"),
        ({"woke": True, "got_up": True}, "woke and got up"),
        ({"woke": True, "stretched": True}, "woke and stretched"),
        ({"woke": True, "got_up": True, "stretched": True}, "woke, got up and stretched"),
        ({"got_up": True}, "woke and got up"),  # getting up implies waking
    ],
)
def test_format_after(flags: dict[str, bool], text: str) -> None:
    assert format_after(cramp(0, 30, "left", Severity.MILD, **flags)) == text


def test_cramp_log_lines_exact_strings() -> None:
    events = (
        cramp(402, 45, "right", Severity.MILD, kind="possible_cramp", evidence="acc"),
        cramp(282, 130, "left", Severity.SEVERE, woke=True, got_up=True),
        cramp(330, 725, "right", Severity.SEVERE, woke=True, got_up=True, stretched=True),
        cramp(100, 20, "left", Severity.MILD),
    )
    summary = build_morning_summary(night(events), journal(""), tz=UTC)
    assert [line.text for line in summary.lines] == [
        "00:10, left calf, 20 s, mild, stayed asleep",
        "03:12, left calf, 2 min 10 s, severe, woke and got up",
        "04:00, right calf, 12 min, severe, woke, got up and stretched",
        "05:12, right calf, 45 s, possible cramp, stayed asleep",
    ]
    assert summary.lines[1].time_local == "03:12"
    assert summary.lines[1].duration_s == 130.0


def test_cramp_times_are_local() -> None:
    summary = build_morning_summary(night((cramp(282, 130),)), journal(""), tz=BERLIN)
    assert summary.lines[0].text.startswith("04:12, left calf")


def test_night_label_and_wake_date() -> None:
    summary = build_morning_summary(night(), journal(""), tz=UTC)
    assert (summary.night_label, summary.wake_date) == ("2026-11-20", "2026-11-21")
    after_midnight = Night(start=datetime(2026, 11, 21, 0, 30, tzinfo=UTC),
                           end=datetime(2026, 11, 21, 7, 0, tzinfo=UTC), legs=("left",))
    summary = build_morning_summary(after_midnight, journal(""), tz=UTC)
    assert (summary.night_label, summary.wake_date) == ("2026-11-20", "2026-11-21")


# --------------------------------------------------------------------------- headline


def test_headline_counts_cramps_and_coverage() -> None:
    events = (cramp(100, 130, "left", Severity.SEVERE), cramp(200, 50, "right"))
    summary = build_morning_summary(night(events, (gap(220, 228),)), journal(""), tz=UTC)
    assert summary.headline == (
        "2 cramps in both calves (worst severe, 3 min in total). "
        "Sensors covered left 100%, right 98% of 8 h."
    )
    assert summary.coverage_text.splitlines() == [
        "left leg: covered 8 h of 8 h (100%)",
        "right leg: not covered 02:10–02:18 (lead-off); covered 7 h 52 min of 8 h (98%)",
    ]


def test_sleep_line_uses_the_leg_with_most_sleep_and_rates_per_hour_of_sleep() -> None:
    events = (cramp(100, 130, "left"), cramp(200, 50, "right"))
    base = night(events)
    sleep = (
        SleepSummary("left", T0 + timedelta(minutes=20), T0 + timedelta(hours=7, minutes=50),
                     sleep_s=7 * 3600.0, wake_bouts=2, wake_s=15 * 60.0),
        SleepSummary("right", T0 + timedelta(minutes=25), T0 + timedelta(hours=7, minutes=50),
                     sleep_s=6 * 3600.0, wake_bouts=4, wake_s=40 * 60.0),
    )
    with_sleep = Night(start=base.start, end=base.end, devices=base.devices, events=events,
                       legs=base.legs, sleep=sleep)
    summary = build_morning_summary(with_sleep, journal(""), tz=UTC)
    assert summary.sleep_text == (
        "Sleep period 22:50–06:20 (left leg accelerometer): 7 h asleep, 2 wake bouts "
        "(15 min); 0.29 cramps per hour of sleep."
    )
    assert "Sleep\n  Sleep period 22:50–06:20" in render_summary(summary)
    # No accelerometer: no sleep section at all; accelerometer but no sleep period: say so.
    assert build_morning_summary(base, journal(""), tz=UTC).sleep_text == ""
    none_found = Night(start=base.start, end=base.end, devices=base.devices, legs=base.legs,
                       sleep=(SleepSummary("left", None, None, 0.0, 0, 0.0),))
    text = build_morning_summary(none_found, journal(""), tz=UTC).sleep_text
    assert text.startswith("No sleep period found")


def test_headline_never_calls_a_gap_no_cramps() -> None:
    gaps = (gap(0, 240, "right", "disconnected"), gap(300, 300.2, "right", "packet-loss"))
    summary = build_morning_summary(night(gaps=gaps), journal(""), tz=UTC)
    assert summary.headline == (
        "No cramps detected while the sensors worked. Sensors covered left 100%, right 50% "
        "of 8 h."
    )
    assert "right leg: not covered 22:30–02:30 (disconnected), 03:30 for 12 s (packet-loss)" \
        in summary.coverage_text
    assert any("right leg was covered for only 50%" in n for n in summary.notices)


def test_headline_with_only_possible_cramps_and_many_gaps() -> None:
    events = (cramp(10, 20, kind="possible_cramp"),)
    gaps = tuple(gap(10 * k, 10 * k + 2, "left", "packet-loss") for k in range(1, 8))
    summary = build_morning_summary(night(events, gaps), journal(""), tz=UTC)
    assert summary.headline.startswith("No cramps detected while the sensors worked "
                                       "(1 possible cramp).")
    left = summary.coverage_text.splitlines()[0]
    assert left.startswith("left leg: not covered 22:40–22:42 (packet-loss)")
    assert "and 3 more (6 min in total)" in left
    assert summary.notices == []  # possible cramps never raise red flags


def test_headline_without_any_leg() -> None:
    bare = Night(start=T0, end=T0 + timedelta(hours=8))
    summary = build_morning_summary(bare, journal(""), tz=UTC)
    assert "No leg sensor recorded this night" in summary.headline
    assert summary.coverage_text == ""


# --------------------------------------------------------------------------- contributors


def baseline_journal(days: int = 10, water_ml: float = 2000.0) -> str:
    lines = []
    for k in range(days, 0, -1):
        d = date(2026, 11, 20) - timedelta(days=k)
        lines += [f"{d} 09:00Z water {water_ml:g} ml", f"{d} 21:00Z medication statin 20 mg",
                  f"{d} 12:00Z magnesium 300 mg"]
    return "\n".join(lines) + "\n"


def test_contributors_compare_with_own_median() -> None:
    text = baseline_journal() + (
        "2026-11-20 09:00Z water 1100 ml\n2026-11-20 17:00Z alcohol 1 drink\n"
    )
    summary = build_morning_summary(night(), journal(text), tz=UTC)
    by_name = {c.name: c for c in summary.contributors}
    water = by_name["water"]
    assert (water.last_day, water.baseline_median, water.n_days, water.unit) == (
        1100.0, 2000.0, 10, "ml"
    )
    assert water.note == "45% below your usual of 2,000 ml"
    assert by_name["magnesium"].note == "not logged the day before"
    assert by_name["alcohol"].note == "more than your usual (none)"
    statin = by_name["statin"]
    assert (statin.last_day, statin.n_days, statin.unit) == (0.0, 10, "taken")
    assert statin.note == "not logged the day before; taken on 10 of 10 earlier days with entries"
    assert "potassium" not in by_name  # never logged: not shown
    assert summary.day_before["kind"].to_list() == ["water", "alcohol"]
    assert summary.day_before["time_local"].to_list() == ["09:00", "17:00"]


def test_contributors_baseline_is_limited_and_needs_enough_days() -> None:
    text = baseline_journal(days=40, water_ml=1000.0) + baseline_journal(days=3)
    text += "2026-11-20 09:00Z water 2000 ml\n"
    summary = build_morning_summary(night(), journal(text), tz=UTC, baseline_days=30)
    water = next(c for c in summary.contributors if c.name == "water")
    # the 3 most recent days have 3000 ml (two entries); the 27 before them 1000 ml
    assert water.n_days == 30
    assert water.baseline_median == 1000.0
    short = build_morning_summary(night(), journal(baseline_journal(days=3) +
                                                  "2026-11-20 09:00Z water 2 l\n"), tz=UTC)
    water = next(c for c in short.contributors if c.name == "water")
    assert water.note == "too few earlier days to compare (n = 3)"


def test_about_usual_band() -> None:
    text = baseline_journal() + "2026-11-20 09:00Z water 2200 ml\n"
    summary = build_morning_summary(night(), journal(text), tz=UTC)
    assert next(c for c in summary.contributors if c.name == "water").note == "about your usual"


# --------------------------------------------------------------------------- red flags


def test_no_red_flags_on_a_quiet_night() -> None:
    summary = build_morning_summary(
        night((cramp(100, 40, severity=Severity.MODERATE),)), journal(baseline_journal()), tz=UTC,
        history=pl.DataFrame({"night_date": ["2026-11-18", "2026-11-19"], "cramps": [1, 0]}),
    )
    assert summary.notices == []
    assert summary.disclaimer == DISCLAIMER


def test_red_flag_severe_cramp() -> None:
    summary = build_morning_summary(
        night((cramp(282, 150, severity=Severity.SEVERE),)), journal(""), tz=UTC
    )
    assert len(summary.notices) == 1
    assert summary.notices[0].startswith("Severe cramp (03:12 left calf).")
    assert "clinician" in summary.notices[0]


def test_red_flag_three_cramps_in_a_night() -> None:
    two = build_morning_summary(night((cramp(10, 20), cramp(50, 20))), journal(""), tz=UTC)
    assert not any("in one night" in n for n in two.notices)
    three = build_morning_summary(
        night((cramp(10, 20), cramp(50, 20), cramp(90, 20, "right"))), journal(""), tz=UTC
    )
    assert any(n.startswith("3 cramps in one night.") for n in three.notices)


def test_red_flag_cramps_on_many_nights() -> None:
    history = pl.DataFrame(
        {
            "night_date": ["2026-11-10", "2026-11-15", "2026-11-16", "2026-11-18", "2026-11-19",
                           "2026-11-20"],
            "cramps": [5, 1, 0, 2, 1, 0],  # 11-10 is outside the week; 11-20 is replaced
        }
    )
    tonight = build_morning_summary(night((cramp(10, 20),)), journal(""), tz=UTC,
                                    history=history)
    assert (
        "Cramps on 4 of the 5 nights recorded in the last 7 days. Cramps that persist night "
        "after night are worth talking to a clinician about."
    ) in tonight.notices
    quiet = build_morning_summary(night(), journal(""), tz=UTC, history=history)
    assert not any("nights recorded" in n for n in quiet.notices)


@pytest.mark.parametrize(
    ("symptom", "flagged"),
    [("numbness left foot", True), ("weakness in legs", True), ("swollen ankle", True),
     ("skin changes on calf", True), ("tingling toes", True), ("tired legs", False)],
)
def test_red_flag_symptoms(symptom: str, flagged: bool) -> None:
    text = f"2026-11-18 08:00Z symptom {symptom}\n"
    summary = build_morning_summary(night(), journal(text), tz=UTC)
    notice = [n for n in summary.notices if "talk to a clinician" in n]
    assert bool(notice) is flagged
    if flagged:
        assert notice[0].startswith(f"You logged '{symptom}' (Wed 18 Nov).")


def test_old_symptoms_are_not_flagged() -> None:
    text = "2026-11-01 08:00Z symptom numbness left foot\n"
    summary = build_morning_summary(night(), journal(text), tz=UTC)
    assert summary.notices == []


# --------------------------------------------------------------------------- rendering


def demo_summary() -> str:
    events = (
        cramp(282, 130, "left", Severity.SEVERE, woke=True, got_up=True),
        cramp(400, 45, "right", Severity.MILD, kind="possible_cramp", evidence="acc"),
    )
    entries = journal(example_journal_text() + "2026-11-21 07:15Z symptom numbness [red] foot\n")
    summary = build_morning_summary(night(events, (gap(220, 228),)), entries, tz=UTC)
    return render_summary(summary, width=100, color=False)


def test_render_plain_text_at_width_100() -> None:
    text = demo_summary()
    assert "\x1b" not in text
    assert all(len(line) <= 100 for line in text.splitlines())
    for expected in (
        "Night of Fri 2026-11-20, woke Sat 2026-11-21",
        "1 cramp in the left calf (worst severe, 2 min 10 s in total); also 1 possible cramp.",
        "  right leg: not covered 02:10–02:18 (lead-off); covered 7 h 52 min of 8 h (98%)",
        "  03:12, left calf, 2 min 10 s, severe, woke and got up",
        "  05:10, right calf, 45 s, possible cramp, stayed asleep",
        "The day before (Fri 2026-11-20)",
        '17:10  exercise run 45 min 10 km "tempo, felt heavy at the end"',
        "associations, not causes",
        "51% below your usual of 2,225 ml",
        "! Severe cramp (03:12 left calf).",
        "You logged 'numbness [red] foot' (Sat 21 Nov).",  # brackets are not rich markup
        "crampsense is not a medical device and this is not medical advice",
    ):
        assert expected in text, expected
    lines = text.splitlines()
    water = next(line for line in lines if line.lstrip().startswith("water "))
    assert water.split()[:5] == ["water", "1,100", "ml", "2,225", "ml"]


def test_render_colour_adds_escapes_only_when_asked() -> None:
    summary = build_morning_summary(night(), journal(""), tz=UTC)
    assert "\x1b[" in render_summary(summary, color=True)
    plain = render_summary(summary, color=False)
    assert "\x1b" not in plain
    assert "nothing logged in the journal" in plain
    assert "(no cramps detected in the covered time)" in plain
