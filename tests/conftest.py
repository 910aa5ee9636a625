"""Fixtures every test folder shares. Helpers that tests import by name live beside this file
(``clihelp``, ``ingesthelp``, ``zoohelp``); ``pythonpath = ["tests"]`` puts them on the path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def crampsense_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data home (``CRAMPSENSE_HOME``) with colour off, as a new user has."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CRAMPSENSE_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home
