"""``crampsense import``: Apple Health, Cronometer and Gadgetbridge files in their real shapes,
through the real CLI into a real temporary home; hostile files change nothing."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import stat
import zipfile
from pathlib import Path

import polars as pl
import pytest
from tests.clihelp import run_cli
from tests.importfixtures import (
    AH_BROKEN_DTD,
    DAILY_HEADER,
    Q,
    claim_huge_size,
    day_records,
    gadgetbridge_db,
    health_xml,
    health_zip,
    rec,
)

from crampsense.errors import ImportFileError
from crampsense.journal.importers import import_file, read_imports

DAY = dt.date(2024, 8, 7)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("CRAMPSENSE_HOME", str(h))
    monkeypatch.setenv("TZ", "UTC")
    return h


def _values(home: Path, source: str | None = None) -> dict[tuple[str, dt.date], float]:
    df = read_imports(home)
    if source:
        df = df.filter(pl.col("source") == source)
    return {(r["metric"], r["date"]): r["value"] for r in df.iter_rows(named=True)}


# --------------------------------------------------------------------------- Apple Health


def test_apple_health_zip_units_overlap_sleep_workout(home: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    export = health_zip(tmp_path / "export.zip", health_xml(day_records(), dtd=AH_BROKEN_DTD))
    code, out, err = run_cli(["import", "apple-health", str(export)], capsys)
    assert code == 0, err
    assert "Stored" in out
    v = _values(home)
    assert v[("water_ml", DAY)] == pytest.approx(1500.0)  # two apps same hour: one; 1 L; no
    assert v[("magnesium_mg", DAY)] == pytest.approx(300.0)  # Correlation copy not counted
    assert v[("potassium_mg", DAY)] == pytest.approx(350.0)
    assert v[("caffeine_mg", DAY)] == pytest.approx(95.0)
    assert v[("alcohol_drinks", DAY)] == pytest.approx(2.0)
    assert v[("steps", DAY)] == pytest.approx(1500.0)  # watch 1200 over phone 1000, + 300
    assert v[("active_energy_kcal", DAY)] == pytest.approx(100.0)
    assert v[("sleep_asleep_min", DAY)] == pytest.approx(400.0)  # night labelled by evening
    assert v[("sleep_awake_min", DAY)] == pytest.approx(20.0)
    assert v[("sleep_in_bed_min", DAY)] == pytest.approx(480.0)
    assert v[("exercise_min", DAY)] == pytest.approx(45.0)
    assert v[("exercise_km", DAY)] == pytest.approx(6.2 * 1.609344)
    store = home / "imports" / "apple-health.parquet"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "imports").stat().st_mode) == 0o700
    prov = read_imports(home).filter(pl.col("metric") == "steps").row(0, named=True)
    assert prov["origins"] == "Apple Watch + iPhone"
    assert prov["file"] == "export.zip"


def test_apple_health_reimport_and_newer_export_change_nothing_twice(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = health_zip(tmp_path / "old.zip", health_xml(day_records()))
    assert run_cli(["import", "apple-health", str(old)], capsys)[0] == 0
    before = (home / "imports" / "apple-health.parquet").read_bytes()
    code, out, _ = run_cli(["import", "apple-health", str(old)], capsys)
    assert code == 0
    assert "Nothing new" in out
    assert (home / "imports" / "apple-health.parquet").read_bytes() == before
    # A newer export repeats the old history and adds a day: the old day is not doubled.
    newer = health_zip(tmp_path / "new.zip",
                       health_xml(day_records() + day_records("2024-08-08", water_ml=700)))
    code, out, _ = run_cli(["import", "apple-health", str(newer), "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["days_changed"] == 0
    assert report["days_added"] > 0
    v = _values(home)
    assert v[("water_ml", DAY)] == pytest.approx(1500.0)
    assert v[("water_ml", dt.date(2024, 8, 8))] == pytest.approx(1700.0)


def test_apple_health_unzipped_folder(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "apple_health_export"
    folder.mkdir()
    (folder / "export_cda.xml").write_text("<ClinicalDocument/>")
    (folder / "exportar.xml").write_text(health_xml(day_records()))
    result = import_file("apple-health", tmp_path, home)
    assert result.records_read > 10
    assert _values(home)[("caffeine_mg", DAY)] == pytest.approx(95.0)


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        ("entities", "entity"),
        ("huge", "claims"),
        ("truncated_zip", "zip"),
        ("truncated_xml", "truncated"),
        ("bad_unit", "'lbs'"),
        ("not_export", "HealthData"),
        ("undeclared_entity", "not well-formed"),
    ],
)
def test_apple_health_hostile_files_refused_before_any_side_effect(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str, needle: str
) -> None:
    good = health_xml(day_records())
    path = tmp_path / "export.zip"
    if make == "entities":
        bomb = ('<?xml version="1.0"?>\n<!DOCTYPE HealthData [\n <!ENTITY a "aaaaaaaaaa">\n'
                ' <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n')
        health_zip(path, health_xml(rec(f"{Q}DietaryWater", "1", "2024-08-07 12:00:00 +1200",
                                        unit="mL", source="&b;"), dtd=bomb))
    elif make == "huge":
        health_zip(path, good)
        claim_huge_size(path, "apple_health_export/Exportieren.xml")
    elif make == "truncated_zip":
        health_zip(path, good)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif make == "truncated_xml":
        path = tmp_path / "export.xml"
        path.write_text(good[: len(good) * 2 // 3])
    elif make == "bad_unit":
        health_zip(path, health_xml(day_records() + rec(
            f"{Q}DietaryWater", "2", "2024-08-07 12:00:00 +1200", unit="lbs")))
    elif make == "not_export":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("apple_health_export/export.xml", "<Other/>")
    elif make == "undeclared_entity":
        health_zip(path, health_xml(rec(f"{Q}DietaryWater", "1", "2024-08-07 12:00:00 +1200",
                                        unit="mL", source="&x;")))
    code, _, err = run_cli(["import", "apple-health", str(path)], capsys)
    assert code == 1
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert not (home / "imports").exists()


# --------------------------------------------------------------------------- Cronometer


def test_cronometer_daily_summary_units_and_unfinished_days(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "dailySummary.csv"
    path.write_text(
        "\ufeff" + DAILY_HEADER + "\n"
        "2024-08-06,2100,28,190,2500,1.1,900,12,350,3500,60,2300,900,true\n"
        "2024-08-07,1900,0,95,1800.5,1,800,10,300,3000,55,2000,800,true\n"
        "2024-08-08,400,0,0,300,0.1,100,1,30,300,5,200,80,false\n",
        encoding="utf-8",
    )
    result = import_file("cronometer", path, home)
    assert result.feed == "dailySummary"
    assert any("not marked completed" in n for n in result.notes)
    v = _values(home)
    assert v[("water_ml", DAY)] == pytest.approx(1800.5)
    assert v[("alcohol_drinks", dt.date(2024, 8, 6))] == pytest.approx(2.0)  # 28 g / 14 g
    assert v[("magnesium_mg", DAY)] == pytest.approx(300.0)
    assert ("water_ml", dt.date(2024, 8, 8)) not in v  # unfinished day skipped


def test_cronometer_semicolons_decimal_commas_and_other_units(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "dailySummary.csv"
    path.write_text(
        "Date;Energy (kJ);Water (ml);Caffeine (g);Sodium (g);Magnesium (mg)\n"
        "2024-08-07;8000;1,5;0,095;2,3;\n", encoding="utf-8")
    import_file("cronometer", path, home)
    v = _values(home)
    assert v[("water_ml", DAY)] == pytest.approx(1.5)
    assert v[("caffeine_mg", DAY)] == pytest.approx(95.0)
    assert v[("sodium_mg", DAY)] == pytest.approx(2300.0)
    assert ("magnesium_mg", DAY) not in v  # empty cell: unknown, not zero


def test_cronometer_servings_and_exercises(home: Path, tmp_path: Path) -> None:
    servings = tmp_path / "servings.csv"
    servings.write_text(  # the variant with a Unit column, 12-hour times and a Category
        "Day,Time,Group,Food Name,Amount,Unit,Energy (kcal),Caffeine (mg),Water (g),"
        "Magnesium (mg),Category\n"
        '2024-08-07,8:00 AM,Breakfast,"Coffee, brewed",1.00,cup,2,95,237,7,Beverages\n'
        "2024-08-07,,Lunch,Water,500.00,ml,0,0,500,,Beverages\n")
    exercises = tmp_path / "exercises.csv"
    exercises.write_text("Day,Time,Group,Exercise,Minutes,Calories Burned\n"
                         "2024-08-07,17:00,,Running,45,-400\n2024-08-07,,,Walking,20,-80\n")
    assert import_file("cronometer", servings, home).feed == "servings"
    assert import_file("cronometer", exercises, home).feed == "exercises"
    v = _values(home)
    assert v[("water_ml", DAY)] == pytest.approx(737.0)
    assert v[("exercise_min", DAY)] == pytest.approx(65.0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Date,Magnesium (IU),Completed\n2024-08-07,5,true\n", "'IU'"),
        ("Date,Water,Completed\n2024-08-07,5,true\n", "no unit"),
        (DAILY_HEADER + "\n2024-08-07,1900,0,95,18", "cut short"),
        (DAILY_HEADER + "\n2024-08-07,1900,0,95,18\n", "fields"),
        ("Date,Water (g)\n07.08.2024,5\n", "YYYY-MM-DD"),
        ("Name,Value\nx,1\n", "not a Cronometer"),
        ('Date,Water (g)\n2024-08-07,"5\n', "CSV"),
    ],
)
def test_cronometer_bad_files_refused(home: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      text: str, needle: str) -> None:
    path = tmp_path / "dailySummary.csv"
    path.write_text(text)
    code, _, err = run_cli(["import", "cronometer", str(path)], capsys)
    assert code == 1
    assert needle in err
    assert not (home / "imports").exists()


# --------------------------------------------------------------------------- Gadgetbridge


def test_gadgetbridge_db_and_zip(home: Path, tmp_path: Path) -> None:
    db = gadgetbridge_db(tmp_path / "Gadgetbridge #2?.db")  # URI-special characters
    result = import_file("gadgetbridge", db, home, tz=dt.UTC)
    assert result.records_read == 360
    df = read_imports(home).filter(pl.col("source") == "gadgetbridge")
    steps = df.filter(pl.col("metric") == "steps")["value"].sum()
    assert steps == pytest.approx(180 * 12)  # per hour the band with more steps, not the sum
    hr = df.filter(pl.col("metric") == "heart_rate_bpm")["value"].to_list()
    assert hr == [pytest.approx(70.0)]  # 255 = no reading, ignored
    sleep = df.filter(pl.col("metric") == "sleep_asleep_min")["value"].sum()
    assert sleep == pytest.approx(60.0)  # Mi Band kind 0x19 & 0xF = 9 beats Huawei's 30
    # The same database inside the export zip changes nothing.
    archive = tmp_path / "gadgetbridge-export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(db, "database/Gadgetbridge")
        z.writestr("preferences/nodomain.freeyourgadget.gadgetbridge_preferences.xml", "<map/>")
    again = import_file("gadgetbridge", archive, home, tz=dt.UTC)
    assert not again.changed_anything


@pytest.mark.parametrize(("make", "needle"), [
    ("truncated", "truncated"), ("unknown_layout", "unknown layout"), ("no_tables", "no *_ACT"),
    ("not_sqlite", "not an SQLite"),
])
def test_gadgetbridge_bad_files_refused(home: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        make: str, needle: str) -> None:
    path = tmp_path / "Gadgetbridge.db"
    if make == "truncated":
        gadgetbridge_db(path, minutes=2000)
        path.write_bytes(path.read_bytes()[: path.stat().st_size - 4096])
    elif make in ("unknown_layout", "no_tables"):
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE FOO_ACTIVITY_SAMPLE (WHEN_MS INTEGER, V INTEGER)"
                    if make == "unknown_layout" else "CREATE TABLE NOTES (X TEXT)")
        con.commit()
        con.close()
    else:
        path.write_text("hello")
    code, _, err = run_cli(["import", "gadgetbridge", str(path)], capsys)
    assert code == 1
    assert needle in err
    assert not (home / "imports").exists()


# --------------------------------------------------------------------------- cut anywhere


def _outcome(source: str, path: Path, home: Path) -> str:
    try:
        import_file(source, path, home, tz=dt.UTC)
    except ImportFileError:
        return "refused"
    return "imported"


def test_a_file_cut_anywhere_is_refused_or_complete(tmp_path: Path) -> None:
    """Truncation at any byte: a clean one-line refusal with nothing stored, never another
    exception (every cut of the XML before its last element, of the zip, of the CSV's last
    row, of the database)."""
    xml = health_xml(day_records()).encode()
    whole_zip = health_zip(tmp_path / "whole.zip", xml.decode()).read_bytes()
    csv = (DAILY_HEADER + "\n2024-08-07,1900,0,95,1800.5,1,800,10,300,3000,55,2000,800,true\n"
           ).encode()
    db = gadgetbridge_db(tmp_path / "whole.db", minutes=600).read_bytes()
    cases = [
        ("apple-health", "export.xml", xml, range(0, len(xml) - 20, max(1, len(xml) // 40))),
        ("apple-health", "export.zip", whole_zip, range(0, len(whole_zip) - 1,
                                                        max(1, len(whole_zip) // 25))),
        ("cronometer", "dailySummary.csv", csv,
         range(len(DAILY_HEADER.encode()) + 2, len(csv) - 1, 5)),
        ("gadgetbridge", "Gadgetbridge.db", db, range(0, len(db) - 1, max(1, len(db) // 12))),
    ]
    for source, name, blob, cuts in cases:
        for cut in cuts:
            home = tmp_path / f"home-{source}-{cut}"
            path = tmp_path / name
            path.write_bytes(blob[:cut])
            assert _outcome(source, path, home) == "refused", (source, cut)
            assert not (home / "imports").exists(), (source, cut)


def test_windows_fold_into_arrays_without_changing_results() -> None:
    from crampsense.journal.importers.base import Windows  # noqa: PLC0415

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    small, big = Windows(flush_keys=7), Windows()
    for i in range(500):
        for w in (small, big):
            w.add("steps", f"src{i % 3}", 480_000 + i % 50, 0, float(i))
            w.add("heart_rate_bpm", "band", 480_000 + i % 30, 1, 60.0 + i % 7)
    assert len(small) == len(big)
    a = small.to_frame(feed="f", file="x", now=now)
    b = big.to_frame(feed="f", file="x", now=now)
    assert a.equals(b)


def test_imported_values_feed_the_morning_comparison(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The day before is compared with the usual from imports too (`summary` and `replay`
    pass the day table to the morning summary)."""
    from crampsense.journal import entries_frame  # noqa: PLC0415
    from crampsense.models import Night  # noqa: PLC0415
    from crampsense.summaries.day_table import day_table  # noqa: PLC0415
    from crampsense.summaries.morning import build_morning_summary  # noqa: PLC0415

    rows = "".join(
        f"2024-08-{d:02d},1900,0,95,{1500 + 100 * d},1,800,10,300,3000,55,2000,800,true\n"
        for d in range(1, 10))
    daily = tmp_path / "dailySummary.csv"
    daily.write_text(DAILY_HEADER + "\n" + rows)
    assert run_cli(["import", "cronometer", str(daily)], capsys)[0] == 0
    night = Night(start=dt.datetime(2024, 8, 9, 22, tzinfo=dt.UTC),
                  end=dt.datetime(2024, 8, 10, 6, tzinfo=dt.UTC), legs=("left",))
    empty = entries_frame([])
    summary = build_morning_summary(night, empty, tz=dt.UTC,
                                    days=day_table(empty, read_imports(home), tz=dt.UTC))
    water = next(c for c in summary.contributors if c.name == "water")
    assert water.last_day == pytest.approx(2400.0)
    assert water.n_days == 8
