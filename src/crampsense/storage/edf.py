"""EDF, EDF+ and BDF files: a validating header parser, a fast decoder and a writer.

European Data Format (EDF, Kemp et al. 1992) stores a fixed-size ASCII header followed by
*data records* of equal length; each record holds ``samples_per_record`` little-endian
samples of every signal in turn, 16-bit two's complement in EDF and 24-bit in BDF (the
BioSemi variant). EDF+ (Kemp & Olivan 2003) adds ``EDF Annotations`` signals (time-stamped
text) and marks the file ``EDF+C`` (continuous) or ``EDF+D`` (discontinuous).

Reading
-------
:func:`read_edf_header` parses and validates the header against the file's size *before*
anything large is allocated: counts beyond the file size, absurd sample rates or signal
counts, unparsable or non-finite numbers and non-ASCII bytes raise
:class:`~crampsense.errors.CorruptFileError` (or :class:`~crampsense.errors.ForeignFileError`
when the file is not EDF/BDF at all) with one line saying what was wrong.

:func:`read_edf_signals` decodes the chosen signals into ``float32`` physical values::

    physical = physical_min + (digital - digital_min) * (physical_max - physical_min)
                                                       / (digital_max - digital_min)

The records are read in chunks of a few MB into one reusable buffer and viewed with
:func:`numpy.frombuffer` as ``(records, samples)``; each signal is one column slice of that
view, scaled straight into its preallocated ``float32`` output (no per-record or per-sample
Python loop, no whole-night ``float64`` copy). 24-bit samples are assembled from their three
bytes with vectorised shifts. Reading through a buffer rather than a memory map keeps the
resident memory at the outputs plus one chunk: a memory map's touched file pages would count
as resident for the whole file.

EDF stores no time zone: the start date and time are returned as UTC. EDF+D
(discontinuous) files are refused (export them as EDF+C); annotation signals are skipped.

References
----------
.. [1] Kemp B. et al., A simple format for exchange of digitized polygraphic recordings,
   Electroencephalogr Clin Neurophysiol 82:391-393, 1992.
.. [2] Kemp B. & Olivan J., European data format 'plus' (EDF+), an EDF alike standard format
   for the exchange of physiological data, Clin Neurophysiol 114:1755-1761, 2003.
.. [3] BioSemi, BDF file format (24-bit EDF variant), https://www.biosemi.com/faq/file_format.htm
"""

from __future__ import annotations

import logging
import math
import mmap
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from crampsense.errors import CorruptFileError, ForeignFileError, StorageError
from crampsense.storage.files import atomic_write_bytes

__all__ = [
    "EdfHeader",
    "EdfSignal",
    "EdfSignalHeader",
    "read_edf_header",
    "read_edf_signals",
    "write_edf",
]

logger = logging.getLogger(__name__)

#: Size of the fixed part of the header and of each signal's header (bytes), by the spec.
MAIN_HEADER_BYTES: Final = 256
SIGNAL_HEADER_BYTES: Final = 256
#: Widths of the per-signal header fields, in file order (EDF spec).
_SIGNAL_FIELDS: Final = (
    ("label", 16), ("transducer", 80), ("dimension", 8), ("physical_min", 8),
    ("physical_max", 8), ("digital_min", 8), ("digital_max", 8), ("prefilter", 80),
    ("samples_per_record", 8), ("reserved", 32),
)
#: Most signals accepted: full-montage PSG has ~60 and high-density EEG 256-512; more is a
#: damaged or hostile header (the signal header alone would be 256 bytes x count).
MAX_SIGNALS: Final = 1024
#: Highest sample rate accepted (Hz): surface EMG needs at most a few kHz; 100 kHz is far
#: beyond any physiological recording and stops absurd rates before allocation.
MAX_FS_HZ: Final = 100_000.0
#: Largest data record accepted (bytes): the spec recommends at most 61 440; 64 MiB leaves
#: room for unusual writers while bounding the read buffer.
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
#: Bytes of records read per chunk: large enough to run at memory speed, small enough that
#: the buffer is negligible next to the outputs.
CHUNK_BYTES: Final = 8 * 1024 * 1024
#: Labels of EDF+/BDF+ annotation signals (time-stamped text, not samples).
ANNOTATION_LABELS: Final = ("EDF Annotations", "BDF Annotations")
#: Two-digit years below this are 20xx, the rest 19xx (EDF spec "clipping date" 1985).
_CENTURY_PIVOT: Final = 85
_BDF_MAGIC: Final = b"\xffBIOSEMI"
_EDF_MAGIC: Final = b"0       "
_INT16: Final = (-32768, 32767)
_INT24: Final = (-8388608, 8388607)
#: The micro sign, as Latin-1 (one byte) or UTF-8 (two), is tolerated in a signal's physical
#: dimension only: real files write "µV" that way although the spec asks for ASCII "uV".
_MICRO_BYTES: Final = (b"\xc2\xb5", b"\xb5")
_INT_RE: Final = re.compile(r"^[+-]?\d+$")
_FLOAT_RE: Final = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                  "NOV", "DEC")


@dataclass(frozen=True, slots=True)
class EdfSignalHeader:
    """One signal of an EDF/BDF file, as its header describes it.

    Attributes
    ----------
    index : int
        Position among all signals of the file (annotation signals included).
    label, transducer, dimension, prefilter : str
        Header text, stripped. ``dimension`` is the physical unit (``"uV"``, ``"mg"``).
    physical_min, physical_max : float
        Physical values of ``digital_min`` and ``digital_max`` (in ``dimension``).
    digital_min, digital_max : int
    samples_per_record : int
    fs_hz : float
        ``samples_per_record / record_duration_s`` (Hz).
    is_annotation : bool
        An EDF+/BDF+ annotation signal (never decoded as samples).
    """

    index: int
    label: str
    transducer: str
    dimension: str
    physical_min: float
    physical_max: float
    digital_min: int
    digital_max: int
    prefilter: str
    samples_per_record: int
    fs_hz: float
    is_annotation: bool

    @property
    def gain(self) -> float:
        """Physical units per digital step."""
        return (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min)

    @property
    def offset(self) -> float:
        """Physical value of digital 0."""
        return self.physical_min - self.gain * self.digital_min


@dataclass(frozen=True, slots=True)
class EdfHeader:
    """The validated header of an EDF/EDF+/BDF file.

    Attributes
    ----------
    path : str
    file_format : {"EDF", "EDF+C", "BDF", "BDF+C"}
    start : datetime
        Start of the first record (UTC; EDF stores no time zone).
    patient, recording : str
        Identification fields (may hold personal data: never logged).
    header_bytes, record_bytes : int
    n_records : int
        Data records in the file (an unknown ``-1`` in the header is counted from its size).
    record_duration_s : float
    bytes_per_sample : {2, 3}
    signals : tuple of EdfSignalHeader
        Every signal, annotation signals included.
    """

    path: str
    file_format: str
    start: datetime
    patient: str
    recording: str
    header_bytes: int
    record_bytes: int
    n_records: int
    record_duration_s: float
    bytes_per_sample: int
    signals: tuple[EdfSignalHeader, ...]

    @property
    def duration_s(self) -> float:
        """Length of the recording (s)."""
        return self.n_records * self.record_duration_s

    @property
    def data_signals(self) -> tuple[EdfSignalHeader, ...]:
        """The signals holding samples (annotation signals left out)."""
        return tuple(s for s in self.signals if not s.is_annotation)

    def n_samples(self, index: int) -> int:
        """Samples of signal ``index`` in the whole file."""
        return self.n_records * self.signals[index].samples_per_record


@dataclass(frozen=True, slots=True, eq=False)
class EdfSignal:
    """One signal to write with :func:`write_edf`.

    Attributes
    ----------
    label : str
        At most 16 ASCII characters.
    data : ndarray, shape (n,)
        Physical values in ``dimension``.
    fs_hz : float
        Sample rate; ``fs_hz x record_duration_s`` must be a whole number.
    dimension : str
        Physical unit, at most 8 ASCII characters (``"uV"``, ``"mg"``, ``"g"``).
    physical_min, physical_max : float, optional
        Range mapped onto the digital range; default: the data's range (a constant signal
        gets ±1 around its value).
    transducer, prefilter : str
    """

    label: str
    data: NDArray[np.floating] | NDArray[np.integer]
    fs_hz: float
    dimension: str = ""
    physical_min: float | None = None
    physical_max: float | None = None
    transducer: str = ""
    prefilter: str = ""


# --- reading ----------------------------------------------------------------------------------


def _corrupt(path: Path, what: str) -> CorruptFileError:
    return CorruptFileError(
        f"{path} is not a valid EDF/BDF file: {what}; re-export it from the recording software",
        path=str(path),
    )


def _check_ascii(path: Path, blob: bytes, start: int, *, allow_micro: bool = False) -> str:
    """Decode a header field; any byte outside printable ASCII is an error."""
    raw = blob
    if allow_micro:
        for micro in _MICRO_BYTES:
            raw = raw.replace(micro, b"u")
    bad = next((i for i, b in enumerate(raw) if not 0x20 <= b <= 0x7E), None)
    if bad is not None:
        raise _corrupt(path, f"byte {start + bad} of the header is {raw[bad]:#04x}, not "
                             "printable ASCII as the EDF header requires")
    return raw.decode("ascii").strip()


def _int_field(path: Path, text: str, name: str, *, lo: int, hi: int) -> int:
    if not _INT_RE.match(text):
        raise _corrupt(path, f"{name} is {text!r}, not a whole number")
    value = int(text)
    if not lo <= value <= hi:
        raise _corrupt(path, f"{name} is {value}, outside {lo}..{hi}")
    return value


def _float_field(path: Path, text: str, name: str) -> float:
    if not _FLOAT_RE.match(text):
        raise _corrupt(path, f"{name} is {text!r}, not a number")
    value = float(text)
    if not math.isfinite(value):
        raise _corrupt(path, f"{name} is {text!r}, not a finite number")
    return value


def _parse_start(path: Path, date: str, time: str, recording: str) -> datetime:
    m_d = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", date)
    m_t = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", time)
    if m_d is None or m_t is None:
        raise _corrupt(path, f"start date/time is {date!r} {time!r}, not dd.mm.yy hh.mm.ss")
    day, month, yy = (int(g) for g in m_d.groups())
    year = 2000 + yy if yy < _CENTURY_PIVOT else 1900 + yy
    # EDF+ gives the 4-digit year in the recording field: "Startdate 20-NOV-2026 ..."
    m_plus = re.match(r"Startdate (\d\d)-([A-Z]{3})-(\d{4})\b", recording)
    if m_plus is not None and m_plus.group(2) in _MONTHS:
        year = int(m_plus.group(3))
    hour, minute, second = (int(g) for g in m_t.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise _corrupt(path, f"start {date} {time} is not a real date and time ({exc})") from exc


def read_edf_header(path: Path) -> EdfHeader:
    """Parse and validate the header of an EDF, EDF+ or BDF file.

    Only the header is read (at most ``256 x (1 + MAX_SIGNALS)`` bytes), and every count is
    checked against the file's size before anything is allocated for the data.

    Parameters
    ----------
    path : Path

    Returns
    -------
    EdfHeader

    Raises
    ------
    StorageError
        The file does not exist or cannot be read.
    ForeignFileError
        The file does not start like an EDF or BDF file.
    CorruptFileError
        The header is truncated, holds non-ASCII bytes, unparsable or absurd numbers, counts
        beyond the file's size, or describes a discontinuous EDF+D file.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            main = fh.read(MAIN_HEADER_BYTES)
            if len(main) < MAIN_HEADER_BYTES:
                raise _corrupt(path, f"it has {size} bytes, fewer than the 256-byte header")
            magic = main[:8]
            if magic not in (_EDF_MAGIC, _BDF_MAGIC):
                raise ForeignFileError(
                    f"{path} is not an EDF or BDF file (it starts with {magic!r}); pass an "
                    "EDF/EDF+/BDF recording, a crampsense sample file or a session",
                    path=str(path),
                )
            bdf = magic == _BDF_MAGIC
            text = [_check_ascii(path, main[a:b], a) for a, b in (
                (8, 88), (88, 168), (168, 176), (176, 184), (184, 192), (192, 236),
                (236, 244), (244, 252), (252, 256))]
            patient, recording, date, time, hbytes, reserved, nrec, dur, ns = text
            n_signals = _int_field(path, ns, "the number of signals", lo=1, hi=MAX_SIGNALS)
            header_bytes = _int_field(path, hbytes, "the header size", lo=0, hi=2**31)
            expected = MAIN_HEADER_BYTES + SIGNAL_HEADER_BYTES * n_signals
            if header_bytes != expected:
                raise _corrupt(path, f"the header size is {header_bytes} bytes, but "
                                     f"{n_signals} signals need {expected}")
            if size < header_bytes:
                raise _corrupt(path, f"it has {size} bytes, fewer than its {header_bytes}-byte "
                                     "header (truncated)")
            sig_blob = fh.read(header_bytes - MAIN_HEADER_BYTES)
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}; check the path",
                           path=str(path)) from exc
    if reserved.startswith(("EDF+D", "BDF+D")):
        raise _corrupt(path, "it is a discontinuous EDF+D recording, which is not supported; "
                             "export it as continuous EDF+C")
    plus = reserved.startswith(("EDF+C", "BDF+C"))
    file_format = ("BDF" if bdf else "EDF") + ("+C" if plus else "")
    record_duration_s = _float_field(path, dur, "the record duration")
    if not record_duration_s > 0:
        raise _corrupt(path, f"the record duration is {record_duration_s} s; it must be > 0")
    start = _parse_start(path, date, time, recording)
    fields: dict[str, list[str]] = {}
    pos = 0
    for name, width in _SIGNAL_FIELDS:
        values = []
        for i in range(n_signals):
            a = pos + i * width
            values.append(_check_ascii(path, sig_blob[a:a + width], MAIN_HEADER_BYTES + a,
                                       allow_micro=name == "dimension"))
        fields[name] = values
        pos += width * n_signals
    bps = 3 if bdf else 2
    lo_d, hi_d = _INT24 if bdf else _INT16
    signals: list[EdfSignalHeader] = []
    for i in range(n_signals):
        label = fields["label"][i]
        what = f"signal {i + 1} ({label!r})"
        spr = _int_field(path, fields["samples_per_record"][i], f"samples per record of {what}",
                         lo=1, hi=MAX_RECORD_BYTES // bps)
        fs_hz = spr / record_duration_s
        annotation = label in ANNOTATION_LABELS
        if not annotation and fs_hz > MAX_FS_HZ:
            raise _corrupt(path, f"{what} is sampled at {fs_hz:g} Hz, above {MAX_FS_HZ:g} Hz")
        dmin = _int_field(path, fields["digital_min"][i], f"digital minimum of {what}",
                          lo=lo_d, hi=hi_d)
        dmax = _int_field(path, fields["digital_max"][i], f"digital maximum of {what}",
                          lo=lo_d, hi=hi_d)
        pmin = _float_field(path, fields["physical_min"][i], f"physical minimum of {what}")
        pmax = _float_field(path, fields["physical_max"][i], f"physical maximum of {what}")
        if not annotation and dmax <= dmin:
            raise _corrupt(path, f"{what} has digital range {dmin}..{dmax}; maximum must "
                                 "exceed minimum")
        if not annotation and pmax == pmin:
            raise _corrupt(path, f"{what} has equal physical minimum and maximum ({pmin:g})")
        signals.append(EdfSignalHeader(
            index=i, label=label, transducer=fields["transducer"][i],
            dimension=fields["dimension"][i], physical_min=pmin, physical_max=pmax,
            digital_min=dmin, digital_max=dmax, prefilter=fields["prefilter"][i],
            samples_per_record=spr, fs_hz=fs_hz, is_annotation=annotation))
    record_bytes = bps * sum(s.samples_per_record for s in signals)
    if record_bytes > MAX_RECORD_BYTES:
        raise _corrupt(path, f"one data record would be {record_bytes} bytes, above "
                             f"{MAX_RECORD_BYTES}")
    n_records = _int_field(path, nrec, "the number of data records", lo=-1, hi=2**40)
    held = (size - header_bytes) // record_bytes
    if n_records == -1:  # still being written when it was copied: count what is there
        n_records = held
    elif n_records > held:
        raise _corrupt(path, f"the header promises {n_records} data records of {record_bytes} "
                             f"bytes but the file holds only {size - header_bytes} bytes of "
                             f"data ({held} whole records; truncated)")
    elif held > n_records:
        logger.debug("%s has %d bytes after its last record; ignored", path,
                     size - header_bytes - n_records * record_bytes)
    if n_records == 0:
        raise _corrupt(path, "it holds no data records")
    return EdfHeader(
        path=str(path), file_format=file_format, start=start, patient=patient,
        recording=recording, header_bytes=header_bytes, record_bytes=record_bytes,
        n_records=n_records, record_duration_s=record_duration_s, bytes_per_sample=bps,
        signals=tuple(signals))


def _plain_pages_f32(n: int) -> NDArray[np.float32]:
    """An uninitialised float32 array of ``n`` on ordinary (4-KB) pages.

    numpy asks the kernel for transparent huge pages for every array above 4 MB; with
    memory fragmented by other work the kernel may then compact memory while the array is
    first written. Measured on the 2-core project machine under load, reading the 8-h
    benchmark EDF (230 MB of float32) took 0.2-0.8 s of system time that way against a
    steady 0.17-0.21 s on ordinary pages. An anonymous map is zero-filled lazily and is
    freed with the array.
    """
    buf = mmap.mmap(-1, max(1, n) * 4)
    out: NDArray[np.float32] = np.frombuffer(buf, dtype=np.float32, count=n)
    return out


def read_edf_signals(
    header: EdfHeader, indices: Sequence[int], *, scales: Sequence[float] | None = None
) -> list[NDArray[np.float32]]:
    """Decode signals of an EDF/BDF file into physical ``float32`` values.

    Parameters
    ----------
    header : EdfHeader
        From :func:`read_edf_header`.
    indices : sequence of int
        Signals to decode (positions in ``header.signals``; not annotation signals).
    scales : sequence of float, optional
        Factor per signal folded into the digital-to-physical scaling (e.g. 1000 to turn g
        into mg without another pass over the data). Default 1.

    Returns
    -------
    list of ndarray of float32, each shape (n_records x samples_per_record,)
        One array per index, in the physical unit of the header times its scale.

    Raises
    ------
    StorageError
        An index is out of range or names an annotation signal, or the file changed size or
        cannot be read.
    """
    path = Path(header.path)
    factors = [1.0] * len(indices) if scales is None else list(scales)
    if len(factors) != len(indices):
        raise StorageError(f"{len(indices)} signals but {len(factors)} scales given; pass one "
                           "scale per signal", path=header.path)
    sigs: list[EdfSignalHeader] = []
    for i in indices:
        if not 0 <= i < len(header.signals) or header.signals[i].is_annotation:
            raise StorageError(f"{path} has no data signal number {i}; choose among "
                               f"{[s.index for s in header.data_signals]}", path=header.path)
        sigs.append(header.signals[i])
    bps = header.bytes_per_sample
    starts = np.cumsum([0] + [s.samples_per_record for s in header.signals])
    outs = [_plain_pages_f32(header.n_samples(s.index)) for s in sigs]
    gains = [np.float32(s.gain * f) for s, f in zip(sigs, factors, strict=True)]
    offsets = [np.float32(s.offset * f) for s, f in zip(sigs, factors, strict=True)]
    chunk_records = max(1, CHUNK_BYTES // header.record_bytes)
    buf = bytearray(min(chunk_records, header.n_records) * header.record_bytes)
    view = memoryview(buf)
    try:
        with path.open("rb") as fh:
            fh.seek(header.header_bytes)
            done = 0
            while done < header.n_records:
                n = min(chunk_records, header.n_records - done)
                want = n * header.record_bytes
                got = fh.readinto(view[:want])
                if got != want:
                    raise _corrupt(path, f"it ended after {done} of {header.n_records} data "
                                         "records while being read (changed since opened?)")
                raw = np.frombuffer(buf, dtype=np.uint8, count=want).reshape(n, -1)
                samples: NDArray[Any] = raw.view("<i2") if bps == 2 else raw.reshape(n, -1, 3)
                for s, out, gain, off in zip(sigs, outs, gains, offsets, strict=True):
                    spr = s.samples_per_record
                    a = int(starts[s.index])
                    dst = out[done * spr:(done + n) * spr].reshape(n, spr)
                    if bps == 2:
                        np.multiply(samples[:, a:a + spr], gain, out=dst)
                    else:
                        b = samples[:, a:a + spr]
                        digital = (b[..., 0].astype(np.int32)
                                   | (b[..., 1].astype(np.int32) << 8)
                                   | (b[..., 2].view(np.int8).astype(np.int32) << 16))
                        np.multiply(digital, gain, out=dst)
                    dst += off
                done += n
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}", path=header.path) from exc
    return outs


# --- writing ----------------------------------------------------------------------------------


def _fit(value: str, width: int, what: str) -> bytes:
    raw = value.encode("ascii", errors="strict") if value.isascii() else None
    if raw is None or len(raw) > width or any(not 0x20 <= b <= 0x7E for b in raw):
        raise StorageError(f"{what} {value!r} must be at most {width} printable ASCII "
                           "characters; shorten it")
    return raw.ljust(width, b" ")


def _number(value: float, width: int = 8) -> str:
    """The most precise decimal text of ``value`` that fits ``width`` characters."""
    if float(value).is_integer() and len(str(int(value))) <= width:
        return str(int(value))
    for digits in range(width, 0, -1):
        text = f"{value:.{digits}g}"
        if "e" in text:
            mant, exp = text.split("e")
            text = f"{mant}e{int(exp)}"
        if len(text) <= width:
            return text
    raise StorageError(f"{value!r} cannot be written in {width} characters; rescale the signal")


def _outward(value: float, *, down: bool) -> str:
    """:func:`_number` of ``value``, rounded away from the data so that no sample is clipped."""
    nudge = 0.0
    for _ in range(64):
        text = _number(value - nudge if down else value + nudge)
        if (float(text) <= value) if down else (float(text) >= value):
            return text
        nudge = max(2.0 * nudge, abs(value) * 1e-7, 1e-30)
    return text  # pragma: no cover - 64 doublings always reach a representable bound


def _record_duration_ok(fs_hz: float, record_duration_s: float) -> int:
    spr = fs_hz * record_duration_s
    if not (math.isfinite(spr) and spr >= 1 and abs(spr - round(spr)) < 1e-6):
        raise StorageError(f"{fs_hz:g} Hz x {record_duration_s:g} s records = {spr:g} samples "
                           "per record; choose a record duration that gives a whole number")
    return round(spr)


def write_edf(
    path: Path,
    signals: Sequence[EdfSignal],
    *,
    start: datetime,
    record_duration_s: float = 1.0,
    bdf: bool = False,
    plus: bool = True,
    patient: str = "X X X X",
    recording: str | None = None,
) -> None:
    """Write signals as an EDF+C (or plain EDF, or BDF/BDF+C) file, atomically and owner-only.

    Samples are quantised to the full digital range (16-bit EDF, 24-bit BDF) over each
    signal's physical range. The last record is padded with the digital value nearest to
    physical 0 when a signal does not fill it. EDF+/BDF+ files get an annotation signal
    holding each record's time-keeping annotation.

    Parameters
    ----------
    path : Path
        Destination (mode 0600).
    signals : sequence of EdfSignal
    start : datetime
        Recording start; written as its UTC date and time (whole seconds).
    record_duration_s : float
        Duration of one data record (s); ``fs_hz x record_duration_s`` must be whole.
    bdf : bool
        Write 24-bit BDF instead of 16-bit EDF.
    plus : bool
        Write EDF+C/BDF+C (with an annotation signal) instead of plain EDF/BDF.
    patient, recording : str
        Identification fields (EDF+ subfields; ``recording`` defaults to the EDF+ form
        ``"Startdate dd-MMM-yyyy X X X"``).

    Raises
    ------
    StorageError
        Labels or units that do not fit the header, a rate that does not give whole samples
        per record, or the file cannot be written.
    """
    if not signals:
        raise StorageError("no signals to write; pass at least one EdfSignal")
    start_utc = start.astimezone(UTC) if start.tzinfo is not None else start
    sprs = [_record_duration_ok(s.fs_hz, record_duration_s) for s in signals]
    n_records = max(math.ceil(np.shape(s.data)[0] / spr) for s, spr in zip(signals, sprs,
                                                                                strict=True))
    lo_d, hi_d = _INT24 if bdf else _INT16
    bps = 3 if bdf else 2
    tal_len = len(f"+{_number(n_records * record_duration_s, 20)}\x14\x14\x00")
    annot_spr = max(1, math.ceil(max(tal_len, 12) / bps))
    labels = [s.label for s in signals]
    dims = [s.dimension for s in signals]
    pmins: list[str] = []
    pmaxs: list[str] = []
    for s in signals:
        data = np.asarray(s.data)
        finite = data[np.isfinite(data)] if data.size else data
        lo = s.physical_min if s.physical_min is not None else (
            float(finite.min()) if finite.size else -1.0)
        hi = s.physical_max if s.physical_max is not None else (
            float(finite.max()) if finite.size else 1.0)
        if lo == hi:
            lo, hi = lo - 1.0, hi + 1.0
        pmins.append(_outward(lo, down=True))
        pmaxs.append(_outward(hi, down=False))
    all_spr = [*sprs]
    if plus:
        labels.append("BDF Annotations" if bdf else "EDF Annotations")
        dims.append("")
        pmins.append("-1")
        pmaxs.append("1")
        all_spr.append(annot_spr)
    ns = len(labels)
    if ns > MAX_SIGNALS:
        raise StorageError(f"{ns} signals are more than the {MAX_SIGNALS} this writer allows")
    if recording is None:
        recording = (f"Startdate {start_utc.day:02d}-{_MONTHS[start_utc.month - 1]}-"
                     f"{start_utc.year} X X X") if plus else ""
    head = bytearray()
    head += _BDF_MAGIC if bdf else _EDF_MAGIC
    head += _fit(patient, 80, "patient")
    head += _fit(recording, 80, "recording")
    head += _fit(start_utc.strftime("%d.%m.%y"), 8, "date")
    head += _fit(start_utc.strftime("%H.%M.%S"), 8, "time")
    head += _fit(str(MAIN_HEADER_BYTES + SIGNAL_HEADER_BYTES * ns), 8, "header size")
    reserved = ("BDF+C" if bdf else "EDF+C") if plus else ("24BIT" if bdf else "")
    head += _fit(reserved, 44, "reserved")
    head += _fit(str(n_records), 8, "records")
    head += _fit(_number(record_duration_s), 8, "record duration")
    head += _fit(str(ns), 4, "signal count")
    columns = {
        "label": labels, "transducer": [s.transducer for s in signals] + [""] * plus,
        "dimension": dims, "physical_min": pmins, "physical_max": pmaxs,
        "digital_min": [str(lo_d)] * ns, "digital_max": [str(hi_d)] * ns,
        "prefilter": [s.prefilter for s in signals] + [""] * plus,
        "samples_per_record": [str(v) for v in all_spr], "reserved": [""] * ns,
    }
    for name, width in _SIGNAL_FIELDS:
        for value in columns[name]:
            head += _fit(value, width, name.replace("_", " "))
    offsets = np.cumsum([0, *all_spr])
    total_spr = int(offsets[-1])
    body = bytearray()
    chunk_records = max(1, CHUNK_BYTES // (total_spr * bps))
    for r0 in range(0, n_records, chunk_records):
        n = min(chunk_records, n_records - r0)
        rec = np.zeros((n, total_spr), dtype=np.int32)
        for i, (s, spr) in enumerate(zip(signals, sprs, strict=True)):
            pmin, pmax = float(pmins[i]), float(pmaxs[i])
            gain = (pmax - pmin) / (hi_d - lo_d)
            zero = int(np.clip(round(lo_d - pmin / gain), lo_d, hi_d))
            seg = np.asarray(s.data[r0 * spr:(r0 + n) * spr], dtype=np.float64)
            digital = np.full(n * spr, zero, dtype=np.int32)
            q = np.rint((seg - pmin) / gain + lo_d)
            q = np.where(np.isfinite(q), q, zero)
            digital[:seg.size] = np.clip(q, lo_d, hi_d)
            rec[:, offsets[i]:offsets[i + 1]] = digital.reshape(n, spr)
        raw = rec.astype("<i4").view(np.uint8).reshape(n, total_spr, 4)[:, :, :bps]
        raw = np.ascontiguousarray(raw).reshape(n, total_spr * bps)
        if plus:
            a = int(offsets[-2]) * bps
            for k in range(n):  # one time-keeping annotation per record (writer only)
                tal = f"+{_number((r0 + k) * record_duration_s, 20)}\x14\x14\x00".encode()
                raw[k, a:a + annot_spr * bps] = 0
                raw[k, a:a + len(tal)] = np.frombuffer(tal, dtype=np.uint8)
        body += raw.tobytes()
    atomic_write_bytes(Path(path), bytes(head) + bytes(body))

