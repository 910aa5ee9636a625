"""The crash-safe session log: every BLE notification of a night, as it arrived.

A session is one SQLite file (WAL journal, ``synchronous=FULL``), self-describing and portable:
the frames (raw notification bytes with host receive times), the devices with their protocol
metadata, connection marks (connects, disconnects, stalls) and free-form metadata. The layout,
pragmas, version policy and guarantees are documented in ``docs/session-format.md``.

Guarantees
----------
* A :class:`SessionWriter` buffers frames in memory and commits them in one transaction when
  ``commit_interval_s`` of the clock's monotonic time has passed since the last commit (checked
  on :meth:`~SessionWriter.append`, :meth:`~SessionWriter.mark` and
  :meth:`~SessionWriter.commit_if_due`). A ``kill -9`` or power cut therefore loses at most the
  frames of the last ``commit_interval_s``; committed frames are all there, in order, once.
* A new session file appears under its final name only once it is a complete, empty session
  (it is built under a temporary name and hard-linked into place), so a crash at start-up
  never leaves a half-initialised file.
* A full disk raises :class:`~crampsense.errors.DiskFullError`; the failed transaction is rolled
  back, committed frames stay intact, and the buffered frames are *kept* and retried at the next
  commit (at most once per ``commit_interval_s``). Only when :data:`MAX_PENDING_FRAMES` frames are
  waiting does :meth:`~SessionWriter.append` refuse new frames (raising ``DiskFullError``
  without taking the frame), so memory stays bounded and nothing is dropped silently.
* Files are owner-only: the session, its ``-wal`` and ``-shm`` companions are ``0600``, created
  directories ``0700``. Nothing global is installed (no signal handlers, no umask change): the
  CLI handles signals and calls :meth:`SessionWriter.close`.
* A :class:`SessionReader` never modifies the file. It checks the SQLite header, the
  application id and the format version before reading anything large, and turns every
  foreign or damaged file into one clear :class:`~crampsense.errors.ForeignFileError` or
  :class:`~crampsense.errors.CorruptFileError` line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from crampsense.clock import Clock, datetime_from_ns
from crampsense.errors import CorruptFileError, DiskFullError, ForeignFileError, StorageError
from crampsense.models import DeviceInfo, Frame, MarkKind
from crampsense.storage.files import FILE_MODE, fsync_dir, private_dir, try_lock_exclusive
from crampsense.storage.salvage import SalvageReport, recover_rows, wal_damage

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "MARK_KINDS",
    "MAX_PENDING_FRAMES",
    "FrameBatch",
    "Mark",
    "Segment",
    "SessionReader",
    "SessionWriter",
    "open_session",
    "repair_session",
]

logger = logging.getLogger(__name__)

#: Version of the table layout, stored in ``PRAGMA user_version``. Readers refuse newer
#: versions; writers append only to files of exactly this version.
FORMAT_VERSION: Final = 1
#: ``PRAGMA application_id`` of every session file: ASCII ``CRMS``.
APPLICATION_ID: Final = 0x43524D53
#: Kinds of :class:`Mark` a writer accepts: the values of :class:`~crampsense.models.MarkKind`.
MARK_KINDS: Final = frozenset(kind.value for kind in MarkKind)
#: Frames a writer holds in memory while commits fail (disk full) before refusing new ones.
#: A night is ~600k frames (~20 frames/s); 200k frames is hours of recording and ~100 MB of
#: memory, enough to ride out a full disk until someone frees space.
MAX_PENDING_FRAMES: Final = 200_000
#: Default rows per query when streaming frames: large enough that per-query overhead is
#: negligible (~1 %), small enough that a batch of ~240-byte payloads stays under ~10 MB.
DEFAULT_BATCH_SIZE: Final = 20_000
#: Seconds a connection waits for another connection's lock (checkpoints, a reader's snapshot)
#: before giving up.
_BUSY_TIMEOUT_S: Final = 10.0

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_LEN: Final = 100
_RECORD_HINT: Final = "pass a session file written by `crampsense record`"
_RESERVED_META: Final = frozenset(
    {"format_version", "created_host_time_ns", "created_utc", "session_id"}
)

_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
    "CREATE TABLE addresses (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE)",
    "CREATE TABLE characteristics (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE)",
    """CREATE TABLE devices (
        address_id INTEGER PRIMARY KEY REFERENCES addresses(id),
        name TEXT NOT NULL,
        family TEXT NOT NULL,
        placement TEXT NOT NULL,
        firmware TEXT NOT NULL,
        battery_percent INTEGER,
        protocol_metadata TEXT NOT NULL,
        updated_host_time_ns INTEGER NOT NULL)""",
    """CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        first_frame_id INTEGER NOT NULL,
        started_host_time_ns INTEGER NOT NULL,
        started_monotonic_ns INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        software TEXT NOT NULL)""",
    """CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES addresses(id),
        char_id INTEGER NOT NULL REFERENCES characteristics(id),
        host_time_ns INTEGER NOT NULL,
        host_monotonic_ns INTEGER NOT NULL,
        payload BLOB NOT NULL)""",
    """CREATE TABLE marks (
        id INTEGER PRIMARY KEY,
        host_time_ns INTEGER NOT NULL,
        host_monotonic_ns INTEGER NOT NULL,
        device_id INTEGER REFERENCES addresses(id),
        kind TEXT NOT NULL,
        detail TEXT NOT NULL)""",
    """CREATE VIEW frames_view AS
        SELECT f.id, a.address AS device_address, c.uuid AS characteristic_uuid,
               f.host_time_ns, f.host_monotonic_ns, f.payload
        FROM frames AS f
        JOIN addresses AS a ON a.id = f.device_id
        JOIN characteristics AS c ON c.id = f.char_id""",
)
_REQUIRED_TABLES: Final = frozenset(
    {"meta", "addresses", "characteristics", "devices", "segments", "frames", "marks"}
)


def _software() -> str:
    from crampsense import __version__  # noqa: PLC0415 - avoid a cycle at import time

    return f"crampsense {__version__}"


@dataclass(frozen=True, slots=True)
class Mark:
    """A connection event or gap recorded with the frames.

    Attributes
    ----------
    host_time_ns : int
        Host wall-clock time of the event, ns since the Unix epoch (UTC).
    host_monotonic_ns : int
        Host monotonic time of the event, ns (comparable with the frames of the same segment).
    device_address : str or None
        The device concerned, or ``None`` for the whole session.
    kind : str
        One of :data:`MARK_KINDS` (a :class:`~crampsense.models.MarkKind` value).
    detail : str
        Free text (an error message, a reason).
    """

    host_time_ns: int
    host_monotonic_ns: int
    device_address: str | None
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class Segment:
    """One run of a writer: monotonic times are comparable only within a segment.

    Attributes
    ----------
    first_frame_id : int
        Row id of the first frame this run wrote (frames with ids from here up to the next
        segment's ``first_frame_id`` belong to it).
    started_host_time_ns, started_monotonic_ns : int
        Host clocks when the writer opened the file (ns).
    pid : int
        Process id of the writer.
    software : str
        ``"crampsense <version>"`` of the writer.
    """

    first_frame_id: int
    started_host_time_ns: int
    started_monotonic_ns: int
    pid: int
    software: str


_Row = tuple[int, int, int, int, int, bytes]
#: The same rows as columns: ids, device ids, characteristic ids, host times, payloads.
_Columns = tuple[
    tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...],
    tuple[bytes, ...],
]


def _transpose(rows: list[_Row]) -> _Columns:
    ids, devs, chars, t_ns, m_ns, payloads = zip(*rows, strict=True)
    return ids, devs, chars, t_ns, m_ns, payloads


@dataclass(frozen=True, slots=True, eq=False)
class FrameBatch:
    """Consecutive recorded frames as columns, without one :class:`Frame` object per row.

    What :meth:`SessionReader.frame_batches` yields: frame ``i`` of the batch is
    ``Frame(addresses[device_ids[i]], characteristics[char_ids[i]], payloads[i],
    host_time_ns[i], host_monotonic_ns[i])`` (:meth:`frame`).

    Attributes
    ----------
    start : int
        Position (0-based) of the batch's first frame among all frames the iteration yields,
        so frame ``i`` is the ``start + i + 1``-th frame read.
    device_ids, char_ids : ndarray of int64, shape (n,)
        Keys into ``addresses`` and ``characteristics``.
    host_time_ns, host_monotonic_ns : ndarray of int64, shape (n,)
        Host receive times (ns), as in :class:`Frame`.
    payloads : tuple of bytes, length n
        The notification values, byte for byte.
    addresses : mapping of int to str
        Device id -> device address.
    characteristics : mapping of int to str
        Characteristic id -> lower-case characteristic UUID.
    frame_ids : ndarray of int64, shape (n,), or None
        Row ids of the frames (increasing in recorded order; see
        :meth:`SessionReader.frame_position`), ``None`` when not known.
    """

    start: int
    device_ids: npt.NDArray[np.int64]
    char_ids: npt.NDArray[np.int64]
    host_time_ns: npt.NDArray[np.int64]
    host_monotonic_ns: npt.NDArray[np.int64]
    payloads: tuple[bytes, ...]
    addresses: Mapping[int, str]
    characteristics: Mapping[int, str]
    frame_ids: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.payloads)

    def frame(self, i: int) -> Frame:
        """Frame ``i`` of the batch, exactly as :meth:`SessionReader.frames` yields it."""
        return Frame(
            self.addresses[int(self.device_ids[i])],
            self.characteristics[int(self.char_ids[i])],
            self.payloads[i],
            int(self.host_time_ns[i]),
            int(self.host_monotonic_ns[i]),
        )


# --------------------------------------------------------------------------------------------
# Header inspection (no SQLite involved: works on any file)


def _describe_foreign(head: bytes) -> str:
    """Say what a non-SQLite file looks like, from its first bytes."""
    signatures: tuple[tuple[bytes, str], ...] = (
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff", "a JPEG image"),
        (b"PK\x03\x04", "a ZIP archive (or .xlsx/.docx)"),
        (b"\x1f\x8b", "a gzip file"),
        (b"%PDF", "a PDF document"),
        (b"PAR1", "a Parquet file"),
        (b"ARROW1", "an Arrow file"),
        (b"0       ", "an EDF recording"),
    )
    for magic, what in signatures:
        if head.startswith(magic):
            return what
    sample = head[:512]
    control = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0D))
    if sample and control == 0:
        return "a text file"
    return "a binary file of unknown type"


@dataclass(frozen=True, slots=True)
class _Header:
    page_size: int
    db_pages: int  # 0 when the in-header size is not valid
    user_version: int
    application_id: int


def _parse_header(head: bytes) -> _Header:
    raw_page = int.from_bytes(head[16:18], "big")
    page_size = 65536 if raw_page == 1 else raw_page
    change_counter = int.from_bytes(head[24:28], "big")
    valid_for = int.from_bytes(head[92:96], "big")
    db_pages = int.from_bytes(head[28:32], "big")
    return _Header(
        page_size=page_size,
        db_pages=db_pages if change_counter == valid_for else 0,
        user_version=int.from_bytes(head[60:64], "big"),
        application_id=int.from_bytes(head[68:72], "big"),
    )


def _is_sqlite_error(exc: sqlite3.Error, code: int) -> bool:
    return (getattr(exc, "sqlite_errorcode", -1) & 0xFF) == code


def _check_file(path: Path) -> tuple[_Header, str | None]:
    """Check that ``path`` looks like a crampsense session before SQLite touches it.

    Returns the parsed header and, if the file is cut short, a description of the damage.
    Raises :class:`ForeignFileError` / :class:`CorruptFileError` with one clear line otherwise.
    """
    if not path.exists():
        msg = f"{path} does not exist; check the path ({_RECORD_HINT})"
        raise ForeignFileError(msg, path=str(path))
    if not path.is_file():
        msg = f"{path} is not a regular file (a directory?); {_RECORD_HINT}"
        raise ForeignFileError(msg, path=str(path))
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HEADER_LEN)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}; check its permissions"
        raise StorageError(msg, path=str(path)) from exc
    if size == 0:
        msg = f"{path} is empty (0 bytes), not a crampsense session file; {_RECORD_HINT}"
        raise ForeignFileError(msg, path=str(path))
    if not head.startswith(_SQLITE_MAGIC):
        if len(head) < len(_SQLITE_MAGIC) and len(head) >= 4 and _SQLITE_MAGIC.startswith(head):
            msg = (
                f"{path} is cut short ({size} bytes, not even a database header); "
                "no frames can be recovered: restore it from a backup"
            )
            raise CorruptFileError(msg, path=str(path), recovered=0)
        msg = (
            f"{path} is not a crampsense session file (it looks like "
            f"{_describe_foreign(head)}, not an SQLite database); {_RECORD_HINT}"
        )
        raise ForeignFileError(msg, path=str(path))
    if size < _HEADER_LEN:
        msg = (
            f"{path} is cut short ({size} bytes, shorter than the database header); "
            "no frames can be recovered: restore it from a backup"
        )
        raise CorruptFileError(msg, path=str(path), recovered=0)
    header = _parse_header(head)
    if header.application_id != APPLICATION_ID:
        if header.application_id == 0:
            what = "an SQLite database without the crampsense application id"
        else:
            what = (
                "another application's SQLite database "
                f"(application id {header.application_id:#x})"
            )
        msg = f"{path} is not a crampsense session file ({what}); {_RECORD_HINT}"
        raise ForeignFileError(msg, path=str(path))
    if header.page_size < 512 or header.page_size & (header.page_size - 1):
        msg = (
            f"{path} is damaged (invalid page size {header.page_size} in its header); "
            "restore it from a backup"
        )
        raise CorruptFileError(msg, path=str(path), recovered=0)
    damage: str | None = None
    wal = _companion(path, "-wal")
    wal_has_data = wal.exists() and wal.stat().st_size > 0
    expected = header.db_pages * header.page_size
    if not wal_has_data and header.db_pages and size < expected:
        damage = f"it is cut short: {size} of {expected} bytes"
    elif size % header.page_size:
        damage = f"its size {size} is not a multiple of its page size {header.page_size}"
    return header, damage


def _companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _tighten(path: Path) -> None:
    """Make a session file and its ``-wal``/``-shm`` companions owner-only."""
    for p in (path, _companion(path, "-wal"), _companion(path, "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if p.stat().st_mode & 0o077:
                p.chmod(FILE_MODE)


def _connect_ro(path: Path, *, salvage: bool) -> sqlite3.Connection:
    """Open ``path`` read-only without ever writing to it.

    A cleanly closed session (no ``-wal`` file) is opened ``immutable`` so that SQLite creates no
    ``-wal``/``-shm`` files beside it; one with a ``-wal`` (being written, or left by a killed
    writer) is opened ``mode=ro`` so the committed transactions in the WAL are seen.
    """
    uri = path.resolve().as_uri() + "?mode=ro"
    if not _companion(path, "-wal").exists():
        uri += "&immutable=1"
    conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    if salvage:
        # Lets SQLite open a file that is shorter than its header says (truncated copies).
        conn.execute("PRAGMA writable_schema=ON")
    return conn


_REPAIR_HINT: Final = (
    "`crampsense repair {path}` writes every intact frame to a new file "
    "(`crampsense replay` recovers them by itself), or restore a backup"
)


def _newer_format(path: Path, version: int) -> ForeignFileError:
    msg = (
        f"{path} has session format version {version}, newer than this "
        f"crampsense understands ({FORMAT_VERSION}); upgrade crampsense to read it"
    )
    return ForeignFileError(msg, path=str(path))


def _may_be_a_damaged_session(path: Path) -> bool:
    """Whether a file refused by the header check could be a session with a damaged header:
    an SQLite file with a wrong header field, or unrecognisable bytes at least a page long
    (not text, an image or any other known format, and not empty)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEADER_LEN)
        size = path.stat().st_size
    except OSError:
        return False
    if size < 512 or not path.is_file():
        return False
    return head.startswith(_SQLITE_MAGIC) or _describe_foreign(head) == (
        "a binary file of unknown type"
    )


def _describe_salvage(report: SalvageReport) -> str:
    if not (report.pages_unreadable or report.cells_rejected or report.holes
            or report.wal_frames_damaged):
        return "no damaged page found"
    parts = [f"{report.pages_unreadable} of {report.pages} pages unreadable"]
    if report.wal_frames_damaged:
        parts.append(f"{report.wal_frames_damaged} -wal frames damaged")
    if report.cells_rejected:
        parts.append(f"{report.cells_rejected} garbled rows dropped")
    return ", ".join(parts)


def _recover_into(source: Path, target: Path) -> tuple[sqlite3.Connection, SalvageReport]:
    """Create session ``target`` holding the rows recovered page by page from ``source``."""
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=OFF")  # a scratch copy: written once, then read
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
        try:
            report = recover_rows(source, conn, schema=_SCHEMA)
        except OSError as exc:
            msg = f"cannot read {source}: {exc.strerror or exc}; check its permissions"
            raise StorageError(msg, path=str(source)) from exc
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.close()
        msg = (
            f"cannot write the recovered copy of {source} to {target.parent} ({exc}); "
            "free some disk space there (it needs about the session's size)"
        )
        raise StorageError(msg, path=str(source)) from exc
    except BaseException:
        conn.close()
        raise
    return conn, report


def repair_session(source: Path, out: Path) -> SalvageReport:
    """Write every intact frame (and row) of a damaged session into the new session ``out``.

    ``source`` is only read. ``out`` must not exist: it appears, complete, under its name at the
    end (built under a temporary name beside it, then hard-linked into place), owner-only, in
    WAL mode like a recorded session, with the meta keys ``repaired_from`` and
    ``repaired_utc``. Frame ids keep their original values, so they have holes where pages were
    lost.

    Returns
    -------
    SalvageReport
        What was recovered and what was lost where.

    Raises
    ------
    StorageError
        ``out`` exists, or cannot be written.
    ForeignFileError, CorruptFileError
        ``source`` is not a session, or nothing could be recovered from it.
    """
    source, out = Path(source), Path(out)
    if out.exists() or out.is_symlink():
        msg = f"{out} already exists; repair never overwrites a file: choose a new --out name"
        raise StorageError(msg, path=str(out))
    if not out.parent.exists():
        private_dir(out.parent)
    with SessionReader(source, salvage=True) as reader:
        report = reader.recovered_report()
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{out.name}.", suffix=".creating", dir=out.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            dest = sqlite3.connect(tmp, isolation_level=None)
            try:
                reader._conn.backup(dest)
                dest.execute("PRAGMA journal_mode=WAL")
                dest.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [("repaired_from", str(source.resolve())),
                     ("repaired_utc", datetime.now(UTC).isoformat(timespec="seconds"))],
                )
            finally:
                dest.close()  # checkpoints the WAL into the file and removes it
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            try:
                os.link(tmp, out)  # fails if the name exists: never overwrite
            except FileExistsError as exc:
                msg = f"{out} appeared while it was being written; choose another --out name"
                raise StorageError(msg, path=str(out)) from exc
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
                if out.exists():  # no hard links on this filesystem: check, then rename
                    msg = f"{out} appeared while it was being written; choose another --out name"
                    raise StorageError(msg, path=str(out)) from exc
                tmp.replace(out)
        except sqlite3.Error as exc:
            msg = f"cannot write {out} ({exc}); check the folder and free disk space"
            raise StorageError(msg, path=str(out)) from exc
        except OSError as exc:
            msg = f"cannot write {out}: {exc.strerror or exc}; check the folder's permissions"
            raise StorageError(msg, path=str(out)) from exc
        finally:
            for p in (tmp, _companion(tmp, "-wal"), _companion(tmp, "-shm")):
                with contextlib.suppress(OSError):
                    p.unlink()
    fsync_dir(out.parent)
    return report


# --------------------------------------------------------------------------------------------
# Reader


class SessionReader:
    """Read a recorded session, validating it first.

    Parameters
    ----------
    path : Path
        A session file written by :class:`SessionWriter`.
    salvage : bool
        Read the file page by page (:mod:`crampsense.storage.salvage`) instead of through
        SQLite, keeping every row an intact page holds, wherever the damage is (a cut file,
        garbage in the middle, a damaged header page or ``-wal``). The recovered rows are read
        from a private temporary copy (removed by :meth:`close`); the file itself is only read.
        :attr:`salvage_report`, :attr:`recovered_frames` and :attr:`damage` say what was found;
        frame ids then have holes where pages were lost. Without it a damaged file raises
        :class:`CorruptFileError`.

    Raises
    ------
    ForeignFileError
        Missing file, not SQLite (text, image, ...), SQLite without the crampsense application
        id, or a newer :data:`FORMAT_VERSION`.
    CorruptFileError
        The file is damaged; ``recovered`` is the number of frames that SQLite can read from
        the start (open with ``salvage=True`` to recover every intact frame). With
        ``salvage=True``: no frame at all could be recovered.

    Examples
    --------
    >>> with SessionReader(path) as session:  # doctest: +SKIP
    ...     for frame in session.frames():
    ...         ...
    """

    path: Path
    metadata: dict[str, str]
    devices: list[DeviceInfo]
    format_version: int
    damage: str | None
    recovered_frames: int | None
    salvage_report: SalvageReport | None

    def __init__(self, path: Path, *, salvage: bool = False) -> None:
        self.path = Path(path)
        self._salvage = salvage
        self._tmp_dir: Path | None = None
        self.recovered_frames = None
        self.salvage_report = None
        refused: StorageError | None = None
        try:
            header, damage = _check_file(self.path)
        except (ForeignFileError, CorruptFileError) as exc:
            if not salvage or not _may_be_a_damaged_session(self.path):
                raise
            refused, damage = exc, "its header page is damaged"
        else:
            if salvage and header.user_version > FORMAT_VERSION:
                raise _newer_format(self.path, header.user_version)  # never read as ours
            if damage is None:
                damage = wal_damage(_companion(self.path, "-wal"), header.page_size)
        self.damage = damage
        if salvage:
            self._open_salvaged(refused)
            return
        if damage is not None and "-wal" in damage:
            msg = (
                f"{self.path} is damaged ({damage}); SQLite would silently drop the committed "
                f"data after the damage: {_REPAIR_HINT.format(path=self.path)}"
            )
            raise CorruptFileError(msg, path=str(self.path), recovered=0)
        try:
            self._conn = _connect_ro(self.path, salvage=damage is not None)
        except sqlite3.Error as exc:
            msg = f"cannot open {self.path} read-only ({exc}); copy it to a writable folder"
            raise StorageError(msg, path=str(self.path)) from exc
        try:
            self._load()
            if damage is not None:
                self.recovered_frames = self._count_readable()
                msg = (
                    f"{self.path} is damaged ({damage}); the first {self.recovered_frames} "
                    f"frames are intact, maybe more: {_REPAIR_HINT.format(path=self.path)}"
                )
                raise CorruptFileError(msg, path=str(self.path), recovered=self.recovered_frames)
        except BaseException:
            self._conn.close()
            raise

    def _open_salvaged(self, refused: StorageError | None) -> None:
        """Recover the file page by page into a private temporary session and read that."""
        self._tmp_dir = Path(tempfile.mkdtemp(prefix="crampsense-salvage-"))
        try:
            self._conn, report = _recover_into(self.path, self._tmp_dir / "recovered.session")
            self.salvage_report = report
            self._load()
            software = self.metadata.get("software", "")
            if refused is not None and not software.startswith("crampsense"):
                raise refused  # nothing says this was ever a crampsense session
            if report.frames_recovered == 0:
                msg = (
                    f"{self.path} is damaged ({self.damage or _describe_salvage(report)}) and "
                    "no frame could be recovered from it; restore it from a backup"
                )
                raise CorruptFileError(msg, path=str(self.path), recovered=0)
        except BaseException:
            self.close()
            raise
        self.recovered_frames = report.frames_recovered
        if self.damage is None:
            self.damage = _describe_salvage(report)
        logger.info(
            "%s: recovered %d frames page by page (%s)",
            self.path,
            report.frames_recovered,
            self.damage,
        )

    # -- loading -----------------------------------------------------------------------------

    def _corrupt(
        self, exc: BaseException | None, where: str, recovered: int = 0
    ) -> CorruptFileError:
        reason = f": {exc}" if exc is not None else ""
        msg = (
            f"{self.path} is damaged ({where}{reason}); {recovered} frames could be read "
            f"in order: {_REPAIR_HINT.format(path=self.path)}"
        )
        return CorruptFileError(msg, path=str(self.path), recovered=recovered)

    def _load(self) -> None:
        conn = self._conn
        try:
            (app_id,) = conn.execute("PRAGMA application_id").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "its schema cannot be read") from exc
        if app_id != APPLICATION_ID:  # pragma: no cover - header check catches this first
            msg = f"{self.path} is not a crampsense session file (application id {app_id:#x})"
            raise ForeignFileError(msg, path=str(self.path))
        if version > FORMAT_VERSION:
            raise _newer_format(self.path, version)
        if version < 1:
            raise self._corrupt(None, f"invalid format version {version}")
        missing = sorted(_REQUIRED_TABLES - tables)
        if missing:
            raise self._corrupt(None, f"tables missing: {', '.join(missing)}")
        self.format_version = int(version)
        try:
            self.metadata = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
            self._addresses: dict[int, str] = dict(
                conn.execute("SELECT id, address FROM addresses").fetchall()
            )
            self._address_ids = {a: i for i, a in self._addresses.items()}
            self._chars: dict[int, str] = dict(
                conn.execute("SELECT id, uuid FROM characteristics").fetchall()
            )
            rows = conn.execute(
                "SELECT a.address, d.name, d.family, d.placement, d.firmware, "
                "d.battery_percent, d.protocol_metadata "
                "FROM devices AS d JOIN addresses AS a ON a.id = d.address_id ORDER BY a.id"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "its device tables cannot be read") from exc
        self.devices = []
        self._device_meta: dict[str, dict[str, str]] = {}
        for address, name, family, placement, firmware, battery, proto in rows:
            self.devices.append(
                DeviceInfo(
                    address=address,
                    name=name,
                    family=family,
                    placement=placement,
                    firmware=firmware,
                    battery_percent=battery,
                )
            )
            try:
                decoded = json.loads(proto)
            except ValueError as exc:
                raise self._corrupt(exc, f"device {address} metadata is not JSON") from exc
            if not isinstance(decoded, dict):
                raise self._corrupt(None, f"device {address} metadata is not a JSON object")
            self._device_meta[address] = {str(k): str(v) for k, v in decoded.items()}

    def _count_readable(self) -> int:
        """Frames that can be read from the start of a damaged file."""
        return sum(
            len(rows)
            for rows, _columns in self._iter_row_batches(None, DEFAULT_BATCH_SIZE, salvage=True)
        )

    # -- public API --------------------------------------------------------------------------

    def device_metadata(self, address: str) -> dict[str, str]:
        """Protocol metadata stored with device ``address`` by :meth:`SessionWriter.add_device`.

        Raises
        ------
        StorageError
            No device with that address was added to this session.
        """
        try:
            return dict(self._device_meta[address])
        except KeyError:
            known = ", ".join(sorted(self._device_meta)) or "none"
            msg = f"no device {address!r} in {self.path} (devices: {known}); pass one of those"
            raise StorageError(msg, path=str(self.path)) from None

    def _row_ok(self, row: tuple[int, int, int, int, int, bytes]) -> bool:
        """Whether a frame row is well formed (damaged pages can decode to garbage rows)."""
        _id, dev, char, t_ns, m_ns, payload = row
        return (
            type(payload) is bytes
            and type(t_ns) is int
            and type(m_ns) is int
            and dev in self._addresses
            and char in self._chars
        )

    def _columns_ok(self, columns: _Columns) -> bool:
        """:meth:`_row_ok` for every row of a batch, one pass per column."""
        _ids, devs, chars, t_ns, m_ns, payloads = columns
        return (
            set(map(type, payloads)) == {bytes}
            and set(map(type, t_ns)) == {int}
            and set(map(type, m_ns)) == {int}
            and set(devs) <= self._addresses.keys()
            and set(chars) <= self._chars.keys()
        )

    def _iter_row_batches(
        self, device_id: int | None, batch_size: int, *, salvage: bool
    ) -> Iterator[tuple[list[_Row], _Columns]]:
        """Well-formed frame rows in id order, one list per query of up to ``batch_size``,
        each with the same rows as columns (``id, device_id, char_id, host_time_ns,
        host_monotonic_ns, payload``).

        At a damaged page or a garbled row, the intact rows before it are yielded, then the
        iteration stops quietly (``salvage``) or raises :class:`CorruptFileError`.
        """
        cols = "id, device_id, char_id, host_time_ns, host_monotonic_ns, payload"
        if device_id is None:
            sql = f"SELECT {cols} FROM frames WHERE id > ? ORDER BY id LIMIT ?"  # noqa: S608
        else:
            sql = (
                f"SELECT {cols} FROM frames WHERE id > ? AND device_id = ? "  # noqa: S608
                "ORDER BY id LIMIT ?"
            )
        last_id = 0
        yielded = 0
        while True:
            params: tuple[int, ...] = (
                (last_id, batch_size) if device_id is None else (last_id, device_id, batch_size)
            )
            try:
                rows = self._conn.execute(sql, params).fetchall()
            except sqlite3.ProgrammingError as exc:
                msg = f"the reader of {self.path} was closed while reading; reopen it"
                raise StorageError(msg, path=str(self.path)) from exc
            except sqlite3.DatabaseError as exc:
                # Step row by row from the same place to deliver the exact intact prefix.
                try:
                    cursor = self._conn.execute(sql, params)
                except sqlite3.DatabaseError:
                    cursor = None
                intact: list[_Row] = []
                while cursor is not None:
                    try:
                        row = cursor.fetchone()
                    except sqlite3.DatabaseError:
                        break
                    if row is None or not self._row_ok(row):
                        break
                    intact.append(row)
                yielded += len(intact)
                if intact:
                    yield intact, _transpose(intact)
                if salvage:
                    logger.info(
                        "%s: stopped at a damaged page after %d frames", self.path, yielded
                    )
                    return
                raise self._corrupt(exc, "a frame page cannot be read", yielded) from exc
            if not rows:
                return
            columns = _transpose(rows)
            if not self._columns_ok(columns):
                bad = next(i for i, row in enumerate(rows) if not self._row_ok(row))
                yielded += bad
                if bad:
                    yield rows[:bad], _transpose(rows[:bad])
                if salvage:
                    logger.info(
                        "%s: stopped at a damaged frame after %d frames", self.path, yielded
                    )
                    return
                raise self._corrupt(None, f"frame row {rows[bad][0]} is garbled", yielded)
            yielded += len(rows)
            yield rows, columns
            last_id = rows[-1][0]

    def _selected_row_batches(
        self, device_address: str | None, batch_size: int
    ) -> Iterator[tuple[list[_Row], _Columns]]:
        """:meth:`_iter_row_batches` for the arguments of :meth:`frames` and
        :meth:`frame_batches`: checks ``batch_size``, yields nothing for an address without
        frames, and handles damage as the reader was opened (``salvage``)."""
        if batch_size < 1:
            msg = f"batch_size must be at least 1 (got {batch_size})"
            raise StorageError(msg, path=str(self.path))
        device_id: int | None = None
        if device_address is not None:
            device_id = self._address_ids.get(device_address)
            if device_id is None:
                return
        yield from self._iter_row_batches(device_id, batch_size, salvage=self._salvage)

    def frames(
        self, *, device_address: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[Frame]:
        """Stream the recorded frames in recorded order, ``batch_size`` rows per query.

        Memory stays bounded by one batch whatever the session's size.

        Parameters
        ----------
        device_address : str or None
            Only this device's frames (``None``: all devices, interleaved as recorded).
        batch_size : int
            Rows fetched per query (>= 1).

        Yields
        ------
        Frame

        Raises
        ------
        CorruptFileError
            A damaged page was reached (``recovered`` counts the frames yielded before it);
            not raised with ``salvage=True``, where iteration just stops there.
        """
        addresses = self._addresses
        chars = self._chars
        for rows, _columns in self._selected_row_batches(device_address, batch_size):
            for _id, dev, char, t_ns, m_ns, payload in rows:
                yield Frame(addresses[dev], chars[char], payload, t_ns, m_ns)

    def frame_batches(
        self, *, device_address: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[FrameBatch]:
        """Stream the recorded frames as column batches, in recorded order.

        The same frames as :meth:`frames`, in the same order and with the same damage
        handling, but as one :class:`FrameBatch` per query of up to ``batch_size`` rows, so
        that bulk readers (replay) pay no per-frame object cost.

        Parameters
        ----------
        device_address : str or None
            Only this device's frames (``None``: all devices, interleaved as recorded).
        batch_size : int
            Rows fetched per query (>= 1); batches hold at most this many frames.

        Yields
        ------
        FrameBatch

        Raises
        ------
        CorruptFileError
            As :meth:`frames` (after the intact frames before the damage were yielded).
        """
        start = 0
        for rows, columns in self._selected_row_batches(device_address, batch_size):
            ids, devs, chars, t_ns, m_ns, payloads = columns
            yield FrameBatch(
                start=start,
                device_ids=np.array(devs, dtype=np.int64),
                char_ids=np.array(chars, dtype=np.int64),
                host_time_ns=np.array(t_ns, dtype=np.int64),
                host_monotonic_ns=np.array(m_ns, dtype=np.int64),
                payloads=payloads,
                addresses=self._addresses,
                characteristics=self._chars,
                frame_ids=np.array(ids, dtype=np.int64),
            )
            start += len(rows)

    def recovered_report(self) -> SalvageReport:
        """:attr:`salvage_report` of a salvaging reader (``StorageError`` for any other)."""
        if self.salvage_report is None:
            msg = f"{self.path} was not opened with salvage=True; open it so to recover it"
            raise StorageError(msg, path=str(self.path))
        return self.salvage_report

    @property
    def salvaging(self) -> bool:
        """Whether the reader was opened with ``salvage=True`` (iteration stops quietly at
        damage instead of raising)."""
        return self._salvage

    @property
    def frame_addresses(self) -> tuple[str, ...]:
        """Every device address that frames may carry, in the order first recorded: the
        :attr:`devices` and any address that frames were recorded for without a device entry."""
        return tuple(self._addresses[i] for i in sorted(self._addresses))

    def frame_counts(self, *, limit: int | None = None) -> dict[str, int]:
        """Frames per device address, among the first ``limit`` frames in recorded order (all
        frames when ``None``). Addresses without frames there are left out.

        A cheap sample (``limit`` of tens of thousands reads only that prefix) says which
        devices dominate a night; ``None`` scans the whole frame table once.

        Raises
        ------
        CorruptFileError
            The frame table cannot be read (not raised when salvaging: the counts are then
            ``{}``).
        """
        if limit is not None and limit < 1:
            msg = f"limit must be at least 1 or None (got {limit})"
            raise StorageError(msg, path=str(self.path))
        source = (
            "frames"
            if limit is None
            else f"(SELECT device_id FROM frames ORDER BY id LIMIT {int(limit)})"  # noqa: S608
        )
        rows = self._table_rows(
            f"SELECT device_id, count(*) FROM {source} GROUP BY device_id",  # noqa: S608
            "frames",
        )
        return {
            self._addresses.get(dev, f"#{dev}"): int(count)
            for dev, count in rows
        }

    def frame_position(self, frame_id: int) -> int:
        """1-based position, in recorded order, of the frame with row id ``frame_id``
        (:attr:`FrameBatch.frame_ids`): how many frames have an id up to it.

        Raises
        ------
        CorruptFileError
            The frame table cannot be read.
        """
        try:
            (n,) = self._conn.execute(
                "SELECT count(*) FROM frames WHERE id <= ?", (int(frame_id),)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "the frame table cannot be counted") from exc
        return int(n)

    def frame_count(self, device_address: str | None = None) -> int:
        """Number of frames recorded (for one device, or all)."""
        if self.recovered_frames is not None and device_address is None:
            return self.recovered_frames
        try:
            if device_address is None:
                (n,) = self._conn.execute("SELECT count(*) FROM frames").fetchone()
            else:
                dev = self._address_ids.get(device_address)
                if dev is None:
                    return 0
                if self.recovered_frames is not None:
                    return sum(1 for _ in self.frames(device_address=device_address))
                (n,) = self._conn.execute(
                    "SELECT count(*) FROM frames WHERE device_id = ?", (dev,)
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "the frame table cannot be counted") from exc
        return int(n)

    def _table_rows(self, sql: str, table: str) -> list[Any]:
        """All rows of a small side table; ``[]`` when damaged and salvaging."""
        try:
            return self._conn.execute(sql).fetchall()
        except sqlite3.DatabaseError as exc:
            if self._salvage:
                return []
            raise self._corrupt(exc, f"the {table} table cannot be read") from exc

    def marks(self) -> list[Mark]:
        """Connection events and notes, in recorded order."""
        rows = self._table_rows(
            "SELECT host_time_ns, host_monotonic_ns, device_id, kind, detail "
            "FROM marks ORDER BY id",
            "marks",
        )
        return [
            Mark(t, m, None if dev is None else self._addresses.get(dev, f"#{dev}"), kind, detail)
            for t, m, dev, kind, detail in rows
        ]

    def segments(self) -> list[Segment]:
        """Writer runs, in order (one per :class:`SessionWriter` opening the file)."""
        rows = self._table_rows(
            "SELECT first_frame_id, started_host_time_ns, started_monotonic_ns, pid, "
            "software FROM segments ORDER BY id",
            "segments",
        )
        return [Segment(*row) for row in rows]

    @property
    def session_key(self) -> str:
        """A short, stable key of this session (what the night tables are filed under).

        The writer's random ``session_id`` (16 hex digits of it); files written before it
        existed get ``legacy-`` and a digest of their creation metadata, so two different
        sessions never share a key and the same file always gets the same one.
        """
        sid = self.metadata.get("session_id", "")
        if sid:
            return sid[:16]
        blob = json.dumps(sorted(self.metadata.items())).encode("utf-8")
        return "legacy-" + hashlib.sha256(blob).hexdigest()[:12]

    def time_span_ns(self) -> tuple[int, int]:
        """Earliest and latest host wall-clock time of any frame or mark (ns since the epoch).

        Minimum and maximum rather than first and last row, so that a wall clock stepped back
        during the night still gives a span that contains every frame. A session without
        frames or marks spans its creation time.
        """
        try:
            f_lo, f_hi = self._conn.execute(
                "SELECT min(host_time_ns), max(host_time_ns) FROM frames"
            ).fetchone()
            m_lo, m_hi = self._conn.execute(
                "SELECT min(host_time_ns), max(host_time_ns) FROM marks"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc, "the frame times cannot be read") from exc
        lows = [v for v in (f_lo, m_lo) if v is not None]
        highs = [v for v in (f_hi, m_hi) if v is not None]
        if not lows:
            created = int(self.metadata.get("created_host_time_ns", "0"))
            return created, created
        return int(min(lows)), int(max(highs))

    def close(self) -> None:
        """Close the file (idempotent); a salvaging reader removes its temporary copy."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_session(path: Path | str) -> SessionReader:
    """Open a recorded session for reading (see :class:`SessionReader`)."""
    return SessionReader(Path(path))


# --------------------------------------------------------------------------------------------
# Writer


class SessionWriter:
    """Record frames, devices and marks into a crash-safe session file.

    Parameters
    ----------
    path : Path
        The session file. Missing parent folders are created owner-only.
    clock : Clock
        Source of monotonic time for the commit cadence and of the times of marks.
    commit_interval_s : float
        Commit buffered frames once this much monotonic time has passed since the last commit
        (> 0). A crash loses at most the frames of one interval.
    metadata : mapping of str to str, optional
        Session metadata (participant, config digest, ...), committed at once.
    append : bool
        ``False``: create a new file (``StorageError`` if it exists). ``True``: continue an
        existing session of this format (a new :class:`Segment`), or create it if missing.
    max_page_count : int or None
        Cap on the database size in pages (``PRAGMA max_page_count``). For tests that simulate a
        full disk, or to bound a file; ``None`` leaves SQLite's default.

    Raises
    ------
    StorageError
        The file exists (without ``append``), is locked by another writer, or cannot be
        created.
    ForeignFileError, CorruptFileError
        With ``append=True``: the existing file is not a session of this format, or damaged.
    DiskFullError
        No space to create the file.

    Notes
    -----
    Not thread-safe: use one writer from one thread at a time (it may be a different thread
    from the one that created it). :attr:`frames_written` counts the committed frames in the
    file, including those of earlier segments.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock,
        commit_interval_s: float = 1.0,
        metadata: Mapping[str, str] | None = None,
        append: bool = False,
        max_page_count: int | None = None,
    ) -> None:
        if not commit_interval_s > 0:
            msg = f"commit_interval_s must be > 0 (got {commit_interval_s})"
            raise StorageError(msg, path=str(path))
        self.path = Path(path)
        self._clock = clock
        self._interval_ns = round(commit_interval_s * 1e9)
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pending_frames: list[tuple[int, int, int, int, bytes]] = []
        self._pending_marks: list[tuple[int, int, int | None, str, str]] = []
        self._pending_addresses: list[tuple[int, str]] = []
        self._pending_chars: list[tuple[int, str]] = []
        self._pending_meta: dict[str, str] = {}
        self._pending_devices: dict[int, tuple[object, ...]] = {}
        self._address_ids: dict[str, int] = {}
        self._char_ids: dict[str, int] = {}
        self._frames_written = 0
        self._last_commit_ns = 0
        self._last_commit_failed = False

        if not self.path.parent.exists():
            private_dir(self.path.parent)
        exists = self.path.exists()
        if exists and not append:
            msg = (
                f"{self.path} already exists; record into a new file, or continue that "
                "session (`crampsense record --continue`)"
            )
            raise StorageError(msg, path=str(self.path))
        if not exists or self.path.stat().st_size == 0:
            self._create_file(dict(metadata or {}), replace_empty=exists)
        else:
            SessionReader(self.path).close()  # validates: foreign, corrupt, newer format
        self._open(max_page_count)
        try:
            self._start_segment(dict(metadata or {}) if exists else {})
        except BaseException:
            self._close_connection()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _create_file(self, metadata: dict[str, str], *, replace_empty: bool) -> None:
        """Build a complete empty session under a temporary name, then link it into place."""
        try:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".creating", dir=self.path.parent
            )
        except OSError as exc:
            raise self._os_error(exc, "create") from exc
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            now_ns = self._clock.now_ns()
            meta = {
                **metadata,
                "format_version": str(FORMAT_VERSION),
                "created_host_time_ns": str(now_ns),
                "created_utc": datetime_from_ns(now_ns).isoformat(),
                # Sessions are named by their start; simulated nights all start at the same
                # simulated time, so the name alone does not tell two sessions apart.
                "session_id": uuid.uuid4().hex,
                "software": _software(),
            }
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":  # pragma: no cover - every local fs supports WAL
                    msg = f"cannot use WAL journaling for {self.path} ({mode}); use a local disk"
                    raise StorageError(msg, path=str(self.path))
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
                conn.execute("COMMIT")
            finally:
                conn.close()  # checkpoints the WAL into the file and removes it
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            self._link_into_place(tmp, replace_empty=replace_empty)
        except sqlite3.Error as exc:
            raise self._translate(exc, "create") from exc
        except OSError as exc:
            raise self._os_error(exc, "create") from exc
        finally:
            for p in (tmp, _companion(tmp, "-wal"), _companion(tmp, "-shm")):
                with contextlib.suppress(OSError):
                    p.unlink()
        fsync_dir(self.path.parent)

    def _link_into_place(self, tmp: Path, *, replace_empty: bool) -> None:
        if replace_empty:
            tmp.replace(self.path)
            return
        try:
            os.link(tmp, self.path)  # fails if the name exists: never overwrite a session
        except FileExistsError as exc:
            msg = f"{self.path} appeared while it was being created; choose another name"
            raise StorageError(msg, path=str(self.path)) from exc
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if self.path.exists():  # no hard links on this filesystem: check, then rename
                msg = f"{self.path} appeared while it was being created; choose another name"
                raise StorageError(msg, path=str(self.path)) from exc
            tmp.replace(self.path)

    def _open(self, max_page_count: int | None) -> None:
        _tighten(self.path)
        self._take_lock()
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=_BUSY_TIMEOUT_S,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            self._release_lock()
            raise self._translate(exc, "open") from exc
        self._conn = conn
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - every local fs supports WAL
                msg = f"cannot use WAL journaling for {self.path} (got {mode}); use a local disk"
                raise StorageError(msg, path=str(self.path))
            conn.execute("PRAGMA synchronous=FULL")
            if max_page_count is not None:
                self.set_max_page_count(max_page_count)
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version != FORMAT_VERSION:
                msg = (
                    f"{self.path} has session format version {version}; this crampsense "
                    f"appends only to version {FORMAT_VERSION}: start a new session file"
                )
                raise ForeignFileError(msg, path=str(self.path))
            self._address_ids = {a: i for i, a in conn.execute("SELECT id, address FROM addresses")}
            self._char_ids = {u: i for i, u in conn.execute("SELECT id, uuid FROM characteristics")}
            # Frame ids run 1..n without gaps (rows are only appended; a rolled-back insert
            # frees its ids again), so max(id) is the count, found without a full scan.
            (self._frames_written,) = conn.execute(
                "SELECT coalesce(max(id), 0) FROM frames"
            ).fetchone()
        except sqlite3.Error as exc:
            self._close_connection()
            raise self._translate(exc, "open") from exc
        except BaseException:
            self._close_connection()
            raise
        _tighten(self.path)

    def _take_lock(self) -> None:
        """Hold an exclusive advisory lock so that two writers never append to one file."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise self._os_error(exc, "open") from exc
        if not try_lock_exclusive(fd):  # (no flock on Windows: SQLite still serialises)
            os.close(fd)
            msg = (
                f"{self.path} is being written by another crampsense process; stop that "
                "recorder first or record into another file"
            )
            raise StorageError(msg, path=str(self.path))
        self._lock_fd = fd

    def _release_lock(self) -> None:
        # Closed only after SQLite has closed the file: closing any descriptor of a file
        # drops the process's POSIX locks on it, including SQLite's.
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _start_segment(self, metadata: dict[str, str]) -> None:
        conn = self._require_open()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO segments(first_frame_id, started_host_time_ns, "
                "started_monotonic_ns, pid, software) VALUES "
                "((SELECT coalesce(max(id), 0) + 1 FROM frames), ?, ?, ?, ?)",
                (self._clock.now_ns(), self._clock.monotonic_ns(), os.getpid(), _software()),
            )
            self._write_meta(conn, metadata)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "open") from exc
        self._last_commit_ns = self._clock.monotonic_ns()

    # -- errors ------------------------------------------------------------------------------

    def _free_space(self) -> str:
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return "free space unknown"
        return f"{free / 1e6:.1f} MB free"

    def _translate(self, exc: sqlite3.Error, action: str) -> StorageError:
        pending = len(self._pending_frames)
        if _is_sqlite_error(exc, sqlite3.SQLITE_FULL):
            return DiskFullError(
                f"disk full while trying to {action} {self.path} ({self._free_space()}); "
                f"everything committed before is intact and {pending} frames are held in "
                "memory and retried at the next commit: free some disk space",
                path=str(self.path),
            )
        return StorageError(
            f"cannot {action} {self.path}: {exc}; {pending} frames are held in memory and "
            "retried at the next commit; check the disk",
            path=str(self.path),
        )

    def _os_error(self, exc: OSError, action: str) -> StorageError:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return DiskFullError(
                f"disk full while trying to {action} {self.path} ({self._free_space()}); "
                "free some disk space and try again",
                path=str(self.path),
            )
        return StorageError(
            f"cannot {action} {self.path}: {exc.strerror or exc}; check the folder's permissions",
            path=str(self.path),
        )

    def _rollback(self) -> None:
        conn = self._conn
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = f"the session writer for {self.path} is closed; open a new one with append=True"
            raise StorageError(msg, path=str(self.path))
        return self._conn

    # -- public API --------------------------------------------------------------------------

    @property
    def frames_written(self) -> int:
        """Committed frames in the file (including earlier segments)."""
        return self._frames_written

    @property
    def pending_frames(self) -> int:
        """Frames buffered in memory, not yet committed."""
        return len(self._pending_frames)

    def set_max_page_count(self, pages: int) -> None:
        """Cap the database at ``pages`` pages (``PRAGMA max_page_count``) for this connection.

        Reaching the cap behaves exactly like a full disk (``SQLITE_FULL``), which is how the
        tests simulate one. SQLite never lowers the cap below the current size.
        """
        conn = self._require_open()
        conn.execute(f"PRAGMA max_page_count={int(pages)}")

    def _address_id(self, address: str) -> int:
        found = self._address_ids.get(address)
        if found is None:
            found = len(self._address_ids) + 1
            self._address_ids[address] = found
            self._pending_addresses.append((found, address))
        return found

    def _char_id(self, uuid: str) -> int:
        found = self._char_ids.get(uuid)
        if found is None:
            found = len(self._char_ids) + 1
            self._char_ids[uuid] = found
            self._pending_chars.append((found, uuid))
        return found

    def add_device(
        self, info: DeviceInfo, protocol_metadata: Mapping[str, str] | None = None
    ) -> None:
        """Record (or update) a device and its protocol metadata; committed with the next commit.

        Parameters
        ----------
        info : DeviceInfo
        protocol_metadata : mapping of str to str, optional
            What the device family needs to decode this device's frames later (channel map,
            gains, firmware quirks), stored as a JSON object.
        """
        self._require_open()
        proto = json.dumps(dict(protocol_metadata or {}), sort_keys=True)
        address_id = self._address_id(info.address)
        self._pending_devices[address_id] = (
            address_id,
            info.name,
            info.family,
            info.placement,
            info.firmware,
            info.battery_percent,
            proto,
            self._clock.now_ns(),
        )
        self._commit_if_due()

    def append(self, frame: Frame) -> None:
        """Buffer one frame; commit if ``commit_interval_s`` has passed since the last commit.

        Raises
        ------
        DiskFullError
            A commit failed for lack of space. The frame *was* buffered and will be retried,
            unless :data:`MAX_PENDING_FRAMES` frames were already waiting: then this frame was
            not taken.
        StorageError
            The writer is closed, or a commit failed for another reason (frames kept).
        """
        pending = self._pending_frames
        if len(pending) >= MAX_PENDING_FRAMES:
            self._require_open()
            if not self._last_commit_failed or self._commit_due():
                self._commit()  # raises (without taking this frame) if it fails again
                pending = self._pending_frames
            else:
                raise DiskFullError(
                    f"{MAX_PENDING_FRAMES} frames are waiting to be written to {self.path} "
                    f"({self._free_space()}); this frame was not recorded: free disk space",
                    path=str(self.path),
                )
        if self._conn is None:
            self._require_open()
        device_id = self._address_ids.get(frame.device_address)
        if device_id is None:
            device_id = self._address_id(frame.device_address)
        char_id = self._char_ids.get(frame.characteristic_uuid)
        if char_id is None:
            char_id = self._char_id(frame.characteristic_uuid)
        pending.append(
            (device_id, char_id, frame.host_time_ns, frame.host_monotonic_ns, frame.payload)
        )
        if self._clock.monotonic_ns() - self._last_commit_ns >= self._interval_ns:
            self._commit()

    def mark(
        self, kind: MarkKind | str, *, device_address: str | None = None, detail: str = ""
    ) -> None:
        """Record a connection event (a :class:`~crampsense.models.MarkKind`) at the clock's time.

        Committed with the next commit (or at once if one is due).
        """
        self._require_open()
        if kind not in MARK_KINDS:
            msg = f"unknown mark kind {kind!r}; use one of {', '.join(sorted(MARK_KINDS))}"
            raise StorageError(msg, path=str(self.path))
        device_id = None if device_address is None else self._address_id(device_address)
        self._pending_marks.append(
            (self._clock.now_ns(), self._clock.monotonic_ns(), device_id, kind, detail)
        )
        self._commit_if_due()

    def set_metadata(self, key: str, value: str) -> None:
        """Set a session metadata entry; committed with the next commit."""
        self._require_open()
        if key in _RESERVED_META:
            msg = f"metadata key {key!r} is set by the writer itself; choose another key"
            raise StorageError(msg, path=str(self.path))
        self._pending_meta[str(key)] = str(value)
        self._commit_if_due()

    def commit_if_due(self) -> bool:
        """Commit if ``commit_interval_s`` has passed since the last commit.

        Call this from a timer (e.g. the recorder's watchdog) so that frames buffered just
        before a silent stall are committed even when no further frame arrives.

        Returns
        -------
        bool
            Whether a commit was due (and succeeded).
        """
        self._require_open()
        return self._commit_if_due()

    def _commit_due(self) -> bool:
        return self._clock.monotonic_ns() - self._last_commit_ns >= self._interval_ns

    def _commit_if_due(self) -> bool:
        if self._commit_due():
            self._commit()
            return True
        return False

    def flush(self) -> None:
        """Commit everything buffered now (raises like :meth:`append` if that fails)."""
        self._require_open()
        self._commit()

    def _write_meta(self, conn: sqlite3.Connection, meta: Mapping[str, str]) -> None:
        if meta:
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(meta.items()),
            )

    def _commit(self) -> None:
        conn = self._require_open()
        self._last_commit_ns = self._clock.monotonic_ns()
        self._last_commit_failed = True  # until COMMIT returns
        frames = self._pending_frames
        if not (
            frames
            or self._pending_marks
            or self._pending_meta
            or self._pending_devices
            or self._pending_addresses
            or self._pending_chars
        ):
            self._last_commit_failed = False
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            if self._pending_addresses:
                conn.executemany(
                    "INSERT INTO addresses(id, address) VALUES (?, ?)", self._pending_addresses
                )
            if self._pending_chars:
                conn.executemany(
                    "INSERT INTO characteristics(id, uuid) VALUES (?, ?)", self._pending_chars
                )
            if self._pending_devices:
                conn.executemany(
                    "INSERT OR REPLACE INTO devices(address_id, name, family, placement, "
                    "firmware, battery_percent, protocol_metadata, updated_host_time_ns) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    list(self._pending_devices.values()),
                )
            if frames:
                conn.executemany(
                    "INSERT INTO frames(device_id, char_id, host_time_ns, host_monotonic_ns, "
                    "payload) VALUES (?, ?, ?, ?, ?)",
                    frames,
                )
            if self._pending_marks:
                conn.executemany(
                    "INSERT INTO marks(host_time_ns, host_monotonic_ns, device_id, kind, detail) "
                    "VALUES (?, ?, ?, ?, ?)",
                    self._pending_marks,
                )
            self._write_meta(conn, self._pending_meta)
            conn.execute("COMMIT")
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError) as exc:
            self._rollback()
            raise self._drop_invalid(exc) from exc
        except sqlite3.Error as exc:
            self._rollback()
            raise self._translate(exc, "write") from exc
        except BaseException:
            self._rollback()
            raise
        self._last_commit_failed = False
        self._frames_written += len(frames)
        self._pending_frames = []
        self._pending_marks = []
        self._pending_addresses = []
        self._pending_chars = []
        self._pending_meta = {}
        self._pending_devices = {}

    def _drop_invalid(self, exc: Exception) -> StorageError:
        """Remove frames SQLite cannot store (wrong types, out-of-range ints) and say so."""
        limit = 1 << 63

        def ok(row: tuple[int, int, int, int, bytes]) -> bool:
            _, _, t_ns, m_ns, payload = row
            return (
                type(t_ns) is int
                and type(m_ns) is int
                and -limit <= t_ns < limit
                and -limit <= m_ns < limit
                and isinstance(payload, bytes | bytearray | memoryview)
            )

        kept = [row for row in self._pending_frames if ok(row)]
        dropped = len(self._pending_frames) - len(kept)
        self._pending_frames = kept
        msg = (
            f"{dropped} frames for {self.path} had fields SQLite cannot store ({exc}) and were "
            "dropped; the others are kept: fix the code that builds these frames"
        )
        logger.error("%s", msg)
        return StorageError(msg, path=str(self.path))

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._rollback()
            self._conn.close()
            self._conn = None
        self._release_lock()

    def close(self, *, force: bool = False) -> None:
        """Commit what is buffered and close the file. Idempotent.

        Parameters
        ----------
        force : bool
            If the final commit fails (disk full), close anyway, losing the buffered frames
            (logged, and the error is still raised). Without it the writer stays open so that
            ``close()`` can be retried once space is freed.
        """
        if self._conn is None:
            return
        try:
            self._commit()
        except StorageError:
            if force:
                logger.error(
                    "closing %s without writing %d buffered frames",
                    self.path,
                    len(self._pending_frames),
                )
                self._close_connection()
            raise
        self._close_connection()
        _tighten(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(force=exc_type is not None)
