"""Devices to one session file: pairing, and recording every notification of a night.

The flow of ``crampsense pair`` and ``crampsense record``: the transport (real Bluetooth or a
simulated world, passed in) finds the paired devices, one
:class:`~crampsense.transport.ingest.IngestSession` per device connects, starts its streams
and reconnects for as long as the night lasts, and every notification goes, byte for byte, into
one crash-safe :class:`~crampsense.storage.session_log.SessionWriter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from crampsense.clock import Clock
from crampsense.devices.base import DeviceProtocol
from crampsense.devices.registry import protocol_for
from crampsense.errors import DeviceError, StorageError
from crampsense.models import DeviceInfo, MarkKind
from crampsense.storage.files import private_dir
from crampsense.storage.paired import PairedDevice, load_paired
from crampsense.storage.session_log import SessionWriter
from crampsense.transport.base import Transport
from crampsense.transport.ble import BleTransport, read_device_information
from crampsense.transport.ingest import IngestSession, ReconnectPolicy

__all__ = [
    "RecordingReport",
    "configured_protocol",
    "latest_session",
    "never_connected",
    "pair_device",
    "paired_to_record",
    "record_devices",
    "record_until_stopped",
    "record_world",
    "session_path_for",
    "session_start_of",
]

#: Real seconds between checks that buffered frames are committed (the writer commits when its
#: commit interval, at most 1 s, has passed).
COMMIT_TIMER_S: Final = 0.25
#: How often (real seconds) a simulated recording reports progress.
PROGRESS_PERIOD_S: Final = 0.1
#: Commit interval in *simulated* seconds when a simulated night runs as fast as possible (see
#: :func:`record_world`); at the demo's ~800x real time this is under 0.1 s of real time.
SIMULATED_COMMIT_INTERVAL_S: Final = 60.0
#: Real seconds to wait for the simulated devices to connect before the night starts moving.
CONNECT_WAIT_S: Final = 5.0
#: Sessions that may share one start time (simulated nights all start at the same moment).
MAX_SAME_START_SESSIONS: Final = 999


#: A session file's name: its UTC start (``2026-11-20T223000Z.session``).
SESSION_STAMP: Final = "%Y-%m-%dT%H%M%SZ"


def configured_protocol(
    family: str, device_info: dict[str, str], options: dict[str, Any] | None = None
) -> DeviceProtocol:
    """The protocol of a paired device: ``family`` with ``options``, configured for the
    Device Information strings read when pairing (firmware-dependent formats, the model)."""
    return protocol_for(family, **(options or {})).configure(device_info)


async def pair_device(
    transport: Transport, address: str, placement: str, *, timeout_s: float, simulated: bool
) -> tuple[PairedDevice, DeviceProtocol, dict[str, str]]:
    """Find ``address`` through ``transport``, recognise its family, read its Device
    Information and configure its protocol. ``simulated`` is remembered with the device.

    Returns
    -------
    paired : PairedDevice
    protocol : DeviceProtocol
        The family's protocol configured for this device (``configure`` with the Device
        Information strings): what it streams is ``protocol.capabilities()``.
    device_info : dict of str to str
        The strings read (store them with :func:`save_device_info`).
    """
    found = await transport.scan(timeout_s)
    match = [d for d in found if d.address.lower() == address.lower()]
    if not match:
        seen = ", ".join(f"{d.address} ({d.name})" for d in found) or "nothing"
        raise DeviceError(
            f"no device with address {address} answered (heard: {seen}); check the address "
            "with `crampsense scan`" + (" --simulate" if simulated else ""),
            address=address,
        )
    dev = match[0]
    if dev.family is None:
        raise DeviceError(
            f"{address} ({dev.name or 'no name'}) is not a device crampsense can read "
            f"(services {', '.join(dev.service_uuids) or 'none'}); see docs/devices.md",
            address=address,
        )
    info: dict[str, str] = {}
    client = transport.client(dev.ble_device)
    try:
        await client.connect()
        info = await read_device_information(client)
    finally:
        if client.is_connected:
            await client.disconnect()
    protocol = configured_protocol(dev.family, info)
    paired = PairedDevice(
        address=dev.address,
        name=dev.name,
        family=dev.family,
        placement=placement,
        simulated=simulated,
        firmware=info.get("firmware") or info.get("software", ""),
    )
    return paired, protocol, info



# --- recording ---------------------------------------------------------------------------


def paired_to_record(data_dir: Path, *, simulate: bool) -> list[PairedDevice]:
    """The paired devices a recording uses (simulated ones only with ``simulate``).

    Raises
    ------
    DeviceError
        When none is paired, with the commands that pair one.
    """
    usable = [d for d in load_paired(data_dir) if d.simulated == simulate]
    if not usable:
        how = ("crampsense scan --simulate, then crampsense pair ADDRESS --placement left-calf "
               "--simulate" if simulate else
               "crampsense scan, then crampsense pair ADDRESS --placement left-calf")
        raise DeviceError(f"no {'simulated ' if simulate else ''}devices are paired; pair one "
                          f"first ({how})")
    return usable


def session_path_for(sessions_dir: Path, start: datetime) -> Path:
    """A new ``<sessions_dir>/<UTC start>.session`` (``-2``, ``-3``, ... when that name is
    taken, as every simulated night of one start time would be), creating the owner-only
    folder. An existing session is never returned: continuing one is asked for explicitly."""
    private_dir(sessions_dir)
    stamp = start.astimezone(UTC).strftime(SESSION_STAMP)
    for n in range(1, MAX_SAME_START_SESSIONS + 1):
        path = sessions_dir / (f"{stamp}.session" if n == 1 else f"{stamp}-{n}.session")
        if not path.exists():
            return path
    msg = (f"{sessions_dir} already holds {MAX_SAME_START_SESSIONS} sessions starting at "
           f"{stamp}; move some away or record with --out")
    raise StorageError(msg, path=str(sessions_dir))


def session_start_of(path: Path) -> datetime | None:
    """The UTC start a session's file name holds (as :func:`session_path_for` writes it, with
    or without a ``-N`` suffix); ``None`` for any other name."""
    stem, _, n = path.stem.rpartition("-")
    if not (stem and n.isdigit() and stem.endswith("Z")):
        stem = path.stem
    try:
        return datetime.strptime(stem, SESSION_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def latest_session(sessions_dir: Path) -> Path | None:
    """The most recently written session in ``sessions_dir`` (``None`` if there is none)."""
    found = sorted(sessions_dir.glob("*.session"), key=lambda p: (p.stat().st_mtime, p.name))
    return found[-1] if found else None


def _device_info(p: PairedDevice) -> DeviceInfo:
    return DeviceInfo(
        address=p.address, name=p.name, family=p.family, placement=p.placement,
        firmware=p.firmware,
    )


async def record_devices(
    transport: Transport,
    devices: Sequence[PairedDevice],
    writer: SessionWriter,
    *,
    clock: Clock,
    policy: ReconnectPolicy,
    stop: asyncio.Event,
    protocol_options: dict[str, dict[str, Any]] | None = None,
    sessions_out: list[IngestSession] | None = None,
    device_info: dict[str, dict[str, str]] | None = None,
) -> list[IngestSession]:
    """Run one :class:`IngestSession` per device into one session writer until ``stop``.

    ``sessions_out``, if given, receives the sessions as soon as they exist (for progress).
    ``device_info`` (lower-case address -> the Device Information strings read when pairing)
    configures each protocol as it was paired (see :func:`configured_protocol`).
    """
    sessions = sessions_out if sessions_out is not None else []
    for i, p in enumerate(devices):
        options = (protocol_options or {}).get(p.family, {})
        info = (device_info or {}).get(p.address.lower(), {})
        protocol = configured_protocol(p.family, info, options)
        paired = _device_info(p)
        writer.add_device(paired, protocol.metadata())
        sessions.append(
            IngestSession(transport, protocol, writer, paired, clock=clock,
                          policy=policy, seed=i)
        )
    writer.mark(MarkKind.STARTED, detail=f"{len(sessions)} device(s)")

    async def commit_timer() -> None:
        # A silent stall must not keep the last frames in memory: commit on a timer too.
        while not stop.is_set():
            writer.commit_if_due()
            await asyncio.sleep(COMMIT_TIMER_S)

    timer = asyncio.create_task(commit_timer())
    try:
        await asyncio.gather(*(s.run(stop) for s in sessions))
    finally:
        stop.set()
        await timer
        writer.mark(MarkKind.STOPPED)
        writer.flush()
    return sessions


async def record_until_stopped(
    transport: Transport,
    devices: Sequence[PairedDevice],
    path: Path,
    *,
    clock: Clock,
    policy: ReconnectPolicy,
    commit_interval_s: float,
    duration_s: float | None,
    protocol_options: dict[str, dict[str, Any]] | None = None,
    device_info: dict[str, dict[str, str]] | None = None,
    on_start: Callable[[Path], None] | None = None,
    append: bool = False,
) -> list[IngestSession]:
    """Record ``devices`` into a new session at ``path`` until SIGTERM/SIGINT or ``duration_s``.

    Signals end the night cleanly: everything received is committed and the session closes
    normally (Python's default SIGTERM handler would skip the ``finally`` blocks that do that).
    ``on_start`` is called with the path once the session file exists. With ``append``, an
    existing session at ``path`` is continued in a new segment (after a crash or a stop).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    with SessionWriter(
        path, clock=clock, commit_interval_s=commit_interval_s,
        # a continued night keeps its start
        metadata={} if append else {"start_ns": str(clock.now_ns()), "simulated": "false"},
        append=append,
    ) as writer:
        if on_start is not None:
            on_start(path)
        return await record_devices(transport, devices, writer, clock=clock, policy=policy,
                                    stop=stop, protocol_options=protocol_options,
                                    device_info=device_info)


@dataclass(frozen=True)
class RecordingReport:
    """What a simulated recording did."""

    path: Path
    frames: int
    bytes_on_disk: int
    wall_s: float
    simulated_s: float
    drops: int
    stalls: int
    failed_attempts: int
    #: Paired devices that never connected (nothing was recorded from them).
    never_connected: tuple[DeviceInfo, ...] = ()


def never_connected(sessions: Sequence[IngestSession]) -> tuple[DeviceInfo, ...]:
    """The devices of ``sessions`` that never connected: name them, never leave them out."""
    return tuple(s.device for s in sessions if s.stats.connects == 0)


async def record_world(
    world: Any,
    devices: Sequence[PairedDevice],
    path: Path,
    *,
    commit_interval_s: float,
    policy: ReconnectPolicy,
    protocol_options: dict[str, dict[str, Any]],
    duration_s: float,
    metadata: dict[str, str],
    on_progress: Callable[[float], None] | None = None,
    handle_signals: bool = False,
    device_info: dict[str, dict[str, str]] | None = None,
    append: bool = False,
) -> RecordingReport:
    """Record ``devices`` of a simulated world into ``path``, on the world's simulated clock.

    ``world`` is any world with bleak backends and a pump (``scanner_backend``,
    ``client_backend``, ``central_clock``, ``speed``, ``schedule``, ``run``, ``stop``), such as
    ``firmware_sims.world.SimulatedWorld``; it is passed in, never imported here.

    With ``handle_signals``, SIGTERM and SIGINT end the night early and cleanly: everything
    received is committed and the session closes normally (Python's default SIGTERM handler
    would skip the ``finally`` blocks that do that). ``device_info`` (lower-case address ->
    Device Information strings stored at pairing) configures each device's protocol.
    """
    clock = world.central_clock
    transport = BleTransport(
        scanner_backend=world.scanner_backend, client_backend=world.client_backend
    )
    t0 = time.perf_counter()
    sim0_ns = clock.monotonic_ns()
    stop = asyncio.Event()

    def end_of_night() -> None:
        stop.set()
        world.stop()

    sessions: list[IngestSession] = []
    meta = dict(metadata) if append else {"start_ns": str(clock.now_ns()), **metadata}
    # The promise is "a kill loses at most a second" of *real* time. Running as fast as
    # possible, a simulated minute passes in well under a second, so committing once per
    # simulated minute keeps that promise without an fsync per simulated second.
    if world.speed is None:
        commit_interval_s = max(commit_interval_s, SIMULATED_COMMIT_INTERVAL_S)
    with SessionWriter(path, clock=clock, commit_interval_s=commit_interval_s,
                       metadata=meta, append=append) as writer:
        live: list[IngestSession] = []
        recorder = asyncio.create_task(
            record_devices(transport, devices, writer, clock=clock, policy=policy, stop=stop,
                           protocol_options=protocol_options, sessions_out=live,
                           device_info=device_info)
        )
        # Connecting takes no simulated time (the simulators answer at once), so let every
        # device connect before the pump starts moving the night: nothing is lost at the start.
        await asyncio.sleep(0)  # let the recorder create its sessions
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.connected.wait() for s in live)), CONNECT_WAIT_S
            )
        world.schedule(sim0_ns / 1e9 + duration_s, end_of_night)
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, end_of_night)
        pump = asyncio.create_task(world.run())
        while not pump.done():
            elapsed_s = (clock.monotonic_ns() - sim0_ns) / 1e9
            if on_progress is not None:
                on_progress(min(elapsed_s, duration_s))
            if elapsed_s >= duration_s:
                break
            await asyncio.sleep(PROGRESS_PERIOD_S)
        stop.set()
        world.stop()
        sessions = await recorder
        await pump
    if on_progress is not None:
        on_progress(duration_s)
    return RecordingReport(
        path=path,
        frames=sum(s.stats.frames for s in sessions),
        bytes_on_disk=sum(
            p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()
        ),
        wall_s=time.perf_counter() - t0,
        simulated_s=(clock.monotonic_ns() - sim0_ns) / 1e9,
        drops=sum(s.stats.drops for s in sessions),
        stalls=sum(s.stats.stalls for s in sessions),
        failed_attempts=sum(s.stats.failed_attempts for s in sessions),
        never_connected=never_connected(sessions),
    )
