"""From a recorded session file to a :class:`~crampsense.models.Night`: replay, decode, detect.

Replay goes through exactly the decode path live recording uses: every stored notification is
handed, byte for byte, to its device family's ``decode``; the decoded blocks are put back on a
per-stream timeline (sequence numbers and device clocks unwrapped, losses counted, duplicates
dropped); the legs' EMG and accelerometer timelines are aligned on the night's start and given to
the detector.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crampsense.clock import datetime_from_ns
from crampsense.detection import CrampResults, DetectionParams, LegSignals, detect_cramps
from crampsense.devices.base import DeviceProtocol
from crampsense.devices.registry import protocol_for
from crampsense.devices.timeline import StreamTimeline, TimelineBuilder
from crampsense.errors import DecodeError, StorageError
from crampsense.models import CoverageGap, DeviceInfo, Leg, Night, placement_leg
from crampsense.storage.session_log import SessionReader

__all__ = ["SessionAnalysis", "analyze_session", "decode_session"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SessionAnalysis:
    """Everything a replay produced."""

    night: Night
    results: CrampResults
    timelines: dict[tuple[str, str], StreamTimeline]
    frames: int
    undecodable_frames: int
    devices: tuple[DeviceInfo, ...]
    decode_errors: list[str] = field(default_factory=list)
    #: False when the recording has no final "stopped" mark (killed, power loss): up to one
    #: commit interval (at most 1 s) of data before the end may be missing.
    clean_end: bool = True


def _protocol(reader: SessionReader, device: DeviceInfo) -> DeviceProtocol:
    return protocol_for(device.family).from_metadata(reader.device_metadata(device.address))


def decode_session(
    reader: SessionReader, *, progress: Progress | None = None
) -> tuple[dict[tuple[str, str], StreamTimeline], int, int, list[str]]:
    """Decode every stored frame into per-(device, stream) timelines.

    Returns
    -------
    timelines : dict
        ``(device_address, stream) -> StreamTimeline``.
    n_frames, n_undecodable : int
        Frames read, and frames whose bytes did not decode (counted, never fatal).
    errors : list of str
        The first few decode errors, for the report.
    """
    protocols = {d.address: _protocol(reader, d) for d in reader.devices}
    builders: dict[tuple[str, str], TimelineBuilder] = {}
    total = reader.frame_count()
    n = bad = 0
    errors: list[str] = []
    for frame in reader.frames():
        n += 1
        protocol = protocols.get(frame.device_address)
        if protocol is None:
            bad += 1
            continue
        try:
            blocks = protocol.decode(frame)
        except DecodeError as exc:
            bad += 1
            if len(errors) < 5:
                errors.append(f"frame {n} from {frame.device_address}: {exc}")
            continue
        for block in blocks:
            key = (frame.device_address, block.stream)
            builder = builders.get(key)
            if builder is None:
                builder = protocol.timeline_builder(block.stream)
                if builder is None:
                    continue
                builders[key] = builder
            builder.add(block, frame.host_time_ns)
        if progress is not None and n % 50_000 == 0:
            progress(n, total)
    if progress is not None:
        progress(n, total)
    return {k: b.build() for k, b in builders.items()}, n, bad, errors


def _on_grid(
    tl: StreamTimeline, start_ns: int, n_total: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Place a timeline on the night's grid (sample 0 = night start); outside = invalid."""
    n_ch = tl.values.shape[0]
    values = np.zeros((n_ch, n_total), dtype=np.float32)
    valid = np.zeros(n_total, dtype=np.bool_)
    offset = round((tl.t0_host_ns - start_ns) * tl.fs_hz / 1e9)
    src_a = max(0, -offset)
    dst_a = max(0, offset)
    length = min(tl.values.shape[1] - src_a, n_total - dst_a)
    if length > 0:
        values[:, dst_a : dst_a + length] = tl.values[:, src_a : src_a + length]
        valid[dst_a : dst_a + length] = tl.valid[src_a : src_a + length]
    return values, valid


def _legs(
    devices: tuple[DeviceInfo, ...],
    timelines: dict[tuple[str, str], StreamTimeline],
    start_ns: int,
    duration_s: float,
) -> list[LegSignals]:
    legs: list[LegSignals] = []
    for device in devices:
        leg = placement_leg(device.placement)
        emg = timelines.get((device.address, "emg"))
        acc = timelines.get((device.address, "acc"))
        if leg is None or (emg is None and acc is None):
            continue
        emg_v = emg_ok = acc_v = acc_ok = None
        if emg is not None:
            emg_v, emg_ok = _on_grid(emg, start_ns, int(duration_s * emg.fs_hz))
        if acc is not None:
            acc_v, acc_ok = _on_grid(acc, start_ns, int(duration_s * acc.fs_hz))
        legs.append(
            LegSignals(
                leg=leg,
                emg_uv=emg_v,
                emg_fs_hz=emg.fs_hz if emg is not None else None,
                emg_channels=emg.channels if emg is not None else (),
                emg_valid=emg_ok,
                acc_mg=acc_v,
                acc_fs_hz=acc.fs_hz if acc is not None else None,
                acc_valid=acc_ok,
            )
        )
    return legs


#: Coverage is reported at one-second resolution: a second counts as uncovered when any of
#: its samples is missing or flagged. Finer spans would only add noise to the summary.
COVERAGE_RESOLUTION_S = 1.0
_OK, _FLAGGED, _MISSING = 0, 1, 2
_REASONS = {_FLAGGED: "lead-off", _MISSING: "no data"}


def _coverage_gaps(
    devices: tuple[DeviceInfo, ...],
    timelines: dict[tuple[str, str], StreamTimeline],
    start_ns: int,
    duration_s: float,
) -> list[tuple[Leg, float, float, str]]:
    """Uncovered spans per leg: ``"no data"`` (nothing received: out of range, link dropped,
    lost packets) or ``"lead-off"`` (received, but the device flagged the electrodes off or
    the signal saturated). Time is never called cramp-free where it is uncovered."""
    n_sec = max(1, int(duration_s // COVERAGE_RESOLUTION_S))
    out: list[tuple[Leg, float, float, str]] = []
    for device in devices:
        leg = placement_leg(device.placement)
        tl = timelines.get((device.address, "emg")) or timelines.get((device.address, "acc"))
        if leg is None or tl is None:
            continue
        per_s = round(tl.fs_hz * COVERAGE_RESOLUTION_S)
        n = n_sec * per_s
        received = np.ones(tl.values.shape[1], dtype=np.bool_)
        for a, b in tl.gaps:
            received[a:b] = False
        state_src = np.where(received, np.where(tl.valid, _OK, _FLAGGED), _MISSING).astype(
            np.int8
        )
        state = np.full(n, _MISSING, dtype=np.int8)
        offset = round((tl.t0_host_ns - start_ns) * tl.fs_hz / 1e9)
        src_a, dst_a = max(0, -offset), max(0, offset)
        length = min(state_src.size - src_a, n - dst_a)
        if length > 0:
            state[dst_a : dst_a + length] = state_src[src_a : src_a + length]
        worst = state.reshape(n_sec, per_s).max(axis=1)
        change = np.flatnonzero(np.diff(worst)) + 1
        bounds = np.concatenate(([0], change, [n_sec]))
        for a, b in itertools.pairwise(bounds.tolist()):
            code = int(worst[a])
            if code != _OK:
                out.append(
                    (leg, a * COVERAGE_RESOLUTION_S, min(b * COVERAGE_RESOLUTION_S, duration_s),
                     _REASONS[code])
                )
    return out


def analyze_session(
    path: Path,
    *,
    params: DetectionParams | None = None,
    progress: Progress | None = None,
) -> SessionAnalysis:
    """Replay a session file through decode and detection.

    Raises
    ------
    ForeignFileError, CorruptFileError
        Not a session file, or damaged beyond its intact prefix.
    StorageError
        The session holds no decodable leg signal.
    """
    with SessionReader(path) as reader:
        devices = tuple(reader.devices)
        timelines, n, bad, errors = decode_session(reader, progress=progress)
        first_ns, last_ns = reader.time_span_ns()
        marks = reader.marks()
        clean_end = bool(marks) and marks[-1].kind == "stopped"
        start_ns = int(reader.metadata.get("start_ns", first_ns))
        end_ns = max(last_ns, start_ns)
    duration_s = (end_ns - start_ns) / 1e9
    legs = _legs(devices, timelines, start_ns, duration_s)
    if not legs:
        raise StorageError(
            f"{path} holds no EMG or accelerometer data from a device worn on a leg "
            f"({n} frames, {bad} undecodable); pair a band with --placement left-calf or "
            "right-calf and record again",
            path=str(path),
        )
    start = datetime_from_ns(start_ns)
    results = detect_cramps(legs, start=start, params=params)
    gaps = tuple(
        CoverageGap(
            start=start + timedelta(seconds=a_s),
            end=start + timedelta(seconds=b_s),
            leg=leg,
            reason=reason,
        )
        for leg, a_s, b_s, reason in _coverage_gaps(devices, timelines, start_ns, duration_s)
    )
    monitored: tuple[Leg, ...] = tuple(sorted({lg.leg for lg in legs}))
    night = Night(
        start=start,
        end=start + timedelta(seconds=duration_s),
        devices=devices,
        events=tuple(results.to_events()),
        gaps=gaps,
        legs=monitored,
        session_path=str(path),
        lost_frames=sum(t.lost_packets for t in timelines.values()),
    )
    return SessionAnalysis(
        night=night,
        results=results,
        timelines=timelines,
        frames=n,
        undecodable_frames=bad,
        devices=devices,
        decode_errors=errors,
        clean_end=clean_end,
    )
