"""Page-by-page recovery of damaged sessions: every frame whose page was not hit comes back.

The ground truth is SQLite's own: the intact copy is read first and each frame id is mapped
to its leaf page with the ``dbstat`` table (``salvagehelp.frame_pages``); the damage then says
which pages were hit.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crampsense.clock import FakeClock
from crampsense.errors import CorruptFileError, ForeignFileError, StorageError
from crampsense.models import DeviceInfo, Frame
from crampsense.storage.session_log import SessionReader, SessionWriter, repair_session
from salvagehelp import PAGE_SIZE, digest, frame_pages, frames_by_id, overwrite

EMG_UUID = "0000fe41-cc7a-482a-984a-7f2ed5b3e58f"
ACC_UUID = "0000fe42-cc7a-482a-984a-7f2ed5b3e58f"
LEFT = DeviceInfo("AA:00:00:00:00:01", "band-L", "crampsense-band", "left-calf", "1.2.0", 88)
RIGHT = DeviceInfo("AA:00:00:00:00:02", "band-R", "crampsense-band", "right-calf", "1.2.0")
T0 = datetime(2024, 3, 1, 22, 0, tzinfo=UTC)
N_FRAMES = 6000
#: Pages 1-11 hold the schema and the lookup tables of a session (page 1: the schema; 2-11:
#: the roots of meta, addresses, characteristics, devices, segments, frames, marks and the
#: lookup tables' indexes); the scattered-damage tests spare them to be about frames only.
FIRST_DATA_PAGE = 12

Row = tuple[int, int, int, int, int, bytes]


def _write(path: Path, clock: FakeClock, n: int, *, commit_interval_s: float = 1.0) -> None:
    with SessionWriter(path, clock=clock, commit_interval_s=commit_interval_s) as writer:
        writer.add_device(LEFT, {"channels": "gm,gl"})
        writer.add_device(RIGHT)
        writer.mark("started")
        for i in range(n):
            clock.advance(0.01)
            device = LEFT if i % 3 else RIGHT
            payload = struct.pack(">Q", i) + bytes([i % 251]) * (200 + i % 40)
            writer.append(Frame(device.address, EMG_UUID if i % 5 else ACC_UUID, payload,
                                clock.now_ns(), clock.monotonic_ns()))
            if i % 1000 == 999:
                writer.mark("note", detail=f"frame {i}")
        writer.mark("stopped")


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("salvage") / "night.session"
    _write(path, FakeClock(T0), N_FRAMES)
    return path


@pytest.fixture(scope="module")
def truth(intact: Path) -> tuple[dict[int, Row], dict[int, int]]:
    return frames_by_id(intact), frame_pages(intact)


def _copy(intact: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "damaged"
    folder.mkdir()
    path = folder / "night.session"
    shutil.copy(intact, path)
    return path


def _recovered(path: Path) -> dict[int, Row]:
    out: dict[int, Row] = {}
    with SessionReader(path, salvage=True) as reader:
        for batch in reader.frame_batches(batch_size=1000):
            assert batch.frame_ids is not None
            for i, frame_id in enumerate(batch.frame_ids.tolist()):
                out[frame_id] = (
                    frame_id, int(batch.device_ids[i]), int(batch.char_ids[i]),
                    int(batch.host_time_ns[i]), int(batch.host_monotonic_ns[i]),
                    batch.payloads[i],
                )
        assert reader.recovered_frames == len(out)
        report = reader.recovered_report()
        assert report.frames_recovered == len(out)
        missing = {i for h in report.holes for i in range(h.first_id, h.last_id + 1)}
        assert missing == set(range(1, report.last_frame_id + 1)) - set(out)
    return out


def _check(
    path: Path, truth: tuple[dict[int, Row], dict[int, int]], hit: set[int], *, exact: bool
) -> dict[int, Row]:
    """Every frame not on a hit page is recovered, byte for byte; nothing is invented.

    ``exact``: the hit pages are wholly garbage (page-aligned damage, a cut), so not one of
    their frames may come back. Otherwise frames of a partly hit page that still parse may
    come back too (a cell's payload bytes carry no checksum in SQLite's format: an overwrite
    inside them cannot be told from intact bytes, by SQLite or by anyone).
    """
    rows, pages = truth
    before = digest(path)
    listing = sorted(p.name for p in path.parent.iterdir())
    recovered = _recovered(path)
    expected = {i for i, page in pages.items() if page not in hit}
    assert expected <= set(recovered), f"lost {len(expected - set(recovered))} intact frames"
    assert set(recovered) <= set(rows)
    assert all(recovered[i] == rows[i] for i in expected)
    if exact:
        assert set(recovered) == expected
    # the damaged file is only read: same bytes, no -wal/-shm or other files beside it
    assert digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == listing
    return recovered


@pytest.mark.parametrize("aligned", [True, False])
def test_4kb_of_random_bytes_in_the_middle(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path, aligned: bool
) -> None:
    path = _copy(intact, tmp_path)
    offset = path.stat().st_size // 2 // PAGE_SIZE * PAGE_SIZE + (0 if aligned else 1234)
    hit = overwrite(path, [(offset, 4096)], seed=1)
    # SQLite alone gives up at the damage
    with pytest.raises(CorruptFileError) as info, SessionReader(path) as reader:
        sum(1 for _ in reader.frames())
    assert "crampsense repair" in str(info.value)
    recovered = _check(path, truth, hit, exact=aligned)
    assert len(recovered) >= N_FRAMES - 40 * len(hit)
    # the damage runs over cell boundaries: the cell it starts in is dropped with the garbled
    # ones after it, so not one frame comes back altered
    assert all(row == truth[0][i] for i, row in recovered.items())


def test_scattered_64_byte_overwrites(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path
) -> None:
    path = _copy(intact, tmp_path)
    rng = random.Random(20)
    size = path.stat().st_size
    ranges = [(rng.randrange(FIRST_DATA_PAGE * PAGE_SIZE, size - 64), 64) for _ in range(20)]
    hit = overwrite(path, ranges, seed=2)
    _check(path, truth, hit, exact=False)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_file(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path, fraction: float
) -> None:
    path = _copy(intact, tmp_path)
    data = path.read_bytes()
    cut = int(len(data) * fraction)
    path.write_bytes(data[:cut])
    whole_pages = cut // PAGE_SIZE
    hit = set(range(whole_pages + 1, len(data) // PAGE_SIZE + 1))
    _check(path, truth, hit, exact=True)
    with SessionReader(path, salvage=True) as reader:
        report = reader.recovered_report()
        assert report.pages_past_end > 0
        assert reader.damage is not None
        assert "cut short" in reader.damage


@pytest.mark.parametrize("ranges", [[(0, 4096)], [(0, 64)], [(16, 64)]],
                         ids=["whole-page", "magic", "page-size-and-app-id"])
def test_damaged_header_page(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path,
    ranges: list[tuple[int, int]],
) -> None:
    path = _copy(intact, tmp_path)
    overwrite(path, ranges, seed=3)
    with pytest.raises((ForeignFileError, CorruptFileError)):
        SessionReader(path)
    # page 1 holds only the schema: every frame comes back, with devices and metadata
    recovered = _check(path, truth, {1}, exact=True)
    assert len(recovered) == N_FRAMES
    with SessionReader(path, salvage=True) as reader:
        assert reader.devices == [LEFT, RIGHT]
        assert reader.device_metadata(LEFT.address) == {"channels": "gm,gl"}
        assert [m.kind for m in reader.marks()][-1] == "stopped"
        assert reader.metadata["software"].startswith("crampsense")


def _live_copy(tmp_path: Path) -> tuple[Path, dict[int, Row]]:
    """A session copied mid-recording with its -wal (nothing checkpointed yet), and its
    frames as SQLite reads the copy."""
    clock = FakeClock(T0)
    path = tmp_path / "live.session"
    copy = tmp_path / "copy"
    copy.mkdir()
    with SessionWriter(path, clock=clock, commit_interval_s=0.5) as writer:
        writer.add_device(LEFT)
        for i in range(3000):
            clock.advance(0.01)
            writer.append(Frame(LEFT.address, EMG_UUID, struct.pack(">Q", i) + b"x" * 230,
                                clock.now_ns(), clock.monotonic_ns()))
        writer.flush()
        for suffix in ("", "-wal"):
            shutil.copy(f"{path}{suffix}", copy / f"live.session{suffix}")
    session = copy / "live.session"
    shutil.copy(session, tmp_path / "ref.session")
    shutil.copy(f"{session}-wal", tmp_path / "ref.session-wal")
    ref = tmp_path / "ref.session"
    conn = sqlite3.connect(ref)  # checkpoint a second copy to read the truth from
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return session, frames_by_id(ref)


def test_damaged_wal(tmp_path: Path) -> None:
    path, rows = _live_copy(tmp_path)
    wal = Path(f"{path}-wal")
    frame_len = 24 + PAGE_SIZE
    n_wal_frames = (wal.stat().st_size - 32) // frame_len
    assert n_wal_frames > 50
    assert 3000 in rows
    # garble the page of one WAL frame early in the log
    victim = n_wal_frames // 4
    wal_page = struct.unpack(">I", wal.read_bytes()[32 + victim * frame_len:][:4])[0]
    overwrite(wal, [(32 + victim * frame_len + 24 + 2000, 64)], seed=4)
    # SQLite stops reading the log at the damage and would silently drop every later commit
    conn = sqlite3.connect(f"{(tmp_path / 'plain').as_uri()}", uri=True)
    conn.close()
    shutil.copy(path, tmp_path / "plain.session")
    shutil.copy(wal, tmp_path / "plain.session-wal")
    plain = sqlite3.connect(tmp_path / "plain.session")
    (seen,) = plain.execute("SELECT count(*) FROM frames").fetchone()
    plain.close()
    assert seen < 3000
    with pytest.raises(CorruptFileError) as info:
        SessionReader(path)
    assert "-wal" in str(info.value)
    before = (digest(path), digest(wal))
    recovered = _recovered(path)
    assert (digest(path), digest(wal)) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["live.session", "live.session-wal"]
    # every frame comes back except (at most) those only the damaged version of that page held
    ref_pages = frame_pages(tmp_path / "ref.session")
    expected = {i for i, page in ref_pages.items() if page != wal_page}
    assert expected <= set(recovered)
    assert all(recovered[i] == rows[i] for i in recovered)
    assert len(recovered) > seen


def test_foreign_files_stay_foreign_when_salvaging(tmp_path: Path) -> None:
    noise = tmp_path / "noise.bin"
    noise.write_bytes(random.Random(5).randbytes(64 * 1024))
    with pytest.raises(ForeignFileError):
        SessionReader(noise, salvage=True)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE frames (id INTEGER PRIMARY KEY, x BLOB)")
    conn.execute("INSERT INTO frames(x) VALUES (x'00')")
    conn.commit()
    conn.close()
    with pytest.raises(ForeignFileError):
        SessionReader(other, salvage=True)


def test_nothing_recoverable_is_one_error(intact: Path, tmp_path: Path) -> None:
    path = _copy(intact, tmp_path)
    size = path.stat().st_size
    overwrite(path, [(PAGE_SIZE, size - PAGE_SIZE)], seed=6)
    with pytest.raises(CorruptFileError) as info:
        SessionReader(path, salvage=True)
    assert "no frame could be recovered" in str(info.value)
    assert "\n" not in str(info.value)


def test_repair_writes_a_new_valid_session(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path
) -> None:
    path = _copy(intact, tmp_path)
    offset = path.stat().st_size // 3 // PAGE_SIZE * PAGE_SIZE
    hit = overwrite(path, [(offset, 4096)], seed=7)
    before = digest(path)
    out = tmp_path / "out" / "repaired.session"
    report = repair_session(path, out)
    assert digest(path) == before
    assert out.stat().st_mode & 0o077 == 0
    rows, pages = truth
    expected = {i for i, page in pages.items() if page not in hit}
    with SessionReader(out) as reader:  # an ordinary, valid session now
        assert reader.damage is None
        assert reader.frame_count() == report.frames_recovered == len(expected)
        assert reader.metadata["repaired_from"] == str(path.resolve())
        assert reader.devices == [LEFT, RIGHT]
    written = frames_by_id(out)
    assert set(written) == expected
    assert all(written[i] == rows[i] for i in expected)
    with pytest.raises(StorageError, match="already exists"):
        repair_session(path, out)
    # the repaired file continues like any session
    with SessionWriter(out, clock=FakeClock(T0), append=True) as writer:
        writer.append(Frame(LEFT.address, EMG_UUID, b"late", 1, 1))
    assert max(frames_by_id(out)) == N_FRAMES + 1


def test_a_frame_with_a_garbled_time_is_dropped(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path
) -> None:
    rows, _pages = truth
    path = _copy(intact, tmp_path)
    data = bytearray(path.read_bytes())
    victim = 3000  # frame id 3001 carries counter 3000 in its payload
    at = data.index(rows[victim + 1][5])
    # bits 32-39 of host_monotonic_ns, stored just before the payload: a jump of ~69 s
    data[at - 5] ^= 0x10
    path.write_bytes(bytes(data))
    with SessionReader(path) as reader:  # SQLite reads the garbled value without a word
        assert sum(1 for _ in reader.frames()) == N_FRAMES
    recovered = _recovered(path)
    assert set(recovered) == set(rows) - {victim + 1}
    with SessionReader(path, salvage=True) as reader:
        assert reader.recovered_report().cells_rejected == 1


def test_a_newer_format_is_never_salvaged_as_ours(intact: Path, tmp_path: Path) -> None:
    path = _copy(intact, tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ForeignFileError, match="upgrade crampsense"):
        SessionReader(path, salvage=True)


def test_no_frame_comes_back_altered_from_where_the_damage_starts(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path
) -> None:
    rows, _pages = truth
    first_page = intact.stat().st_size // 3 // PAGE_SIZE
    for k in range(6):  # the overwrite starts inside a different cell each time
        path = tmp_path / f"d{k}" / "night.session"
        path.parent.mkdir()
        shutil.copy(intact, path)
        overwrite(path, [((first_page + k) * PAGE_SIZE + 300 + 611 * k, 4096)], seed=k)
        recovered = _recovered(path)
        assert all(row == rows[i] for i, row in recovered.items())


def test_page_size_is_found_when_the_header_is_gone(
    intact: Path, truth: tuple[dict[int, Row], dict[int, int]], tmp_path: Path
) -> None:
    path = _copy(intact, tmp_path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # the page size changes only outside WAL
    conn.execute("PRAGMA page_size=1024")
    conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    overwrite(path, [(0, 1024)], seed=8)  # header and schema page: only the frames can tell
    with SessionReader(path, salvage=True) as reader:
        assert reader.recovered_report().page_size == 1024
    assert _recovered(path) == truth[0]
