"""Shared by the salvage tests: damage a session and know, from SQLite itself, which frames
sat on the damaged pages (the ground truth the page-by-page reader is checked against)."""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path

PAGE_SIZE = 4096


def frames_by_id(path: Path) -> dict[int, tuple[int, int, int, int, int, bytes]]:
    """Every frame row of an intact session, by id (read by SQLite)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    try:
        rows = conn.execute(
            "SELECT id, device_id, char_id, host_time_ns, host_monotonic_ns, payload FROM frames"
        ).fetchall()
    finally:
        conn.close()
    return {row[0]: row for row in rows}


def frame_pages(path: Path) -> dict[int, int]:
    """Frame id -> number of the leaf page holding it, in an intact, checkpointed session.

    From SQLite's ``dbstat`` table: the frames table's leaf pages in tree order with their cell
    counts; frame ids run 1, 2, 3, ... in that order.
    """
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
    try:
        leaves = conn.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'frames' AND pagetype = 'leaf' "
            "ORDER BY path"
        ).fetchall()
        ids = [row[0] for row in conn.execute("SELECT id FROM frames ORDER BY id")]
    finally:
        conn.close()
    assert ids == list(range(1, len(ids) + 1))
    out: dict[int, int] = {}
    next_id = 1
    for pageno, ncell in leaves:
        for frame_id in range(next_id, next_id + ncell):
            out[frame_id] = pageno
        next_id += ncell
    assert next_id == len(ids) + 1
    return out


def overwrite(path: Path, ranges: Iterable[tuple[int, int]], seed: int) -> set[int]:
    """Overwrite ``(offset, length)`` byte ranges of ``path`` with random bytes; return the
    numbers of the pages touched."""
    rng = random.Random(seed)
    data = bytearray(path.read_bytes())
    hit: set[int] = set()
    for offset, length in ranges:
        end = min(offset + length, len(data))
        data[offset:end] = rng.randbytes(end - offset)
        hit.update(range(offset // PAGE_SIZE + 1, (end - 1) // PAGE_SIZE + 2))
    path.write_bytes(bytes(data))
    return hit


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
