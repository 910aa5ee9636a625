"""Fixtures every test folder shares. Helpers that tests import by name live beside this file
(``clihelp``, ``ingesthelp``, ``zoohelp``, ...); ``pythonpath = ["tests"]`` puts them on the
path. One simulated history (``crampsense demo-history``) is built once per run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: Nights in the shared demo history (as in the README's demo-history example: 60).
DEMO_NIGHTS = 60


@pytest.fixture
def crampsense_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data home (``CRAMPSENSE_HOME``) with colour off, as a new user has."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CRAMPSENSE_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")
    return home


@pytest.fixture(scope="session")
def demo_history_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding a 60-night simulated history; copy it before changing it."""
    home = tmp_path_factory.mktemp("demo-history") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRAMPSENSE_HOME", str(home))
        mp.setenv("TZ", "UTC")
        from crampsense.cli.main import main  # noqa: PLC0415 - after the environment is set

        main(["demo-history", "--nights", str(DEMO_NIGHTS)])
    return home


@pytest.fixture
def demo_home(demo_history_master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the demo history, set as this test's ``CRAMPSENSE_HOME`` (TZ=UTC)."""
    home = tmp_path / "home"
    shutil.copytree(demo_history_master, home)
    monkeypatch.setenv("CRAMPSENSE_HOME", str(home))
    monkeypatch.setenv("TZ", "UTC")
    return home
