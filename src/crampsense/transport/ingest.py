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

After every connect
-------------------
- The Device Information strings are read and handed to ``protocol.configure``; a result whose
  ``metadata()`` differs from the recording's protocol means the device changed since pairing
  (other firmware, other wire format): marked ``device-changed`` and refused with a
  :class:`~crampsense.errors.ProtocolError` that says to pair it again.
- An ATT MTU below ``protocol.min_mtu`` is marked ``mtu-too-small``; if the device then does
  not answer, the error names the MTU found and the one needed.
- Control-point indications that answer no command go to ``protocol.on_control``: a
  ``"restart"`` event is marked ``device-stopped`` and the start commands are sent again; a
  ``"mark"`` event is marked ``device-event``.
- A write refused with ATT "Insufficient Authentication/Encryption" (0x05/0x0F) makes the
  client pair once (marked ``paired``) and retry; a refusal after pairing says to pair in the
  system's Bluetooth settings.
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
from bleak.exc import BleakError, BleakGATTProtocolError

from crampsense.clock import Clock
from crampsense.devices.base import DeviceProtocol, GattWrite
from crampsense.errors import (
    ConnectionLostError,
    CrampsenseError,
    ProtocolError,
)
from crampsense.models import DeviceInfo, Frame, MarkKind
from crampsense.transport.base import Transport
from crampsense.transport.ble import read_device_information

__all__ = [
    "LINK_STATES",
    "PAIRING_ATT_ERRORS",
    "FrameSink",
    "IngestSession",
    "IngestStats",
    "ReconnectPolicy",
    "needs_pairing",
]

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
#: Connection errors kept in :attr:`IngestStats.errors` (the newest): a reconnect storm over a
#: whole night must not grow memory; the session's marks keep every one.
MAX_ERRORS_KEPT: Final = 20
#: ATT error codes that mean "this needs an encrypted (paired) link": 0x05 Insufficient
#: Authentication, 0x0F Insufficient Encryption (Core Spec Vol 3 Part F 3.4.1.1).
PAIRING_ATT_ERRORS: Final = frozenset({0x05, 0x0F})
#: The same errors as text, for backends that report them only in the message (BlueZ D-Bus).
_PAIRING_ERROR_TEXT: Final = ("insufficient authentication", "insufficient encryption")


def needs_pairing(exc: BaseException) -> bool:
    """True if a GATT failure means the device wants a paired, encrypted link."""
    if isinstance(exc, BleakGATTProtocolError):
        return int(exc.code) in PAIRING_ATT_ERRORS
    text = str(exc).lower()
    return any(t in text for t in _PAIRING_ERROR_TEXT)


class FrameSink(Protocol):
    """Where frames go (the session log satisfies this)."""

    def append(self, frame: Frame) -> None: ...

    def mark(
        self, kind: MarkKind, *, device_address: str | None = None, detail: str = ""
    ) -> None: ...

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
    #: Times the device stopped streaming on its own and was started again.
    restarts: int = 0
    #: Times the client paired because a write needed an encrypted link.
    pairings: int = 0
    #: The newest connection errors (at most :data:`MAX_ERRORS_KEPT`).
    errors: list[str] = field(default_factory=list)


#: What an :class:`IngestSession` is doing (:attr:`IngestSession.state`): looking for the device,
#: connecting and starting its streams, streaming, waiting out a back-off, or stopped.
LINK_STATES: Final = ("searching", "connecting", "streaming", "waiting", "stopped")


class IngestSession:
    """Keep one device streaming into a sink until ``stop`` is set.

    Parameters
    ----------
    transport : Transport
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
        transport: Transport,
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
        # per connection: the command awaiting its indication, a restart asked for by the
        # device, whether we paired already, the MTU if below protocol.min_mtu, stopping
        self._pending_response: asyncio.Future[tuple[str, bytes]] | None = None
        self._restart_requested = False
        self._paired_now = False
        self._low_mtu: int | None = None
        self._stopping = False
        #: One of :data:`LINK_STATES`, for a live status display.
        self.state = "searching"

    async def run(self, stop: asyncio.Event) -> IngestStats:
        """Connect, stream and reconnect until ``stop`` is set; returns the statistics."""
        try:
            return await self._run(stop)
        finally:
            self.state = "stopped"

    async def _run(self, stop: asyncio.Event) -> IngestStats:
        attempt = 0
        while not stop.is_set():
            self.state = "searching"
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
                del self.stats.errors[:-MAX_ERRORS_KEPT]
                logger.info("%s: attempt %d failed: %s", self.device.address, attempt, message)
                self.sink.mark(
                    MarkKind.RECONNECT_FAILED, device_address=self.device.address, detail=message
                )
                if isinstance(exc, ProtocolError):
                    # The device refused our commands: retrying the same bytes will not help
                    # unless the device's state changes, so keep trying but slowly.
                    attempt = max(attempt, 4)
            if stop.is_set():
                break
            if attempt:
                self.state = "waiting"
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
        self._pending_response = None
        self._restart_requested = self._paired_now = self._stopping = False
        self._low_mtu = None
        self.state = "connecting"
        client = self.transport.client(ble_device, disconnected_callback=self._on_disconnect)
        await client.connect()
        try:
            await self._check_device(client)
            await self._stream(client, stop)
        finally:
            self._stopping = True
            if client.is_connected:
                try:
                    await self._send(client, self.protocol.stop_commands(), wait=False)
                except (CrampsenseError, BleakError, TimeoutError) as exc:
                    logger.debug("%s: stop command failed: %s", address, exc)
                try:
                    await client.disconnect()
                except BleakError as exc:
                    logger.debug("%s: disconnect failed: %s", address, exc)
            self.sink.mark(MarkKind.DISCONNECTED, device_address=address)
            self.sink.flush()

    async def _check_device(self, client: BleakClient) -> None:
        """Refuse a device whose Device Information gives another configuration."""
        address = self.device.address
        info = await read_device_information(client)
        expected = dict(self.protocol.metadata())
        found = dict(self.protocol.configure(info).metadata())
        if found == expected:
            return
        keys = expected.keys() | found.keys()
        changed = sorted(k for k in keys if expected.get(k) != found.get(k))
        detail = ", ".join(f"{k} {expected.get(k)!r} -> {found.get(k)!r}" for k in changed)
        self.sink.mark(MarkKind.DEVICE_CHANGED, device_address=address, detail=detail)
        raise ProtocolError(
            f"{address} is not configured as when it was paired ({detail}; firmware "
            f"{info.get('firmware') or info.get('software') or 'unknown'}); pair it again "
            f"with `crampsense pair {address}`",
            address=address,
        )

    def _on_control_message(self, uuid: str, payload: bytes) -> None:
        """A control-point indication: the awaited answer, or an unsolicited message."""
        pending = self._pending_response
        if pending is not None and not pending.done():
            pending.set_result((uuid, payload))
            return
        if self._stopping:
            return
        event = self.protocol.on_control(uuid, payload)
        if event is None:
            logger.debug("%s: unsolicited %s ignored", self.device.address, payload.hex(" "))
            return
        if event.action == "restart":
            self.sink.mark(MarkKind.DEVICE_STOPPED, device_address=self.device.address,
                           detail=event.detail)
            self._restart_requested = True
        else:
            self.sink.mark(MarkKind.DEVICE_EVENT, device_address=self.device.address,
                           detail=event.detail)

    async def _stream(self, client: BleakClient, stop: asyncio.Event) -> None:
        address = self.device.address
        mtu = client.mtu_size
        if mtu < self.protocol.min_mtu:
            self._low_mtu = mtu
            self.sink.mark(MarkKind.MTU_TOO_SMALL, device_address=address,
                           detail=f"mtu={mtu} < {self.protocol.min_mtu}")

        def on_control(char: BleakGATTCharacteristic, data: bytearray) -> None:
            self._on_control_message(char.uuid, bytes(data))

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
        await self._send(client, self.protocol.start_commands(self.clock.now_ns()), wait=True)
        self.stats.connects += 1
        self.state = "streaming"
        self.connected.set()
        self.sink.mark(
            MarkKind.CONNECTED, device_address=address, detail=f"mtu={client.mtu_size}"
        )
        self._last_frame_mono_ns = self.clock.monotonic_ns()
        stall_ns = round(self.policy.stall_timeout_s * 1e9)
        while not stop.is_set():
            if self._restart_requested and client.is_connected:
                self._restart_requested = False
                self.stats.restarts += 1
                await self._send(
                    client, self.protocol.start_commands(self.clock.now_ns()), wait=True
                )
                self._last_frame_mono_ns = self.clock.monotonic_ns()
            if self._disconnected.is_set() or not client.is_connected:
                self.stats.drops += 1
                raise ConnectionLostError(f"{address} dropped the connection", address=address)
            if self.clock.monotonic_ns() - self._last_frame_mono_ns > stall_ns:
                self.stats.stalls += 1
                self.sink.mark(
                    MarkKind.STALL,
                    device_address=address,
                    detail=f"no data for {self.policy.stall_timeout_s:g} s",
                )
                raise ConnectionLostError(
                    f"{address} sent nothing for {self.policy.stall_timeout_s:g} s",
                    address=address,
                )
            await self.clock.sleep(WATCHDOG_PERIOD_S)

    async def _send(
        self, client: BleakClient, writes: Sequence[GattWrite], *, wait: bool
    ) -> None:
        """Perform ``writes`` in order; with ``wait``, check each expected indication."""
        loop = asyncio.get_running_loop()
        for write in writes:
            expect = wait and write.expect_indication
            # made before the write: a device may indicate before the write response arrives
            answer: asyncio.Future[tuple[str, bytes]] | None = (
                loop.create_future() if expect else None
            )
            self._pending_response = answer
            try:
                await self._write(client, write)
                if answer is None:
                    continue
                try:
                    uuid, payload = await asyncio.wait_for(answer, RESPONSE_TIMEOUT_S)
                except TimeoutError as exc:
                    raise self._no_answer(write) from exc
            finally:
                self._pending_response = None
            self.protocol.check_response(uuid, payload)

    def _no_answer(self, write: GattWrite) -> ProtocolError:
        address = self.device.address
        if self._low_mtu is not None:
            return ProtocolError(
                f"{address} did not answer: the link's ATT MTU is {self._low_mtu} but "
                f"{self.protocol.display_name} needs at least {self.protocol.min_mtu}; connect "
                "through a Bluetooth adapter and system that negotiate a larger MTU",
                address=address,
            )
        return ProtocolError(
            f"{address} did not answer command {write.data.hex(' ')} within "
            f"{RESPONSE_TIMEOUT_S:g} s; check that its firmware speaks the "
            f"{self.protocol.display_name} protocol",
            address=address,
        )

    async def _write(self, client: BleakClient, write: GattWrite) -> None:
        """One write; pairs once and retries when the device wants an encrypted link."""
        address = self.device.address
        try:
            await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
        except BleakError as exc:
            if not needs_pairing(exc):
                raise
            if self._paired_now:
                raise self._pairing_refused(write, exc) from exc
            refusal = exc
        else:
            return
        logger.info("%s wants a paired link (%s); pairing", address, refusal)
        try:
            await client.pair()
        except (BleakError, NotImplementedError, TimeoutError) as exc:
            raise ProtocolError(
                f"{address} needs pairing ({refusal}) and pairing from crampsense failed "
                f"({exc}); pair it in the system's Bluetooth settings, then start again",
                address=address,
            ) from exc
        self._paired_now = True
        self.stats.pairings += 1
        self.sink.mark(MarkKind.PAIRED, device_address=address, detail=str(refusal))
        try:
            await client.write_gatt_char(write.char_uuid, write.data, response=write.response)
        except BleakError as exc:
            if needs_pairing(exc):
                raise self._pairing_refused(write, exc) from exc
            raise

    def _pairing_refused(self, write: GattWrite, exc: BleakError) -> ProtocolError:
        return ProtocolError(
            f"{self.device.address} still refuses writes to {write.char_uuid} after pairing "
            f"({exc}); pair it in the system's Bluetooth settings (a passkey needs the "
            "system's pairing agent), then start again",
            address=self.device.address,
        )
