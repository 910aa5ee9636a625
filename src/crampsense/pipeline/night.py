"""The overnight service: record every notification, decode and detect live, raise alarms.

The flow of ``crampsense night``. One :class:`~crampsense.transport.ingest.IngestSession` per
paired device keeps it connected all night (capped, jittered back-off, a fresh scan and client
after every drop, a watchdog for silent stalls, streams restarted after every reconnect);
every notification goes, byte for byte, into the night's crash-safe
:class:`~crampsense.storage.session_log.SessionWriter`; and the same frames are decoded and
fed, leg by leg, to a :class:`~crampsense.detection.StreamingDetector`, whose provisional
alarms, final events and retractions become :class:`NightNotice`\\ s: logged to the night's
log file within seconds, handed to the caller, and given to the person's ``--on-cramp``
command (:class:`HookRunner`), which never blocks recording.

Nothing here prints; the command line shows :meth:`NightService.status` and the notices.

Continuing a night
------------------
A crash, a ``kill -9`` or a restart of the service continues the *same* night: the session of
a night still running (:func:`plan_night`: its planned end is still ahead) is opened with
``append=True`` and gets a new segment; the replay of the whole session is the night.

Live decoding
-------------
Decoded blocks are placed on the night's sample grid by their host receive time (the
replay's device-clock model needs the whole night; live, the receive time is good to a
fraction of a second): a block that starts more than :data:`GAP_TOLERANCE_S` after the end
of the previous one leaves a gap of invalid samples, and a leg whose device is silent is
padded with invalid samples up to :data:`PAD_LAG_S` before now, so the other leg's final
events are not held back by a device that is away. The live detector's events can therefore
differ from the replay's by a fraction of a second; the morning summary is the replay's.
Memory is bounded: frames wait at most one :data:`TICK_S` before they are decoded and pushed,
and the detector keeps only its hop-level arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crampsense.clock import Clock, datetime_from_ns
from crampsense.detection import DetectionParams
from crampsense.detection.stream import CrampAlarm, StreamingDetector, StreamLeg
from crampsense.devices.base import DeviceProtocol
from crampsense.errors import CrampsenseError, DecodeError, StorageError
from crampsense.models import ACC_UNIT, EMG_UNIT, DeviceInfo, Frame, Leg, MarkKind, placement_leg
from crampsense.pipeline.legs import channel_legs
from crampsense.pipeline.record import SIMULATED_COMMIT_INTERVAL_S, configured_protocol
from crampsense.storage.files import append_line_durable
from crampsense.storage.paired import PairedDevice
from crampsense.storage.session_log import SessionReader, SessionWriter
from crampsense.transport.base import Transport
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import IngestSession, ReconnectPolicy

__all__ = [
    "GAP_TOLERANCE_S",
    "HOOK_TIMEOUT_S",
    "PAD_LAG_S",
    "PUSH_EVERY_S",
    "TICK_S",
    "DeviceStatus",
    "HookRunner",
    "LiveDetection",
    "NightNotice",
    "NightPlan",
    "NightReport",
    "NightService",
    "NightStatus",
    "describe_device",
    "plan_night",
    "run_night",
    "run_night_world",
]

logger = logging.getLogger(__name__)

#: Clock seconds between service ticks: frames received since the last tick are decoded and
#: pushed to the detector, the commit timer runs, link changes are noticed, the status is
#: refreshed. One second keeps alarms within seconds of their evidence and the per-push cost
#: of the detector (its alarm stage runs once per push) far below 1 % of a core.
TICK_S: Final = 1.0
#: Signal seconds pushed to the detector at once, per leg. Each push costs the detector's
#: alarm stage a few milliseconds whatever its length, so pushing every 5 s instead of every
#: second cuts the cost of live detection about fivefold while alarms still come within
#: seconds (the alarm's own evidence needs min_duration_s of contraction anyway).
PUSH_EVERY_S: Final = 5.0
#: A block whose first sample is due more than this after the end of the previous block of its
#: stream (judged by host receive time) leaves a gap of invalid samples. BLE delivers in bursts
#: up to a few hundred ms apart; a second is well above that jitter and below any gap worth
#: reporting (coverage is counted in whole seconds).
GAP_TOLERANCE_S: Final = 1.0
#: A stream silent for longer than this (clock s) is padded with invalid samples up to
#: PAD_LAG_S before now, so that final events of the other leg are not held back all night by
#: a device that is away.
PAD_AFTER_S: Final = 5.0
PAD_LAG_S: Final = 2.0
#: A hook (``--on-cramp``) gets this long (real s) before it is killed: enough to send a
#: message or play a sound, short enough that a hung command cannot pile up.
HOOK_TIMEOUT_S: Final = 30.0
#: Hooks running at once, and waiting; beyond that a hook is skipped (and the skip logged):
#: a person's command must never take the machine's memory or block recording.
MAX_HOOKS_RUNNING: Final = 2
MAX_HOOKS_WAITING: Final = 32
#: Characters of a hook's standard error kept in its log line.
HOOK_STDERR_CHARS: Final = 300
#: The data rate in the status is averaged over this many clock seconds.
RATE_WINDOW_S: Final = 10.0
#: After this long (clock s) without a first connection, a device is named as missing.
MISSING_AFTER_S: Final = 60.0
#: Notices kept for the status display (the log file keeps all of them).
RECENT_NOTICES: Final = 20
#: Frames not decoded within a tick stay queued at most this many per device; a device that
#: floods (or a stalled event loop) cannot grow memory without bound. At 1 kHz a band sends
#: ~40 notifications per second, so this is minutes of data.
MAX_QUEUED_FRAMES: Final = 20_000
#: Real seconds to wait for simulated devices to connect before the simulated night moves.
CONNECT_WAIT_S: Final = 5.0
#: Metadata keys of a night's session (the service writes them, :func:`plan_night` reads them).
SERVICE_KEY: Final = "service"
UNTIL_KEY: Final = "night_until_ns"
#: Set when a night reached its planned end: such a session is never continued.
ENDED_KEY: Final = "night_ended"


# --------------------------------------------------------------------------- notices


@dataclass(frozen=True, slots=True)
class NightNotice:
    """One line of the night's log.

    Attributes
    ----------
    kind : str
        ``"alarm"`` (a provisional cramp onset), ``"event"`` (a final event), ``"retracted"``
        (an alarm the final stage rejected), ``"hook"`` (what the ``--on-cramp`` command did),
        ``"link"`` (a device connected or was lost), ``"missing"`` (a paired device that has
        not connected), ``"storage"`` (the session file could not be written, or can again),
        ``"night"`` (the service started, continued or ended the night).
    time_ns : int
        Host wall-clock time (Unix ns) of the notice.
    text : str
        One line for a person.
    data : mapping
        The details as JSON-able values (what ``--on-cramp`` gets on standard input).
    """

    kind: str
    time_ns: int
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The notice as one JSON object (one line)."""
        doc = {"kind": self.kind, "time": datetime_from_ns(self.time_ns).isoformat(),
               "text": self.text, **self.data}
        return json.dumps(doc, sort_keys=True, default=str)


def describe_device(device: DeviceInfo | PairedDevice) -> str:
    """``"right calf (crampsense band R, C5:A3:00:00:00:02)"``: how a person knows a device."""
    where = device.placement.replace("-", " ")
    return f"{where} ({device.name or device.family}, {device.address})"


# --------------------------------------------------------------------------- live decoding


@dataclass(frozen=True, slots=True)
class _Route:
    """One stream of one device feeding one leg's detector input."""

    leg: Leg
    address: str
    stream: str
    rows: tuple[int, ...]
    channels: tuple[str, ...]
    fs_hz: float
    lead_off_mask: int


def choose_live_routes(
    devices: Sequence[DeviceInfo], protocols: Mapping[str, DeviceProtocol]
) -> list[_Route]:
    """Per leg, the one EMG and the one accelerometer stream the live detector reads.

    The same rule as the replay's ``choose_leg_sources``, decided before any data from what
    the devices say they stream: the EMG with the highest rate (ties: pairing order), the
    accelerometer of the same device if it has one, else the first paired one on that leg.
    """
    emg: dict[Leg, list[tuple[float, int, _Route]]] = {}
    acc: dict[Leg, list[tuple[int, _Route]]] = {}
    for order, device in enumerate(devices):
        protocol = protocols[device.address]
        own = placement_leg(device.placement)
        for cap in protocol.capabilities():
            if cap.fs_hz is None:
                continue
            builder = protocol.timeline_builder(cap.stream)
            mask = builder.lead_off_mask if builder is not None else 0
            if cap.stream == "emg" and cap.unit == EMG_UNIT:
                split = channel_legs(protocol.metadata(), cap.channels)
                if not split and own is not None:
                    split = {own: tuple(range(len(cap.channels)))}
                for emg_leg, rows in split.items():
                    route = _Route(emg_leg, device.address, "emg", rows,
                                   tuple(cap.channels[i] for i in rows), cap.fs_hz, mask)
                    emg.setdefault(emg_leg, []).append((cap.fs_hz, -order, route))
            elif cap.stream == "acc" and cap.unit == ACC_UNIT and own is not None:
                route = _Route(own, device.address, "acc", tuple(range(len(cap.channels))),
                               cap.channels, cap.fs_hz, mask)
                acc.setdefault(own, []).append((-order, route))
    out: list[_Route] = []
    leg: Leg
    for leg in ("left", "right"):
        best = max(emg.get(leg, []), default=None, key=lambda c: c[:2])
        if best is not None:
            out.append(best[2])
        candidates = acc.get(leg, [])
        same = [c for c in candidates if best is not None and c[1].address == best[2].address]
        pick = max(same or candidates, default=None, key=lambda c: c[0])
        if pick is not None:
            out.append(pick[1])
    return out


class _LiveGrid:
    """One routed stream placed on the night's sample grid (sample 0 = the detector's start)."""

    def __init__(self, route: _Route, start_ns: int) -> None:
        self.route = route
        self.start_ns = start_ns
        self.pos = 0  # next grid index to fill
        self.last_host_ns: int | None = None
        self.valid_samples = 0
        self._values: list[npt.NDArray[np.float32]] = []
        self._valid: list[npt.NDArray[np.bool_]] = []
        self._tolerance = max(1, round(GAP_TOLERANCE_S * route.fs_hz))

    def _index(self, host_ns: int) -> int:
        return round((host_ns - self.start_ns) * self.route.fs_hz / 1e9)

    def _pad(self, n: int) -> None:
        if n > 0:
            self._values.append(np.zeros((len(self.route.rows), n), dtype=np.float32))
            self._valid.append(np.zeros(n, dtype=np.bool_))
            self.pos += n

    def add(self, values: npt.NDArray[np.float32], flags: int, host_ns: int) -> None:
        """One decoded packet of the stream, received at ``host_ns``."""
        rows = self.route.rows
        x = values if len(rows) == values.shape[0] else values[list(rows)]
        n = int(x.shape[1])
        self.last_host_ns = host_ns
        if n == 0:
            return
        first = self._index(host_ns) - n
        if first - self.pos > self._tolerance:
            self._pad(first - self.pos)
        elif self.pos - first > self._tolerance + n:
            return  # wholly inside time already padded (a clock step): drop it
        elif self.pos - first > self._tolerance:
            x = x[:, self.pos - first - self._tolerance:]
            n = int(x.shape[1])
        ok = not (flags & self.route.lead_off_mask)
        self._values.append(np.asarray(x, dtype=np.float32))
        self._valid.append(np.full(n, ok, dtype=np.bool_))
        self.pos += n
        if ok:
            self.valid_samples += n

    def pad_if_silent(self, now_ns: int) -> None:
        """Pad with invalid samples up to PAD_LAG_S before now if silent for PAD_AFTER_S."""
        last = self.last_host_ns if self.last_host_ns is not None else self.start_ns
        if now_ns - last > PAD_AFTER_S * 1e9:
            self._pad(self._index(now_ns - round(PAD_LAG_S * 1e9)) - self.pos)

    def take(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]] | None:
        """Everything placed since the last call (``None`` if nothing)."""
        if not self._values:
            return None
        values = (self._values[0] if len(self._values) == 1
                  else np.concatenate(self._values, axis=1))
        valid = self._valid[0] if len(self._valid) == 1 else np.concatenate(self._valid)
        self._values, self._valid = [], []
        return values, valid


class LiveDetection:
    """Decode frames as they arrive and detect cramps leg by leg.

    Parameters
    ----------
    devices : sequence of DeviceInfo
    protocols : mapping of address to DeviceProtocol
        Each device's configured protocol.
    start_ns : int
        Host time (Unix ns) of sample 0 of the detector's grid.
    params : DetectionParams, optional
    push_every_s : float
        Clock seconds between pushes of a leg's new samples to the detector.
    """

    def __init__(
        self,
        devices: Sequence[DeviceInfo],
        protocols: Mapping[str, DeviceProtocol],
        *,
        start_ns: int,
        params: DetectionParams | None = None,
        push_every_s: float = PUSH_EVERY_S,
    ) -> None:
        self.push_every_ns = round(push_every_s * 1e9)
        self._pushed_ns = start_ns
        self.devices = {d.address: d for d in devices}
        self.protocols = dict(protocols)
        self.start_ns = start_ns
        self.start = datetime_from_ns(start_ns)
        self.routes = choose_live_routes(devices, protocols)
        self._grids: dict[tuple[str, str], list[_LiveGrid]] = {}
        for route in self.routes:
            self._grids.setdefault((route.address, route.stream), []).append(
                _LiveGrid(route, start_ns))
        legs: list[StreamLeg] = []
        for leg in ("left", "right"):
            e = next((r for r in self.routes if r.leg == leg and r.stream == "emg"), None)
            a = next((r for r in self.routes if r.leg == leg and r.stream == "acc"), None)
            if e is None and a is None:
                continue
            legs.append(StreamLeg(leg, emg_fs_hz=e.fs_hz if e else None,
                                  emg_channels=e.channels if e else (),
                                  acc_fs_hz=a.fs_hz if a else None))
        self.detector = (StreamingDetector(legs, start=self.start, params=params)
                         if legs else None)
        self._queue: dict[str, deque[Frame]] = {a: deque() for a in self.devices}
        self.frames: dict[str, int] = dict.fromkeys(self.devices, 0)
        self.dropped_frames = 0
        self.undecodable = 0
        self.battery: dict[str, int] = {}
        self.alarms: list[CrampAlarm] = []
        self.events = 0
        self.cramps = 0
        self._returned: set[tuple[str, float]] = set()

    @property
    def legs(self) -> tuple[Leg, ...]:
        """Legs the detector watches."""
        return tuple(sorted({r.leg for r in self.routes}))

    def add(self, frame: Frame) -> None:
        """Queue one received frame (called for every notification; cheap)."""
        queue = self._queue.get(frame.device_address)
        if queue is None:
            return
        if len(queue) >= MAX_QUEUED_FRAMES:
            queue.popleft()
            self.dropped_frames += 1
        queue.append(frame)
        self.frames[frame.device_address] += 1

    def coverage_s(self, leg: Leg) -> float:
        """Seconds of valid signal so far on ``leg`` (its EMG if it has one, else its acc)."""
        mine = [g for gs in self._grids.values() for g in gs if g.route.leg == leg]
        pick = next((g for g in mine if g.route.stream == "emg"), mine[0] if mine else None)
        return 0.0 if pick is None else pick.valid_samples / pick.route.fs_hz

    def _decode(self, address: str) -> None:
        queue = self._queue[address]
        if not queue:
            return
        frames = list(queue)
        queue.clear()
        protocol = self.protocols[address]
        for frame in frames:
            try:
                blocks = protocol.decode(frame)
            except DecodeError as exc:
                self.undecodable += 1
                logger.debug("%s: undecodable frame: %s", address, exc)
                continue
            for block in blocks:
                if block.stream == "status" and "battery_percent" in block.channels:
                    row = block.channels.index("battery_percent")
                    if block.values.shape[1]:
                        self.battery[address] = int(block.values[row, -1])
                for grid in self._grids.get((address, block.stream), ()):
                    grid.add(block.values, block.flags, frame.host_time_ns)

    def step(self, now_ns: int, *, final: bool = False) -> list[NightNotice]:
        """Decode what was queued; every ``push_every_s`` (or when ``final``), push the new
        samples to the detector; the alarms, events and retractions it gave."""
        for address in self._queue:
            self._decode(address)
        if self.detector is None or (now_ns - self._pushed_ns < self.push_every_ns
                                     and not final):
            return []
        self._pushed_ns = now_ns
        out: list[NightNotice] = []
        for leg in self.legs:
            pushed: dict[str, Any] = {}
            for grids in self._grids.values():
                for grid in grids:
                    if grid.route.leg != leg:
                        continue
                    grid.pad_if_silent(now_ns)
                    got = grid.take()
                    if got is None:
                        continue
                    if grid.route.stream == "emg":
                        pushed.update(emg_uv=got[0], emg_valid=got[1])
                    else:
                        pushed.update(acc_mg=got[0], acc_valid=got[1])
            if not pushed:
                continue
            update = self.detector.push(leg, **pushed)
            out += [self._alarm_notice(a, now_ns) for a in update.alarms]
            out += self._event_notices(update.events, now_ns)
            out += [self._retracted_notice(a, now_ns) for a in update.retracted]
        return out

    def finish(self, now_ns: int) -> list[NightNotice]:
        """End of the night: decode the rest and return the events not final until now."""
        out = self.step(now_ns, final=True)
        if self.detector is None:
            return out
        results = self.detector.finish()
        out += self._event_notices(results.events, now_ns)
        return out

    def _when(self, offset_s: float) -> str:
        return (self.start + timedelta(seconds=offset_s)).isoformat()

    def _alarm_notice(self, alarm: CrampAlarm, now_ns: int) -> NightNotice:
        self.alarms.append(alarm)
        delay_s = (now_ns - self.start_ns) / 1e9 - alarm.alarm_s
        data = {"leg": alarm.leg, "onset": self._when(alarm.onset_s),
                "alarm": self._when(alarm.alarm_s), "ratio": round(alarm.ratio, 2),
                "delay_s": round(delay_s, 1)}
        onset = datetime_from_ns(self.start_ns + round(alarm.onset_s * 1e9))
        return NightNotice("alarm", now_ns,
                           f"possible cramp starting in the {alarm.leg} leg at "
                           f"{onset.astimezone():%H:%M:%S} (provisional)", data)

    def _retracted_notice(self, alarm: CrampAlarm, now_ns: int) -> NightNotice:
        data = {"leg": alarm.leg, "onset": self._when(alarm.onset_s),
                "alarm": self._when(alarm.alarm_s)}
        onset = datetime_from_ns(self.start_ns + round(alarm.onset_s * 1e9))
        return NightNotice("retracted", now_ns,
                           f"the {alarm.leg}-leg alarm of {onset.astimezone():%H:%M:%S} was not "
                           "a cramp after all (withdrawn)", data)

    def _event_notices(self, events: Any, now_ns: int) -> list[NightNotice]:
        out: list[NightNotice] = []
        for row in events.iter_rows(named=True):
            key = (str(row["leg"]), round(float(row["onset_s"]), 3))
            if key in self._returned:
                continue
            self._returned.add(key)
            self.events += 1
            self.cramps += row["kind"] == "cramp"
            data = {"leg": row["leg"], "onset": row["onset"].isoformat(),
                    "offset": row["offset"].isoformat(),
                    "duration_s": round(float(row["duration_s"]), 1),
                    "event_kind": row["kind"], "severity": row["severity"],
                    "confidence": round(float(row["confidence"]), 3),
                    "evidence": row["evidence"], "woke": row["woke"],
                    "got_up": row["got_up"], "stretched": row["stretched"]}
            what = "cramp" if row["kind"] == "cramp" else "possible cramp"
            text = (f"{what} in the {row['leg']} leg at {row['onset'].astimezone():%H:%M:%S}, "
                    f"{float(row['duration_s']):.0f} s, {row['severity'] or 'no severity'}")
            out.append(NightNotice("event", now_ns, text, data))
        return out


# --------------------------------------------------------------------------- hooks


class HookRunner:
    """Run the person's command for each alarm, event and retraction, never blocking.

    The command gets the notice as one JSON object on standard input (see
    :meth:`NightNotice.to_json`); it is killed after ``timeout_s``; what it did (exit status,
    time, the end of its standard error) comes back as a ``"hook"`` notice. At most
    :data:`MAX_HOOKS_RUNNING` run at once and :data:`MAX_HOOKS_WAITING` wait; more are
    skipped, and the skip is logged.

    Parameters
    ----------
    argv : sequence of str
        The command and its arguments (no shell).
    timeout_s : float
    on_result : callable
        Receives each ``"hook"`` notice.
    clock : Clock
        For the notices' times.
    """

    def __init__(self, argv: Sequence[str], *, on_result: Callable[[NightNotice], None],
                 clock: Clock, timeout_s: float = HOOK_TIMEOUT_S) -> None:
        if not argv:
            msg = "the --on-cramp command is empty; give a program to run"
            raise StorageError(msg)
        self.argv = tuple(argv)
        self.timeout_s = timeout_s
        self.on_result = on_result
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self.skipped = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None

    def submit(self, notice: NightNotice) -> None:
        """Start the command for ``notice`` in the background (or skip it if too many wait)."""
        if len(self._tasks) >= MAX_HOOKS_RUNNING + MAX_HOOKS_WAITING:
            self.skipped += 1
            self.on_result(NightNotice("hook", self.clock.now_ns(),
                                       f"on-cramp command skipped for the {notice.kind}: "
                                       f"{len(self._tasks)} are still running or waiting",
                                       {"for": notice.kind, "status": "skipped"}))
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(MAX_HOOKS_RUNNING)
        task = asyncio.get_running_loop().create_task(self._run(notice, self._slots))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, notice: NightNotice, slots: asyncio.Semaphore) -> None:
        async with slots:
            t0 = time.monotonic()
            name = Path(self.argv[0]).name
            data: dict[str, Any] = {"for": notice.kind, "command": name}
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
                    start_new_session=True)
            except OSError as exc:
                self.failures += 1
                data["status"] = "not started"
                self._result(f"on-cramp command `{name}` could not start: "
                             f"{exc.strerror or exc}", data)
                return
            self.runs += 1
            try:
                _, err = await asyncio.wait_for(
                    proc.communicate((notice.to_json() + "\n").encode()), self.timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                self.failures += 1
                data.update(status="timed out", timeout_s=self.timeout_s)
                self._result(f"on-cramp command `{name}` for the {notice.kind} took longer than "
                             f"{self.timeout_s:g} s and was killed", data)
                return
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                raise
            took_s = time.monotonic() - t0
            tail = err.decode("utf-8", "replace").strip()[-HOOK_STDERR_CHARS:]
            data.update(status="exited", exit_status=proc.returncode, took_s=round(took_s, 2))
            if tail:
                data["stderr"] = tail
            if proc.returncode:
                self.failures += 1
            self._result(f"on-cramp command `{name}` for the {notice.kind} exited with status "
                         f"{proc.returncode} after {took_s:.1f} s"
                         + (f": {tail.splitlines()[-1]}" if tail else ""), data)

    def _result(self, text: str, data: dict[str, Any]) -> None:
        self.on_result(NightNotice("hook", self.clock.now_ns(), text, data))

    async def drain(self, timeout_s: float) -> None:
        """Let running hooks finish for up to ``timeout_s`` real seconds, then kill them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device as the live status shows it."""

    device: DeviceInfo
    link: str  # a LINK_STATES value, or "never connected"
    battery_percent: int | None
    frames_per_s: float
    frames: int
    connects: int
    drops: int
    stalls: int
    failed_attempts: int
    last_error: str


@dataclass(frozen=True, slots=True)
class NightStatus:
    """What the service is doing, for a status display."""

    now_ns: int
    start_ns: int
    until_ns: int | None
    devices: tuple[DeviceStatus, ...]
    coverage_s: Mapping[str, float]
    alarms: int
    events: int
    cramps: int
    storage_problem: str | None
    frames_written: int
    recent: tuple[NightNotice, ...]

    @property
    def elapsed_s(self) -> float:
        return max(0.0, (self.now_ns - self.start_ns) / 1e9)


@dataclass(frozen=True)
class NightReport:
    """What a night (or one segment of it) did."""

    path: Path
    frames: int
    drops: int
    stalls: int
    failed_attempts: int
    restarts: int
    never_connected: tuple[DeviceInfo, ...]
    alarms: int
    events: int
    cramps: int
    undecodable: int
    refused_frames: int
    hook_runs: int
    hook_failures: int
    simulated_s: float
    wall_s: float


class _GuardedSink:
    """The session writer as the ingest sessions' sink, where a full disk is not fatal.

    A failed commit (disk full, I/O error) keeps the frames in the writer's memory and is
    retried at the next commit; while it lasts the service says so once, and once more when
    the disk takes data again. Frames the writer could not even hold are counted as refused.
    """

    def __init__(self, writer: SessionWriter, service: NightService) -> None:
        self.writer = writer
        self.service = service

    def append(self, frame: Frame) -> None:
        before = self.writer.pending_frames
        try:
            self.writer.append(frame)
        except StorageError as exc:
            if self.writer.pending_frames <= before:
                self.service.refused_frames += 1
            self.service.storage_failed(exc)
        self.service.live_add(frame)

    def mark(self, kind: MarkKind, *, device_address: str | None = None,
             detail: str = "") -> None:
        try:
            self.writer.mark(kind, device_address=device_address, detail=detail)
        except StorageError as exc:
            self.service.storage_failed(exc)

    def flush(self) -> None:
        try:
            self.writer.flush()
        except StorageError as exc:
            self.service.storage_failed(exc)


class NightService:
    """Record, decode and detect a night from paired devices, until stopped.

    Parameters
    ----------
    transport : Transport
        Real Bluetooth or a simulated world's backends.
    devices : sequence of PairedDevice
    writer : SessionWriter
        The night's session, open (new or continued).
    clock : Clock
    policy : ReconnectPolicy
    start_ns : int
        Sample 0 of the live detector (the start of this segment).
    protocol_options, device_info : mapping, optional
        As for :func:`~crampsense.pipeline.record.record_devices`.
    params : DetectionParams, optional
    detect : bool
        Decode and detect live (the default); ``False`` only records.
    push_every_s : float
        See :class:`LiveDetection`.
    hook_argv : sequence of str, optional
        The ``--on-cramp`` command.
    hook_timeout_s : float
    log_path : Path, optional
        The night's log: one JSON line per notice, appended durably (owner-only).
    on_notice : callable, optional
        Receives every notice as it happens.
    until_ns : int, optional
        Host wall-clock time at which the night ends.
    """

    def __init__(
        self,
        transport: Transport,
        devices: Sequence[PairedDevice],
        writer: SessionWriter,
        *,
        clock: Clock,
        policy: ReconnectPolicy,
        start_ns: int,
        protocol_options: Mapping[str, Mapping[str, Any]] | None = None,
        device_info: Mapping[str, Mapping[str, str]] | None = None,
        params: DetectionParams | None = None,
        detect: bool = True,
        push_every_s: float = PUSH_EVERY_S,
        hook_argv: Sequence[str] | None = None,
        hook_timeout_s: float = HOOK_TIMEOUT_S,
        log_path: Path | None = None,
        on_notice: Callable[[NightNotice], None] | None = None,
        until_ns: int | None = None,
    ) -> None:
        self.transport = transport
        self.writer = writer
        self.clock = clock
        self.policy = policy
        self.start_ns = start_ns
        self.until_ns = until_ns
        self.log_path = log_path
        self.on_notice = on_notice
        self.refused_frames = 0
        self.storage_problem: str | None = None
        self._written_at_failure = 0
        self._recent: deque[NightNotice] = deque(maxlen=RECENT_NOTICES)
        self._log_failed = False
        self.devices: list[DeviceInfo] = []
        protocols: dict[str, DeviceProtocol] = {}
        for p in devices:
            options = dict((protocol_options or {}).get(p.family, {}))
            info = dict((device_info or {}).get(p.address.lower(), {}))
            protocols[p.address] = configured_protocol(p.family, info, options)
            self.devices.append(DeviceInfo(address=p.address, name=p.name, family=p.family,
                                           placement=p.placement, firmware=p.firmware))
        self.protocols = protocols
        self.live = (LiveDetection(self.devices, protocols, start_ns=start_ns, params=params,
                                   push_every_s=push_every_s) if detect else None)
        self.hooks = (HookRunner(hook_argv, on_result=self._notice, clock=clock,
                                 timeout_s=hook_timeout_s) if hook_argv else None)
        sink = _GuardedSink(writer, self)
        self.sessions = [
            IngestSession(transport, protocols[d.address], sink, d, clock=clock, policy=policy,
                          seed=i)
            for i, d in enumerate(self.devices)
        ]
        self._seen = [(0, 0, 0) for _ in self.sessions]
        mono = clock.monotonic_ns()
        self._rate: list[tuple[int, int]] = [(mono, 0) for _ in self.sessions]
        self._frames_per_s = [0.0 for _ in self.sessions]
        self._missing_named = False
        self.ended_ns: int | None = None
        #: Set when the night reached its planned end (or a simulated night ran out).
        self.reached_end = False

    # -- callbacks -----------------------------------------------------------------------

    def live_add(self, frame: Frame) -> None:
        if self.live is not None:
            self.live.add(frame)

    def storage_failed(self, exc: StorageError) -> None:
        self._written_at_failure = self.writer.frames_written
        if self.storage_problem is None:
            self.storage_problem = str(exc)
            self._notice(NightNotice("storage", self.clock.now_ns(),
                                     f"cannot write the night: {exc}",
                                     {"path": str(self.writer.path), "status": "failing"}))

    def _notice(self, notice: NightNotice) -> None:
        self._recent.append(notice)
        logger.info("%s: %s", notice.kind, notice.text)
        if self.log_path is not None:
            try:
                append_line_durable(self.log_path, notice.to_json().encode("utf-8"))
                self._log_failed = False
            except StorageError as exc:
                if not self._log_failed:
                    logger.warning("cannot write the night log: %s", exc)
                self._log_failed = True
        if notice.kind in ("alarm", "event", "retracted"):
            with contextlib.suppress(StorageError):
                self.writer.mark(MarkKind.NOTE, detail=f"{notice.kind}: {notice.text}")
            if self.hooks is not None:
                self.hooks.submit(notice)
        if self.on_notice is not None:
            self.on_notice(notice)

    # -- the tick --------------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.clock.now_ns()
        try:
            committed = self.writer.commit_if_due()
        except StorageError as exc:
            self.storage_failed(exc)
        else:
            written = self.writer.frames_written > self._written_at_failure
            if self.storage_problem is not None and (committed or written):
                self.storage_problem = None
                self._notice(NightNotice(
                    "storage", now, f"writing the night to {self.writer.path} again"
                    + (f" ({self.refused_frames} notifications could not be kept meanwhile)"
                       if self.refused_frames else " (nothing lost)"),
                    {"path": str(self.writer.path), "status": "resumed",
                     "refused_frames": self.refused_frames}))
        mono = self.clock.monotonic_ns()
        for i, s in enumerate(self.sessions):
            st = s.stats
            connects, lost, stalls = self._seen[i]
            # a link lost and back within one tick: first the loss, then the connect
            if st.drops + st.stalls > lost + stalls:
                why = "went silent" if st.stalls > stalls else "was lost"
                self._notice(NightNotice("link", now,
                                         f"{describe_device(s.device)} {why}; reconnecting",
                                         {"address": s.device.address, "status": "lost"}))
            if st.connects > connects:
                self._notice(NightNotice("link", now, f"{describe_device(s.device)} connected",
                                         {"address": s.device.address, "status": "connected"}))
            self._seen[i] = (st.connects, st.drops, st.stalls)
            t0, f0 = self._rate[i]
            if mono - t0 >= RATE_WINDOW_S * 1e9:
                self._frames_per_s[i] = (st.frames - f0) / ((mono - t0) / 1e9)
                self._rate[i] = (mono, st.frames)
        if not self._missing_named and (now - self.start_ns) / 1e9 >= MISSING_AFTER_S:
            self._missing_named = True
            for s in self.sessions:
                if s.stats.connects == 0:
                    self._notice(NightNotice(
                        "missing", now, f"{describe_device(s.device)}: not connected yet; "
                        "still trying (is it switched on, charged and in range?)",
                        {"address": s.device.address, "placement": s.device.placement}))
        if self.live is not None:
            for notice in self.live.step(now):
                self._notice(notice)

    def status(self) -> NightStatus:
        """A snapshot for the status display."""
        devices = []
        for i, s in enumerate(self.sessions):
            st = s.stats
            link = "never connected" if st.connects == 0 and s.state != "streaming" else s.state
            devices.append(DeviceStatus(
                device=s.device, link=link,
                battery_percent=None if self.live is None else self.live.battery.get(
                    s.device.address),
                frames_per_s=self._frames_per_s[i], frames=st.frames, connects=st.connects,
                drops=st.drops, stalls=st.stalls, failed_attempts=st.failed_attempts,
                last_error=st.errors[-1] if st.errors else ""))
        live = self.live
        return NightStatus(
            now_ns=self.clock.now_ns(), start_ns=self.start_ns, until_ns=self.until_ns,
            devices=tuple(devices),
            coverage_s={leg: live.coverage_s(leg) for leg in live.legs} if live else {},
            alarms=len(live.alarms) if live else 0, events=live.events if live else 0,
            cramps=live.cramps if live else 0, storage_problem=self.storage_problem,
            frames_written=self.writer.frames_written, recent=tuple(self._recent))

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, hook_drain_s: float = 5.0) -> NightReport:
        """Record until ``stop`` is set or the clock reaches ``until_ns``; then end cleanly.

        Everything received is committed (or, on a full disk, kept in memory while the file
        closes is retried); every paired device that never connected is named.
        """
        t0 = time.perf_counter()
        mono0 = self.clock.monotonic_ns()
        writer = self.writer
        for d in self.devices:
            try:
                writer.add_device(d, self.protocols[d.address].metadata())
            except StorageError as exc:
                self.storage_failed(exc)
        with contextlib.suppress(StorageError):
            writer.mark(MarkKind.STARTED, detail=f"night service, {len(self.devices)} device(s)")
        tasks = [asyncio.create_task(s.run(stop)) for s in self.sessions]
        try:
            while not stop.is_set():
                if self.until_ns is not None and self.clock.now_ns() >= self.until_ns:
                    self.reached_end = True
                    break
                await self.clock.sleep(TICK_S)
                self._tick()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            now = self.clock.now_ns()
            self.ended_ns = now
            if self.live is not None:
                self._tick()
                for notice in self.live.finish(now):
                    self._notice(notice)
            never = tuple(s.device for s in self.sessions if s.stats.connects == 0)
            for d in never:
                self._notice(NightNotice("missing", now, f"{describe_device(d)}: never connected",
                                         {"address": d.address, "placement": d.placement}))
            with contextlib.suppress(StorageError):
                if self.reached_end:
                    writer.set_metadata(ENDED_KEY, "true")
                writer.mark(MarkKind.STOPPED)
            try:
                writer.flush()
            except StorageError as exc:
                self.storage_failed(exc)
            if self.hooks is not None:
                await self.hooks.drain(hook_drain_s)
        stats = [s.stats for s in self.sessions]
        live = self.live
        return NightReport(
            path=writer.path, frames=sum(s.frames for s in stats),
            drops=sum(s.drops for s in stats), stalls=sum(s.stalls for s in stats),
            failed_attempts=sum(s.failed_attempts for s in stats),
            restarts=sum(s.restarts for s in stats), never_connected=never,
            alarms=len(live.alarms) if live else 0, events=live.events if live else 0,
            cramps=live.cramps if live else 0,
            undecodable=live.undecodable if live else 0, refused_frames=self.refused_frames,
            hook_runs=self.hooks.runs if self.hooks else 0,
            hook_failures=self.hooks.failures if self.hooks else 0,
            simulated_s=(self.clock.monotonic_ns() - mono0) / 1e9,
            wall_s=time.perf_counter() - t0)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class NightPlan:
    """Which session the night goes into.

    Attributes
    ----------
    path : Path
    append : bool
        Continue an existing session (a new segment) rather than create it.
    start_ns : int
        The night's start (the session's ``start_ns``).
    until_ns : int or None
        When the night ends (host wall clock), ``None``: until stopped.
    resume_ns : int or None
        When continuing: the host time of the last thing the session holds.
    """

    path: Path
    append: bool
    start_ns: int
    until_ns: int | None
    resume_ns: int | None = None


def _newest_sessions(sessions_dir: Path, n: int) -> list[Path]:
    if not sessions_dir.is_dir():
        return []
    return sorted(sessions_dir.glob("*.session"))[-n:][::-1]


def plan_night(sessions_dir: Path, now_ns: int, until_ns: int | None, *,
               simulated: bool = False) -> NightPlan:
    """Continue the night still running in ``sessions_dir``, or start a new one.

    A session written by the service (real or ``simulated`` alike) that has not reached its
    planned end, whose planned end is still ahead of ``now_ns`` (the service was killed,
    crashed, or was restarted), is continued; otherwise a new session named by ``now_ns`` is
    planned. A damaged or foreign file is never continued.
    """
    from crampsense.pipeline.record import session_path_for  # noqa: PLC0415 - one helper

    for path in _newest_sessions(sessions_dir, 3):
        try:
            with SessionReader(path) as reader:
                meta = dict(reader.metadata)
                last_ns = reader.time_span_ns()[1]
        except CrampsenseError as exc:
            logger.debug("%s not continued: %s", path, exc)
            continue
        if (meta.get(SERVICE_KEY) != "night" or meta.get(ENDED_KEY) == "true"
                or meta.get("simulated") != str(simulated).lower()):
            continue
        try:
            start = int(meta["start_ns"])
            until = int(meta[UNTIL_KEY]) if meta.get(UNTIL_KEY) else None
        except (KeyError, ValueError):
            continue
        if simulated:
            now_ns = max(now_ns, last_ns)
        if start <= now_ns and (until is None or now_ns < until):
            return NightPlan(path, True, start, until, resume_ns=last_ns)
    return NightPlan(session_path_for(sessions_dir, datetime_from_ns(now_ns)), False, now_ns,
                     until_ns)


def _open_writer(plan: NightPlan, clock: Clock, commit_interval_s: float,
                 metadata: Mapping[str, str], max_page_count: int | None) -> SessionWriter:
    meta = {} if plan.append else {
        "simulated": "false", **metadata, SERVICE_KEY: "night", "start_ns": str(plan.start_ns),
        UNTIL_KEY: "" if plan.until_ns is None else str(plan.until_ns)}
    return SessionWriter(plan.path, clock=clock, commit_interval_s=commit_interval_s,
                         metadata=meta, append=plan.append, max_page_count=max_page_count)


async def run_night(
    transport: Transport,
    devices: Sequence[PairedDevice],
    plan: NightPlan,
    *,
    clock: Clock,
    policy: ReconnectPolicy,
    commit_interval_s: float,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    metadata: Mapping[str, str] | None = None,
    on_start: Callable[[NightService], None] | None = None,
    max_page_count: int | None = None,
    **service_options: Any,
) -> NightReport:
    """Run the night service against ``transport`` into ``plan``'s session.

    Ends at ``plan.until_ns``, when ``stop`` is set, or (``handle_signals``) on SIGTERM or
    SIGINT, cleanly: everything received is committed and the session closes normally
    (Python's default SIGTERM handler would skip the ``finally`` blocks that do that).
    ``on_start`` gets the service once the session is open. Other keyword arguments go to
    :class:`NightService`.
    """
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    writer = _open_writer(plan, clock, commit_interval_s, metadata or {}, max_page_count)
    service: NightService | None = None
    try:
        service = NightService(transport, devices, writer, clock=clock, policy=policy,
                               start_ns=clock.now_ns(), until_ns=plan.until_ns,
                               **service_options)
        if on_start is not None:
            on_start(service)
        report = await service.run(stop)
    finally:
        lost = _close(writer)
        if lost and service is not None:
            service.refused_frames += lost
    if lost:
        report = replace(report, refused_frames=report.refused_frames + lost)
    return report


def _close(writer: SessionWriter) -> int:
    """Close the session; if the disk is still full, close anyway and return the frames that
    could not be written (everything committed before is intact)."""
    try:
        writer.close()
    except StorageError as exc:
        lost = writer.pending_frames
        logger.error("%s", exc)
        with contextlib.suppress(StorageError):
            writer.close(force=True)
        return lost
    return 0


async def run_night_world(
    world: Any,
    devices: Sequence[PairedDevice],
    plan: NightPlan,
    *,
    policy: ReconnectPolicy,
    commit_interval_s: float,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    metadata: Mapping[str, str] | None = None,
    on_start: Callable[[NightService], None] | None = None,
    max_page_count: int | None = None,
    **service_options: Any,
) -> NightReport:
    """:func:`run_night` in a simulated ``world`` (any world with bleak backends, a clock and a
    pump, see :func:`~crampsense.pipeline.record.record_world`), on its simulated clock.

    The pump starts once every device streams (connecting takes no simulated time), or after
    :data:`CONNECT_WAIT_S` real seconds for devices that never appear, and stops with the
    night.
    """
    clock = world.central_clock
    transport = BleTransport(scanner_backend=world.scanner_backend,
                             client_backend=world.client_backend)
    if world.speed is None:
        # as fast as possible, a simulated minute passes in well under a real second: the
        # promise "a kill loses at most a second" (real time) holds with a commit per minute
        commit_interval_s = max(commit_interval_s, SIMULATED_COMMIT_INTERVAL_S)
    stop = stop or asyncio.Event()
    started: list[NightService] = []

    def begin(service: NightService) -> None:
        started.append(service)
        if on_start is not None:
            on_start(service)

    night = asyncio.create_task(run_night(
        transport, devices, plan, clock=clock, policy=policy,
        commit_interval_s=commit_interval_s, stop=stop, handle_signals=handle_signals,
        metadata=metadata, on_start=begin, max_page_count=max_page_count, **service_options))
    for _ in range(100):
        if started or night.done():
            break
        await asyncio.sleep(0)
    if started:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.connected.wait() for s in started[0].sessions)),
                CONNECT_WAIT_S)
    pump = asyncio.create_task(world.run())
    try:
        await asyncio.wait({night, pump}, return_when=asyncio.FIRST_COMPLETED)
        if not night.done():  # the simulated night ran out of data: end it
            if started:
                started[0].reached_end = True
            stop.set()
        return await night
    finally:
        world.stop()
        await pump
