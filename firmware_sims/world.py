"""A simulated radio world: firmware simulators, one shared clock, and a pump that moves time.

A :class:`SimulatedWorld` holds :class:`~firmware_sims.peripheral.SimulatedPeripheral` objects
(the firmware of simulated wearables) and hands out bleak backend classes bound to it, so that
bleak's own ``BleakScanner``/``BleakClient`` talk to the simulators::

    world = SimulatedWorld(FakeClock(start), [HeartRateStrap("AA:..:01")])
    pump = asyncio.create_task(world.run())
    dev = await BleakScanner.find_device_by_address("AA:..:01", backend=world.scanner_backend)
    async with BleakClient(dev, backend=world.client_backend) as client:
        await client.start_notify(HEART_RATE_MEASUREMENT_UUID, on_notify)
        await world.wait_s(60)             # one simulated minute
    world.stop()
    await pump

Time
----
The pump (:meth:`SimulatedWorld.run`) is what moves simulated time. Each iteration it advances
the shared :class:`~crampsense.clock.FakeClock` by ``tick_s``, runs the scheduled actions that
are due, calls ``tick(now)`` on every connected peripheral (each sends the packets due by then,
synchronously, through its :class:`~firmware_sims.peripheral.Link`; bleak callbacks run inside
that call), delivers periodic advertisements and wakes :meth:`SimulatedWorld.wait_s` waiters;
then it yields to the event loop. With ``speed=None`` (as fast as the CPU allows) it yields
with ``asyncio.sleep(0)`` after every step in which anything happened (a notification, a woken
waiter, a fault, an advertisement) and at least every :data:`MAX_QUIET_STEPS` steps; otherwise
it paces itself so that simulated time runs ``speed`` times faster than real time.
While a central is scanning, simulated time holds still (advertisements arrive at once here),
so reconnect gaps measure the back-off, not how long a real-time scan took.

While the world is *idle* (no open link, no :meth:`SimulatedWorld.wait_s` waiter, nothing
scheduled) the pump pauses instead of spinning, unless ``run_while_idle=True`` or ``run`` was
given ``max_duration_s``: a real-time scan (``BleakScanner.discover(timeout=0.5)``) then does not
let hours of the simulated night pass before anyone connects. A reconnect back-off still sees
simulated time pass, because waiting on the world's clock (``wait_s``, ``central_clock``, or
``FakeClock.sleep``) moves it.

Code under test should wait for simulated time with :meth:`SimulatedWorld.wait_s`, or be given
:attr:`SimulatedWorld.central_clock`, a :class:`~crampsense.clock.Clock` whose ``sleep`` waits
for the pump. ``FakeClock.sleep`` also works but advances the shared clock itself: the
peripherals then catch up on their next tick (a burst of everything due), and two coroutines
sleeping at once add their sleeps. Real-time waits (``asyncio.sleep``, ``asyncio.timeout``)
while a link is open and the pump runs at ``speed=None`` let an unbounded amount of simulated
time pass.

When the pump stops
-------------------
:meth:`SimulatedWorld.run` returns when (a) :meth:`SimulatedWorld.stop` is called, (b) its
``max_duration_s`` of simulated time has passed, or (c) with ``stop_when_finished=True`` (the
default), at least one peripheral has ever been connected and every peripheral that has ever
been connected reports ``finished()`` (the recorded night is over), connected or not. After
(a) or (c) the world is *stopped*: pending :meth:`SimulatedWorld.wait_s` calls return
``False`` at once, later ones advance the clock themselves and return ``False`` (never hang),
and ``run()`` returns at once.

Faults
------
:meth:`power_off`/:meth:`power_on`, :meth:`drop_link` (unsolicited disconnect, bleak's
``disconnected_callback`` fires), :meth:`stall` (connected but every notification is lost for a
while, a silent stall), :meth:`inject_error` (the next operations raise a given error),
:meth:`set_mtu_limit`, and :meth:`schedule` to run any of them at a simulated time. With
``bluez_stale_device_quirk=True`` a connect after an unsolicited drop fails with bleak's
``BleakDeviceNotFoundError`` until a scan has seen the device again, as on Linux/BlueZ.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, Literal

from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str

from crampsense.clock import FakeClock
from crampsense.errors import ConfigError, DeviceError, DeviceNotFoundError
from firmware_sims.backend import (
    ADVERTISING_INTERVAL_S,
    ATT_DEFAULT_MTU,
    SimulatedBleakClient,
    SimulatedBleakScanner,
    SimulatedDeviceDetails,
    bind_client_backend,
    bind_scanner_backend,
)
from firmware_sims.peripheral import SimulatedPeripheral

if TYPE_CHECKING:
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import BaseBleakScanner

__all__ = [
    "ADVERTISING_INTERVAL_S",
    "ATT_DEFAULT_MTU",
    "ATT_MAX_MTU",
    "DEFAULT_TICK_S",
    "Operation",
    "SimLink",
    "SimulatedWorld",
    "WorldClock",
]

logger = logging.getLogger(__name__)

#: Pump step (s). 50 ms is finer than any packet interval that matters to the recorder
#: (HR straps notify every 1 s, the reference band every ~20 ms in bursts it catches up on)
#: and coarse enough that an hour of simulated time is 72 000 steps.
DEFAULT_TICK_S: Final = 0.05
#: The largest ATT MTU bleak/BlueZ negotiate (a 512-byte attribute value plus headers).
ATT_MAX_MTU: Final = 517
#: With ``speed=None`` the pump yields to the event loop after every step in which something
#: happened, and otherwise at least every this many steps. Each await of the code under test
#: (a GATT read, a write) then costs at most 4 ticks (200 ms at the default tick) of simulated
#: time, about what a GATT procedure takes over a few connection intervals on air; yielding on
#: every quiet step would nearly double the cost of an hour of a 1 Hz heart-rate strap.
MAX_QUIET_STEPS: Final = 4
#: While a central scans, the pump checks every this many real seconds whether the scan is
#: over (time holds still meanwhile; see :meth:`SimulatedWorld.run`).
SCAN_HOLD_POLL_S: Final = 0.001
#: Time holds still for at most this many *real* seconds after a scan starts: a scan for an
#: advertising device completes within a few milliseconds here; one that waits for a device
#: to appear later in simulated time must not freeze that time.
SCAN_HOLD_MAX_S: Final = 0.05
#: Bytes of ATT header in a notification: the payload carries at most ``mtu - 3`` bytes.
ATT_NOTIFY_HEADER: Final = 3

#: Operations that :meth:`SimulatedWorld.inject_error` can make fail.
Operation = Literal["connect", "read", "write", "start_notify", "stop_notify", "disconnect"]
_OPERATIONS: Final = ("connect", "read", "write", "start_notify", "stop_notify", "disconnect")


class SimLink:
    """One connection between a peripheral and a client backend (the peripheral's ``Link``).

    Attributes
    ----------
    mtu : int
        Negotiated ATT MTU.
    is_open : bool
        False once the link is closed (either side, or a fault).
    sent, dropped : int
        Notifications delivered to the central / lost (stall, not subscribed, closed link).
    """

    def __init__(
        self,
        world: SimulatedWorld,
        peripheral: SimulatedPeripheral,
        client: SimulatedBleakClient,
        mtu: int,
    ) -> None:
        self._world = world
        self.peripheral = peripheral
        self.client = client
        self._mtu = mtu
        self.is_open = True
        self.stalled_until_ns = -1
        self.sent = 0
        self.dropped = 0

    @property
    def mtu(self) -> int:
        return self._mtu

    def now_ns(self) -> int:
        return self._world.clock.monotonic_ns()

    def notify(self, char_uuid: str, data: bytes) -> None:
        """Deliver a notification to the client (truncated to ``mtu - 3`` bytes, like a stack).

        Dropped when the link is closed, stalled, or the central has not enabled the CCCD of
        ``char_uuid`` (a real GATT server refuses to send those).
        """
        uuid = normalize_uuid_str(char_uuid)
        if (
            not self.is_open
            or self.now_ns() < self.stalled_until_ns
            or uuid not in self.peripheral.subscribed
        ):
            self.dropped += 1
            return
        self.sent += 1
        self._world.events += 1
        self.client.deliver_notification(uuid, bytes(data[: self._mtu - ATT_NOTIFY_HEADER]))


class WorldClock:
    """A :class:`~crampsense.clock.Clock` for code under test: reads the world's clock and
    sleeps until the pump has moved it (see :meth:`SimulatedWorld.wait_s`)."""

    def __init__(self, world: SimulatedWorld) -> None:
        self._world = world

    def now_ns(self) -> int:
        return self._world.clock.now_ns()

    def monotonic_ns(self) -> int:
        return self._world.clock.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await self._world.wait_s(seconds)


class SimulatedWorld:
    """Peripherals, one clock, scanners and connections; see the module docstring.

    Parameters
    ----------
    clock : FakeClock
        The shared clock; only the pump (and ``FakeClock.sleep`` callers) move it.
    peripherals : sequence of SimulatedPeripheral
        Initial devices, powered on and advertising.
    tick_s : float
        Simulated seconds per pump step (> 0).
    speed : float or None
        ``None``: as fast as possible; otherwise simulated seconds per real second (> 0).
    client_mtu : int
        MTU the central asks for (23-517); the link uses
        ``min(client_mtu, peripheral.preferred_mtu, limit)``.
    bluez_stale_device_quirk : bool
        After an unsolicited drop, connecting fails with ``BleakDeviceNotFoundError`` until a
        scan sees the device again (Linux/BlueZ behaviour).
    stop_when_finished : bool
        Let :meth:`run` return once every peripheral ever connected reports ``finished()``.
    run_while_idle : bool
        Keep time moving even when nothing needs it (no link, waiter or scheduled action).
        Default ``False``: the pump pauses then (see :meth:`run`).
    """

    def __init__(
        self,
        clock: FakeClock,
        peripherals: Sequence[SimulatedPeripheral] = (),
        *,
        tick_s: float = DEFAULT_TICK_S,
        speed: float | None = None,
        client_mtu: int = ATT_MAX_MTU,
        bluez_stale_device_quirk: bool = False,
        stop_when_finished: bool = True,
        run_while_idle: bool = False,
    ) -> None:
        if not tick_s > 0:
            msg = f"tick_s must be > 0 simulated seconds, got {tick_s!r}; use e.g. 0.05"
            raise ConfigError(msg, key="tick_s")
        if speed is not None and not speed > 0:
            msg = f"speed must be > 0 (simulated s per real s) or None, got {speed!r}"
            raise ConfigError(msg, key="speed")
        _check_mtu(client_mtu, "client_mtu")
        self.clock = clock
        self.tick_s = float(tick_s)
        self.speed = speed
        self.client_mtu = client_mtu
        self.bluez_stale_device_quirk = bluez_stale_device_quirk
        self.stop_when_finished = stop_when_finished
        self.run_while_idle = run_while_idle
        self._wake: asyncio.Event | None = None  # made by run(), in the running loop
        self._peripherals: dict[str, SimulatedPeripheral] = {}
        self._powered: dict[str, bool] = {}
        self._mtu_limit: dict[str, int] = {}
        self._links: dict[str, SimLink] = {}
        self._ever_connected: set[str] = set()
        self._needs_rescan: set[str] = set()
        self._bonded: set[str] = set()
        self._errors: dict[tuple[str, str], deque[BaseException | Callable[[], BaseException]]]
        self._errors = {}
        self._scanners: list[SimulatedBleakScanner] = []
        self._schedule: list[tuple[int, int, Callable[[], None]]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._seq = itertools.count()
        self._running = False
        self._stopped = False
        self._scan_started_real_s = -1e9
        self._next_adv_ns = 0
        #: Count of things code under test could react to (notifications delivered, actions
        #: run, waiters woken, links closed, advertisements); the pump yields when it moves.
        self.events = 0
        self._scanner_cls: type[SimulatedBleakScanner] | None = None
        self._client_cls: type[SimulatedBleakClient] | None = None
        for p in peripherals:
            self.add(p)

    # ------------------------------------------------------------------ devices

    def add(self, p: SimulatedPeripheral) -> None:
        """Add a peripheral, powered on and advertising.

        Raises
        ------
        DeviceError
            A peripheral with the same address is already in the world.
        """
        key = p.address.upper()
        if key in self._peripherals:
            msg = f"a peripheral with address {p.address} is already in this world; use another"
            raise DeviceError(msg, address=p.address)
        self._peripherals[key] = p
        self._powered[key] = True
        self._advertise_now(key)

    def peripheral(self, address: str) -> SimulatedPeripheral:
        """The peripheral at ``address`` (case-insensitive).

        Raises
        ------
        DeviceNotFoundError
            No such peripheral in this world.
        """
        try:
            return self._peripherals[address.upper()]
        except KeyError:
            known = ", ".join(sorted(self._peripherals)) or "none"
            msg = f"no simulated peripheral at {address}; the world has: {known}"
            raise DeviceNotFoundError(msg, address=address) from None

    @property
    def peripherals(self) -> tuple[SimulatedPeripheral, ...]:
        return tuple(self._peripherals.values())

    def is_connected(self, address: str) -> bool:
        """True while a central holds an open link to ``address``."""
        self.peripheral(address)
        return address.upper() in self._links

    def link(self, address: str) -> SimLink | None:
        """The open link to ``address`` (its counters, MTU), or ``None``."""
        self.peripheral(address)
        return self._links.get(address.upper())

    # ------------------------------------------------------------------ bleak backends

    @property
    def scanner_backend(self) -> type[BaseBleakScanner]:
        """A ``BaseBleakScanner`` subclass bound to this world: ``BleakScanner(backend=...)``."""
        if self._scanner_cls is None:
            self._scanner_cls = bind_scanner_backend(self)
        return self._scanner_cls

    @property
    def client_backend(self) -> type[BaseBleakClient]:
        """A ``BaseBleakClient`` subclass bound to this world: ``BleakClient(dev, backend=...)``."""
        if self._client_cls is None:
            self._client_cls = bind_client_backend(self)
        return self._client_cls

    @property
    def central_clock(self) -> WorldClock:
        """A clock for the code under test whose ``sleep`` waits for the pump."""
        return WorldClock(self)

    # ------------------------------------------------------------------ time

    async def run(self, *, max_duration_s: float | None = None) -> None:
        """Pump simulated time until stopped, finished, or ``max_duration_s`` has passed.

        With ``max_duration_s`` (or ``run_while_idle=True``) time always moves. Otherwise the
        pump pauses while the world is idle (no open link, no :meth:`wait_s` waiter, no
        scheduled action) and resumes when one appears, so that real-time waits such as
        ``BleakScanner.discover(timeout=...)`` do not let the simulated night run away
        before anyone connects.

        Raises
        ------
        DeviceError
            The pump of this world is already running.
        """
        if self._running:
            msg = "SimulatedWorld.run() is already running; start one pump per world"
            raise DeviceError(msg)
        end_ns = (
            None
            if max_duration_s is None
            else self.clock.monotonic_ns() + round(max_duration_s * 1e9)
        )
        pause_when_idle = end_ns is None and not self.run_while_idle
        wake = self._wake = asyncio.Event()
        self._running = True
        real0 = time.monotonic()
        sim0_ns = self.clock.monotonic_ns()
        quiet_steps = 0
        try:
            while not self._stopped:
                if end_ns is not None and self.clock.monotonic_ns() >= end_ns:
                    break
                if self.stop_when_finished and self._all_finished():
                    logger.debug("every connected peripheral finished; stopping the pump")
                    self.stop()
                    break
                if (
                    pause_when_idle
                    and self._scanners
                    and time.monotonic() - self._scan_started_real_s < SCAN_HOLD_MAX_S
                ):
                    # A central just started scanning. Here advertisements arrive at once,
                    # so simulated time holds still while bleak finishes the scan; otherwise
                    # a real-time scan would let simulated seconds run away and inflate every
                    # reconnect gap. Bounded, so a scan that waits for a device to appear at
                    # a scheduled simulated time still sees time move.
                    await asyncio.sleep(SCAN_HOLD_POLL_S)
                    real0, sim0_ns = time.monotonic(), self.clock.monotonic_ns()
                    continue
                if pause_when_idle and self.idle:
                    wake.clear()
                    await wake.wait()
                    real0, sim0_ns = time.monotonic(), self.clock.monotonic_ns()
                    continue
                events_before = self.events
                self.step()
                if self.speed is None:
                    quiet_steps = 0 if self.events != events_before else quiet_steps + 1
                    if quiet_steps == 0 or quiet_steps >= MAX_QUIET_STEPS:
                        quiet_steps = 0
                        await asyncio.sleep(0)
                else:
                    sim_elapsed_s = (self.clock.monotonic_ns() - sim0_ns) / 1e9
                    delay_s = real0 + sim_elapsed_s / self.speed - time.monotonic()
                    await asyncio.sleep(max(0.0, delay_s))
        finally:
            self._running = False

    def _poke(self) -> None:
        """Wake an idle pump: something now needs simulated time."""
        if self._wake is not None:
            self._wake.set()

    @property
    def idle(self) -> bool:
        """Nothing needs simulated time to pass: no open link, no waiter, nothing scheduled."""
        return not self._links and not self._waiters and not self._schedule

    @property
    def running(self) -> bool:
        """True while :meth:`run` is pumping."""
        return self._running

    @property
    def stopped(self) -> bool:
        """True after :meth:`stop` (or the finished condition): time no longer moves."""
        return self._stopped

    def stop(self) -> None:
        """Stop the pump for good; pending :meth:`wait_s` calls return ``False``."""
        self._stopped = True
        self._poke()
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_result(False)

    def step(self) -> None:
        """One pump iteration without yielding (advance ``tick_s``, act, tick, advertise)."""
        self.clock.advance(self.tick_s)
        now_ns = self.clock.monotonic_ns()
        while self._schedule and self._schedule[0][0] <= now_ns:
            _, _, action = heapq.heappop(self._schedule)
            self.events += 1
            action()
        for link in list(self._links.values()):
            if link.is_open:
                link.peripheral.tick(now_ns)
        if self._scanners and now_ns >= self._next_adv_ns:
            self.events += 1
            self._next_adv_ns = now_ns + round(ADVERTISING_INTERVAL_S * 1e9)
            for key in self._peripherals:
                self._advertise_now(key)
        while self._waiters and self._waiters[0][0] <= now_ns:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                self.events += 1
                fut.set_result(True)

    async def wait_s(self, seconds: float) -> bool:
        """Wait until the pump has advanced the clock by ``seconds`` of simulated time.

        Returns
        -------
        bool
            ``True`` when the time passed under the pump. ``False`` when the world stopped:
            a wait pending at :meth:`stop` returns at once (time ends where the world ended);
            a wait started after it advances the clock by ``seconds`` itself, like
            ``FakeClock.sleep``, so loops that sleep keep seeing time pass and never hang.

        Notes
        -----
        Before the pump has started, this waits for it.
        """
        delta_ns = round(max(0.0, seconds) * 1e9)
        if self._stopped:
            self.clock.advance(delta_ns / 1e9)
            await asyncio.sleep(0)
            return False
        if delta_ns == 0:
            await asyncio.sleep(0)
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        target_ns = self.clock.monotonic_ns() + delta_ns
        heapq.heappush(self._waiters, (target_ns, next(self._seq), fut))
        self._poke()
        return await fut

    def schedule(self, at_monotonic_s: float, action: Callable[[], None]) -> None:
        """Run ``action()`` in the first pump step at or after simulated monotonic time
        ``at_monotonic_s`` (same time: in the order scheduled). Exceptions stop the pump."""
        heapq.heappush(self._schedule, (round(at_monotonic_s * 1e9), next(self._seq), action))
        self._poke()

    def _all_finished(self) -> bool:
        if not self._ever_connected:
            return False
        return all(self._peripherals[key].finished() for key in self._ever_connected)

    # ------------------------------------------------------------------ faults

    def power_off(self, address: str) -> None:
        """Switch a device off: it stops advertising, its link drops, connects fail."""
        p = self.peripheral(address)
        key = p.address.upper()
        self._powered[key] = False
        self._close(key, unsolicited=True, reason="power off")

    def power_on(self, address: str, *, reboot: bool = True) -> None:
        """Switch a device back on: it advertises again at once.

        With ``reboot`` (a real power cycle, the default) a peripheral that defines
        ``power_cycle(now_ns)`` is told so, and resets what its firmware loses on reboot (device
        clock, counters). ``reboot=False`` models only the radio going away and coming back.
        """
        p = self.peripheral(address)
        key = p.address.upper()
        was_off = not self._powered[key]
        self._powered[key] = True
        hook = getattr(p, "power_cycle", None)
        if reboot and was_off and callable(hook):
            hook(self.clock.monotonic_ns())
        self._advertise_now(key)

    def is_powered(self, address: str) -> bool:
        return self._powered[self.peripheral(address).address.upper()]

    def drop_link(self, address: str) -> None:
        """Unsolicited disconnect (supervision timeout): the client's disconnected_callback
        fires, the peripheral forgets subscriptions, and it advertises again. No-op if idle."""
        key = self.peripheral(address).address.upper()
        if key not in self._links:
            logger.debug("drop_link(%s): not connected, nothing to drop", address)
        self._close(key, unsolicited=True, reason="link dropped")

    def stall(self, address: str, seconds: float) -> None:
        """Keep the link up but lose every notification for ``seconds`` of simulated time
        (or until the link closes). No-op when not connected."""
        link = self._links.get(self.peripheral(address).address.upper())
        if link is not None:
            link.stalled_until_ns = self.clock.monotonic_ns() + round(seconds * 1e9)

    def set_mtu_limit(self, address: str, mtu: int) -> None:
        """Cap the MTU negotiated by the next connections to ``address`` (23-517)."""
        key = self.peripheral(address).address.upper()
        _check_mtu(mtu, "mtu")
        self._mtu_limit[key] = mtu

    def inject_error(
        self,
        address: str,
        operation: Operation,
        error: BaseException | Callable[[], BaseException],
        *,
        count: int = 1,
    ) -> None:
        """Make the next ``count`` ``operation`` calls on ``address`` raise ``error``.

        ``error`` is an exception, or a callable (an exception class) that builds one, e.g.
        ``lambda: BleakError("le-connection-abort-by-local")`` or ``TimeoutError``.
        """
        if operation not in _OPERATIONS:
            msg = f"cannot inject errors into {operation!r}; use one of {', '.join(_OPERATIONS)}"
            raise ConfigError(msg, key="operation")
        key = self.peripheral(address).address.upper()
        self._errors.setdefault((key, operation), deque()).extend([error] * count)

    def raise_injected(self, address: str, operation: Operation) -> None:
        """Backend hook: raise the next error injected for ``operation`` on ``address``."""
        queue = self._errors.get((address.upper(), operation))
        if queue:
            error = queue.popleft()
            exc = error if isinstance(error, BaseException) else error()
            raise exc

    # ------------------------------------------------------------------ backend hooks

    def attach(
        self, client: SimulatedBleakClient, address: str, *, implicit_scan: bool
    ) -> SimLink:
        """Backend hook: open a link from ``client`` to ``address``.

        ``implicit_scan``: the client was given an address string, so (like bleak on BlueZ) it
        scans for the device first, which refreshes a stale device.

        Raises
        ------
        bleak.exc.BleakDeviceNotFoundError
            Unknown address, powered off, or (BlueZ quirk) not scanned since a drop.
        bleak.exc.BleakError
            Already connected to another central.
        """
        key = address.upper()
        p = self._peripherals.get(key)
        if p is None or not self._powered[key]:
            why = "no such device" if p is None else "device is off / not advertising"
            raise BleakDeviceNotFoundError(address, f"Device with address {address} was not "
                                           f"found ({why})")
        self.raise_injected(key, "connect")
        if self.bluez_stale_device_quirk and key in self._needs_rescan:
            if not implicit_scan:
                raise BleakDeviceNotFoundError(
                    address, f"Device with address {address} was not found (stale BlueZ "
                    "object after a disconnect: scan again)"
                )
            self._needs_rescan.discard(key)
        if key in self._links:
            msg = f"{address} is already connected to another central"
            raise BleakError(msg)
        mtu = min(self.client_mtu, p.preferred_mtu, self._mtu_limit.get(key, ATT_MAX_MTU))
        link = SimLink(self, p, client, max(ATT_DEFAULT_MTU, mtu))
        self._links[key] = link
        self._ever_connected.add(key)
        self._poke()
        p.on_connect(link)
        logger.debug("%s connected (MTU %d)", address, link.mtu)
        return link

    def detach(self, link: SimLink) -> None:
        """Backend hook: the central closes ``link`` (solicited; no disconnected_callback)."""
        key = link.peripheral.address.upper()
        if self._links.get(key) is link:
            self._close(key, unsolicited=False, reason="central disconnected")

    def bond(self, address: str, *, paired: bool) -> None:
        """Backend hook: remember (or forget) a pairing."""
        if paired:
            self._bonded.add(address.upper())
        else:
            self._bonded.discard(address.upper())

    def is_bonded(self, address: str) -> bool:
        return address.upper() in self._bonded

    def register_scanner(self, scanner: SimulatedBleakScanner) -> None:
        """Backend hook: ``scanner`` started; it gets every advertisement from now on."""
        self._scan_started_real_s = time.monotonic()
        if scanner not in self._scanners:
            self._scanners.append(scanner)

    def unregister_scanner(self, scanner: SimulatedBleakScanner) -> None:
        if scanner in self._scanners:
            self._scanners.remove(scanner)

    def advertise_to(self, scanner: SimulatedBleakScanner) -> None:
        """Backend hook: deliver the current advertisement of every advertising device."""
        for key in list(self._peripherals):
            if self._advertising(key):
                self._deliver_adv(key, scanner)

    def _advertising(self, key: str) -> bool:
        return self._powered[key] and key not in self._links

    def _advertise_now(self, key: str) -> None:
        if self._advertising(key):
            for scanner in list(self._scanners):
                self._deliver_adv(key, scanner)

    def _deliver_adv(self, key: str, scanner: SimulatedBleakScanner) -> None:
        p = self._peripherals[key]
        if scanner.receive_advertisement(p, p.advertisement(), SimulatedDeviceDetails(p.address)):
            self._needs_rescan.discard(key)

    def _close(self, key: str, *, unsolicited: bool, reason: str) -> None:
        link = self._links.pop(key, None)
        if link is None:
            return
        link.is_open = False
        self.events += 1
        logger.debug("%s disconnected: %s", link.peripheral.address, reason)
        link.peripheral.on_disconnect()
        if unsolicited and self.bluez_stale_device_quirk:
            self._needs_rescan.add(key)
        link.client.link_closed(unsolicited=unsolicited)
        self._advertise_now(key)


def _check_mtu(mtu: int, name: str) -> None:
    if not ATT_DEFAULT_MTU <= mtu <= ATT_MAX_MTU:
        msg = f"{name} {mtu} is outside the ATT range; use {ATT_DEFAULT_MTU} to {ATT_MAX_MTU}"
        raise ConfigError(msg, key=name)
