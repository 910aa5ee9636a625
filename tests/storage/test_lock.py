"""One recorder per home: the second is refused with one line naming the first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import run_cli
from crampsense.errors import StorageError
from crampsense.storage.lock import LOCK_FILE, HomeLock


def test_a_second_holder_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    with HomeLock(tmp_path, "crampsense night"):
        doc = json.loads((tmp_path / LOCK_FILE).read_text())
        assert doc["command"] == "crampsense night"
        with pytest.raises(StorageError, match=r"already running .*`crampsense night`"):
            HomeLock(tmp_path, "crampsense record").acquire()
    # released: the next one takes it
    with HomeLock(tmp_path, "crampsense record"):
        pass


def test_a_killed_holder_does_not_block_the_next_night(tmp_path: Path) -> None:
    code = ("import sys, os, signal; from pathlib import Path; "
            "from crampsense.storage.lock import HomeLock; "
            "HomeLock(Path(sys.argv[1]), 'crampsense night').acquire(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    assert proc.returncode == -9
    assert (tmp_path / LOCK_FILE).exists()
    with HomeLock(tmp_path, "crampsense record"):
        pass


def test_record_refuses_while_another_recorder_runs(
    crampsense_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["pair", "C5:A3:00:00:00:01", "--placement", "left-calf", "--simulate"],
                   capsys)[0] == 0
    with HomeLock(crampsense_home, "crampsense night"):
        code, _out, err = run_cli(["record", "--simulate", "--hours", "0.02"], capsys)
    assert code == 1
    assert "another recorder is already running" in err
    assert "`crampsense night`" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (crampsense_home / "sessions").exists()
