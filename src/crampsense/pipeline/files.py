"""From a recording file to the detector's legs: EDF/EDF+/BDF and CSV/Parquet sample files.

Channel mapping
---------------
``--emg LABEL=LEG`` and ``--acc XLABEL,YLABEL,ZLABEL=LEG`` (see :func:`map_channels`) say which
channels belong to which leg. A kind (EMG or accelerometer) without any such option is found
from the labels (:func:`auto_map`): EMG by a muscle word (``EMG``, ``gastroc``, ``calf``,
``soleus``, ``tib``), accelerometers by ``ACC``/``accel`` with an ``X``/``Y``/``Z`` axis, and
the leg by an ``L`` / ``R`` / ``left`` / ``right`` word.

Units come from each channel's physical dimension: EMG in ``uV``/``mV``/``V`` (converted to
µV), accelerometers in ``mg``/``g``/``m/s2`` (converted to mg), folded into the decoding so
no extra pass over the data is made. See ``docs/sample-files.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from crampsense.detection import LegSignals
from crampsense.errors import DetectionError, ForeignFileError, StorageError, UsageError
from crampsense.models import MIN_ACC_FS_HZ, MIN_EMG_FS_HZ
from crampsense.storage.edf import read_edf_header, read_edf_signals
from crampsense.storage.samples import read_sample_columns, read_samples

__all__ = [
    "LEGS",
    "Channel",
    "ChannelMap",
    "FileSource",
    "LoadedLegs",
    "acc_scale",
    "auto_map",
    "check_rates",
    "emg_scale",
    "leg_signals",
    "load_legs",
    "map_channels",
    "open_source",
    "sniff",
]

LEGS: Final = ("left", "right")
#: Factor from each accepted EMG unit (lower case, µ written u) to µV.
EMG_UNITS: Final = {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}
#: Factor from each accepted acceleration unit to milli-g (standard gravity 9.80665 m/s²).
ACC_UNITS: Final = {"mg": 1.0, "g": 1e3, "m/s2": 1e3 / 9.80665, "m/s^2": 1e3 / 9.80665,
                    "ms-2": 1e3 / 9.80665, "ms^-2": 1e3 / 9.80665}
_EMG_WORDS: Final = ("emg", "gastroc", "calf", "soleus", "sol", "tib", "tibialis", "ta", "leg")
_NOT_LEG_WORDS: Final = frozenset({"chin", "ment", "submental", "ecg", "ekg", "eeg", "eog",
                                   "arm", "resp", "thor", "abd"})
_LEFT: Final = frozenset({"l", "left", "lt", "lleg"})
_RIGHT: Final = frozenset({"r", "right", "rt", "rleg"})
_ACC_RE: Final = re.compile(r"^(?:acc|accel|accelerometer|acceleration)([xyz])?$")
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel a file offers: position, label, physical unit and rate (Hz)."""

    index: int
    label: str
    dimension: str
    fs_hz: float


@dataclass(slots=True)
class ChannelMap:
    """Which channels belong to which leg, and notes on what was skipped or chosen."""

    emg: dict[str, list[Channel]] = field(default_factory=dict)
    acc: dict[str, tuple[Channel, Channel, Channel]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per leg and kind, for the report."""
        lines = []
        for leg in LEGS:
            if leg in self.emg:
                chans = self.emg[leg]
                lines.append(f"{leg} leg EMG: {', '.join(repr(c.label) for c in chans)} "
                             f"({chans[0].fs_hz:g} Hz, {chans[0].dimension})")
            if leg in self.acc:
                x = self.acc[leg][0]
                lines.append(f"{leg} leg accelerometer: "
                             f"{', '.join(repr(c.label) for c in self.acc[leg])} "
                             f"({x.fs_hz:g} Hz, {x.dimension})")
        return lines


def _unit_key(dimension: str) -> str:
    return dimension.strip().replace("µ", "u").replace("μ", "u").replace(" ", "").lower()


def emg_scale(dimension: str) -> float | None:
    """Factor from ``dimension`` to µV, or ``None`` when it is not a voltage."""
    return EMG_UNITS.get(_unit_key(dimension))


def acc_scale(dimension: str) -> float | None:
    """Factor from ``dimension`` to milli-g, or ``None`` when it is not an acceleration."""
    return ACC_UNITS.get(_unit_key(dimension))


def _tokens(label: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", spaced) if t]


def _side(tokens: Sequence[str]) -> str | None:
    left = any(t in _LEFT for t in tokens)
    right = any(t in _RIGHT for t in tokens)
    if left != right:
        return "left" if left else "right"
    if not left and len(tokens) == 1 and tokens[0] in ("lat", "rat"):  # PSG tibialis labels
        return "left" if tokens[0] == "lat" else "right"
    return None


def _acc_axis(tokens: Sequence[str]) -> str | None:
    """``"x"``/``"y"``/``"z"`` for an accelerometer label, else ``None``."""
    for i, t in enumerate(tokens):
        m = _ACC_RE.match(t)
        if m is None:
            continue
        if m.group(1):
            return m.group(1)
        axes = [u for u in [*tokens[i + 1:], *tokens[:i]] if u in ("x", "y", "z")]
        return axes[0] if len(axes) == 1 else None
    return None


def _is_emg(tokens: Sequence[str]) -> bool:
    if any(t in _NOT_LEG_WORDS for t in tokens):
        return False
    return any(t in _EMG_WORDS or t.startswith(("gastroc", "tibial", "soleus"))
               for t in tokens) or (len(tokens) == 1 and tokens[0] in ("lat", "rat"))


def auto_map(channels: Sequence[Channel], *, emg: bool = True, acc: bool = True) -> ChannelMap:
    """Find leg EMG and accelerometer channels from their labels and units.

    EMG channels need a muscle word and a voltage unit; accelerometer axes an ``acc`` word
    with one of x/y/z and an acceleration unit; both need a left/right word. Channels that
    look right but lack a leg or a usable unit are skipped with a note. Within a leg, EMG
    channels at a lower rate than the leg's fastest are skipped (one rate per leg).
    """
    cmap = ChannelMap()
    axes: dict[str, dict[str, list[Channel]]] = {}
    for ch in channels:
        tokens = _tokens(ch.label)
        side = _side(tokens)
        axis = _acc_axis(tokens)
        if acc and axis is not None:
            if acc_scale(ch.dimension) is None:
                cmap.notes.append(f"skipped {ch.label!r}: unit {ch.dimension!r} is not an "
                                  "acceleration (mg, g, m/s2)")
            elif side is None:
                cmap.notes.append(f"skipped {ch.label!r}: no left/right in its label "
                                  "(map it with --acc X,Y,Z=left)")
            else:
                axes.setdefault(side, {}).setdefault(axis, []).append(ch)
            continue
        if emg and axis is None and _is_emg(tokens):
            if emg_scale(ch.dimension) is None:
                cmap.notes.append(f"skipped {ch.label!r}: unit {ch.dimension!r} is not a "
                                  "voltage (uV, mV, V)")
            elif side is None:
                cmap.notes.append(f"skipped {ch.label!r}: no left/right in its label "
                                  f"(map it with --emg '{ch.label}=left')")
            else:
                cmap.emg.setdefault(side, []).append(ch)
    for leg, chans in list(cmap.emg.items()):
        top = max(c.fs_hz for c in chans)
        for c in chans:
            if c.fs_hz != top:
                cmap.notes.append(f"skipped {c.label!r}: {c.fs_hz:g} Hz, the {leg} leg's other "
                                  f"EMG runs at {top:g} Hz")
        cmap.emg[leg] = [c for c in chans if c.fs_hz == top]
    for leg, by_axis in axes.items():
        if set(by_axis) != {"x", "y", "z"} or any(len(v) != 1 for v in by_axis.values()):
            found = ", ".join(repr(c.label) for v in by_axis.values() for c in v)
            cmap.notes.append(f"skipped the {leg} leg accelerometer ({found}): need exactly one "
                              "x, y and z axis (map them with --acc X,Y,Z=LEG)")
            continue
        cmap.acc[leg] = (by_axis["x"][0], by_axis["y"][0], by_axis["z"][0])
    return cmap


def _leg(value: str, option: str) -> str:
    leg = value.strip().lower()
    if leg not in LEGS:
        raise UsageError(f"{option} leg {value!r} is not 'left' or 'right'; write "
                         f"{option} LABEL=left")
    return leg


def _find(channels: Sequence[Channel], label: str, where: str) -> Channel:
    exact = [c for c in channels if c.label == label]
    loose = [c for c in channels if c.label.strip().lower() == label.strip().lower()]
    match = exact or loose
    if len(match) != 1:
        shown = ", ".join(repr(c.label) for c in channels[:30])
        more = f" and {len(channels) - 30} more" if len(channels) > 30 else ""
        what = "no channel" if not match else f"{len(match)} channels"
        raise UsageError(f"{what} labelled {label!r} in {where}; its channels are: "
                         f"{shown}{more}")
    return match[0]


def map_channels(channels: Sequence[Channel], emg_args: Sequence[str],
                 acc_args: Sequence[str], *, where: str) -> ChannelMap:
    """Apply ``--emg``/``--acc`` mappings; a kind without mappings is found by :func:`auto_map`.

    Raises
    ------
    UsageError
        A malformed mapping, an unknown or ambiguous label, a leg that is not left/right, a
        channel mapped twice, or a unit that does not fit the kind.
    """
    cmap = auto_map(channels, emg=not emg_args, acc=not acc_args)
    used: set[int] = set()

    def take(label: str, option: str) -> Channel:
        ch = _find(channels, label, where)
        if ch.index in used:
            raise UsageError(f"channel {label!r} is mapped twice; map each channel once")
        used.add(ch.index)
        return ch

    for arg in emg_args:
        label, eq, leg = arg.rpartition("=")
        if not eq or not label:
            raise UsageError(f"--emg {arg!r} is not LABEL=LEG; write e.g. --emg 'EMG L=left'")
        ch = take(label, "--emg")
        if emg_scale(ch.dimension) is None:
            raise UsageError(f"--emg channel {ch.label!r} is in {ch.dimension!r}, not a voltage "
                             "(uV, mV, V); map an EMG channel")
        cmap.emg.setdefault(_leg(leg, "--emg"), []).append(ch)
    for arg in acc_args:
        labels, eq, leg = arg.rpartition("=")
        parts = labels.split(",")
        if not eq or len(parts) != 3 or not all(p.strip() for p in parts):
            raise UsageError(f"--acc {arg!r} is not XLABEL,YLABEL,ZLABEL=LEG; write e.g. "
                             "--acc 'AccX,AccY,AccZ=left'")
        trio = tuple(take(p, "--acc") for p in parts)
        for ch in trio:
            if acc_scale(ch.dimension) is None:
                raise UsageError(f"--acc channel {ch.label!r} is in {ch.dimension!r}, not an "
                                 "acceleration (mg, g, m/s2)")
        side = _leg(leg, "--acc")
        if side in cmap.acc:
            raise UsageError(f"two accelerometers mapped to the {side} leg; map one")
        cmap.acc[side] = (trio[0], trio[1], trio[2])
    return cmap


def check_rates(cmap: ChannelMap) -> None:
    """Refuse EMG below 200 Hz, accelerometers below 25 Hz and mixed rates within a leg.

    Raises
    ------
    DetectionError
    """
    for leg, chans in cmap.emg.items():
        for c in chans:
            if c.fs_hz < MIN_EMG_FS_HZ:
                raise DetectionError(
                    f"EMG channel {c.label!r} is sampled at {c.fs_hz:g} Hz; cramp detection "
                    f"needs at least {MIN_EMG_FS_HZ:g} Hz (AASM minimum for leg EMG: the "
                    "20 Hz-0.45 fs analysis band is too narrow below it); use a faster recording")
        rates = sorted({c.fs_hz for c in chans})
        if len(rates) > 1:
            raise DetectionError(
                f"the {leg} leg's EMG channels run at different rates ({rates} Hz); map only "
                "channels of one rate with --emg")
    for trio in cmap.acc.values():
        rates = sorted({c.fs_hz for c in trio})
        if len(rates) > 1:
            raise DetectionError(f"accelerometer axes {[c.label for c in trio]} run at "
                                 f"different rates ({rates} Hz); map axes of one sensor")
        if rates[0] < MIN_ACC_FS_HZ:
            raise DetectionError(
                f"accelerometer {trio[0].label!r} is sampled at {rates[0]:g} Hz; at least "
                f"{MIN_ACC_FS_HZ:g} Hz is needed to see movement and turning; use a faster "
                "recording or leave the accelerometer out with --emg mappings only")


# --- sources ------------------------------------------------------------------------------


Loader = Callable[[Sequence[Channel], Sequence[float]], list[NDArray[np.float32]]]


@dataclass(frozen=True, slots=True)
class FileSource:
    """A recording file's channels and how to load some of them (scaled, as float32)."""

    file_format: str
    start: datetime
    channels: tuple[Channel, ...]
    load: Loader
    may_have_gaps: bool


def sniff(path: Path) -> str:
    """The kind of ``path``: ``"session"``, ``"edf"``, ``"parquet"`` or ``"csv"``."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError as exc:
        raise StorageError(f"{path} does not exist; check the path", path=str(path)) from exc
    except IsADirectoryError as exc:
        raise StorageError(f"{path} is a directory; pass a file", path=str(path)) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    suffix = path.suffix.lower()
    if head.startswith(_SQLITE_MAGIC):
        return "session"
    if head.startswith((b"0       ", b"\xffBIOSEMI")) or suffix in (".edf", ".bdf", ".rec"):
        return "edf"
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise ForeignFileError(
        f"{path} is not an EDF/EDF+/BDF recording, a crampsense CSV/Parquet sample file "
        f"(docs/sample-files.md) or a recorded session (it starts with {head[:8]!r})",
        path=str(path))


def _edf_source(path: Path) -> FileSource:
    header = read_edf_header(path)
    channels = tuple(Channel(s.index, s.label, s.dimension, s.fs_hz)
                     for s in header.data_signals)

    def load(chans: Sequence[Channel], scales: Sequence[float]) -> list[NDArray[np.float32]]:
        return read_edf_signals(header, [c.index for c in chans], scales=scales)

    return FileSource(header.file_format, header.start, channels, load, may_have_gaps=False)


def _samples_source(path: Path, kind: str) -> FileSource:
    start, columns = read_sample_columns(path)
    channels = tuple(Channel(c.index, c.label, c.dimension, c.fs_hz) for c in columns)

    def load(chans: Sequence[Channel], scales: Sequence[float]) -> list[NDArray[np.float32]]:
        return read_samples(path, [columns[c.index] for c in chans], scales=scales)

    return FileSource(kind, start, channels, load, may_have_gaps=True)


def _stack(arrays: list[NDArray[np.float32]], may_have_gaps: bool
           ) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None]:
    """Rows of equal length (NaN-padded), and a validity mask when anything is missing."""
    n = max(a.size for a in arrays)
    if len(arrays) == 1 and not may_have_gaps:
        return arrays[0][None, :], None
    out = np.full((len(arrays), n), np.nan, dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.size] = a
    if not may_have_gaps and all(a.size == n for a in arrays):
        return out, None
    bad = np.isnan(out).any(axis=0)
    if not bad.any():
        return out, None
    out[:, bad] = 0.0
    valid: NDArray[np.bool_] = np.logical_not(bad)
    return out, valid


def _load_all(source: FileSource, groups: Sequence[tuple[Sequence[Channel], Sequence[float]]]
              ) -> list[list[NDArray[np.float32]]]:
    """The arrays of each group of channels, from one pass over the file when no channel is
    in two groups (an EDF is read once instead of once per leg and kind)."""
    chans = [c for g, _ in groups for c in g]
    if len({c.index for c in chans}) != len(chans):  # a channel used twice: group by group
        return [source.load(g, sc) for g, sc in groups]
    data = source.load(chans, [f for _, sc in groups for f in sc]) if chans else []
    out: list[list[NDArray[np.float32]]] = []
    pos = 0
    for g, _ in groups:
        out.append(data[pos:pos + len(g)])
        pos += len(g)
    return out


def leg_signals(source: FileSource, cmap: ChannelMap) -> list[LegSignals]:
    """One :class:`~crampsense.detection.LegSignals` per mapped leg, loaded from ``source``."""
    groups: list[tuple[Sequence[Channel], Sequence[float]]] = []
    for side in LEGS:
        if side in cmap.emg:
            chans = cmap.emg[side]
            groups.append((chans, [emg_scale(c.dimension) or 1.0 for c in chans]))
        if side in cmap.acc:
            trio = cmap.acc[side]
            groups.append((trio, [acc_scale(c.dimension) or 1.0 for c in trio]))
    loaded = _load_all(source, groups)
    loaded.reverse()  # popped in the order of groups
    legs = []
    for leg in LEGS:
        emg_v = emg_ok = acc_v = acc_ok = None
        emg_fs = acc_fs = None
        names: tuple[str, ...] = ()
        if leg in cmap.emg:
            chans = cmap.emg[leg]
            emg_v, emg_ok = _stack(loaded.pop(), source.may_have_gaps)
            emg_fs, names = chans[0].fs_hz, tuple(c.label for c in chans)
        if leg in cmap.acc:
            acc_v, acc_ok = _stack(loaded.pop(), source.may_have_gaps)
            acc_fs = cmap.acc[leg][0].fs_hz
        if emg_v is None and acc_v is None:
            continue
        legs.append(LegSignals(leg=leg, emg_uv=emg_v, emg_fs_hz=emg_fs,
                               emg_channels=names, emg_valid=emg_ok, acc_mg=acc_v,
                               acc_fs_hz=acc_fs, acc_valid=acc_ok))
    return legs


def open_source(path: Path, kind: str) -> FileSource:
    """The channels of an EDF/BDF (``kind="edf"``) or sample file (``"csv"``/``"parquet"``)."""
    return _edf_source(path) if kind == "edf" else _samples_source(path, kind)


@dataclass(frozen=True, slots=True)
class LoadedLegs:
    """A recording file read for the detector (see :func:`load_legs`)."""

    #: The recording's start (EDF stores no time zone: taken as UTC).
    start: datetime
    #: One per mapped leg, ready for :func:`~crampsense.detection.detect_cramps`.
    legs: list[LegSignals]
    #: What was mapped, with notes on what was skipped.
    channels: ChannelMap
    #: ``"EDF"``, ``"EDF+C"``, ``"BDF"``, ``"BDF+C"``, ``"csv"`` or ``"parquet"``.
    file_format: str


def load_legs(path: Path, *, emg: Sequence[str] = (), acc: Sequence[str] = ()) -> LoadedLegs:
    """Read an EDF/EDF+/BDF or CSV/Parquet sample file into the detector's legs in one call.

    Parameters
    ----------
    path : Path
        The recording.
    emg, acc : sequence of str
        Channel mappings as on the command line (``"EMG L=left"``, ``"AX,AY,AZ=right"``); a
        kind without mappings is found from the labels.

    Returns
    -------
    LoadedLegs
        Start, legs, the channel map and the file's format.

    Raises
    ------
    StorageError, ForeignFileError
        The file cannot be read or is of no supported kind (sessions: use
        :func:`~crampsense.pipeline.replay.analyze_session`).
    UsageError
        A bad mapping, or no leg channel found.
    DetectionError
        A rate too low for detection.
    """
    kind = sniff(path)
    if kind == "session":
        raise ForeignFileError(
            f"{path} is a recorded session; replay it with analyze_session (or "
            "`crampsense replay`)", path=str(path))
    source = open_source(path, kind)
    cmap = map_channels(source.channels, emg, acc, where=str(path))
    if not cmap.emg and not cmap.acc:
        shown = ", ".join(repr(ch.label) for ch in source.channels[:30])
        raise UsageError(
            f"no leg EMG or accelerometer channel recognised in {path} (channels: {shown}); "
            "map them, e.g. emg=['EMG L=left'] or acc=['AX,AY,AZ=right']")
    check_rates(cmap)
    return LoadedLegs(source.start, leg_signals(source, cmap), cmap, source.file_format)
