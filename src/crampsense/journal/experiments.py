"""The person's own experiments: "magnesium 300 mg at bedtime", started and stopped on dates.

Stored in ``<data dir>/experiments.json`` (owner-only, written atomically)::

    {"experiments": [{"name": "...", "start": "2026-11-20T21:05:00+01:00", "stop": null}]}

One experiment runs at a time, so each before/after comparison has one change in it (the
comparison still lists what else changed, see :mod:`crampsense.summaries.experiments`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from crampsense.errors import JournalError
from crampsense.storage.files import atomic_write_bytes

__all__ = ["Experiment", "load_experiments", "start_experiment", "stop_experiment"]

FILE_NAME: Final = "experiments.json"
MAX_NAME_CHARS: Final = 200


@dataclass(frozen=True)
class Experiment:
    """One change the person tried; ``stop`` is ``None`` while it runs."""

    name: str
    start: datetime
    stop: datetime | None = None


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def load_experiments(data_dir: Path) -> list[Experiment]:
    """Every experiment, oldest first (empty when none was started).

    Raises
    ------
    JournalError
        The file is damaged (the message says which file and how to fix it).
    """
    path = _path(data_dir)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Experiment(str(e["name"]), datetime.fromisoformat(e["start"]),
                       datetime.fromisoformat(e["stop"]) if e.get("stop") else None)
            for e in data["experiments"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise JournalError(f"{path} is damaged ({exc}); fix or remove it") from None


def _save(data_dir: Path, experiments: list[Experiment]) -> None:
    payload = {"experiments": [
        {"name": e.name, "start": e.start.isoformat(),
         "stop": e.stop.isoformat() if e.stop else None} for e in experiments]}
    atomic_write_bytes(_path(data_dir), (json.dumps(payload, indent=1) + "\n").encode())


def start_experiment(data_dir: Path, name: str, *, now: datetime) -> Experiment:
    """Start an experiment named ``name`` at ``now`` (timezone-aware).

    Raises
    ------
    JournalError
        An experiment is already running, or the name is empty or too long.
    """
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise JournalError(f"describe the change in 1-{MAX_NAME_CHARS} characters, e.g. "
                           '"magnesium 300 mg at bedtime"')
    experiments = load_experiments(data_dir)
    running = [e for e in experiments if e.stop is None]
    if running:
        raise JournalError(f"experiment {running[0].name!r} is still running (since "
                           f"{running[0].start:%Y-%m-%d}); stop it first with "
                           "`crampsense experiment stop`")
    new = Experiment(name, now)
    _save(data_dir, [*experiments, new])
    return new


def stop_experiment(data_dir: Path, *, now: datetime) -> Experiment:
    """Stop the running experiment at ``now``.

    Raises
    ------
    JournalError
        No experiment is running, or ``now`` is before its start.
    """
    experiments = load_experiments(data_dir)
    for i, e in enumerate(experiments):
        if e.stop is None:
            if now < e.start:
                raise JournalError(f"cannot stop {e.name!r} before it started ({e.start})")
            experiments[i] = Experiment(e.name, e.start, now)
            _save(data_dir, experiments)
            return experiments[i]
    raise JournalError("no experiment is running; start one with "
                       '`crampsense experiment start "magnesium 300 mg at bedtime"`')
