"""Recover the rows of a damaged session file page by page, without asking SQLite.

SQLite refuses a whole query as soon as one page on its path is damaged, so 4 KB of garbage in
the middle of a night would cost every frame behind it. This module reads the file (and its
``-wal``) itself, one page at a time, keeps every row that an intact page holds, and says what
was lost where. :class:`~crampsense.storage.session_log.SessionReader` uses it when opened with
``salvage=True``, and :func:`~crampsense.storage.session_log.repair_session` writes what it
finds into a new, valid session file. The damaged file is only ever read.

The format facts used (SQLite's file format, https://www.sqlite.org/fileformat.html, restated):

* The file is a sequence of pages of one size, numbered from 1. The first 100 bytes of page 1
  are the database header: the 16-byte magic string, the page size at byte 16 (2 bytes,
  big-endian; the value 1 means 65536), the bytes reserved at the end of every page at byte 20
  (the *usable* size is the page size minus these), the size in pages at byte 28, and the first
  freelist trunk page and the count of free pages at bytes 32 and 36.
* Every table is a b-tree of pages. A b-tree page starts with a header (at byte 100 on page 1,
  at byte 0 elsewhere): the page type (13 = table leaf, 5 = table interior, 10 and 2 = index
  leaf and interior), the first freeblock (2 bytes), the number of cells (2 bytes), the start of
  the cell content area (2 bytes, 0 meaning 65536) and the fragmented free bytes (1 byte);
  interior pages add a 4-byte right-most child. An array of 2-byte cell offsets (from the start
  of the page) follows the header.
* A table leaf cell is: the payload size (varint), the rowid (varint), then the payload. When
  the payload is larger than the usable size minus 35, only a part stays on the page (its length
  follows from the usable size, see the document) and a 4-byte number of the first overflow
  page follows it; an overflow page is a 4-byte number of the next one, then content.
* A varint is 1 to 9 bytes, big-endian, 7 bits per byte while the high bit is set; a ninth
  byte gives all 8 of its bits. Rowids are signed 64-bit.
* A payload is a record: a header (its own length as a varint, then one *serial type* varint
  per column) and the values. Serial types: 0 NULL; 1-6 big-endian signed integers of 1, 2, 3,
  4, 6 and 8 bytes; 7 a big-endian IEEE double; 8 and 9 the integers 0 and 1; 10 and 11 are
  reserved; an even N >= 12 is a blob of (N - 12) / 2 bytes, an odd N >= 13 a text of
  (N - 13) / 2 bytes. A column declared ``INTEGER PRIMARY KEY`` is an alias of the rowid and is
  stored as NULL.
* Free pages form a list of trunk pages (4-byte next trunk, 4-byte count, then page numbers of
  leaf free pages); their content is stale and must not be read as rows.
* The write-ahead log (``-wal``) is a 32-byte header (magic 0x377F0682 or 0x377F0683, the low
  bit saying whether checksums read 32-bit words big-endian, format version, page size,
  checkpoint sequence, two salts, two checksum words) followed by frames: a 24-byte header (page
  number, the database size in pages after the commit for the last frame of a transaction and 0
  otherwise, the two salts copied from the WAL header, two checksum words) and one whole page.
  The checksum is a running pair of 32-bit sums over pairs of words (``s0 += w0 + s1;
  s1 += w1 + s0``), seeded by the previous frame's checksum (the header's for the first frame),
  over the first 8 bytes of the frame header and the page. Frames whose salts differ from the
  header's are left over from before the log was restarted. A page's newest committed frame is
  its current content.

What this reader adds: a WAL frame is checked against the checksum *stored* in the frame
before it, so one damaged frame does not hide the committed frames after it (SQLite stops
reading the log there, silently dropping every later transaction). Rows are matched to tables by
the pages' place in the schema (a table's root page) or, for every other leaf page, by the shape
of their records (column count and value types of the ``CREATE TABLE``). A rowid found in
several versions of a page (the file, then WAL frames in order) takes the newest. On a page
with garbled cells, a cell that ends exactly where a garbled one begins is dropped too: cells
lie back to back, so an overwrite that garbled the next cell most likely began inside this
one's payload, whose bytes no checksum protects. Frames must then be plausible (known device
and characteristic ids, monotonic times in order within a writer segment); see
:func:`recover_rows`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import mmap
import sqlite3
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PAGE_SIZES_TRIED",
    "FrameHole",
    "SalvageReport",
    "recover_rows",
    "wal_damage",
]

logger = logging.getLogger(__name__)

#: Page sizes tried, most likely first, when the header's page size is unreadable: 4096 is
#: SQLite's default (every session this project writes), the others are the legal sizes.
PAGE_SIZES_TRIED: Final = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
#: Pages sampled to choose a page size when the header is damaged: enough to see dozens of
#: b-tree pages in a real session, little enough to cost nothing.
_PAGE_SIZE_SAMPLE_PAGES: Final = 256
#: Recovered rows inserted per batch: large enough that per-call overhead vanishes, small
#: enough (~10 MB of 240-byte payloads) that memory does not grow with the session.
_INSERT_BATCH_ROWS: Final = 40_000
#: Device and characteristic ids above this are garbage (a session holds a handful of each),
#: used only when the lookup table itself was lost and ids cannot be checked against it.
_MAX_PLAUSIBLE_LOOKUP_ID: Final = 4096

_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_LEN: Final = 100
_LEAF_TABLE: Final = 13
_BTREE_TYPES: Final = frozenset({2, 5, 10, 13})
_WAL_MAGICS: Final = (0x377F0682, 0x377F0683)
_WAL_HEADER_LEN: Final = 32
_WAL_FRAME_HEADER_LEN: Final = 24
_MASK32: Final = 0xFFFFFFFF
_INT_SIZES: Final = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


class _DamagedError(Exception):
    """A cell or record does not parse (internal: never leaves this module)."""


@dataclass(frozen=True, slots=True)
class FrameHole:
    """A run of frame ids that no intact page holds.

    Attributes
    ----------
    first_id, last_id : int
        The missing frame ids, inclusive (frame ids run 1, 2, 3, ... in recorded order).
    after_host_time_ns, before_host_time_ns : int or None
        Host wall-clock times (ns since the epoch) of the recovered frames just before and just
        after the hole: the recording has no frames between them. ``None`` at either end.
    """

    first_id: int
    last_id: int
    after_host_time_ns: int | None
    before_host_time_ns: int | None

    @property
    def frames(self) -> int:
        """Number of frames missing here."""
        return self.last_id - self.first_id + 1

    @property
    def duration_s(self) -> float | None:
        """Seconds between the recovered frames on either side (``None`` at an end)."""
        if self.after_host_time_ns is None or self.before_host_time_ns is None:
            return None
        return (self.before_host_time_ns - self.after_host_time_ns) / 1e9


@dataclass(frozen=True, slots=True)
class SalvageReport:
    """What a page-by-page recovery found.

    Attributes
    ----------
    page_size : int
        Page size used (bytes), from the header or, when that is damaged, the size under which
        most pages parse.
    pages : int
        Pages the session should have: the header's count (or the WAL's latest commit), at least
        the pages present.
    pages_unreadable : int
        Pages no version of which is an intact page (garbage, or missing past the end of a cut
        file), not counting free pages.
    cells_rejected : int
        Rows on readable pages that did not parse or were implausible (unknown device, time
        out of order, wrong value types).
    frames_recovered : int
        Intact frames kept.
    last_frame_id : int
        Highest frame id recovered: the recording holds at least this many frames.
    holes : tuple of FrameHole
        Runs of frame ids up to ``last_frame_id`` that were lost, in order.
    schema_from_file : bool
        Whether the table layout was read from the file itself (else the writer's own).
    wal_frames_used, wal_frames_damaged : int
        Committed ``-wal`` frames read, and ``-wal`` frames whose checksum failed.
    pages_past_end : int
        Pages the header (or the WAL) counts that lie beyond the end of a cut file: frames
        recorded after the last recovered one may be lost there too, uncounted.
    """

    page_size: int
    pages: int
    pages_unreadable: int
    cells_rejected: int
    frames_recovered: int
    last_frame_id: int
    holes: tuple[FrameHole, ...]
    schema_from_file: bool
    wal_frames_used: int
    wal_frames_damaged: int
    pages_past_end: int = 0

    @property
    def frames_missing(self) -> int:
        """Frames lost before the last recovered one (those after it cannot be counted)."""
        return sum(h.frames for h in self.holes)


# --------------------------------------------------------------------------------------------
# Low-level parsing


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = buf[pos + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos + i + 1
    return (value << 8) | buf[pos + 8], pos + 9


_Plan = tuple[tuple[int, ...], struct.Struct, Callable[[tuple[Any, ...]], tuple[object, ...]]]
_INT_FORMATS: Final = {1: "b", 2: "h", 3: "bH", 4: "i", 6: "hI", 8: "q"}


@functools.lru_cache(maxsize=4096)
def _plan(header: bytes) -> _Plan:
    """How to read the body of records with this header: the serial types, a struct for the
    body and a function from the unpacked fields to the values. Records of one table share a
    handful of headers, so plans are cached; the function is compiled from a fixed grammar
    (field indices and the constants NULL, 0 and 1), never from the file's bytes."""
    try:
        _header_len, pos = _varint(header, 0)
        serials = []
        while pos < len(header):
            serial, pos = _varint(header, pos)
            serials.append(serial)
    except IndexError as exc:
        raise _DamagedError from exc
    if pos != len(header) or len(serials) > 2000:
        raise _DamagedError
    fmt = [">"]
    parts: list[str] = []
    j = 0  # index of the next unpacked field
    for serial in serials:
        if serial == 0:
            parts.append("None")
        elif serial in (8, 9):
            parts.append(str(serial - 8))
        elif serial <= 6:
            size = _INT_SIZES[serial]
            fmt.append(_INT_FORMATS[size])
            if size in (3, 6):  # a signed high part and an unsigned low part
                parts.append(f"((r[{j}] << {(size - 2) * 8 if size == 6 else 16}) | r[{j + 1}])")
                j += 2
            else:
                parts.append(f"r[{j}]")
                j += 1
        elif serial == 7:
            fmt.append("d")
            parts.append(f"r[{j}]")
            j += 1
        elif serial >= 12:
            fmt.append(f"{(serial - 12) // 2}s")
            parts.append(f"r[{j}].decode()" if serial & 1 else f"r[{j}]")
            j += 1
        else:
            raise _DamagedError
    values = f"({', '.join(parts)},)" if parts else "()"
    build = eval(f"lambda r: {values}")  # noqa: S307 - see the docstring
    return tuple(serials), struct.Struct("".join(fmt)), build


def _record(payload: bytes) -> tuple[tuple[int, ...], tuple[object, ...]]:
    """The serial types and values of one record; :class:`_DamagedError` unless it parses to
    exactly its length."""
    try:
        header_len = payload[0]
        if header_len >= 0x80:
            header_len, _pos = _varint(payload, 0)
    except IndexError as exc:
        raise _DamagedError from exc
    if not 1 <= header_len <= len(payload):
        raise _DamagedError
    serials, body, build = _plan(payload[:header_len])
    if header_len + body.size != len(payload):
        raise _DamagedError
    try:
        return serials, build(body.unpack_from(payload, header_len))
    except UnicodeDecodeError as exc:
        raise _DamagedError from exc


def _local_size(size: int, usable: int) -> int:
    """Bytes of a table leaf payload of ``size`` bytes kept on the page itself."""
    max_local = usable - 35
    if size <= max_local:
        return size
    min_local = (usable - 12) * 32 // 255 - 23
    k = min_local + (size - min_local) % (usable - 4)
    return k if k <= max_local else min_local


_Cell = tuple[int, tuple[int, ...], tuple[object, ...]]  # rowid, serial types, values


@dataclass(frozen=True, slots=True)
class _LeafPage:
    cells: list[_Cell]  # rowids increasing
    bad_cells: int
    overflow_pages: tuple[int, ...]


def _btree_type(page: bytes, pgno: int) -> int | None:
    at = _HEADER_LEN if pgno == 1 else 0
    kind = page[at] if len(page) > at else None
    return kind if kind in _BTREE_TYPES else None


def _increasing(cells: list[_Cell]) -> list[_Cell]:
    """The longest run of cells (in page order) whose rowids strictly increase: rowids
    increase along a page, so a cell out of order has a garbled key."""
    n = len(cells)
    length = [1] * n
    parent = [-1] * n
    for i in range(n):
        for j in range(i):
            if cells[j][0] < cells[i][0] and length[j] + 1 > length[i]:
                length[i], parent[i] = length[j] + 1, j
    i = max(range(n), key=length.__getitem__)
    out = []
    while i >= 0:
        out.append(cells[i])
        i = parent[i]
    return out[::-1]


def _parse_leaf(
    page: bytes, pgno: int, usable: int, overflow: Callable[[int, int], tuple[bytes, list[int]]]
) -> _LeafPage | None:
    """The cells of a table leaf page, or ``None`` when its header is not a sane one."""
    at = _HEADER_LEN if pgno == 1 else 0
    if len(page) < at + 8 or page[at] != _LEAF_TABLE:
        return None
    n_cells = int.from_bytes(page[at + 3 : at + 5], "big")
    content = int.from_bytes(page[at + 5 : at + 7], "big") or 65536
    ptrs_end = at + 8 + 2 * n_cells
    if ptrs_end > usable or (n_cells and not ptrs_end <= content <= usable):
        return None
    cells: list[_Cell] = []
    ends: list[int] = []  # where each cell's bytes end on the page
    bad_starts: set[int] = set()
    bad = 0
    pages: list[int] = []
    max_local = usable - 35
    for off in struct.unpack_from(f">{n_cells}H", page, at + 8):
        try:
            if not ptrs_end <= off < usable:
                raise _DamagedError
            size = page[off]
            pos = off + 1
            if size >= 0x80:
                second = page[pos]
                if second < 0x80:
                    size = ((size & 0x7F) << 7) | second
                    pos += 1
                else:
                    size, pos = _varint(page, off)
            rowid = page[pos]
            if rowid < 0x80:
                pos += 1
            elif page[pos + 1] < 0x80:
                rowid = ((rowid & 0x7F) << 7) | page[pos + 1]
                pos += 2
            elif page[pos + 2] < 0x80:
                rowid = ((rowid & 0x7F) << 14) | ((page[pos + 1] & 0x7F) << 7) | page[pos + 2]
                pos += 3
            else:
                rowid, pos = _varint(page, pos)
                if rowid >= 1 << 63:
                    rowid -= 1 << 64
            local = size if size <= max_local else _local_size(size, usable)
            if pos + local > usable:
                raise _DamagedError
            payload = page[pos : pos + local]
            if local < size:
                if pos + local + 4 > usable:
                    raise _DamagedError
                first = int.from_bytes(page[pos + local : pos + local + 4], "big")
                rest, chain = overflow(first, size - local)
                payload += rest
                pages.extend(chain)
            serials, values = _record(payload)
        except (_DamagedError, IndexError, struct.error):
            bad += 1
            bad_starts.add(off)
            continue
        cells.append((rowid, serials, values))
        ends.append(pos + local + (4 if local < size else 0))
    if bad_starts:
        # Cells lie back to back: a cell that ends where a garbled one starts was most likely
        # overwritten at its tail too (its header survived, its payload did not), and payload
        # bytes carry no checksum to tell. Drop it with its neighbour.
        kept_cells = [c for c, end in zip(cells, ends, strict=True) if end not in bad_starts]
        bad += len(cells) - len(kept_cells)
        cells = kept_cells
    if any(a[0] >= b[0] for a, b in itertools.pairwise(cells)):
        kept = _increasing(cells)
        bad += len(cells) - len(kept)
        cells = kept
    return _LeafPage(cells, bad, tuple(pages))


# --------------------------------------------------------------------------------------------
# The WAL


@functools.lru_cache(maxsize=4)
def _step_powers(n: int) -> npt.NDArray[np.uint64]:
    """``M**k`` for k = 0..n (wrapping uint64), M = [[1, 1], [1, 2]]: the WAL checksum's step."""
    step = np.array([[1, 1], [1, 2]], dtype=np.uint64)
    out = np.empty((n + 1, 2, 2), dtype=np.uint64)
    out[0] = np.eye(2, dtype=np.uint64)
    for k in range(1, n + 1):
        out[k] = step @ out[k - 1]
    return out


def _wal_checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` continued from ``(s0, s1)``.

    Per pair of 32-bit words ``(a, b)``: ``s0 += a + s1; s1 += b + s0`` (mod 2**32), i.e.
    ``v' = M v + (a, a + b)`` with ``M = [[1, 1], [1, 2]]``. The sum over a frame is done at
    once with precomputed powers of ``M`` (arithmetic wraps mod 2**64, a multiple of 2**32, so
    the low 32 bits are exact): a frame costs microseconds instead of a Python loop per word.
    """
    n_words = len(data) // 4 // 2 * 2
    words = np.frombuffer(data, dtype=">u4" if big_endian else "<u4", count=n_words)
    a = words[0::2].astype(np.uint64)
    d1 = a + words[1::2].astype(np.uint64)
    n = a.size
    powers = _step_powers(n)
    back = powers[n - 1 :: -1] if n else powers[:0]  # M**(n-1-j) for pair j
    v0 = int((back[:, 0, 0] * a + back[:, 0, 1] * d1).sum(dtype=np.uint64))
    v1 = int((back[:, 1, 0] * a + back[:, 1, 1] * d1).sum(dtype=np.uint64))
    mn = powers[n]
    out0 = (int(mn[0, 0]) * s0 + int(mn[0, 1]) * s1 + v0) & _MASK32
    out1 = (int(mn[1, 0]) * s0 + int(mn[1, 1]) * s1 + v1) & _MASK32
    return out0, out1


@dataclass(frozen=True, slots=True)
class _WalScan:
    page_size: int
    pages: list[tuple[int, bytes]]  # committed intact frames, oldest first: (page number, page)
    damaged: int  # frames before the last intact commit whose checksum failed
    last_commit_db_pages: int  # database size in pages after the last intact commit


def _scan_wal(wal: Path, page_size_hint: int | None) -> _WalScan | None:
    """Committed intact frames of a ``-wal`` file; ``None`` when it holds none."""
    try:
        data = wal.read_bytes()
    except OSError:
        return None
    if len(data) < _WAL_HEADER_LEN + _WAL_FRAME_HEADER_LEN:
        return None
    magic, _version, page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(
        ">8I", data[:_WAL_HEADER_LEN]
    )
    header_ok = magic in _WAL_MAGICS and page_size in PAGE_SIZES_TRIED
    big_endian = magic == _WAL_MAGICS[1] if header_ok else False
    if header_ok and _wal_checksum(data[:24], 0, 0, big_endian) != (c1, c2):
        header_ok = False
    if not header_ok:
        # the frames still carry the salts: take the page size we know and the commonest salts
        page_size = page_size_hint or PAGE_SIZES_TRIED[0]
        stride = _WAL_FRAME_HEADER_LEN + page_size
        salts = Counter(
            data[at + 8 : at + 16] for at in range(_WAL_HEADER_LEN, len(data) - stride + 1, stride)
        )
        if not salts:
            return None
        common = salts.most_common(1)[0][0]
        salt1, salt2 = struct.unpack(">2I", common)
    stride = _WAL_FRAME_HEADER_LEN + page_size
    frames: list[tuple[int, int, bytes, bool]] = []  # (page number, commit size, page, intact)
    prev = (c1, c2) if header_ok else None
    for at in range(_WAL_HEADER_LEN, len(data) - stride + 1, stride):
        pgno, commit, f_salt1, f_salt2, f_c1, f_c2 = struct.unpack(
            ">6I", data[at : at + _WAL_FRAME_HEADER_LEN]
        )
        page = data[at + _WAL_FRAME_HEADER_LEN : at + stride]
        intact = (
            prev is not None
            and (f_salt1, f_salt2) == (salt1, salt2)
            and pgno >= 1
            and _wal_checksum(data[at : at + 8] + page, *prev, big_endian) == (f_c1, f_c2)
        )
        prev = (f_c1, f_c2)
        frames.append((pgno, commit, page, intact))
    last_commit = max(
        (i for i, (_p, commit, _d, ok) in enumerate(frames) if ok and commit), default=-1
    )
    if last_commit < 0:
        return None
    kept = frames[: last_commit + 1]
    return _WalScan(
        page_size=page_size,
        pages=[(pgno, page) for pgno, _c, page, ok in kept if ok],
        damaged=sum(1 for *_rest, ok in kept if not ok),
        last_commit_db_pages=frames[last_commit][1],
    )


def wal_damage(wal: Path, page_size: int) -> str | None:
    """Describe damage in a session's ``-wal`` that would make SQLite drop committed data.

    SQLite stops reading the log at the first frame whose checksum fails, so a damaged frame
    silently hides every later transaction. ``None`` when the log is intact (or absent).
    """
    if not wal.exists():
        return None
    scan = _scan_wal(wal, page_size)
    if scan is None or not scan.damaged:
        return None
    return (
        f"{scan.damaged} frames of its -wal are damaged, "
        f"{len(scan.pages)} committed frames after and around them are intact"
    )


# --------------------------------------------------------------------------------------------
# Pages and tables


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    kind: str  # declared type, upper case
    nullable: bool
    rowid_alias: bool


def _fits(columns: tuple[_Column, ...], serials: tuple[int, ...]) -> bool:
    if len(serials) != len(columns):
        return False
    for serial, col in zip(serials, columns, strict=True):
        if col.rowid_alias or serial == 0:
            if serial != 0 or not (col.rowid_alias or col.nullable):
                return False
        elif col.kind == "INTEGER":
            if not (1 <= serial <= 6 or serial in (8, 9)):
                return False
        elif col.kind == "TEXT":
            if serial < 13 or not serial & 1:
                return False
        elif col.kind == "BLOB" and (serial < 12 or serial & 1):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    root: int
    columns: tuple[_Column, ...]
    alias: int = -1  # index of the rowid alias column (-1: none)
    _fit: dict[tuple[int, ...], bool] = field(default_factory=dict, compare=False)

    def fits(self, serials: tuple[int, ...]) -> bool:
        """Whether a record with these serial types can be a row of this table."""
        found = self._fit.get(serials)
        if found is None:
            found = self._fit[serials] = _fits(self.columns, serials)
        return found

    def row(self, rowid: int, values: tuple[object, ...]) -> tuple[object, ...]:
        """The row with the rowid alias filled in (tables without one get the rowid first)."""
        i = self.alias
        if i == 0:
            return (rowid, *values[1:])
        if i > 0:
            return (*values[:i], rowid, *values[i + 1 :])
        return (rowid, *values)

    def insert_sql(self) -> str:
        names = [c.name for c in self.columns]
        if not any(c.rowid_alias for c in self.columns):
            names = ["rowid", *names]
        marks = ", ".join("?" * len(names))
        return f"INSERT OR REPLACE INTO {self.name}({', '.join(names)}) VALUES ({marks})"  # noqa: S608


def _tables(schema: Sequence[str], page_size: int, roots: dict[str, int] | None) -> list[_Table]:
    """Column shapes of the schema's tables, with their root pages (from the file if known,
    else where the writer's own statements put them at this page size)."""
    ref = sqlite3.connect(":memory:")
    try:
        ref.execute(f"PRAGMA page_size={int(page_size)}")
        for statement in schema:
            ref.execute(statement)
        ref_roots = dict(
            ref.execute("SELECT name, rootpage FROM sqlite_master WHERE type = 'table'")
        )
        out = []
        for name, ref_root in ref_roots.items():
            info = ref.execute(f"PRAGMA table_info({name})").fetchall()
            pk_cols = [row for row in info if row[5]]
            columns = tuple(
                _Column(
                    name=row[1],
                    kind=str(row[2]).upper(),
                    nullable=not row[3] and not row[5],
                    rowid_alias=len(pk_cols) == 1 and bool(row[5])
                    and str(row[2]).upper() == "INTEGER",
                )
                for row in info
            )
            root = (roots or {}).get(name, ref_root)
            alias = next((i for i, c in enumerate(columns) if c.rowid_alias), -1)
            out.append(_Table(name, int(root), columns, alias))
        return out
    finally:
        ref.close()


class _Pages:
    """Every version of every page: the file's copy, then committed ``-wal`` frames in order."""

    def __init__(self, path: Path, page_size: int, wal: _WalScan | None) -> None:
        self.page_size = page_size
        self._fh = path.open("rb")
        size = path.stat().st_size
        self._map: mmap.mmap | None = (
            mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        )
        self.file_pages = size // page_size
        self.wal: dict[int, list[bytes]] = {}
        for pgno, page in wal.pages if wal is not None else ():
            self.wal.setdefault(pgno, []).append(page)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._fh.close()

    def file_page(self, pgno: int) -> bytes | None:
        if self._map is None or not 1 <= pgno <= self.file_pages:
            return None
        at = (pgno - 1) * self.page_size
        return self._map[at : at + self.page_size]

    def versions(self, pgno: int) -> list[bytes]:
        """Oldest first."""
        first = self.file_page(pgno)
        return ([first] if first is not None else []) + self.wal.get(pgno, [])

    def newest(self, pgno: int) -> bytes | None:
        found = self.versions(pgno)
        return found[-1] if found else None


def _choose_page_size(path: Path, wal: Path) -> tuple[int, bool]:
    """The page size, and whether the header gave it."""
    with path.open("rb") as fh:
        head = fh.read(_HEADER_LEN)
        raw = int.from_bytes(head[16:18], "big") if len(head) >= 18 else 0
        size = 65536 if raw == 1 else raw
        if head.startswith(_MAGIC) and size in PAGE_SIZES_TRIED:
            return size, True
        with contextlib.suppress(OSError):
            with wal.open("rb") as wh:
                wal_head = wh.read(_WAL_HEADER_LEN)
            if len(wal_head) == _WAL_HEADER_LEN:
                magic, _v, wal_size = struct.unpack(">3I", wal_head[:12])
                if magic in _WAL_MAGICS and wal_size in PAGE_SIZES_TRIED:
                    return wal_size, False
        shares: dict[int, float] = {}
        for candidate in PAGE_SIZES_TRIED:
            score = sampled = 0
            for i in range(1, _PAGE_SIZE_SAMPLE_PAGES):
                fh.seek(i * candidate)
                byte = fh.read(1)
                if not byte:
                    break
                sampled += 1
                score += byte[0] in _BTREE_TYPES
            shares[candidate] = score / sampled if sampled else 0.0
        # Every multiple of the true size also starts pages (as often), every fraction of it
        # less often: the smallest size that does about as well as the best is the one.
        best = max(shares.values())
        return min(c for c, share in shares.items() if share >= 0.9 * best), False


def _freelist(pages: _Pages, head: bytes) -> set[int]:
    """Free pages (trunks and leaves), as far as the list can be followed."""
    out: set[int] = set()
    trunk = int.from_bytes(head[32:36], "big")
    while trunk and trunk not in out and len(out) < 10_000_000:
        page = pages.newest(trunk)
        if page is None:
            break
        out.add(trunk)
        count = int.from_bytes(page[4:8], "big")
        if count > (pages.page_size - 8) // 4:
            break
        out.update(int.from_bytes(page[8 + 4 * i : 12 + 4 * i], "big") for i in range(count))
        trunk = int.from_bytes(page[0:4], "big")
    return out


def _lis_keep(values: np.ndarray) -> np.ndarray:
    """Mask of a longest non-decreasing subsequence of ``values`` (the rows in time order)."""
    n = values.size
    if n == 0 or bool(np.all(np.diff(values) >= 0)):
        return np.ones(n, dtype=bool)
    import bisect  # noqa: PLC0415 - only on the rare damaged path

    tails: list[int] = []  # values of the smallest tail of each length
    tail_at: list[int] = []
    parent = np.full(n, -1, dtype=np.int64)
    for i, v in enumerate(values.tolist()):
        k = bisect.bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[k] = v
            tail_at[k] = i
        parent[i] = tail_at[k - 1] if k else -1
    keep = np.zeros(n, dtype=bool)
    i = tail_at[-1]
    while i >= 0:
        keep[i] = True
        i = int(parent[i])
    return keep


# --------------------------------------------------------------------------------------------
# Recovery


def recover_rows(
    path: Path, target: sqlite3.Connection, *, schema: Sequence[str]
) -> SalvageReport:
    """Read every intact row of session ``path`` (and its ``-wal``) into ``target``.

    Parameters
    ----------
    path : Path
        The damaged session file; only read.
    target : sqlite3.Connection
        A connection to a database that already has the tables of ``schema`` (empty); rows are
        inserted with their original rowids. The caller commits.
    schema : sequence of str
        The writer's ``CREATE`` statements: the layout used when the file's own schema page is
        unreadable, and the column shapes rows are matched against.

    Returns
    -------
    SalvageReport

    Notes
    -----
    Frame rows are kept only if plausible: their device and characteristic ids are in the
    recovered lookup tables (or, if a lookup table was lost, small positive ids, for which
    placeholder entries ``unknown-<id>`` are written), and their monotonic times do not go
    backwards within a writer segment (a longest in-order run is kept when they do).
    """
    wal_path = path.with_name(path.name + "-wal")
    page_size, from_header = _choose_page_size(path, wal_path)
    with path.open("rb") as fh:
        head = fh.read(_HEADER_LEN)
    reserved = head[20] if from_header else 0
    usable = page_size - reserved
    wal = _scan_wal(wal_path, page_size) if wal_path.exists() else None
    if wal is not None and wal.page_size != page_size:
        wal = None
    pages = _Pages(path, page_size, wal)
    try:
        return _recover(
            pages, head if from_header else b"", usable=usable, target=target, schema=schema,
            wal=wal,
        )
    finally:
        pages.close()


def _read_overflow(pages: _Pages, usable: int) -> Callable[[int, int], tuple[bytes, list[int]]]:
    def read(first: int, remaining: int) -> tuple[bytes, list[int]]:
        chunks: list[bytes] = []
        chain: list[int] = []
        pgno = first
        while remaining > 0:
            page = pages.newest(pgno) if pgno not in chain else None
            if page is None:
                raise _DamagedError
            chain.append(pgno)
            take = min(remaining, usable - 4)
            chunks.append(page[4 : 4 + take])
            remaining -= take
            pgno = int.from_bytes(page[0:4], "big")
        return b"".join(chunks), chain

    return read


def _schema_roots(pages: _Pages, usable: int) -> dict[str, int] | None:
    """Root pages of the tables, from the file's own schema table (page 1), if readable."""
    page = pages.newest(1)
    if page is None:
        return None
    leaf = _parse_leaf(page, 1, usable, _read_overflow(pages, usable))
    if leaf is None or leaf.bad_cells:
        return None
    roots: dict[str, int] = {}
    for _rowid, _serials, values in leaf.cells:
        if len(values) == 5 and values[0] == "table" and type(values[3]) is int:
            roots[str(values[1])] = values[3]
    return roots or None


def _recover(
    pages: _Pages,
    head: bytes,
    *,
    usable: int,
    target: sqlite3.Connection,
    schema: Sequence[str],
    wal: _WalScan | None,
) -> SalvageReport:
    file_roots = _schema_roots(pages, usable)
    tables = _tables(schema, pages.page_size, file_roots)
    by_root = {t.root: t for t in tables}
    free = _freelist(pages, head) if head else set()
    header_pages = int.from_bytes(head[28:32], "big") if head else 0
    if head and int.from_bytes(head[24:28], "big") != int.from_bytes(head[92:96], "big"):
        header_pages = 0
    expected_pages = max(
        pages.file_pages,
        header_pages,
        wal.last_commit_db_pages if wal is not None else 0,
        max(pages.wal, default=0),
    )
    overflow = _read_overflow(pages, usable)
    # tables with a single page (their root is a leaf) hold no other page: that settles the
    # lookup tables whose records have the same shape (addresses and characteristics)
    single = {t.name for t in tables if (p := pages.newest(t.root)) and _btree_type(p, t.root)
              == _LEAF_TABLE}
    candidates = [t for t in tables if t.name not in single]
    overflow_pages: set[int] = set()
    readable: set[int] = set()
    rejected = 0
    # Rows go to the target as they are found, oldest page version first (the file, then the
    # WAL's frames in order), so INSERT OR REPLACE leaves the newest version of each rowid;
    # memory holds one batch, whatever the session's size.
    pending: dict[str, list[tuple[object, ...]]] = {t.name: [] for t in tables}
    n_pending = 0
    sql = {t.name: t.insert_sql() for t in tables}
    for pgno, page in _versions(pages, wal):
        if pgno in free:
            continue
        kind = _btree_type(page, pgno)
        if kind is None:
            continue
        if kind != _LEAF_TABLE or pgno == 1:
            readable.add(pgno)
            continue
        leaf = _parse_leaf(page, pgno, usable, overflow)
        if leaf is None:
            continue
        readable.add(pgno)
        overflow_pages.update(leaf.overflow_pages)
        rejected += leaf.bad_cells
        table = by_root.get(pgno)
        if table is None:
            shapes = Counter(k for _r, k, _v in leaf.cells)
            scores = [(sum(n for k, n in shapes.items() if t.fits(k)), t) for t in candidates]
            best = max((s for s, _t in scores), default=0)
            winners = [t for s, t in scores if s == best]
            if best == 0 or len(winners) != 1:
                rejected += len(leaf.cells)
                continue
            table = winners[0]
        dest = pending[table.name]
        for rowid, serials, values in leaf.cells:
            if table.fits(serials):
                dest.append(table.row(rowid, values))
            else:
                rejected += 1
        n_pending += len(leaf.cells)
        if n_pending >= _INSERT_BATCH_ROWS:
            _flush(target, sql, pending)
            n_pending = 0
    _flush(target, sql, pending)
    rejected += _check_frames(target)
    ids, host_ns = _frame_column(target, "host_time_ns")
    holes = _holes(ids, host_ns)
    unreadable = sum(
        1 for pgno in range(1, expected_pages + 1)
        if pgno not in readable and pgno not in free and pgno not in overflow_pages
        and not _blank(pages.newest(pgno))
    )
    return SalvageReport(
        page_size=pages.page_size,
        pages=expected_pages,
        pages_unreadable=unreadable,
        cells_rejected=rejected,
        frames_recovered=int(ids.size),
        last_frame_id=int(ids[-1]) if ids.size else 0,
        holes=holes,
        schema_from_file=file_roots is not None,
        wal_frames_used=len(wal.pages) if wal is not None else 0,
        wal_frames_damaged=wal.damaged if wal is not None else 0,
        pages_past_end=sum(
            1 for pgno in range(pages.file_pages + 1, expected_pages + 1) if pgno not in pages.wal
        ),
    )


def _blank(page: bytes | None) -> bool:
    """An all-zero page (allocated, never written): nothing was lost there."""
    return page is not None and not any(page)


def _versions(pages: _Pages, wal: _WalScan | None) -> Iterator[tuple[int, bytes]]:
    """Every page version, oldest first: the file's pages, then the WAL's committed frames."""
    for pgno in range(1, pages.file_pages + 1):
        page = pages.file_page(pgno)
        if page is not None:
            yield pgno, page
    yield from wal.pages if wal is not None else ()


def _flush(
    target: sqlite3.Connection, sql: dict[str, str], pending: dict[str, list[tuple[object, ...]]]
) -> None:
    for name, rows in pending.items():
        if rows:
            target.executemany(sql[name], rows)
            rows.clear()


def _frame_column(
    target: sqlite3.Connection, column: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Frame ids (increasing) and one integer column of the recovered frames."""
    cursor = target.execute(f"SELECT id, {column} FROM frames ORDER BY id")  # noqa: S608
    flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.int64)
    pairs = flat.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def _check_frames(target: sqlite3.Connection) -> int:
    """Drop implausible frame rows from ``target``; return how many were dropped."""
    before = target.total_changes
    for table, column, text in (("addresses", "device_id", "address"),
                                ("characteristics", "char_id", "uuid")):
        (known,) = target.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        if not known:  # the lookup table was lost: keep small ids, under placeholder names
            target.execute(
                f"INSERT INTO {table}(id, {text}) SELECT DISTINCT {column}, "  # noqa: S608
                f"'unknown-' || {column} FROM frames WHERE {column} BETWEEN 1 AND ?",
                (_MAX_PLAUSIBLE_LOOKUP_ID,),
            )
    added = target.total_changes - before
    target.execute(
        "DELETE FROM frames WHERE id < 1 "
        "OR device_id NOT IN (SELECT id FROM addresses) "
        "OR char_id NOT IN (SELECT id FROM characteristics)"
    )
    starts = np.array(
        sorted(r[0] for r in target.execute("SELECT first_frame_id FROM segments")),
        dtype=np.int64,
    )
    if starts.size:  # monotonic times only compare within a segment (unknown: no check)
        ids, mono = _frame_column(target, "host_monotonic_ns")
        segment = np.searchsorted(starts, ids, side="right")
        drop: list[int] = []
        for s in np.unique(segment):
            members = np.flatnonzero(segment == s)
            keep = _lis_keep(mono[members])
            drop.extend(ids[members[~keep]].tolist())
        target.executemany("DELETE FROM frames WHERE id = ?", [(i,) for i in drop])
    return target.total_changes - before - added


def _holes(ids: npt.NDArray[np.int64], host_ns: npt.NDArray[np.int64]) -> tuple[FrameHole, ...]:
    """Runs of frame ids missing before the last recovered one."""
    if not ids.size:
        return ()
    out: list[FrameHole] = []
    if ids[0] > 1:
        out.append(FrameHole(1, int(ids[0]) - 1, None, int(host_ns[0])))
    for k in np.flatnonzero(np.diff(ids) > 1).tolist():
        out.append(
            FrameHole(int(ids[k]) + 1, int(ids[k + 1]) - 1, int(host_ns[k]), int(host_ns[k + 1]))
        )
    return tuple(out)
