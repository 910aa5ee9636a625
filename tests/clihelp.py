"""Shared by the CLI tests: run ``crampsense`` in-process the way a user's shell would."""

from __future__ import annotations

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
