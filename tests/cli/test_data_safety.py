"""A person's data is never deleted, replaced or hidden; every mistake gets one clear line.

Each test drives the real CLI over a real data home (issue 10's list; the item number is in
the test's name) and failed before its fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from clihelp import one_error_line, run_cli, tree_digest
from crampsense.cli.utils import EXIT_ERROR, EXIT_USAGE
from crampsense.storage.nights import read_night_tables
from crampsense.storage.session_log import SessionReader
from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT, HR_STRAP

HOURS = "0.05"  # three simulated minutes: a second of wall time per recording




def _record(capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    code, out, err = run_cli(["record", "--simulate", "--hours", HOURS, *extra], capsys)
    assert code == 0, err
    saved = [line for line in out.splitlines() if line.startswith("Session saved: ")]
    return Path(saved[0].removeprefix("Session saved: "))


@pytest.fixture
def home(crampsense_home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    (crampsense_home / "config.toml").write_text("[band]\nemg_fs_hz = 500\n")
    for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf")):
        code, _, err = run_cli(["pair", address, "--placement", placement, "--simulate"], capsys)
        assert code == 0, err
    return crampsense_home


def test_1_demo_into_a_home_holding_nights_is_refused_and_deletes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _record(capsys, "--seed", "3")
    assert run_cli(["replay", str(session)], capsys)[0] == 0
    before = tree_digest(home, ignore_suffix=".lock")
    assert any(k.startswith("sessions/") for k in before)
    assert any(k.startswith("nights/") for k in before)
    code, out, err = run_cli(["demo", "--out", str(home)], capsys)
    assert code == EXIT_ERROR
    assert "not an empty folder" in one_error_line(err)
    assert out == ""
    assert tree_digest(home, ignore_suffix=".lock") == before


def test_2_replaying_another_session_never_touches_this_homes_nights(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = _record(capsys, "--seed", "3")
    assert run_cli(["replay", str(mine)], capsys)[0] == 0
    stored = tree_digest(home / "nights")
    # a session from elsewhere, of the same simulated night (every one starts 22:30 UTC)
    foreign = tmp_path / "elsewhere" / "night.session"
    foreign.parent.mkdir()
    _record(capsys, "--seed", "5", "--out", str(foreign))
    code, _out, err = run_cli(["replay", str(foreign)], capsys)
    assert code == 0
    assert "not stored" in err
    assert tree_digest(home / "nights") == stored


def test_2_each_session_of_a_night_keeps_its_own_table(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _record(capsys, "--seed", "3")
    second = _record(capsys, "--seed", "5")  # the same simulated night, a second session
    for session in (first, second, first):  # re-analysing one replaces only its own table
        assert run_cli(["replay", str(session)], capsys)[0] == 0
    files = sorted((home / "nights").rglob("events.parquet"))
    assert len(files) == 2
    assert len({f.parent.name for f in files}) == 2
    assert all(f.parent.name.startswith("session=") for f in files)
    assert all(f.parent.parent.name == "night=2026-11-20" for f in files)
    tables = read_night_tables(home, "events")
    assert tables.schema["session"] == pl.String


def test_6_a_garbage_journal_line_is_skipped_and_named_not_fatal(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _record(capsys, "--seed", "3")
    journal = home / "journal.txt"
    assert run_cli(["log", "water", "500", "ml"], capsys)[0] == 0
    with journal.open("a") as fh:
        fh.write("this line is garbage\n")
    before = journal.read_bytes()
    for args in (["summary"], ["replay", str(session)]):
        code, out, err = run_cli(args, capsys)
        assert code == 0, err
        assert "Morning summary" in out or "cramp" in out.lower()
        assert "skipped" in err
        assert "line 2" in err
    code, out, err = run_cli(["log", "--show", "7"], capsys)
    assert code == 0
    assert "water 500 ml" in out
    assert "line 2" in out + err
    assert journal.read_bytes() == before


def test_6_a_mistyped_journal_path_is_an_error_before_the_replay(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _record(capsys, "--seed", "3")
    code, out, err = run_cli(["replay", str(session), "--journal", str(home / "jornal.txt")],
                             capsys)
    assert code == EXIT_ERROR
    assert "does not exist" in one_error_line(err)
    assert "Replayed" not in out


def _read_only_dir(tmp_path: Path) -> Path:
    """A folder this process cannot write: 0500 for a user; for root (who ignores modes),
    sysfs, which refuses new files."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
        return folder
    folder = Path("/sys/kernel")
    if os.access(folder, os.W_OK) and not (folder / "crampsense-probe").exists():
        try:
            (folder / "crampsense-probe").write_text("")
        except OSError:
            return folder
        pytest.skip("no read-only folder available here")
    return folder


def test_7_unwritable_places_give_one_line_not_an_internal_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ro = _read_only_dir(tmp_path)
    cases = [
        ["record", "--simulate", "--hours", HOURS, "--out", str(ro / "night.session")],
        ["demo", "--out", str(ro / "demo")],
    ]
    for args in cases:
        code, out, err = run_cli(args, capsys)
        assert code == EXIT_ERROR, (args, err)
        line = one_error_line(err)
        assert "internal error" not in line
        assert str(ro) in line
        assert "Recorded" not in out
    os.environ["CRAMPSENSE_HOME"] = str(ro)
    try:
        for args in (["pair", BAND_LEFT, "--placement", "left-calf", "--simulate"],
                     ["log", "water", "500", "ml"]):
            code, _, err = run_cli(args, capsys)
            assert code == EXIT_ERROR, (args, err)
            assert "internal error" not in one_error_line(err)
    finally:
        os.environ["CRAMPSENSE_HOME"] = str(home)


def test_7_a_night_that_cannot_be_saved_is_still_shown(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _record(capsys, "--seed", "3")
    (home / "nights").write_text("a file where the nights folder should be")
    code, out, err = run_cli(["summary"], capsys)
    assert code == 0
    assert "Morning summary" in out or "covered" in out
    assert "not saved" in err
    assert session.exists()


@pytest.mark.parametrize("seed", ["1", "2", "5"])
def test_8_the_shortest_simulated_nights_record(
    home: Path, capsys: pytest.CaptureFixture[str], seed: str
) -> None:
    for hours in ("0.01", "0.03"):
        code, _, err = run_cli(["record", "--simulate", "--hours", hours, "--seed", seed],
                               capsys)
        assert code == 0, err


def test_9_a_second_simulated_night_gets_its_own_session_and_a_night_can_continue(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _record(capsys, "--seed", "3")
    second = _record(capsys, "--seed", "3")
    assert first != second
    assert first.exists()
    size = first.stat().st_size
    continued = _record(capsys, "--seed", "3", "--continue")
    assert continued == second  # the latest session
    with SessionReader(second) as reader:
        assert len(reader.segments()) == 2  # the continued night, in a new segment
    assert run_cli(["replay", str(second)], capsys)[0] == 0
    assert first.stat().st_size == size  # untouched
    code, _, err = run_cli(["record", "--simulate", "--hours", HOURS, "--continue", "--out",
                            str(home / "none.session")], capsys)
    assert code == EXIT_ERROR
    assert "no session to continue" in one_error_line(err)
    assert "append=True" not in err


def test_11_journal_mistakes_are_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        ("log", "magnesium", "300", "mg", "--at", "foo"): "--at 'foo' is not a time",
        ("log", "water", "99999999", "ml"): "more than 10000 ml",
        ("log", "water", "--", "-500", "ml"): "cannot be negative",
    }
    for args, expected in cases.items():
        code, _, err = run_cli(list(args), capsys)
        assert code == EXIT_ERROR, args
        assert expected in one_error_line(err)
    assert not (home / "journal.txt").exists()


def test_12_pairing_mistakes_are_named(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["pair", BAND_LEFT], capsys)
    assert code == EXIT_USAGE
    assert "--placement" in one_error_line(err)
    code, out, err = run_cli(["pair", "not-an-address", "--placement", "left-calf",
                              "--simulate"], capsys)
    assert code == EXIT_USAGE
    assert "not a Bluetooth address" in one_error_line(err)
    assert "heard" not in err  # refused before any scan
    code, out, _ = run_cli(["pair", HR_STRAP, "--placement", "right-calf", "--simulate"],
                           capsys)
    assert code == 0
    assert "heart-rate strap is worn around the chest" in out


def test_13_wording(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["record", "--simulate", "--hours", HOURS, "--seed", "3"], capsys)
    assert code == 0
    assert out.splitlines()[0].strip()  # no blank first line
    session = Path(out.split("Session saved: ")[1].splitlines()[0])
    code, out, _ = run_cli(["replay", str(session)], capsys)
    assert out.splitlines()[0].strip()
    code, out, _ = run_cli(["analyze", str(session)], capsys)
    assert code == 0
    assert "clinician" in out
    assert "see a doctor" not in out
