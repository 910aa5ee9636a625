"""``crampsense experiment`` and ``crampsense export`` over the simulated history."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from tests.clihelp import run_cli


def _days_ago(n: int) -> str:
    return (datetime.now().astimezone() - timedelta(days=n)).date().isoformat()


def test_experiment_start_stop_list(demo_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["experiment", "list"], capsys)
    assert code == 0
    assert "No experiments yet" in out
    code, _, err = run_cli(["experiment", "start", "magnesium 300 mg at bedtime", "--at",
                            _days_ago(25)], capsys)
    assert code == 0, err
    code, _, err = run_cli(["experiment", "start", "another"], capsys)
    assert code == 1
    assert "still running" in err
    code, _, err = run_cli(["experiment", "stop", "--at", _days_ago(5)], capsys)
    assert code == 0, err
    assert stat.S_IMODE((demo_home / "experiments.json").stat().st_mode) == 0o600
    code, out, err = run_cli(["experiment", "list", "--json"], capsys)
    assert code == 0, err
    (e,) = json.loads(out)["experiments"]
    assert e["nights_after"] == 20
    assert e["nights_before"] == 20  # the same length as the after period
    # Magnesium was planted with no association: the interval must include 1.
    assert e["verdict"] == "no clear difference"
    assert e["rate_ratio_ci"][0] < 1.0 < e["rate_ratio_ci"][1]
    assert "cannot tell your change apart" in e["caveat"]
    code, text, _ = run_cli(["experiment", "list"], capsys)
    assert code == 0
    assert "n = 20 nights" in text
    assert ("Also changed" in text) or ("None of the other logged factors" in text)
    code, _, err = run_cli(["experiment", "stop"], capsys)
    assert code == 1
    assert "no experiment is running" in err


def test_experiment_with_few_nights_says_so(demo_home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["experiment", "start", "stretch before bed", "--at", _days_ago(3)], capsys)
    code, out, _ = run_cli(["experiment", "list", "--json"], capsys)
    assert code == 0
    (e,) = json.loads(out)["experiments"]
    assert e["verdict"] == "too few nights"
    assert e["rate_ratio_ci"] is None


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_reads_back_with_polars_duckdb_pyarrow(
    demo_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    out_dir = tmp_path / "export"
    code, out, err = run_cli(["export", "--format", fmt, str(out_dir)], capsys)
    assert code == 0, err
    assert "Exported 60 nights" in out
    glob = f"{out_dir}/nights/*/*/*.{fmt}"
    if fmt == "parquet":
        nights = pl.scan_parquet(glob, hive_partitioning=True).collect()
    else:  # polars reads CSV partitions as files; the keys come from the path
        nights = pl.scan_csv(glob, include_file_paths="path").with_columns(
            pl.col("path").str.extract(r"participant=([^/]+)").alias("participant"),
            pl.col("path").str.extract(r"night=([0-9-]+)").alias("night"),
        ).collect()
    assert nights.height == 60
    assert {"participant", "night", "cramps", "water_ml", "water_ml_from"} <= set(nights.columns)
    total = int(nights["cramps"].sum())
    duckdb = pytest.importorskip("duckdb")
    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    n, cramps = duckdb.sql(f"SELECT count(*), sum(cramps) FROM {reader}('{glob}', "
                           "hive_partitioning = true)").fetchall()[0]
    assert (n, cramps) == (60, total)
    ds = pytest.importorskip("pyarrow.dataset")
    events = ds.dataset(out_dir / "events", format=fmt, partitioning="hive").to_table()
    assert events.num_rows == total
    journal = ds.dataset(out_dir / "journal", format=fmt, partitioning="hive").to_table()
    assert journal.num_rows > 60
    assert "night" in journal.column_names
    # A folder holding something else is refused.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = run_cli(["export", str(tmp_path / "other")], capsys)
    assert code == 1  # bad input or state; 2 is for command-line usage
    assert "new or empty folder" in err
