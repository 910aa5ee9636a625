"""Shared by the device and transport tests: record through bleak and the transport.

:class:`ListSink` keeps what an :class:`~crampsense.transport.ingest.IngestSession` writes;
:func:`ingest_world` runs one session against a :class:`~firmware_sims.world.SimulatedWorld`
until a simulated time, the way the CLI runs a night.
"""

from __future__ import annotations

import asyncio
import contextlib

from crampsense.devices.base import DeviceProtocol
from crampsense.models import DeviceInfo, Frame, MarkKind
from crampsense.transport.ble import BleTransport
from crampsense.transport.ingest import FrameSink, IngestSession, ReconnectPolicy
from firmware_sims.world import SimulatedWorld


class ListSink:
    """A frame sink that keeps every frame, and every mark as ``(kind, detail)``."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.marks: list[tuple[str, str]] = []

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    def mark(self, kind: str, *, device_address: str | None = None, detail: str = "") -> None:
        del device_address
        # refuse what the real SessionWriter refuses: a fake that accepts more hides seam bugs
        self.marks.append((MarkKind(kind).value, detail))

    def flush(self) -> None:
        pass


async def ingest_world(
    world: SimulatedWorld,
    protocol: DeviceProtocol,
    sink: FrameSink,
    device: DeviceInfo,
    until_s: float,
    *,
    policy: ReconnectPolicy | None = None,
    connect_wait_s: float = 1.0,
) -> IngestSession:
    """Keep ``device`` streaming into ``sink`` until simulated monotonic time ``until_s``.

    The session talks to ``world`` through bleak with the world's backends; ``policy``
    defaults to a 1-s scan timeout. Connecting takes no simulated time, so the world's pump
    starts once the device streams (a device that never does: after ``connect_wait_s`` real
    seconds).
    """
    transport = BleTransport(scanner_backend=world.scanner_backend,
                             client_backend=world.client_backend)
    stop = asyncio.Event()

    def end() -> None:
        stop.set()
        world.stop()

    world.schedule(until_s, end)
    session = IngestSession(transport, protocol, sink, device, clock=world.central_clock,
                            policy=policy or ReconnectPolicy(scan_timeout_s=1.0))
    task = asyncio.create_task(session.run(stop))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(session.connected.wait(), connect_wait_s)
    pump = asyncio.create_task(world.run())
    await task
    world.stop()
    await pump
    return session
