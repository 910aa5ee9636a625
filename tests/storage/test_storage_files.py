"""Owner-only folders, atomic writes, checked Parquet and Hive-partitioned night tables."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from crampsense.errors import CorruptFileError, DiskFullError, StorageError
from crampsense.storage import files
from crampsense.storage.files import (
    PARQUET_SHA256_KEY,
    atomic_write_bytes,
    private_dir,
    read_parquet_checked,
    write_parquet_atomic,
)
from crampsense.storage.nights import night_dir, read_night_tables, write_night_table


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def events_table(n: int = 5, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 1, 23, 0, tzinfo=UTC)
    return pl.DataFrame(
        {
            "onset": [start + timedelta(minutes=i) for i in range(n)],
            "duration_s": rng.uniform(10, 200, n),
            "peak_rel": rng.uniform(2, 9, n).astype(np.float32),
            "leg": ["left", "right"] * (n // 2) + ["left"] * (n % 2),
        }
    )


# ---------------------------------------------------------------------------------------------
# private_dir


@pytest.mark.usefixtures("open_umask")
def test_private_dir_creates_every_level_owner_only(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    target = tmp_path / "a" / "b" / "c"
    assert private_dir(target) == target
    for folder in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert mode(folder) == 0o700
    assert mode(tmp_path) == 0o755  # an existing parent is left alone


def test_private_dir_tightens_an_existing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_dir(folder)
    assert mode(folder) == 0o700


def test_private_dir_refuses_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        private_dir(blocker)


# ---------------------------------------------------------------------------------------------
# atomic_write_bytes


@pytest.mark.usefixtures("open_umask")
def test_atomic_write_creates_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "devices.json"
    atomic_write_bytes(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    atomic_write_bytes(path, b"[1]")
    assert path.read_bytes() == b"[1]"
    assert sorted(p.name for p in path.parent.iterdir()) == ["devices.json"]


def test_interrupted_rename_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError, match="cannot write") as info:
        atomic_write_bytes(path, b"new content")
    assert str(path) in str(info.value)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # temp file removed


def test_disk_full_while_writing_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match="disk is full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_interrupt_by_keyboard_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


# ---------------------------------------------------------------------------------------------
# Parquet


@pytest.mark.usefixtures("open_umask")
def test_parquet_round_trip_is_owner_only_and_checksummed(tmp_path: Path) -> None:
    df = events_table(7)
    path = tmp_path / "events.parquet"
    write_parquet_atomic(df, path)
    assert mode(path) == 0o600
    assert_frame_equal(read_parquet_checked(path), df)
    assert len(pl.read_parquet_metadata(path)[PARQUET_SHA256_KEY]) == 64
    assert pl.read_parquet(path)["onset"].dtype == pl.Datetime("us", "UTC")


def test_interrupted_parquet_write_keeps_old_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.parquet"
    old = events_table(3)
    write_parquet_atomic(old, path)

    def crash(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageError):
        write_parquet_atomic(events_table(9, seed=1), path)
    assert_frame_equal(read_parquet_checked(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["events.parquet"]


def test_parquet_read_back_mismatch_is_not_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.parquet"
    real = files.read_parquet_checked
    monkeypatch.setattr(files, "read_parquet_checked", lambda p: real(p).head(1))
    with pytest.raises(StorageError, match="differs from what was written"):
        write_parquet_atomic(events_table(4), path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_parquet_without_checksum_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "foreign.parquet"
    events_table().write_parquet(path)
    assert read_parquet_checked(path).height == 5


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
def test_truncated_parquet_is_corrupt(tmp_path: Path, keep: float) -> None:
    good = tmp_path / "good.parquet"
    write_parquet_atomic(events_table(200), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptFileError) as info:
        read_parquet_checked(bad)
    assert str(bad) in str(info.value)
    assert "\n" not in str(info.value)


def test_every_flipped_bit_in_the_data_is_caught(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    write_parquet_atomic(events_table(500), good)
    data = good.read_bytes()
    footer = int.from_bytes(data[-8:-4], "little")
    rng = np.random.default_rng(3)
    bad = tmp_path / "bad.parquet"
    for pos in rng.integers(4, len(data) - footer - 8, 40):
        flipped = bytearray(data)
        flipped[int(pos)] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(flipped))
        with pytest.raises(CorruptFileError, match="damaged"):
            read_parquet_checked(bad)


@pytest.mark.parametrize(
    "content", [b"", b"hello, world\n", b"PAR1" + bytes(100) + b"PAR1", os.urandom(5000)]
)
def test_garbage_parquet_is_corrupt(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "x.parquet"
    bad.write_bytes(content)
    with pytest.raises(CorruptFileError):
        read_parquet_checked(bad)


def test_missing_parquet_is_a_storage_error_not_corrupt(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist") as info:
        read_parquet_checked(tmp_path / "none.parquet")
    assert type(info.value) is StorageError


# ---------------------------------------------------------------------------------------------
# night tables


def test_night_dir_layout(tmp_path: Path) -> None:
    assert night_dir(tmp_path, "p01", "2024-03-01") == (
        tmp_path / "nights" / "participant=p01" / "night=2024-03-01"
    )


@pytest.mark.parametrize(
    ("participant", "night"),
    [
        ("../etc", "2024-03-01"),
        ("a=b", "2024-03-01"),
        ("", "2024-03-01"),
        ("p1", "2024-3-1"),
        ("p1", "2024-02-30"),
        ("p1", "yesterday"),
    ],
)
def test_night_dir_rejects_unsafe_keys(tmp_path: Path, participant: str, night: str) -> None:
    with pytest.raises(StorageError, match="invalid"):
        night_dir(tmp_path, participant, night)


@pytest.mark.usefixtures("open_umask")
def test_night_tables_round_trip_across_partitions(tmp_path: Path) -> None:
    root = tmp_path / "data"
    a = events_table(3, seed=1)
    b = events_table(4, seed=2)
    c = events_table(2, seed=3).with_columns(extra_uv=pl.lit(1.5))
    written = write_night_table(root, "p01", "2024-03-02", "events", b)
    write_night_table(root, "p01", "2024-03-01", "events", a)
    write_night_table(root, "p02", "2024-03-01", "events", c)
    assert written == night_dir(root, "p01", "2024-03-02") / "events.parquet"
    for folder in (root, root / "nights", written.parent.parent, written.parent):
        assert mode(folder) == 0o700
    assert mode(written) == 0o600
    assert "participant" not in pl.read_parquet(written).columns  # keys only in folder names

    table = read_night_tables(root, "events")
    assert table.columns[:2] == ["participant", "night"]
    assert table.schema["night"] == pl.Date
    assert table.height == 9
    assert table["participant"].to_list() == ["p01"] * 7 + ["p02"] * 2
    firsts = table.filter(pl.col("participant") == "p01")["night"].to_list()
    assert [d.isoformat() for d in firsts] == ["2024-03-01"] * 3 + ["2024-03-02"] * 4
    assert table["extra_uv"].null_count() == 7
    assert_frame_equal(
        table.filter(pl.col("night") == datetime(2024, 3, 2).date()).drop(
            "participant", "night", "session", "extra_uv"
        ),
        b,
    )
    # Any Hive-aware engine sees the same partitions.
    hive = pl.scan_parquet(
        root / "nights" / "participant=p01" / "**" / "events.parquet", hive_partitioning=True
    )
    assert hive.select(pl.len()).collect().item() == 7
    assert set(hive.collect_schema().names()) >= {"participant", "night", "duration_s"}


def test_night_table_rewrite_replaces(tmp_path: Path) -> None:
    write_night_table(tmp_path, "p01", "2024-03-01", "events", events_table(3))
    write_night_table(tmp_path, "p01", "2024-03-01", "events", events_table(5))
    assert read_night_tables(tmp_path, "events").height == 5


def test_sessions_of_one_night_never_replace_each_other(tmp_path: Path) -> None:
    write_night_table(tmp_path, "me", "2026-11-20", "events", events_table(3), session="aaaa")
    write_night_table(tmp_path, "me", "2026-11-20", "events", events_table(0), session="bbbb")
    table = read_night_tables(tmp_path, "events")
    assert table.group_by("session").len().sort("session").rows() == [("aaaa", 3)]
    # re-analysing a session replaces only its own table
    write_night_table(tmp_path, "me", "2026-11-20", "events", events_table(2), session="bbbb")
    table = read_night_tables(tmp_path, "events")
    assert table.group_by("session").len().sort("session").rows() == [("aaaa", 3), ("bbbb", 2)]


def test_night_tables_empty_root(tmp_path: Path) -> None:
    table = read_night_tables(tmp_path / "nothing", "events")
    assert table.height == 0
    assert table.columns == ["participant", "night", "session"]


def test_night_table_rules(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="partition column"):
        write_night_table(
            tmp_path, "p01", "2024-03-01", "events", events_table().with_columns(night=pl.lit(1))
        )
    naive = pl.DataFrame({"onset": [datetime(2024, 3, 1, 23, 0)], "duration_s": [12.0]})
    with pytest.raises(StorageError, match="naive datetimes"):
        write_night_table(tmp_path, "p01", "2024-03-01", "events", naive)
    local = naive.with_columns(pl.col("onset").dt.replace_time_zone("Europe/Berlin"))
    path = write_night_table(tmp_path, "p01", "2024-03-01", "local", local)
    stored = read_parquet_checked(path)
    assert stored.schema["onset"] == pl.Datetime("us", "UTC")
    assert stored["onset"][0] == datetime(2024, 3, 1, 22, 0, tzinfo=UTC)
    with pytest.raises(StorageError, match="invalid table name"):
        write_night_table(tmp_path, "p01", "2024-03-01", "../x", events_table())


def test_corrupt_night_table_names_the_file(tmp_path: Path) -> None:
    path = write_night_table(tmp_path, "p01", "2024-03-01", "events", events_table())
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(CorruptFileError) as info:
        read_night_tables(tmp_path, "events")
    assert str(path) in str(info.value)
