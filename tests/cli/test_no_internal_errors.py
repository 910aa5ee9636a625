"""A walk over every command with the bad input a person can give: never an internal error.

Each case must end in exit 1 (bad input or state) or 2 (command-line usage) with one line on
stderr that is not ``internal error``, and must leave the data home as it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clihelp import run_cli, tree_digest
from crampsense.cli.main import COMMANDS

GARBAGE = b"\x00\x01not a recording at all\xff" * 100




def _cases(tmp: Path) -> list[list[str]]:
    missing = str(tmp / "missing.edf")
    garbage = tmp / "garbage.session"
    garbage.write_bytes(GARBAGE)
    edf = tmp / "garbage.edf"
    edf.write_bytes(b"0       " + GARBAGE)
    csv = tmp / "bad.csv"
    csv.write_text("time_s,emg_l_uv\nabc,def\n")
    folder = tmp / "a-folder"
    folder.mkdir()
    return [
        ["analyze", missing],
        ["analyze", str(garbage)],
        ["analyze", str(edf)],
        ["analyze", str(csv)],
        ["analyze", str(folder)],
        ["analyze", str(edf), "--emg", "nonsense"],
        ["replay", missing],
        ["replay", str(garbage)],
        ["replay", str(folder)],
        ["summary", "--session", str(garbage)],
        ["summary"],
        ["record"],
        ["record", "--hours", "-1"],
        ["record", "--simulate", "--continue"],
        ["pair", "zz"],
        ["pair", "C5:A3:00:00:00:99", "--placement", "left-calf", "--simulate"],
        ["pair", "C5:A3:00:00:00:01", "--placement", "knee", "--simulate"],
        ["devices", "--forget", "C5:A3:00:00:00:99"],
        ["log"],
        ["log", "water"],
        ["log", "water", "lots"],
        ["log", "unicorn", "3", "ml"],
        ["log", "water", "500", "ml", "--at", "25:99"],
        ["log", "--show", "0"],
        ["demo", "--emg-rate", "50"],
        ["evaluate", "--corpus", "enormous"],
        ["import", "apple-health", missing],
        ["import", "cronometer", str(garbage)],
        ["import", "gadgetbridge", str(garbage)],
        ["import", "apple-health", str(edf)],
        ["import", "nonsense", str(csv)],
        ["trends", "--days", "1"],
        ["experiment", "stop"],
        ["experiment", "start", "less coffee", "--at", "yesterday"],
        ["export", str(garbage)],
        ["export", str(folder), "--format", "xlsx"],
        ["demo-history", "--nights", "3"],
        ["repair", missing],
        ["repair", str(garbage)],
        ["repair", str(folder)],
        ["night", "--until", "25:99", "--simulate"],
        ["night", "--hours", "0", "--simulate"],
        ["night", "--simulate", "--hours", "0.05"],
        ["night", "--on-cramp", "", "--simulate", "--hours", "0.05"],
        ["service", "install", "--until", "nonsense"],
        ["service", "frobnicate"],
        ["no-such-command"],
        ["--config", str(garbage), "devices"],
    ]


def test_bad_input_never_ends_in_an_internal_error(
    crampsense_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (crampsense_home / "journal.txt").write_text("2026-11-20 07:45 water 500 ml\n")
    before = tree_digest(crampsense_home)
    seen: set[str] = set()
    for args in _cases(tmp_path):
        code, _out, err = run_cli(args, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code in (1, 2), (args, code, err)
        assert len(lines) == 1, (args, err)
        assert "internal error" not in lines[0], (args, err)
        assert "Traceback" not in err
        seen.add(args[0])
    assert tree_digest(crampsense_home) == before
    # every command that takes input from a person was walked
    assert set(COMMANDS) - {"scan"} <= seen
