"""A damaged session from the command line: ``replay`` recovers by itself and says what was
lost where; ``repair`` writes the intact frames to a new file; the damaged file never changes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from clihelp import run_cli
from crampsense.cli.main import main
from firmware_sims.bedroom import BAND_LEFT, BAND_RIGHT
from salvagehelp import PAGE_SIZE, digest, frame_pages, frames_by_id, overwrite


def _ok(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as exc:  # pragma: no cover - only on failure
        raise AssertionError(f"crampsense {' '.join(args)} exited {exc.code}") from exc


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three simulated minutes of both calf bands, recorded through the CLI."""
    home = tmp_path_factory.mktemp("home")
    path = home / "night.session"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRAMPSENSE_HOME", str(home))
        mp.setenv("NO_COLOR", "1")
        for address, placement in ((BAND_LEFT, "left-calf"), (BAND_RIGHT, "right-calf")):
            _ok(["pair", address, "--placement", placement, "--simulate"])
        _ok(["record", "--simulate", "--hours", "0.05", "--out", str(path)])
    return path


@pytest.fixture
def damaged(recorded: Path, tmp_path: Path) -> tuple[Path, set[int]]:
    """A copy with one page-aligned 4 KB block of random bytes in its middle, and the ids of
    the frames that were not on the hit page."""
    path = tmp_path / "damaged" / "night.session"
    path.parent.mkdir()
    shutil.copy(recorded, path)
    offset = path.stat().st_size // 2 // PAGE_SIZE * PAGE_SIZE
    hit = overwrite(path, [(offset, PAGE_SIZE)], seed=11)
    intact = {i for i, page in frame_pages(recorded).items() if page not in hit}
    assert 0 < len(intact) < len(frames_by_id(recorded))
    return path, intact


def _summary(out: str) -> tuple[int, str]:
    """The recovered count, from the one summary sentence (wrapping undone)."""
    text = " ".join(out.split())
    found = re.search(r"is damaged \(([^)]*)\): recovered ([\d,]+) frames page by page", text)
    assert found, out
    assert text.count("recovered") == 1
    return int(found.group(2).replace(",", "")), found.group(1)


def test_replay_recovers_a_damaged_session_by_itself(
    crampsense_home: Path, damaged: tuple[Path, set[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, intact = damaged
    before = digest(path)
    code, out, err = run_cli(["replay", str(path)], capsys)
    assert code == 0, err
    recovered, damage = _summary(out)
    assert recovered == len(intact)
    assert "1 of " in damage
    assert "pages unreadable" in damage
    assert "No frames at" in out  # where the frames are missing, as clock times
    assert f"Replayed {len(intact):,} notifications" in out
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["night.session"]


def test_repair_writes_a_new_session_and_never_overwrites(
    crampsense_home: Path, damaged: tuple[Path, set[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, intact = damaged
    before = digest(path)
    code, out, err = run_cli(["repair", str(path)], capsys)
    assert code == 0, err
    recovered, _damage = _summary(out)
    assert recovered == len(intact)
    repaired = path.with_name("night.repaired.session")
    assert f"Wrote {len(intact):,} frames to" in " ".join(out.split())
    assert set(frames_by_id(repaired)) == intact
    assert digest(path) == before
    # the repaired file is an ordinary session: replay reads it without recovering anything
    code, out, err = run_cli(["replay", str(repaired)], capsys)
    assert code == 0, err
    assert "page by page" not in out
    # an existing --out is refused with one line, and left alone
    kept = digest(repaired)
    code, out, err = run_cli(["repair", str(path), "--out", str(repaired)], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "already exists" in lines[0]
    assert digest(repaired) == kept
    assert digest(path) == before


def test_repair_with_a_damaged_header_page(
    crampsense_home: Path, recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "night.session"
    shutil.copy(recorded, path)
    overwrite(path, [(0, PAGE_SIZE)], seed=12)
    out_path = tmp_path / "fixed.session"
    code, out, err = run_cli(["repair", str(path), "--out", str(out_path)], capsys)
    assert code == 0, err
    recovered, _damage = _summary(out)
    assert recovered == len(frames_by_id(recorded))
    assert frames_by_id(out_path) == frames_by_id(recorded)


def test_nothing_recoverable_is_one_line_and_exit_1(
    crampsense_home: Path, recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "damaged" / "night.session"
    path.parent.mkdir()
    shutil.copy(recorded, path)
    overwrite(path, [(PAGE_SIZE, path.stat().st_size)], seed=13)  # all but the header page
    before = digest(path)
    for args in (["replay", str(path)], ["repair", str(path)]):
        code, _out, err = run_cli(args, capsys)
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "no frame could be recovered" in lines[0]
        assert "Traceback" not in err
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["night.session"]


def test_analyze_says_what_it_recovered(
    crampsense_home: Path, damaged: tuple[Path, set[int]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, intact = damaged
    before = digest(path)
    code, out, err = run_cli(["analyze", str(path)], capsys)
    assert code == 0, err
    recovered, _damage = _summary(out)
    assert recovered == len(intact)
    assert digest(path) == before
