"""Trends over a simulated history with planted factors; the day table's source rules."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import polars as pl
import pytest
from tests.clihelp import run_cli
from tests.importfixtures import day_records, health_xml, health_zip

from crampsense.journal import entries_frame, parse_journal
from crampsense.journal.importers import import_file, read_imports
from crampsense.summaries.day_table import day_table
from crampsense.summaries.trends import poisson_interval, rate_ratio_interval

CAUSAL = re.compile(r"\b(cause|caused|causes|because|due to|prevent|helps?|effect|leads? to)\b",
                    re.IGNORECASE)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("CRAMPSENSE_HOME", str(h))
    monkeypatch.setenv("TZ", "UTC")
    return h


def test_intervals_match_known_values() -> None:
    lo, hi = poisson_interval(10, 10.0)
    assert (round(lo, 3), round(hi, 3)) == (0.480, 1.839)  # Garwood limits for 10 events
    lo, hi = rate_ratio_interval(0, 10.0, 5, 10.0)
    assert lo == 0.0
    assert math.isfinite(hi)
    assert rate_ratio_interval(5, 10.0, 0, 10.0)[1] == math.inf


def test_demo_history_trends_show_planted_factors_only(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["trends", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["n_nights"] == 60
    by = {f["factor"]: f for f in report["factors"]}
    assert by["water"]["verdict"] == "more"
    assert by["water"]["rate_ratio_ci"][0] > 1.0
    assert by["exercise"]["verdict"] == "more"
    assert by["caffeine"]["verdict"] == "no clear difference"
    assert by["caffeine"]["rate_ratio_ci"][0] < 1.0 < by["caffeine"]["rate_ratio_ci"][1]
    assert by["alcohol"]["verdict"] == "no clear difference"
    assert by["sleep"]["verdict"] == "too few nights"
    code, text, _ = run_cli(["trends"], capsys)
    assert code == 0
    assert "too few nights to say anything" in text
    assert "not medical advice" in text
    assert not CAUSAL.search(text.replace("not causes", ""))
    # A demo never mixes with real data.
    code, _, err = run_cli(["demo-history"], capsys)
    assert code == 1  # bad input or state; 2 is for command-line usage
    assert "empty folder" in err


def test_trends_with_few_nights_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["trends"], capsys)
    assert code == 0
    assert "No stored nights yet" in out


def test_day_table_journal_wins_and_imports_fill_in(home: Path, tmp_path: Path) -> None:
    export = health_zip(tmp_path / "export.zip", health_xml(day_records()))
    import_file("apple-health", export, home)
    daily = tmp_path / "dailySummary.csv"
    daily.write_text("Date,Water (g),Caffeine (mg),Completed\n2024-08-07,2600,80,true\n")
    import_file("cronometer", daily, home)
    tz = dt.timezone(dt.timedelta(hours=12))
    journal = entries_frame(parse_journal("2024-08-07 09:00+12:00 caffeine 200 mg\n", tz=tz))
    row = day_table(journal, read_imports(home), tz=tz).filter(
        pl.col("date") == dt.date(2024, 8, 7)).row(0, named=True)
    assert row["caffeine_mg"] == 200.0  # the person's own log wins
    assert row["caffeine_mg_from"] == "journal"
    assert row["water_ml"] == 2600.0  # one source per metric and day: not 1500 + 2600
    assert row["water_ml_from"].startswith("cronometer (dailySummary)")
    assert row["steps"] == 1500.0
    assert row["steps_from"] == "apple-health (export): Apple Watch + iPhone"
    assert row["sleep_asleep_min"] == 400.0
