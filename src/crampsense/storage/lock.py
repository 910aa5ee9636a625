"""One recorder per data home: an advisory lock that names who holds it.

With hardware, two recorders in one home would fight over the same devices (a BLE peripheral
takes one central); with files, two writers of one night would split it. :class:`HomeLock`
holds an exclusive ``flock`` on ``<home>/recorder.lock`` for as long as a recorder runs and
writes who it is (process id, command, start time) into the file, so the second one is refused
with one line naming the first. The kernel drops the lock when the process dies, even on
kill -9, so a stale file never blocks the next night.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from crampsense.errors import StorageError
from crampsense.storage.files import FILE_MODE, private_dir, try_lock_exclusive

__all__ = ["LOCK_FILE", "HomeLock"]

LOCK_FILE: Final = "recorder.lock"


class HomeLock:
    """Hold the data home's recorder lock (a context manager).

    Parameters
    ----------
    home : Path
        The data directory (created owner-only if missing).
    command : str
        What holds the lock, for the message the next recorder shows (``"crampsense night"``).

    Raises
    ------
    StorageError
        Another process holds the lock (the message names it), or the lock file cannot be
        created.
    """

    def __init__(self, home: Path, command: str) -> None:
        self.path = Path(home) / LOCK_FILE
        self.command = command
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as written by its holder ("" if unknown)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {doc['pid']}, `{doc['command']}`, since {doc['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def acquire(self) -> None:
        """Take the lock or raise :class:`~crampsense.errors.StorageError` naming its holder."""
        if self._fd is not None:
            return
        private_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            msg = (f"cannot create the recorder lock {self.path}: {exc.strerror or exc}; "
                   "check that the data folder is yours and writable")
            raise StorageError(msg, path=str(self.path)) from exc
        if not try_lock_exclusive(fd):
            os.close(fd)
            who = self.holder() or "another process"
            msg = (f"another recorder is already running in {self.path.parent} ({who}); "
                   "stop it first (Ctrl-C or `kill PID`), or use another CRAMPSENSE_HOME")
            raise StorageError(msg, path=str(self.path))
        doc = {"pid": os.getpid(), "command": self.command,
               "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(doc).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays; its content no longer matters)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
