"""The journal: grammar, unit normalisation, errors with line numbers, safe appends, log words."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crampsense.errors import JournalError
from crampsense.journal import (
    KINDS,
    JournalEntry,
    append_entry,
    entries_frame,
    example_journal_text,
    format_entry,
    parse_journal,
    parse_journal_partial,
    parse_log_args,
    read_journal,
)
from crampsense.journal.log import CAFFEINE_MG_PER_CUP, ETHANOL_G_PER_DRINK, ML_PER_FL_OZ

BERLIN = ZoneInfo("Europe/Berlin")


def one(line: str, tz: timezone | ZoneInfo = UTC) -> JournalEntry:
    entries = parse_journal(line, tz=tz)
    assert len(entries) == 1
    return entries[0]


# --------------------------------------------------------------------------- grammar


@pytest.mark.parametrize(
    ("line", "kind", "amount", "unit", "name"),
    [
        ("water 500 ml", "water", 500.0, "ml", None),
        ("water 1.5 l", "water", 1500.0, "ml", None),
        ("water 2 L", "water", 2000.0, "ml", None),
        ("water 500ml", "water", 500.0, "ml", None),
        ("water tea 250 ml", "water", 250.0, "ml", "tea"),
        ("water 16 fl_oz", "water", round(16 * ML_PER_FL_OZ, 3), "ml", None),
        ("magnesium 300 mg", "magnesium", 300.0, "mg", None),
        ("magnesium citrate 0.3 g", "magnesium", 300.0, "mg", "citrate"),
        ("potassium banana 420 mg", "potassium", 420.0, "mg", "banana"),
        ("calcium 500 mg", "calcium", 500.0, "mg", None),
        ("sodium 1.2 g", "sodium", 1200.0, "mg", None),
        ("sodium 800 mcg", "sodium", 0.8, "mg", None),
        ("caffeine 80 mg", "caffeine", 80.0, "mg", None),
        ("caffeine coffee 2 cups", "caffeine", 2 * CAFFEINE_MG_PER_CUP, "mg", "coffee"),
        ("alcohol 2 drinks", "alcohol", 2.0, "drinks", None),
        ("alcohol wine 1 drink", "alcohol", 1.0, "drinks", "wine"),
        ("alcohol 28 g", "alcohol", round(28 / ETHANOL_G_PER_DRINK, 3), "drinks", None),
        ("medication atorvastatin 20 mg", "medication", 20.0, "mg", "atorvastatin"),
        ("medication vitamin d 1000 IU", "medication", 1000.0, "IU", "vitamin d"),
        ("medication furosemide 1 tablet", "medication", 1.0, "tablet", "furosemide"),
        ("medication ibuprofen", "medication", None, None, "ibuprofen"),
        ("exercise run 45 min", "exercise", 45.0, "min", "run"),
        ("exercise cycle 1.5 h", "exercise", 90.0, "min", "cycle"),
        ("exercise 30 min", "exercise", 30.0, "min", None),
        ("steps 8400", "steps", 8400.0, "steps", None),
        ("steps 8400 steps", "steps", 8400.0, "steps", None),
        ("cramp left calf 3 min severe", "cramp", 180.0, "s", "left calf"),
        ("cramp severe 45 s right foot", "cramp", 45.0, "s", "right foot"),
        ("cramp", "cramp", None, None, None),
        ("symptom numbness left foot", "symptom", None, None, "numbness left foot"),
        ("WATER 500 ML", "water", 500.0, "ml", None),
    ],
)
def test_every_kind_parses_and_normalises(
    line: str, kind: str, amount: float | None, unit: str | None, name: str | None
) -> None:
    entry = one(f"2026-11-20 07:45  {line}")
    assert (entry.kind, entry.amount, entry.unit, entry.name) == (kind, amount, unit, name)
    assert entry.time == datetime(2026, 11, 20, 7, 45, tzinfo=UTC)


def test_every_kind_is_covered_by_the_grammar_table() -> None:
    assert set(KINDS) == {
        "water", "magnesium", "potassium", "calcium", "sodium", "caffeine", "alcohol",
        "medication", "exercise", "steps", "note", "cramp", "symptom",
    }


def test_exercise_distance_and_notes() -> None:
    entry = one('2026-11-20 17:10 exercise run 45 min 10 km "easy, hilly"')
    assert (entry.amount, entry.distance_km, entry.note) == (45.0, 10.0, "easy, hilly")
    miles = one("2026-11-20 17:10 exercise run 5 mi 50 min")
    assert miles.distance_km == pytest.approx(8.047, abs=1e-3)
    assert miles.amount == 50.0


def test_cramp_report_keeps_severity_and_note() -> None:
    entry = one('2026-11-21 07:10 cramp left calf 3 min severe "woke at 3, had to stand"')
    assert entry.severity == "severe"
    assert entry.note == "woke at 3, had to stand"


def test_note_kind_takes_words_or_quotes() -> None:
    assert one("2026-11-20 19:45 note pizza for dinner").note == "pizza for dinner"
    assert one('2026-11-20 19:45 note "pizza, # salty"').note == "pizza, # salty"
    escaped = one(r'2026-11-20 19:45 note "she said \"ouch\" \\ twice"')
    assert escaped.note == 'she said "ouch" \\ twice'


def test_comments_blank_lines_and_line_numbers() -> None:
    text = (
        "# my journal\n\n   \n2026-11-20 07:45 water 500 ml  # morning glass\n"
        "  # indented comment\n2026-11-20 08:00 caffeine 1 cup\n"
    )
    entries = parse_journal(text, tz=UTC)
    assert [e.line for e in entries] == [4, 6]
    assert entries[0].note is None  # the comment is not a note


def test_offsets_and_local_wall_time() -> None:
    local = one("2026-11-20 07:45 water 1 l", BERLIN)
    assert local.time.astimezone(UTC) == datetime(2026, 11, 20, 6, 45, tzinfo=UTC)
    attached = one("2026-11-20 07:45+05:30 water 1 l", BERLIN)
    spaced = one("2026-11-20 07:45 +05:30 water 1 l", BERLIN)
    zulu = one("2026-11-20 07:45Z water 1 l", BERLIN)
    assert attached.time == spaced.time == datetime(2026, 11, 20, 2, 15, tzinfo=UTC)
    assert zulu.time == datetime(2026, 11, 20, 7, 45, tzinfo=UTC)
    seconds = one("2026-11-20 07:45:30-04:00 water 1 l")
    assert seconds.time == datetime(2026, 11, 20, 11, 45, 30, tzinfo=UTC)


def test_byte_order_mark_and_crlf_are_tolerated() -> None:
    entries = parse_journal("\ufeff2026-11-20 07:45 water 1 l\r\n2026-11-20 08:00 steps 5\r\n",
                            tz=UTC)
    assert [(e.kind, e.line) for e in entries] == [("water", 1), ("steps", 2)]


def test_summer_and_winter_time_in_one_zone() -> None:
    summer = one("2026-07-01 12:00 water 1 l", BERLIN)
    winter = one("2026-12-01 12:00 water 1 l", BERLIN)
    assert summer.time.astimezone(UTC).hour == 10
    assert winter.time.astimezone(UTC).hour == 11


# --------------------------------------------------------------------------- bad lines


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2026-11-20 07:45 water 5 lbs", "unknown unit 'lbs' for water; use ml, l or fl_oz"),
        ("2026-11-20 07:45 water 500", "missing unit after 500 for water; use ml, l or fl_oz"),
        ("2026-11-20 07:45 water", "water needs an amount and a unit, e.g. 'water 500 ml'"),
        ("2026-11-20 07:45 water 1,5 l", "uses a comma; write decimals with a point, e.g. 1.5"),
        ("2026-11-20 07:45 water -5 ml", "amounts cannot be negative"),
        ("2026-11-20 07:45 water 99999999 ml", "more than 10000 ml"),
        ("2026-11-20 07:45 water 500 ml cold", "unexpected 'cold' after '500 ml'"),
        ("2026-11-20 07:45 magnesium 3 lbs", "unknown unit 'lbs' for magnesium; use mg or g"),
        ("2026-11-20 07:45 caffeine 2 mugs", "unknown unit 'mugs' for caffeine; use mg, g or cups"),
        ("2026-11-20 07:45 alcohol 1 pint", "unknown unit 'pint' for alcohol; use drinks or g"),
        ("2026-11-20 07:45 medication 20 mg", "medication needs a name before the dose"),
        ("2026-11-20 07:45 medication statin 20 spoons", "unknown unit 'spoons' for medication"),
        ("2026-11-20 07:45 exercise run", "exercise needs a duration"),
        ("2026-11-20 07:45 exercise run 10 km", "exercise needs a duration as well as a distance"),
        ("2026-11-20 07:45 exercise run 10 laps", "unknown unit 'laps' for exercise"),
        ("2026-11-20 07:45 exercise run 10 min 20 min", "exercise has two durations"),
        ("2026-11-20 07:45 steps many", "steps needs a whole number, got 'many'"),
        ("2026-11-20 07:45 steps 8,400", "without separators, e.g. 8400"),
        ("2026-11-20 07:45 cramp left calf ouch", "unexpected 'ouch' in a cramp entry"),
        ("2026-11-20 07:45 cramp left 3 ages", "cramp duration 3 needs a unit s, min or h"),
        ("2026-11-20 07:45 symptom", "symptom needs words"),
        ("2026-11-20 07:45 note", "note needs text"),
        ("2026-11-20 07:45 watr 500 ml", "unknown kind 'watr'; did you mean 'water'?"),
        ("2026-11-20 07:45", "missing the kind after the time"),
        ("20.11.2026 07:45 water 1 l", "expected a date YYYY-MM-DD at the start, got '20.11.2026'"),
        ("2026-02-30 07:45 water 1 l", "invalid date '2026-02-30'"),
        ("2026-11-20 water 1 l", "expected a time HH:MM after the date, got 'water'"),
        ("2026-11-20 25:10 water 1 l", "invalid time '25:10'"),
        ("2026-11-20 07:45+25:00 water 1 l", "invalid UTC offset '+25:00'"),
        ("2026-11-20 07:45Z +01:00 water 1 l", "two UTC offsets"),
        ('2026-11-20 07:45 water 1 l "cold', "unterminated quote"),
        ('2026-11-20 07:45 water "cold" 1 l', "the note must come last"),
        ('"just a note"', "a line needs a date, time and kind"),
    ],
)
def test_bad_lines_name_line_and_fix(line: str, message: str) -> None:
    text = "# header\n2026-11-20 07:00 water 250 ml\n" + line + "\n"
    with pytest.raises(JournalError) as info:
        parse_journal(text, tz=UTC, source="journal.txt")
    assert info.value.line == 3
    assert str(info.value).startswith("journal.txt line 3: ")
    assert message in str(info.value)


def test_exact_message_of_unknown_unit() -> None:
    text = "\n" * 11 + "2026-11-20 07:45 water 2 lbs\n"
    with pytest.raises(JournalError) as info:
        parse_journal(text, tz=UTC, source="journal.txt")
    assert str(info.value) == (
        "journal.txt line 12: unknown unit 'lbs' for water; use ml, l or fl_oz"
    )


def test_nonexistent_local_time_is_rejected_with_advice() -> None:
    # Europe/Berlin skips 02:00-03:00 on 2027-03-28
    with pytest.raises(JournalError, match="does not exist in Europe/Berlin"):
        parse_journal("2027-03-28 02:30 water 1 l", tz=BERLIN)
    ok = one("2027-03-28 02:30+01:00 water 1 l", BERLIN)
    assert ok.time == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)


def test_partial_parse_keeps_good_lines_and_lists_bad_ones() -> None:
    text = (
        "2026-11-20 07:00 water 1 l\nnonsense\n2026-11-20 08:00 water 2 lbs\n"
        "2026-11-20 09:00 steps 100\n"
    )
    entries, errors = parse_journal_partial(text, tz=UTC)
    assert [e.line for e in entries] == [1, 4]
    assert [e.line for e in errors] == [2, 3]


# --------------------------------------------------------------------------- reading files


def test_read_journal_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "nope.txt", tz=UTC) == []


def test_read_journal_unreadable_is_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot read journal"):
        read_journal(tmp_path, tz=UTC)  # a directory
    bad = tmp_path / "journal.txt"
    bad.write_bytes(b"2026-11-20 07:00 water 1 l\n2026-11-20 08:00 note \xff\n")
    with pytest.raises(JournalError, match="line 2: not UTF-8") as info:
        read_journal(bad, tz=UTC)
    assert info.value.line == 2


def test_read_journal_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.txt"
    path.write_text("2026-11-20 07:00 water 1 l\n2026-11-20 08:00 beer 1\n", encoding="utf-8")
    with pytest.raises(JournalError, match=r"journal\.txt line 2: unknown kind 'beer'"):
        read_journal(path, tz=UTC)


# --------------------------------------------------------------------------- writing


def entry(kind: str = "water", amount: float | None = 500.0, unit: str | None = "ml",
          **kw: object) -> JournalEntry:
    fields: dict[str, object] = {
        "time": datetime(2026, 11, 20, 21, 30, tzinfo=BERLIN), "kind": kind, "amount": amount,
        "unit": unit, "name": None, "note": None, **kw,
    }
    return JournalEntry(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "e",
    [
        entry(),
        entry("water", 499.793, "ml", note='cold "fizzy" \\ water'),
        entry("exercise", 45.0, "min", name="run", distance_km=10.0, note="hilly"),
        entry("alcohol", 1.0, "drinks", name="wine"),
        entry("alcohol", 1.429, "drinks"),
        entry("medication", 20.0, "mg", name="atorvastatin"),
        entry("medication", None, None, name="ibuprofen"),
        entry("steps", 8400.0, "steps"),
        entry("cramp", 180.0, "s", name="left calf", severity="severe", note="woke at 3"),
        entry("cramp", 45.0, "s", name="right calf"),
        entry("note", None, None, note="pizza for dinner"),
        entry("symptom", None, None, name="numbness left foot"),
    ],
)
def test_format_round_trips(e: JournalEntry) -> None:
    [back] = parse_journal(format_entry(e), tz=UTC)
    assert back.time == e.time
    assert (back.kind, back.amount, back.unit, back.name, back.note) == (
        e.kind, e.amount, e.unit, e.name, e.note
    )
    assert (back.distance_km, back.severity) == (e.distance_km, e.severity)


@settings(max_examples=150, deadline=None)
@given(
    note=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 max_size=40),
    amount=st.integers(0, 10_000_000).map(lambda n: n / 1000),
    offset_min=st.integers(-14 * 60, 14 * 60),
)
def test_any_note_and_amount_round_trip_through_a_file(
    tmp_path_factory: pytest.TempPathFactory, note: str, amount: float, offset_min: int
) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    e = entry("water", amount, "ml", note=note, time=datetime(2026, 11, 20, 7, 45, tzinfo=tz))
    path = tmp_path_factory.mktemp("j") / "journal.txt"
    append_entry(path, e)
    [back] = read_journal(path, tz=UTC)
    assert (back.time, back.amount, back.note) == (e.time, amount, note)


def test_format_writes_the_offset() -> None:
    assert format_entry(entry()) == "2026-11-20 21:30+01:00  water 500 ml"


def test_append_creates_private_file_and_dirs(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "journal.txt"
    append_entry(path, entry())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert path.read_text(encoding="utf-8") == "2026-11-20 21:30+01:00  water 500 ml\n"


def test_append_keeps_existing_lines_without_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "journal.txt"
    original = "# mine\n2026-11-19 07:00 water 1 l  # by hand\n2026-11-19 08:00 steps 5"
    path.write_text(original, encoding="utf-8")
    path.chmod(0o644)
    append_entry(path, entry())
    append_entry(path, entry("steps", 100.0, "steps"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original + "\n")
    assert text.count("\n") == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parsed = parse_journal(text, tz=UTC)
    assert [(e.kind, e.amount) for e in parsed] == [
        ("water", 1000.0), ("steps", 5.0), ("water", 500.0), ("steps", 100.0)
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry("water", 5.0, "lbs"), "unknown unit 'lbs' for water"),
        (entry("water", 1.5, "l"), "would read back differently"),
        (entry("water", -1.0, "ml"), "amounts are finite and not negative"),
        (entry("water", float("nan"), "ml"), "amounts are finite and not negative"),
        (entry("beer", 1.0, "drinks"), "unknown kind 'beer'"),
        (entry("note", None, None, note="two\nlines"), "line break"),
        (entry("medication", 20.0, "mg", name='say "hi"'), "names cannot hold '#' or double"),
        (entry("medication", 20.0, "mg", name="b 12"), r"a number on its own \(12\)"),
        (entry("cramp", 30.0, "min"), "would read back differently"),
        (entry("water", 1.0, "ml", time=datetime(2026, 11, 20, 7, 0)), "has no time zone"),
    ],
)
def test_append_rejects_bad_entries_and_writes_nothing(
    tmp_path: Path, bad: JournalEntry, message: str
) -> None:
    path = tmp_path / "journal.txt"
    path.write_text("2026-11-19 07:00 water 1 l\n", encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(JournalError, match=message):
        append_entry(path, bad)
    assert path.read_bytes() == before


def test_append_to_unwritable_place_is_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot append to journal"):
        append_entry(tmp_path, entry())  # a directory


# --------------------------------------------------------------------------- crampsense log

NOW = datetime(2026, 11, 21, 0, 40, 17, tzinfo=BERLIN)


def test_log_args_default_to_now_to_the_minute() -> None:
    e = parse_log_args(["water", "500", "ml"], now=NOW)
    assert (e.kind, e.amount, e.unit) == ("water", 500.0, "ml")
    assert e.time == datetime(2026, 11, 21, 0, 40, tzinfo=BERLIN)
    assert e.line is None


@pytest.mark.parametrize(
    ("args", "at", "expected"),
    [
        (["21:30", "water", "500", "ml"], None, datetime(2026, 11, 20, 21, 30, tzinfo=BERLIN)),
        (["water", "500", "ml", "--at", "00:10"], None, datetime(2026, 11, 21, 0, 10,
                                                                  tzinfo=BERLIN)),
        (["water", "500", "ml", "--at=21:30"], None, datetime(2026, 11, 20, 21, 30,
                                                               tzinfo=BERLIN)),
        (["water", "500", "ml", "at", "yesterday", "08:00"], None,
         datetime(2026, 11, 20, 8, 0, tzinfo=BERLIN)),
        (["2026-11-18", "08:00", "water", "1", "l"], None,
         datetime(2026, 11, 18, 8, 0, tzinfo=BERLIN)),
        (["water", "1", "l"], "today 00:05", datetime(2026, 11, 21, 0, 5, tzinfo=BERLIN)),
        (["water", "1", "l"], "23:00+00:00", datetime(2026, 11, 20, 23, 0, tzinfo=UTC)),
        (["water", "1", "l", "--at", "yesterday 08:00"], None,
         datetime(2026, 11, 20, 8, 0, tzinfo=BERLIN)),
    ],
)
def test_log_args_time_specs(args: list[str], at: str | None, expected: datetime) -> None:
    assert parse_log_args(args, now=NOW, at=at).time == expected


def test_log_args_notes() -> None:
    shell_quoted = parse_log_args(["exercise", "run", "45", "min", "10", "km", "easy, hilly"],
                                  now=NOW)
    assert (shell_quoted.name, shell_quoted.distance_km, shell_quoted.note) == (
        "run", 10.0, "easy, hilly"
    )
    literal = parse_log_args(["cramp", "left", "calf", '"woke"'], now=NOW)
    assert literal.note == "woke"
    keyword = parse_log_args(["cramp", "left", "calf", "2", "min"], now=NOW, note="stood up")
    assert (keyword.amount, keyword.note) == (120.0, "stood up")
    option = parse_log_args(["cramp", "left", "calf", "--note", "woke", "--at", "21:00"],
                            now=NOW)
    assert (option.name, option.note, option.time.hour) == ("left calf", "woke", 21)
    assert parse_log_args(["cramp", "--note=ow"], now=NOW).note == "ow"
    whole = parse_log_args(['21:00 cramp right calf 40 s mild "ouch"'], now=NOW)
    assert (whole.name, whole.amount, whole.severity, whole.note) == (
        "right calf", 40.0, "mild", "ouch"
    )
    assert whole.time == datetime(2026, 11, 20, 21, 0, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("args", "at", "message"),
    [
        (["water", "5", "lbs"], None,
         "cannot log 'water 5 lbs': unknown unit 'lbs' for water; use ml, l or fl_oz"),
        ([], None, "missing the kind"),
        (["beer", "1"], None, "unknown kind 'beer'"),
        (["21:30", "water", "1", "l"], "20:00", "more than one time given"),
        (["2026-11-22", "10:00", "water", "1", "l"], None, "is in the future"),
        (["water", "1", "l", "one note", "another note"], None, "more than one note"),
        (["water", "1", "l"], "noon", "expected a time HH:MM"),
        (["cramp", "--note"], None, "--note needs a text"),
        (["cramp", "--note", "a", "--note", "b"], None, "unexpected '--note'"),
    ],
)
def test_log_args_rejected(args: list[str], at: str | None, message: str) -> None:
    with pytest.raises(JournalError) as info:
        parse_log_args(args, now=NOW, at=at)
    assert message in str(info.value)
    assert info.value.line is None


def test_log_args_then_append_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "journal.txt"
    for words in (["water", "500", "ml"], ["medication", "atorvastatin", "20", "mg"],
                  ["cramp", "left", "calf", "3", "min", "severe", "had to stand"]):
        append_entry(path, parse_log_args(words, now=NOW))
    back = read_journal(path, tz=UTC)
    assert [e.kind for e in back] == ["water", "medication", "cramp"]
    assert back[2].note == "had to stand"
    assert all(e.time == datetime(2026, 11, 21, 0, 40, tzinfo=BERLIN) for e in back)


def test_log_args_need_an_aware_now() -> None:
    with pytest.raises(JournalError, match="no time zone"):
        parse_log_args(["water", "1", "l"], now=datetime(2026, 11, 21, 0, 40))


# --------------------------------------------------------------------------- frame, example


def test_entries_frame_columns_and_utc() -> None:
    entries = parse_journal(
        "2026-11-20 07:45+01:00 water 1 l\n2026-11-20 06:00Z steps 10\n", tz=UTC
    )
    frame = entries_frame(entries)
    assert frame.columns[:6] == ["time", "kind", "amount", "unit", "name", "note"]
    assert frame.schema["time"] == pl.Datetime("us", "UTC")
    assert frame["kind"].to_list() == ["steps", "water"]  # sorted by time
    assert frame["time"][1] == datetime(2026, 11, 20, 6, 45, tzinfo=UTC)
    empty = entries_frame([])
    assert empty.height == 0
    assert empty.schema == frame.schema


def test_example_journal_parses_and_has_a_baseline() -> None:
    entries = parse_journal(example_journal_text(), tz=UTC, source="example_journal.txt")
    days = {e.time.date() for e in entries}
    assert len(days) >= 25
    assert max(days).isoformat() == "2026-11-20"
    assert all(e.time.utcoffset() == timedelta(0) for e in entries)
    kinds = {e.kind for e in entries}
    assert {"water", "magnesium", "caffeine", "alcohol", "exercise", "medication",
            "cramp"} <= kinds
    last = [e for e in entries if e.time.date().isoformat() == "2026-11-20"]
    water = sum(e.amount or 0.0 for e in last if e.kind == "water")
    assert 1000.0 <= water <= 1200.0
    run = next(e for e in last if e.kind == "exercise")
    assert (run.amount, run.distance_km) == (45.0, 10.0)
    assert any(e.kind == "cramp" and e.time.date() < max(days) for e in entries)
