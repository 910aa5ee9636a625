"""Shared by the CLI tests: run ``crampsense`` in-process the way a user's shell would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crampsense.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``crampsense ARGS`` in-process through ``main`` (so errors become one line and an
    exit code, as in a shell); returns (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The one line a failing command printed on stderr (checked: one line, the CLI's prefix,
    no tab, no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("crampsense: error: "), err
    assert "\t" not in lines[0]
    assert "Traceback" not in err
    return lines[0]


def tree_digest(root: Path, *, ignore_suffix: str | None = None) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (to show nothing stored changed);
    files ending in ``ignore_suffix`` are left out."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not (ignore_suffix and p.name.endswith(ignore_suffix))
    }
