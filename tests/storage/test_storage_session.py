"""The session log: round trip, commit cadence, append, foreign/corrupt files, modes, disk full."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crampsense.clock import FakeClock
from crampsense.errors import CorruptFileError, DiskFullError, ForeignFileError, StorageError
from crampsense.models import DeviceInfo, Frame
from crampsense.storage import session_log
from crampsense.storage.session_log import (
    APPLICATION_ID,
    FORMAT_VERSION,
    Mark,
    SessionReader,
    SessionWriter,
    open_session,
)

EMG_UUID = "0000fe41-cc7a-482a-984a-7f2ed5b3e58f"
ACC_UUID = "0000fe42-cc7a-482a-984a-7f2ed5b3e58f"
LEFT = DeviceInfo("AA:00:00:00:00:01", "band-L", "crampsense-band", "left-calf", "1.2.0", 88)
RIGHT = DeviceInfo("AA:00:00:00:00:02", "band-R", "crampsense-band", "right-calf", "1.2.0", None)
T0 = datetime(2024, 3, 1, 22, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def make_frame(
    i: int, clock: FakeClock, *, device: DeviceInfo = LEFT, uuid: str = EMG_UUID
) -> Frame:
    """A frame whose payload encodes its counter ``i`` (~240 bytes like a real EMG packet)."""
    return Frame(
        device.address,
        uuid,
        struct.pack(">Q", i) + bytes([i % 251]) * 232,
        clock.now_ns(),
        clock.monotonic_ns(),
    )


def counter(frame: Frame) -> int:
    return int(struct.unpack(">Q", frame.payload[:8])[0])


def write_session(path: Path, clock: FakeClock, n: int, **kwargs: object) -> list[Frame]:
    frames = []
    with SessionWriter(path, clock=clock, **kwargs) as writer:  # type: ignore[arg-type]
        writer.add_device(LEFT, {"channels": "gm,gl", "gain": "12"})
        for i in range(n):
            clock.advance(0.01)
            frame = make_frame(i, clock)
            frames.append(frame)
            writer.append(frame)
    return frames


def assert_one_line(err: BaseException, path: Path) -> str:
    text = str(err)
    assert "\n" not in text
    assert str(path) in text
    return text


# ---------------------------------------------------------------------------------------------
# round trip


def test_round_trip_frames_devices_marks_metadata(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "night.session"
    written: list[Frame] = []
    with SessionWriter(path, clock=clock, metadata={"participant": "p01"}) as writer:
        writer.add_device(LEFT, {"channels": "gm,gl", "gain": "12"})
        writer.add_device(RIGHT)
        writer.mark("started", detail="recorder 0.1")
        for i in range(500):
            clock.advance(0.05)
            device = LEFT if i % 3 else RIGHT
            uuid = EMG_UUID if i % 5 else ACC_UUID
            frame = make_frame(i, clock, device=device, uuid=uuid)
            written.append(frame)
            writer.append(frame)
            if i == 200:
                writer.mark("disconnected", device_address=RIGHT.address, detail="link lost")
            if i == 250:
                writer.mark("connected", device_address=RIGHT.address)
        writer.set_metadata("detector", "v2")
        writer.mark("stopped")
    assert writer.frames_written == 500

    with open_session(path) as reader:
        assert reader.metadata["participant"] == "p01"
        assert reader.metadata["detector"] == "v2"
        assert reader.metadata["format_version"] == str(FORMAT_VERSION)
        assert reader.metadata["created_utc"].startswith("2024-03-01T22:00")
        assert reader.devices == [LEFT, RIGHT]
        assert reader.device_metadata(LEFT.address) == {"channels": "gm,gl", "gain": "12"}
        assert reader.device_metadata(RIGHT.address) == {}
        assert list(reader.frames()) == written
        assert list(reader.frames(batch_size=7)) == written  # batch boundaries change nothing
        left = [f for f in written if f.device_address == LEFT.address]
        assert list(reader.frames(device_address=LEFT.address, batch_size=13)) == left
        assert list(reader.frames(device_address="nobody")) == []
        assert reader.frame_count() == 500
        assert reader.frame_count(LEFT.address) == len(left)
        assert reader.frame_count("nobody") == 0
        kinds = [(m.kind, m.device_address) for m in reader.marks()]
        assert kinds == [
            ("started", None),
            ("disconnected", RIGHT.address),
            ("connected", RIGHT.address),
            ("stopped", None),
        ]
        assert reader.marks()[1] == Mark(
            reader.marks()[1].host_time_ns,
            reader.marks()[1].host_monotonic_ns,
            RIGHT.address,
            "disconnected",
            "link lost",
        )
        first, last = reader.time_span_ns()
        assert first == reader.marks()[0].host_time_ns < written[0].host_time_ns
        assert last == reader.marks()[-1].host_time_ns >= written[-1].host_time_ns
        assert len(reader.segments()) == 1
        with pytest.raises(StorageError, match="no device 'x'"):
            reader.device_metadata("x")


def test_time_span_survives_a_wall_clock_step_back(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    with SessionWriter(path, clock=clock) as writer:
        clock.advance(10)
        writer.append(make_frame(0, clock))
        clock.jump_wall(-3600)
        writer.append(make_frame(1, clock))
    with SessionReader(path) as reader:
        lo, hi = reader.time_span_ns()
        times = [f.host_time_ns for f in reader.frames()]
        assert lo == min(times) < hi == max(times)


def test_empty_session_spans_its_creation(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    SessionWriter(path, clock=clock).close()
    with SessionReader(path) as reader:
        assert reader.frame_count() == 0
        assert list(reader.frames()) == []
        assert reader.time_span_ns() == (clock.now_ns(), clock.now_ns())


# ---------------------------------------------------------------------------------------------
# commit cadence


def committed(path: Path) -> int:
    with SessionReader(path) as reader:
        return reader.frame_count()


def test_commits_only_after_the_interval(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    writer = SessionWriter(path, clock=clock, commit_interval_s=1.0)
    for i in range(10):
        writer.append(make_frame(i, clock))
    clock.advance(0.999)
    writer.append(make_frame(10, clock))
    writer.mark("note", detail="buffered")
    assert committed(path) == 0
    assert writer.frames_written == 0
    assert writer.pending_frames == 11
    with SessionReader(path) as reader:
        assert reader.marks() == []

    clock.advance(0.001)
    writer.append(make_frame(11, clock))  # due: this frame and all before are committed
    assert committed(path) == 12
    assert writer.frames_written == 12
    assert writer.pending_frames == 0
    with SessionReader(path) as reader:
        assert [m.detail for m in reader.marks()] == ["buffered"]

    writer.append(make_frame(12, clock))
    assert not writer.commit_if_due()
    assert committed(path) == 12
    clock.advance(1.0)
    assert writer.commit_if_due()  # a timer commits the tail even when no frame arrives
    assert committed(path) == 13
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        writer.append(make_frame(13, clock))


def test_flush_commits_now(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    with SessionWriter(path, clock=clock, commit_interval_s=60) as writer:
        writer.append(make_frame(0, clock))
        assert committed(path) == 0
        writer.flush()
        assert committed(path) == 1


# ---------------------------------------------------------------------------------------------
# append mode, locking, creation


def test_append_continues_the_same_night(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    first = write_session(path, clock, 5, metadata={"participant": "p01"})
    clock.advance(30)
    with SessionWriter(path, clock=clock, append=True, metadata={"resumed": "yes"}) as writer:
        assert writer.frames_written == 5
        writer.mark("reconnect-failed", device_address=RIGHT.address, detail="timeout")
        more = [make_frame(5 + i, clock, device=RIGHT, uuid=ACC_UUID) for i in range(5)]
        for frame in more:
            writer.append(frame)
    assert writer.frames_written == 10
    with SessionReader(path) as reader:
        assert list(reader.frames()) == first + more
        assert reader.devices == [LEFT]
        assert reader.metadata["participant"] == "p01"
        assert reader.metadata["resumed"] == "yes"
        assert [s.first_frame_id for s in reader.segments()] == [1, 6]
        assert reader.marks()[0].device_address == RIGHT.address


def test_append_true_creates_a_missing_file(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "new.session"
    with SessionWriter(path, clock=clock, append=True) as writer:
        writer.append(make_frame(0, clock))
    assert committed(path) == 1


def test_existing_file_without_append_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    write_session(path, clock, 3)
    before = path.read_bytes()
    with pytest.raises(StorageError, match="already exists") as info:
        SessionWriter(path, clock=clock)
    assert_one_line(info.value, path)
    assert path.read_bytes() == before


def test_second_writer_is_refused_while_one_is_open(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    with SessionWriter(path, clock=clock) as writer:
        writer.append(make_frame(0, clock))
        with pytest.raises(StorageError, match="another crampsense process"):
            SessionWriter(path, clock=clock, append=True)
        writer.append(make_frame(1, clock))  # the first writer still works
    assert committed(path) == 2


def test_append_refuses_foreign_files(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(ForeignFileError, match="text file"):
        SessionWriter(path, clock=clock, append=True)
    assert path.read_text() == "hello\n"


def test_failed_creation_leaves_nothing_behind(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.session"

    def broken_link(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "link", broken_link)
    with pytest.raises(StorageError, match="cannot create"):
        SessionWriter(path, clock=clock)
    assert list(tmp_path.iterdir()) == []


def test_invalid_arguments(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(StorageError, match="commit_interval_s"):
        SessionWriter(tmp_path / "a.session", clock=clock, commit_interval_s=0)
    with SessionWriter(tmp_path / "b.session", clock=clock) as writer:
        with pytest.raises(StorageError, match="unknown mark kind 'nap'"):
            writer.mark("nap")
        with pytest.raises(StorageError, match="format_version"):
            writer.set_metadata("format_version", "7")
    with SessionReader(tmp_path / "b.session") as reader, pytest.raises(StorageError):
        list(reader.frames(batch_size=0))


def test_frames_with_unstorable_fields_are_reported_and_others_kept(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "s.session"
    with SessionWriter(path, clock=clock) as writer:
        writer.append(make_frame(0, clock))
        writer.append(Frame(LEFT.address, EMG_UUID, b"x", 1 << 70, 0))
        writer.append(make_frame(2, clock))
        with pytest.raises(StorageError, match=r"1 frames .* dropped"):
            writer.flush()
        writer.flush()
    with SessionReader(path) as reader:
        assert [counter(f) for f in reader.frames()] == [0, 2]


# ---------------------------------------------------------------------------------------------
# reader: foreign and damaged files


def foreign_sqlite(path: Path, application_id: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('x')")
    if application_id:
        conn.execute(f"PRAGMA application_id={application_id}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("name", "make", "exc_type", "expected"),
    [
        ("missing.session", None, ForeignFileError, "does not exist"),
        ("empty.session", lambda p: p.write_bytes(b""), ForeignFileError, "is empty"),
        ("notes.txt", lambda p: p.write_text("ts,emg\n1,2\n" * 50), ForeignFileError, "text file"),
        (
            "noise.bin",
            lambda p: p.write_bytes(bytes(range(256)) * 40),
            ForeignFileError,
            "binary file of unknown type",
        ),
        (
            "photo.png",
            lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300)),
            ForeignFileError,
            "PNG image",
        ),
        ("other.db", lambda p: foreign_sqlite(p, 0), ForeignFileError, "without the crampsense"),
        (
            "other2.db",
            lambda p: foreign_sqlite(p, 0x12345678),
            ForeignFileError,
            "another application's SQLite database (application id 0x12345678)",
        ),
        (
            "stub.session",
            lambda p: p.write_bytes(b"SQLite format 3\x00" + bytes(40)),
            CorruptFileError,
            "cut short",
        ),
        ("head.session", lambda p: p.write_bytes(b"SQLite f"), CorruptFileError, "cut short"),
    ],
)
def test_reader_rejects_foreign_and_broken_files(
    tmp_path: Path, name: str, make: object, exc_type: type[Exception], expected: str
) -> None:
    path = tmp_path / name
    if make is not None:
        make(path)  # type: ignore[operator]
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(exc_type) as info:
        SessionReader(path)
    text = assert_one_line(info.value, path)
    assert expected in text
    assert type(info.value) is exc_type
    assert info.value.path == str(path)  # type: ignore[attr-defined]
    if exc_type is ForeignFileError:
        assert "crampsense" in text
    if before is not None:
        assert path.read_bytes() == before


def test_reader_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ForeignFileError, match="not a regular file"):
        SessionReader(tmp_path)


def test_reader_rejects_a_newer_format(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "future.session"
    write_session(path, clock, 3)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(ForeignFileError, match="newer") as info:
        SessionReader(path)
    assert "upgrade crampsense" in assert_one_line(info.value, path)
    with pytest.raises(ForeignFileError, match="version"):
        SessionWriter(path, clock=clock, append=True)


def test_reader_rejects_a_session_without_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "hollow.session"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute("PRAGMA user_version=1")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptFileError, match="tables missing: addresses") as info:
        SessionReader(path)
    assert_one_line(info.value, path)


def test_reader_never_modifies_a_closed_session(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    write_session(path, clock, 100)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = path.stat().st_mtime_ns
    with SessionReader(path) as reader:
        assert reader.frame_count() == 100
        assert sum(1 for _ in reader.frames()) == 100
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.session"]  # no -wal/-shm litter


@pytest.fixture(scope="module")
def big_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.session"
    write_session(path, FakeClock(T0), 6000)
    return path


def _no_frame_page(path: Path) -> bool:
    """Whether a cut session ends before the frames table's first page (page 10)."""
    return path.stat().st_size < 10 * 4096


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.33, 0.5, 0.77, 0.9, 0.999])
def test_truncated_session_reports_or_reads_an_intact_prefix(
    tmp_path: Path, big_session: Path, fraction: float
) -> None:
    data = big_session.read_bytes()
    path = tmp_path / "cut.session"
    path.write_bytes(data[: int(len(data) * fraction)])
    # A cut file always shows as damaged: its header promises more pages than it has.
    with pytest.raises(CorruptFileError) as info:
        SessionReader(path)
    text = assert_one_line(info.value, path)
    recovered = info.value.recovered
    assert f"first {recovered} frames are intact" in text or "0 frames could be read" in text
    assert f"crampsense repair {path}" in text
    assert 0 <= recovered <= 6000
    if path.stat().st_size < 4096:
        assert recovered == 0
        return
    if recovered == 0 and _no_frame_page(path):
        with pytest.raises(CorruptFileError, match="no frame could be recovered") as nothing:
            SessionReader(path, salvage=True)
        assert_one_line(nothing.value, path)
        return
    with SessionReader(path, salvage=True) as reader:
        counters = [counter(f) for f in reader.frames()]
        assert reader.recovered_frames == len(counters) >= recovered
        assert reader.frame_count() == len(counters)
        assert reader.damage is not None
        assert "cut short" in reader.damage
    # page by page: at least the intact prefix, in order, no duplicates
    assert counters[:recovered] == list(range(recovered))
    assert counters == sorted(set(counters))
    if fraction >= 0.5:
        assert len(counters) > 0.9 * 6000 * fraction  # what is left is recovered


@pytest.mark.parametrize("offset_fraction", [0.3, 0.6, 0.95])
def test_overwritten_pages_give_corrupt_file_error_or_data(
    tmp_path: Path, big_session: Path, offset_fraction: float
) -> None:
    data = bytearray(big_session.read_bytes())
    start = int(len(data) * offset_fraction) // 4096 * 4096
    data[start : start + 4096 * 3] = os.urandom(4096 * 3)
    path = tmp_path / "garbled.session"
    path.write_bytes(bytes(data))
    error: CorruptFileError | None = None
    n = -1
    try:
        with SessionReader(path) as reader:
            n = sum(1 for _ in reader.frames())
    except CorruptFileError as err:  # the only exception type allowed
        error = err
    if error is None:
        assert 0 <= n <= 6000
    else:
        assert_one_line(error, path)
        assert 0 <= error.recovered < 6000


# ---------------------------------------------------------------------------------------------
# file modes


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_files_are_owner_only_even_with_an_open_umask(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "a" / "b" / "s.session"
    tmp_path.chmod(0o755)
    parent_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    with SessionWriter(path, clock=clock) as writer:
        for i in range(50):
            writer.append(make_frame(i, clock))
        writer.flush()
        found = modes(path.parent)
        assert {"s.session", "s.session-wal", "s.session-shm"} <= set(found)
        assert all(mode == 0o600 for mode in found.values()), found
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == parent_mode  # existing parent untouched


@pytest.mark.usefixtures("open_umask")
def test_append_tightens_a_loosened_session(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    write_session(path, clock, 2)
    path.chmod(0o644)
    with SessionWriter(path, clock=clock, append=True) as writer:
        writer.append(make_frame(2, clock))
        writer.flush()
        assert all(mode == 0o600 for mode in modes(tmp_path).values()), modes(tmp_path)


def test_reader_sees_committed_frames_of_a_live_writer(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "s.session"
    with SessionWriter(path, clock=clock) as writer:
        writer.append(make_frame(0, clock))
        writer.flush()
        writer.append(make_frame(1, clock))  # buffered only
        with SessionReader(path) as reader:
            assert [counter(f) for f in reader.frames()] == [0]


# ---------------------------------------------------------------------------------------------
# disk full


def test_disk_full_keeps_committed_data_and_retries_buffered_frames(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "s.session"
    writer = SessionWriter(path, clock=clock, commit_interval_s=1.0)
    for i in range(20):
        writer.append(make_frame(i, clock))
    writer.flush()
    (pages,) = writer._require_open().execute("PRAGMA page_count").fetchone()
    writer.set_max_page_count(pages + 2)

    next_i = 20
    raised: DiskFullError | None = None
    for _ in range(30):  # fill up: ~16 frames fit a page, so this must fail
        for _ in range(40):
            writer.append(make_frame(next_i, clock))
            next_i += 1
        clock.advance(1.0)
        try:
            writer.append(make_frame(next_i, clock))
        except DiskFullError as err:
            raised = err
            next_i += 1  # the frame was buffered before the commit failed
            break
        next_i += 1
    assert raised is not None
    text = assert_one_line(raised, path)
    assert "MB free" in text
    assert "free some disk space" in text
    assert writer.pending_frames > 0
    committed_before = writer.frames_written
    assert committed(path) == committed_before  # intact and readable

    # While full: appends within the interval buffer quietly, the next due commit retries.
    writer.append(make_frame(next_i, clock))
    next_i += 1
    clock.advance(1.0)
    with pytest.raises(DiskFullError):
        writer.append(make_frame(next_i, clock))
    next_i += 1
    with pytest.raises(DiskFullError):
        writer.close()  # the writer stays open so that the close can be retried

    writer.set_max_page_count(1_000_000)  # space returns
    writer.close()
    with SessionReader(path) as reader:
        assert [counter(f) for f in reader.frames()] == list(range(next_i))


def test_buffer_cap_refuses_frames_only_after_a_failure(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_log, "MAX_PENDING_FRAMES", 50)
    path = tmp_path / "s.session"
    writer = SessionWriter(path, clock=clock, commit_interval_s=1.0)
    for i in range(120):  # fast producer, no failure: the cap just forces a commit
        writer.append(make_frame(i, clock))
    assert writer.frames_written >= 100
    writer.flush()
    (pages,) = writer._require_open().execute("PRAGMA page_count").fetchone()
    writer.set_max_page_count(pages)
    taken = 120
    failure: DiskFullError | None = None
    for _ in range(200):
        try:
            writer.append(make_frame(taken, clock))
        except DiskFullError as err:
            failure = err
            break
        taken += 1
    assert failure is not None
    assert writer.pending_frames == 50
    # The frame that hit the cap was refused, with a message saying so.
    with pytest.raises(DiskFullError, match="this frame was not recorded"):
        writer.append(make_frame(taken, clock))
    writer.set_max_page_count(1_000_000)
    clock.advance(1.0)
    writer.append(make_frame(taken, clock))
    writer.close()
    with SessionReader(path) as reader:
        assert [counter(f) for f in reader.frames()] == list(range(taken + 1))


def test_reader_on_a_copy_with_its_wal(tmp_path: Path, clock: FakeClock) -> None:
    """A session copied mid-recording together with its -wal keeps the committed frames."""
    path = tmp_path / "live.session"
    with SessionWriter(path, clock=clock) as writer:
        for i in range(30):
            writer.append(make_frame(i, clock))
        writer.flush()
        copy = tmp_path / "copy"
        copy.mkdir()
        for suffix in ("", "-wal"):
            shutil.copy(f"{path}{suffix}", copy / f"live.session{suffix}")
    with SessionReader(copy / "live.session") as reader:
        assert [counter(f) for f in reader.frames()] == list(range(30))
