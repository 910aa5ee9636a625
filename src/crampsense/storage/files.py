"""Owner-only directories and crash-safe (atomic) file writes, including Parquet tables.

Every file written here is health data: files are created ``0600`` and directories ``0700``
whatever the process umask, and nothing process-wide (umask, signal handlers) is changed.

An atomic write goes to a temporary name in the destination directory, is flushed and
``fsync``-ed, renamed over the destination with :func:`os.replace`, and the directory is
``fsync``-ed so the rename itself survives a power cut. Whatever interrupts it, the destination
holds either its old content or the complete new content, never a mixture.

Parquet integrity
-----------------
Parquet page checksums would catch bit flips, but polars' writer does not emit them (and a
flipped bit inside zstd-compressed pages usually decodes to silently different numbers). So
:func:`write_parquet_atomic` stores a SHA-256 of the file's data region (everything before the
footer) in the footer's key-value metadata under :data:`PARQUET_SHA256_KEY`, and
:func:`read_parquet_checked` verifies it before decoding. Files written by other tools (no such
key) are read without that check.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import polars as pl

from crampsense.errors import CorruptFileError, DiskFullError, StorageError

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "PARQUET_SHA256_KEY",
    "append_line_durable",
    "atomic_write_bytes",
    "fsync_dir",
    "private_dir",
    "read_parquet_checked",
    "try_lock_exclusive",
    "write_parquet_atomic",
]

logger = logging.getLogger(__name__)

#: Mode of every health-data file: read/write for the owner only.
FILE_MODE: Final = 0o600
#: Mode of every health-data directory: owner only.
DIR_MODE: Final = 0o700
#: Footer metadata key holding the hex SHA-256 of a Parquet file's data region.
PARQUET_SHA256_KEY: Final = "crampsense.data_sha256"
#: Parquet files start and end with this magic.
_PARQUET_MAGIC: Final = b"PAR1"
#: Bytes at the end of a Parquet file after the footer: 4-byte footer length + magic.
_PARQUET_TAIL_LEN: Final = 8
#: Read size when hashing a file (bytes); large enough that hashing runs at memory speed.
_HASH_CHUNK_BYTES: Final = 1 << 20


def _os_error(exc: OSError, path: Path, action: str) -> StorageError:
    """Translate an ``OSError`` into the project's error, with advice."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            f"cannot {action} {path}: the disk is full ({exc.strerror}); "
            "free some space and try again (files written before are intact)",
            path=str(path),
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(
            f"cannot {action} {path}: permission denied ({exc.strerror}); "
            "check that the folder is yours and writable",
            path=str(path),
        )
    return StorageError(f"cannot {action} {path}: {exc.strerror or exc}", path=str(path))


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as owner-only directories; tighten ``path`` itself.

    Every directory this call creates gets mode ``0700``. If ``path`` already exists its mode is
    tightened to ``0700``; existing *parents* are left alone (so a session under ``/tmp`` never
    changes ``/tmp``).

    Parameters
    ----------
    path : Path
        Directory to create or tighten.

    Returns
    -------
    Path
        ``path``, unchanged.

    Raises
    ------
    StorageError
        ``path`` exists and is not a directory, or it cannot be created or tightened.
    """
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    try:
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):  # created concurrently: tighten below
                directory.mkdir(mode=DIR_MODE)
            directory.chmod(DIR_MODE)
        if not path.is_dir():
            msg = f"{path} exists but is not a directory; choose another location"
            raise StorageError(msg, path=str(path))
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            path.chmod(DIR_MODE)
    except OSError as exc:
        raise _os_error(exc, path, "create the private folder") from exc
    return path


def _ensure_parent(path: Path) -> None:
    """Create missing parents of ``path`` with ``0700`` without touching existing ones."""
    if not path.parent.exists():
        private_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """``fsync`` a directory so that a rename or a new file in it survives a power cut.

    Platforms that cannot open directories (Windows) are skipped silently.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on Windows; nothing to do
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        logger.debug("fsync of directory %s not supported", directory)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line_durable(path: Path, line: bytes) -> None:
    """Append one line to an owner-only file and ``fsync`` it; never rewrite what is there.

    If the file lacks a final newline, one is written before ``line`` (so a line cut short by
    a crash stays its own line). A new file is created ``0600`` (and new parents ``0700``) and
    its directory ``fsync``-ed; an existing file is set to ``0600``.

    Parameters
    ----------
    path : Path
        The file (created if missing).
    line : bytes
        One line, without or with its trailing newline (one is added if missing).

    Raises
    ------
    DiskFullError
        The disk filled up; at worst one incomplete new line was written.
    StorageError
        Any other failure; the existing bytes are untouched.
    """
    data = line if line.endswith(b"\n") else line + b"\n"
    try:
        _ensure_parent(path)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)
    except OSError as exc:
        raise _os_error(exc, path, "append to") from exc



def try_lock_exclusive(fd: int) -> bool:
    """Take an exclusive advisory ``flock`` on an open file without waiting.

    Returns ``False`` when another open file description holds it (another process, or
    another ``open`` in this one); ``True`` when taken, and always on platforms without
    ``flock`` (Windows), where nothing is locked. The lock lasts until ``fd`` is closed, and
    the kernel drops it when the process dies, even on kill -9.
    """
    if sys.platform == "win32":  # pragma: no cover - no flock
        return True
    import fcntl  # noqa: PLC0415 - POSIX only

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True

def _temp_path(path: Path) -> Path:
    """Create an empty owner-only temporary file next to ``path`` and return its name."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def _replace_into_place(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` over ``path`` and make the rename durable."""
    tmp.chmod(FILE_MODE)
    tmp.replace(path)
    fsync_dir(path.parent)


def atomic_write_bytes(
    path: Path, data: bytes, *, verify: Callable[[Path], None] | None = None
) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new content.

    The bytes go to an owner-only temporary file in the same directory, which is ``fsync``-ed
    and renamed over ``path``; then the directory is ``fsync``-ed. The result has mode ``0600``.

    Parameters
    ----------
    path : Path
        Destination. Missing parent directories are created with mode ``0700``.
    data : bytes
        The complete new content.
    verify : callable, optional
        Called with the synced temporary file before it replaces ``path``; raising there
        leaves ``path`` untouched and removes the temporary file.

    Raises
    ------
    DiskFullError
        The disk filled up; ``path`` still holds its old content (if any).
    StorageError
        Any other failure to write; ``path`` is unchanged.
    """
    _ensure_parent(path)
    tmp: Path | None = None
    try:
        tmp = _temp_path(path)
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if verify is not None:
            verify(tmp)
        _replace_into_place(tmp, path)
        tmp = None
    except OSError as exc:
        raise _os_error(exc, path, "write") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _parquet_data_region(blob: bytes) -> bytes | None:
    """The bytes of a Parquet file before its footer, or ``None`` if the tail is not Parquet."""
    if (
        len(blob) < 2 * len(_PARQUET_MAGIC) + _PARQUET_TAIL_LEN
        or blob[-4:] != _PARQUET_MAGIC
        or blob[:4] != _PARQUET_MAGIC
    ):
        return None
    (footer_len,) = struct.unpack("<I", blob[-_PARQUET_TAIL_LEN:-4])
    end = len(blob) - _PARQUET_TAIL_LEN - footer_len
    if end < len(_PARQUET_MAGIC):
        return None
    return blob[:end]


def _encode_parquet(df: pl.DataFrame) -> bytes:
    """Encode ``df`` as Parquet with statistics and a SHA-256 of the data region in the footer."""
    first = io.BytesIO()
    df.write_parquet(first, statistics=True, compression="zstd")
    region = _parquet_data_region(first.getvalue())
    if region is None:  # pragma: no cover - polars always writes valid Parquet
        msg = "polars wrote a Parquet file without a valid footer; please report this"
        raise StorageError(msg)
    digest = hashlib.sha256(region).hexdigest()
    second = io.BytesIO()
    df.write_parquet(
        second, statistics=True, compression="zstd", metadata={PARQUET_SHA256_KEY: digest}
    )
    blob = second.getvalue()
    region2 = _parquet_data_region(blob)
    if region2 is None or hashlib.sha256(region2).hexdigest() != digest:
        # The writer was not deterministic (never seen): keep the file, without the checksum.
        logger.warning("Parquet encoding was not reproducible; writing without a checksum")
        return first.getvalue()
    return blob


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> None:
    """Write a polars DataFrame as Parquet, atomically, owner-only, verified before rename.

    Column statistics are written; a SHA-256 of the data pages is stored in the footer under
    :data:`PARQUET_SHA256_KEY` (polars cannot write page checksums). The temporary file is
    read back with :func:`read_parquet_checked` and its row count and schema compared with
    ``df`` before it replaces ``path``.

    Parameters
    ----------
    df : polars.DataFrame
        The table; column names carry their units (``emg_rms_uv``, ``duration_s``).
    path : Path
        Destination ``.parquet`` file (mode ``0600``; missing parents created ``0700``).

    Raises
    ------
    DiskFullError
        The disk filled up; ``path`` is unchanged.
    StorageError
        The table could not be encoded, written or verified; ``path`` is unchanged.
    """
    try:
        blob = _encode_parquet(df)
    except pl.exceptions.PolarsError as exc:
        msg = f"cannot encode the table for {path} as Parquet: {exc}; check its column types"
        raise StorageError(msg, path=str(path)) from exc

    def verify(tmp: Path) -> None:
        check = read_parquet_checked(tmp)
        if check.height != df.height or check.schema != df.schema:
            msg = (
                f"Parquet read-back of {path} differs from what was written "
                f"({check.height} rows vs {df.height}); nothing was replaced, try again"
            )
            raise StorageError(msg, path=str(path))

    atomic_write_bytes(path, blob, verify=verify)


def _check_parquet_digest(path: Path, expected: str) -> None:
    """Verify the data-region SHA-256 of the Parquet file at ``path`` against ``expected``."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(size - _PARQUET_TAIL_LEN)
        (footer_len,) = struct.unpack("<I", fh.read(4))
        end = size - _PARQUET_TAIL_LEN - footer_len
        fh.seek(0)
        digest = hashlib.sha256()
        remaining = end
        while remaining > 0:
            chunk = fh.read(min(_HASH_CHUNK_BYTES, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    if remaining != 0 or digest.hexdigest() != expected:
        msg = (
            f"{path} is damaged: its data does not match the checksum stored when it was "
            "written; restore it from a backup or re-create it from the session log"
        )
        raise CorruptFileError(msg, path=str(path))


def read_parquet_checked(path: Path) -> pl.DataFrame:
    """Read a Parquet file, verifying its stored checksum first if it has one.

    Parameters
    ----------
    path : Path
        A Parquet file, ideally written by :func:`write_parquet_atomic`.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    StorageError
        The file does not exist or cannot be opened.
    CorruptFileError
        The file is not valid Parquet (truncated, overwritten) or fails its checksum.
    """
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        msg = f"{path} {what}; pass the path of a Parquet table"
        raise StorageError(msg, path=str(path))
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - 4))
            tail = fh.read(4)
    except OSError as exc:
        raise _os_error(exc, path, "read") from exc
    if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        msg = (
            f"{path} is not a complete Parquet file ({size} bytes; the start or end marker "
            "PAR1 is missing, e.g. it was cut short); re-create it or restore a backup"
        )
        raise CorruptFileError(msg, path=str(path))
    try:
        meta = pl.read_parquet_metadata(path)
        expected = meta.get(PARQUET_SHA256_KEY)
        if expected is not None:
            _check_parquet_digest(path, expected)
        return pl.read_parquet(path, memory_map=False)
    except CorruptFileError:
        raise
    except OSError as exc:
        raise _os_error(exc, path, "read") from exc
    except (pl.exceptions.PolarsError, struct.error, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = (
            f"{path} is damaged and cannot be read as Parquet ({first_line}); "
            "re-create it or restore a backup"
        )
        raise CorruptFileError(msg, path=str(path)) from exc
