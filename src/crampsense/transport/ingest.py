"""Connect, start streaming, record every notification, reconnect after drops.

:class:`IngestSession` keeps one device streaming into a :class:`FrameSink` (the session log)
for as long as it is asked to, following ``IngestSession(transport, protocol, sink)`` from
ARCHITECTURE.md: the transport, the device protocol, the store and the clock are all passed in.

Reconnect policy
----------------
After any failure (not found, connect error, a drop, a stall) it waits an exponentially growing,
jittered delay capped at ``max_backoff_s`` and tries again with a *fresh scan and a fresh
client* (on BlueZ a stale ``BLEDevice`` often fails with "device not found"). It never gives up
on its own; only ``stop`` ends it. Every connect, drop, stall and failed attempt is written to the
sink as a mark, so gaps have exact bounds in the session file.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from crampsense.clock import Clock
from crampsense.devices.base import DeviceProtocol, GattWrite
from crampsense.errors import (
    ConnectionLostError,
    CrampsenseError,
    ProtocolError,
)
from crampsense.models import DeviceInfo, Frame
from crampsense.transport.ble import BleTransport

__all__ = ["FrameSink", "IngestSession", "IngestStats", "ReconnectPolicy"]

logger = logging.getLogger(__name__)

#: Indications answering control writes arrive within one or two connection intervals
#: (7.5 ms-4 s); 5 s covers slow, power-saving links without hanging a night.
RESPONSE_TIMEOUT_S: Final = 5.0
#: First reconnect delay; BLE devices usually re-advertise within a second of a drop.
INITIAL_BACKOFF_S: Final = 0.5
#: Jitter as a fraction of the delay, so several devices do not retry in lock-step.
BACKOFF_JITTER: Final = 0.25
#: How often the watchdog looks at the time since the last data frame.
WATCHDOG_PERIOD_S: Final = 1.0


class FrameSink(Protocol):
    """Where frames go (the session log satisfies this)."""

    def append(self, frame: Frame) -> None: ...

    def mark(self, kind: str, *, device_address: str | None = None, detail: str = "") -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Tunables of the reconnect loop (see the module docstring)."""

    scan_timeout_s: float = 10.0
    max_backoff_s: float = 30.0
    stall_timeout_s: float = 10.0
    initial_backoff_s: float = INITIAL_BACKOFF_S
    jitter: float = BACKOFF_JITTER

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before reconnect attempt ``attempt`` (1-based): exponential, capped, jittered."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** min(attempt - 1, 30))
        return base * (1.0 + self.jitter * (2.0 * rng.random() - 1.0))


@dataclass(slots=True)
class IngestStats:
    """What happened during a session, for the CLI and tests."""

    frames: int = 0
    connects: int = 0
    drops: int = 0
    stalls: int = 0
    failed_attempts: int = 0
    errors: list[str] = field(default_factory=list)


class IngestSession:
    """Keep one device streaming into a sink until ``stop`` is set.

    Parameters
    ----------
    transport : BleTransport
        Finds the device and makes clients (real adapter or simulators).
    protocol : DeviceProtocol
        The device family: which characteristics, which commands, how to check answers.
    sink : FrameSink
        Receives every notification as a :class:`~crampsense.models.Frame`.
    device : DeviceInfo
        The paired device to keep connected.
    clock : Clock
        Source of receive times and of every wait.
    policy : ReconnectPolicy
    on_frame : callable, optional
        Called with each frame after it was handed to the sink (live detection, progress).
    seed : int
        Seeds the back-off jitter, so tests are reproducible.
    """

    def __init__(
        self,
        transport: BleTransport,
        protocol: DeviceProtocol,
        sink: FrameSink,
        device: DeviceInfo,
        *,
        clock: Clock,
        policy: ReconnectPolicy | None = None,
        on_frame: Callable[[Frame], None] | None = None,
        seed: int = 0,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.sink = sink
        self.device = device
        self.clock = clock
        self.policy = policy or ReconnectPolicy()
        self.on_frame = on_frame
        self.stats = IngestStats()
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not cryptography
        self._last_frame_mono_ns = 0
        self._disconnected = asyncio.Event()
        #: Set once the device is streaming for the first time.
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> IngestStats:
        """Connect, stream and reconnect until ``stop`` is set; returns the statistics."""
        attempt = 0
        while not stop.is_set():
            try:
                await self._one_connection(stop)
                attempt = 0
            except ConnectionLostError as exc:
                # A drop or stall after streaming: already marked; retry soon with a fresh scan.
                logger.info("%s", exc)
                attempt = 1
            except (CrampsenseError, BleakError, TimeoutError, OSError) as exc:
                attempt += 1
                self.stats.failed_attempts += 1
                message = str(exc) or type(exc).__name__
                self.stats.errors.append(message)
                logger.info("%s: attempt %d failed: %s", self.device.address, attempt, message)
                self.sink.mark(
                    "reconnect-failed", device_address=self.device.address, detail=message
                )
                if isinstance(exc, ProtocolError):
                    # The device refused our commands: retrying the same bytes will not help
                    # unless the device's state changes, so keep trying but slowly.
                    attempt = max(attempt, 4)
            if stop.is_set():
                break
            if attempt:
                await self._wait(self.policy.backoff_s(attempt, self._rng), stop)
        return self.stats

    async def _wait(self, seconds: float, stop: asyncio.Event) -> None:
        """Sleep ``seconds`` on the clock, waking early when ``stop`` is set."""
        remaining = seconds
        while remaining > 0 and not stop.is_set():
            step = min(remaining, WATCHDOG_PERIOD_S)
            await self.clock.sleep(step)
            remaining -= step

    def _on_disconnect(self, _client: BleakClient) -> None:
        self._disconnected.set()

    async def _one_connection(self, stop: asyncio.Event) -> None:
        address = self.device.address
        ble_device = await self.transport.find(address, self.policy.scan_timeout_s)
        self._disconnected = asyncio.Event()
        client = self.transport.client(ble_device, disconnected_callback=self._on_disconnect)
        await client.connect()
        try:
            await self._stream(client, stop)
        finally:
            if client.is_connected:
                try:
                    await self._send(client, self.protocol.stop_commands(), None)
                except (CrampsenseError, BleakError, TimeoutError) as exc:
                    logger.debug("%s: stop command failed: %s", address, exc)
                try:
                    await client.disconnect()
                except BleakError as exc:
                    logger.debug("%s: disconnect failed: %s", address, exc)
            self.sink.mark("disconnected", device_address=address)
            self.sink.flush()

    async def _stream(self, client: BleakClient, stop: asyncio.Event) -> None:
        address = self.device.address
        responses: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

        def on_control(char: BleakGATTCharacteristic, data: bytearray) -> None:
            responses.put_nowait((char.uuid, bytes(data)))

        def on_data(char: BleakGATTCharacteristic, data: bytearray) -> None:
            frame = Frame(
                device_address=address,
                characteristic_uuid=char.uuid,
                payload=bytes(data),
                host_time_ns=self.clock.now_ns(),
                host_monotonic_ns=self.clock.monotonic_ns(),
            )
            self._last_frame_mono_ns = frame.host_monotonic_ns
            self.stats.frames += 1
            self.sink.append(frame)
            if self.on_frame is not None:
                self.on_frame(frame)

        for uuid in self.protocol.control_uuids():
            await client.start_notify(uuid, on_control)
        for uuid in self.protocol.data_uuids():
            await client.start_notify(uuid, on_data)
        await self._send(client, self.protocol.start_commands(self.clock.now_ns()), responses)
        self.stats.connects += 1
        self.connected.set()
        self.sink.mark("connected", device_address=address, detail=f"mtu={client.mtu_size}")
        self._last_frame_mono_ns = self.clock.monotonic_ns()
        stall_ns = round(self.policy.stall_timeout_s * 1e9)
        while not stop.is_set():
            if self._disconnected.is_set() or not client.is_connected:
                self.stats.drops += 1
                raise ConnectionLostError(f"{address} dropped the connection", address=address)
            if self.clock.monotonic_ns() - self._last_frame_mono_ns > stall_ns:
                self.stats.stalls += 1
                self.sink.mark(
                    "stall",
                    device_address=address,
                    detail=f"no data for {self.policy.stall_timeout_s:g} s",
                )
                raise ConnectionLostError(
                    f"{address} sent nothing for {self.policy.stall_timeout_s:g} s",
                    address=address,
                )
            await self.clock.sleep(WATCHDOG_PERIOD_S)

    async def _send(
        self,
        client: BleakClient,
        writes: Sequence[GattWrite],
        responses: asyncio.Queue[tuple[str, bytes]] | None,
    ) -> None:
        for write in writes:
            await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
            if write.expect_indication and responses is not None:
                try:
                    uuid, payload = await asyncio.wait_for(responses.get(), RESPONSE_TIMEOUT_S)
                except TimeoutError as exc:
                    raise ProtocolError(
                        f"{self.device.address} did not answer command {write.data.hex(' ')} "
                        f"within {RESPONSE_TIMEOUT_S:g} s; check that its firmware speaks "
                        f"the {self.protocol.display_name} protocol",
                        address=self.device.address,
                    ) from exc
                self.protocol.check_response(uuid, payload)
