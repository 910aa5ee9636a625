"""The firmware simulators over a real Bluetooth LE host stack (bumble), in one process.

:class:`BumbleBench` puts one bumble :class:`~bumble.device.Device` per
:class:`~firmware_sims.peripheral.SimulatedPeripheral`, and one for the central, on bumble's
in-memory :class:`~bumble.link.LocalLink` (virtual controllers; no radio, no root, no network).
The peripheral side hosts the simulator's GATT table in a real bumble GATT server; the
central side is a pair of bleak backends, :class:`BumbleBleakClient` and
:class:`BumbleBleakScanner`, that bleak's own ``BleakClient(backend=...)`` /
``BleakScanner(backend=...)`` drive. So the transport code under test speaks real ATT and
GATT: MTU exchange, discovery with real handles, CCCD writes, notifications truncated to
``MTU - 3`` by the server, indications with confirmations, ATT error responses, and SMP
pairing (LE Secure Connections, Just Works) before encrypted characteristics answer::

    async with BumbleBench([HeartRateStrap(HR_STRAP)], clock=FakeClock(start)) as bench:
        transport = BleTransport(scanner_backend=bench.scanner_backend,
                                 client_backend=bench.client_backend)
        session = IngestSession(transport, protocol, sink, info, clock=bench.central_clock)
        ...

What maps to what
-----------------
- ``CharDef.properties`` become the characteristic's properties; ``read``/``write`` get the
  matching ATT permissions, plus "requires encryption" when ``CharDef.encrypted`` (the server
  then answers ATT 0x0F, Insufficient Encryption, until the link is encrypted by pairing).
- Reads and writes call ``peripheral.read``/``peripheral.write`` (``with_response`` tells an
  ATT Write Request from a Write Command); an :class:`~firmware_sims.peripheral.AttError`
  becomes an ATT Error Response with its code.
- A CCCD write calls ``peripheral.set_subscribed``; ``link.notify`` sends a notification or an
  indication, whichever the central enabled in the CCCD, in order, through bumble (which
  truncates to ``MTU - 3`` bytes); nothing is sent for a disabled CCCD.
- ``peripheral.preferred_mtu`` caps the MTU the server accepts; the central asks for
  ``client_mtu`` (247 by default, as BlueZ and Android do; 23 skips the exchange).

Time
----
Like :class:`~firmware_sims.world.SimulatedWorld`, the bench owns a
:class:`~crampsense.clock.FakeClock` and a pump task that advances it by ``tick_s`` per step,
calls ``tick(now_ns)`` on every connected peripheral, waits until the stack has carried what
they sent to the central (so receive times stay close to send times), and wakes
:meth:`BumbleBench.wait_s` waiters. Give the code under test :attr:`BumbleBench.central_clock`.
Simulated time moves only while somebody waits for it (a :meth:`BumbleBench.wait_s` or a
``central_clock.sleep``, such as the ingest session's watchdog): GATT procedures, which take
real milliseconds on the in-memory link, then cost no simulated time, and nothing streams
unless the code under test is waiting.

bumble quirks this module works around
--------------------------------------
- ``LocalLink`` routes LE data by the sender's *random* address, so every device here uses
  its address as a static random address (the simulators' addresses are of that form).
- bumble keeps no bond between connections unless given a key store: here every connection
  pairs again (the ingest session pairs when a write is refused, so this is what it sees).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Final, Literal

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, gatt, gatt_client
from bumble.controller import Controller
from bumble.device import Advertisement as BumbleAdvertisement
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from crampsense.clock import FakeClock
from crampsense.errors import ConfigError, DeviceError, DeviceNotFoundError
from firmware_sims.peripheral import (
    ATT_HEADER_BYTES,
    AttError,
    CharDef,
    ServiceDef,
    SimulatedPeripheral,
)

__all__ = [
    "ATT_DEFAULT_MTU",
    "CENTRAL_ADDRESS",
    "DEFAULT_CLIENT_MTU",
    "DEFAULT_TICK_S",
    "BumbleBench",
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "BumbleLink",
]

logger = logging.getLogger(__name__)

#: The ATT minimum MTU; a link that skips the exchange stays at it.
ATT_DEFAULT_MTU: Final = 23
#: MTU the central asks for by default: what BlueZ and Android request (a 244-byte payload).
DEFAULT_CLIENT_MTU: Final = 247
#: Largest ATT MTU (a 512-byte value plus the 5-byte header of a prepared write).
ATT_MAX_MTU: Final = 517
#: Pump step (simulated s): as in the simulated world, finer than any packet interval that
#: matters to the recorder and coarse enough to keep an hour at tens of thousands of steps.
DEFAULT_TICK_S: Final = 0.05
#: Static random address of the central (two top bits set, as static random addresses must).
CENTRAL_ADDRESS: Final = "C0:CE:27:A1:00:01"
#: Advertising interval of the simulated devices (ms, real time); wearables waiting for a
#: connection advertise every 20-100 ms, and a short one keeps scans in tests quick.
ADVERTISING_INTERVAL_MS: Final = 20.0
#: A connect that gets no answer from an advertising device within this many real seconds
#: fails; the in-memory link answers in milliseconds.
CONNECT_TIMEOUT_S: Final = 5.0
#: After each pump step, the pump gives the stack at most this many event-loop turns to carry
#: the step's notifications to the central (a notification takes about ten).
MAX_DELIVERY_TURNS: Final = 200
#: With nothing delivered for this many turns the pump moves on (the central may have dropped
#: a subscription the server still holds).
_IDLE_TURNS: Final = 20

_DIS_HIDDEN: Final = frozenset({
    normalize_uuid_str("1800"),  # Generic Access: BlueZ keeps it to itself
    normalize_uuid_str("1801"),  # Generic Attribute
})
_PROPERTY_NAMES: Final[dict[gatt.Characteristic.Properties, CharacteristicPropertyName]] = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}
_PROPERTY_FLAGS: Final = {name: flag for flag, name in _PROPERTY_NAMES.items()}
_USER_DESCRIPTION: Final = "2901"
#: Set while the GATT server handles an ATT Write Command (a write without response).
_WRITE_COMMAND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bumble_write_command", default=False
)


def _uuid_str(uuid: core.UUID) -> str:
    """bumble UUID -> bleak's lower-case 128-bit string."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


def _bumble_uuid(uuid: str) -> core.UUID:
    return core.UUID(normalize_uuid_str(uuid))


# =====================================================================================
# peripheral side


class BumbleLink:
    """One simulated device on the bench: its bumble device and GATT server, and the
    :class:`~firmware_sims.peripheral.Link` its firmware sends through.

    Attributes
    ----------
    peripheral : SimulatedPeripheral
    device : bumble.device.Device
    characteristics : dict of str to bumble.gatt.Characteristic
        By lower-case 128-bit UUID.
    notifications_sent, indications_confirmed, dropped : int
        What left the server (indications count once the central confirmed them) and what
        was not sent because the central had not enabled the CCCD or no link was open.
    subscription_log : list of (str, bool, bool)
        Every CCCD write the server received: (characteristic UUID, notify, indicate).
    """

    def __init__(self, bench: BumbleBench, peripheral: SimulatedPeripheral) -> None:
        self.bench = bench
        self.peripheral = peripheral
        self.device: Device | None = None
        self.connection: Connection | None = None
        self.characteristics: dict[str, gatt.Characteristic[bytes]] = {}
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._busy = False
        self.notifications_sent = 0
        self.indications_confirmed = 0
        self.dropped = 0
        self.subscription_log: list[tuple[str, bool, bool]] = []

    # ------------------------------------------------------------------ Link protocol

    @property
    def mtu(self) -> int:
        """Negotiated ATT MTU of the open connection (23 when none)."""
        conn = self.connection
        return int(conn.att_mtu) if conn is not None else ATT_DEFAULT_MTU

    def now_ns(self) -> int:
        return self.bench.clock.monotonic_ns()

    def notify(self, char_uuid: str, data: bytes) -> None:
        """Queue a notification/indication; the sender task hands it to bumble in order."""
        if self.connection is None:
            self.dropped += 1
            return
        self._queue.append((normalize_uuid_str(char_uuid), bytes(data)))
        self._wake.set()

    # ------------------------------------------------------------------ setup

    async def power_on(self, link: LocalLink) -> None:
        p = self.peripheral
        address = Address(p.address)
        controller = Controller(f"sim-{p.address}", link=link, public_address=address)
        device = Device(name=p.name, address=address, host=Host(controller,
                                                                 AsyncPipeSink(controller)))
        self.device = device
        device.gatt_server.max_mtu = max(ATT_DEFAULT_MTU, min(ATT_MAX_MTU, p.preferred_mtu))
        device.add_services([self._service(s) for s in p.gatt()])
        _mark_write_commands(device)
        device.gatt_server.on("characteristic_subscription", self._on_subscription)
        device.on("connection", self._on_connection)
        await device.power_on()
        await self.advertise()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def advertise(self) -> None:
        if self.device is None:
            return
        await self.device.start_advertising(
            advertising_data=_advertising_data(self.peripheral),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS,
            auto_restart=True,
        )

    async def close(self) -> None:
        task, self._sender = self._sender, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.device is not None:
            with contextlib.suppress(Exception):
                await self.device.stop_advertising()

    def _service(self, sdef: ServiceDef) -> gatt.Service:
        return gatt.Service(_bumble_uuid(sdef.uuid), [self._characteristic(c)
                                                      for c in sdef.characteristics])

    def _characteristic(self, cdef: CharDef) -> gatt.Characteristic[bytes]:
        uuid = normalize_uuid_str(cdef.uuid)
        props = gatt.Characteristic.Properties(0)
        for name in cdef.properties:
            props |= _PROPERTY_FLAGS[name]
        perms = att.Attribute.Permissions(0)
        if "read" in cdef.properties:
            perms |= att.Attribute.READABLE
            if cdef.encrypted:
                perms |= att.Attribute.READ_REQUIRES_ENCRYPTION
        if "write" in cdef.properties or "write-without-response" in cdef.properties:
            perms |= att.Attribute.WRITEABLE
            if cdef.encrypted:
                perms |= att.Attribute.WRITE_REQUIRES_ENCRYPTION
        descriptors = []
        if cdef.description:
            descriptors.append(gatt.Descriptor(_bumble_uuid(_USER_DESCRIPTION),
                                               att.Attribute.READABLE,
                                               cdef.description.encode()))
        value = gatt.CharacteristicValue(
            read=lambda _conn, u=uuid: self._read(u),
            write=lambda _conn, v, u=uuid: self._write(u, v),
        )
        char: gatt.Characteristic[bytes] = gatt.Characteristic(
            _bumble_uuid(uuid), props, perms, value, descriptors
        )
        self.characteristics[uuid] = char
        return char

    def _read(self, uuid: str) -> bytes:
        try:
            return bytes(self.peripheral.read(uuid))
        except AttError as exc:
            raise att.ATT_Error(error_code=exc.code) from exc

    def _write(self, uuid: str, value: bytes) -> None:
        command = _WRITE_COMMAND.get()
        try:
            self.peripheral.write(uuid, bytes(value), with_response=not command)
        except AttError as exc:
            if command:  # a command has no response: the error is lost on air
                logger.debug("write command to %s rejected and lost: %s", uuid, exc)
                return
            raise att.ATT_Error(error_code=exc.code) from exc

    # ------------------------------------------------------------------ events

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self._queue.clear()
        connection.on("disconnection", lambda _reason: self._on_disconnection(connection))
        connection.on("pairing", lambda _keys: self._on_pairing())
        self.bench.link_opened(self)
        self.peripheral.on_connect(self)

    def _on_disconnection(self, connection: Connection) -> None:
        if self.connection is not connection:
            return
        self.connection = None
        self._queue.clear()
        self.peripheral.on_disconnect()
        self.bench.link_closed(self)

    def _on_pairing(self) -> None:
        self.peripheral.paired = True

    def _on_subscription(
        self, _bearer: Any, characteristic: gatt.Characteristic[bytes], notify: bool,
        indicate: bool,
    ) -> None:
        uuid = _uuid_str(characteristic.uuid)
        self.subscription_log.append((uuid, notify, indicate))
        self.peripheral.set_subscribed(uuid, notify or indicate)

    def cccd(self, char_uuid: str) -> bytes:
        """The CCCD value the server holds for ``char_uuid`` on the open link (``00 00``
        when unset or not connected): what the central really wrote."""
        conn = self.connection
        char = self.characteristics[normalize_uuid_str(char_uuid)]
        if conn is None or self.device is None:
            return b"\x00\x00"
        return bytes(self.device.gatt_server.read_cccd(conn, char))

    # ------------------------------------------------------------------ sending

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being handed to bumble."""
        return not self._queue and not self._busy

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                uuid, data = self._queue.popleft()
                self._busy = True
                try:
                    await self._send_one(uuid, data)
                except Exception as exc:  # noqa: BLE001 - a failed send must not end the loop
                    logger.debug("sending %s to the central failed: %s", uuid, exc)
                    self.dropped += 1
                finally:
                    self._busy = False

    async def _send_one(self, uuid: str, data: bytes) -> None:
        conn, device = self.connection, self.device
        char = self.characteristics.get(uuid)
        if conn is None or device is None or char is None:
            self.dropped += 1
            return
        cccd = self.cccd(uuid)
        if cccd[0] & 0x02 and char.properties & gatt.Characteristic.Properties.INDICATE:
            await device.indicate_subscriber(conn, char, data)
            self.indications_confirmed += 1
        elif cccd[0] & 0x01 and char.properties & gatt.Characteristic.Properties.NOTIFY:
            self.notifications_sent += 1
            self.bench.sent += 1
            await device.notify_subscriber(conn, char, data)
        else:
            self.dropped += 1


def _mark_write_commands(device: Device) -> None:
    """Let value callbacks tell an ATT Write Command (no response) from a Write Request.

    bumble calls the same write callback for both; its command handler runs the write in a
    task, which copies the context, so a context variable set around it reaches the callback.
    """
    server = device.gatt_server
    original = server.on_att_write_command

    def on_att_write_command(bearer: Any, request: Any) -> Any:
        token = _WRITE_COMMAND.set(True)
        try:
            return original(bearer, request)
        finally:
            _WRITE_COMMAND.reset(token)

    server.on_att_write_command = on_att_write_command


def _advertising_data(p: SimulatedPeripheral) -> bytes:
    adv = p.advertisement()
    fields: list[tuple[int, bytes]] = [(core.AdvertisingData.FLAGS, b"\x06")]
    uuids16 = [u for u in (_bumble_uuid(s) for s in adv.service_uuids) if len(u.uuid_bytes) == 2]
    uuids128 = [u for u in (_bumble_uuid(s) for s in adv.service_uuids)
                if len(u.uuid_bytes) != 2]
    if uuids16:
        fields.append((core.AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                       b"".join(u.to_bytes() for u in uuids16)))
    if uuids128:
        fields.append((core.AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                       b"".join(u.to_bytes(force_128=True) for u in uuids128)))
    for company, payload in adv.manufacturer_data.items():
        fields.append((core.AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                       company.to_bytes(2, "little") + payload))
    if adv.tx_power is not None:
        fields.append((core.AdvertisingData.TX_POWER_LEVEL,
                       (adv.tx_power & 0xFF).to_bytes(1, "little")))
    fields.append((core.AdvertisingData.COMPLETE_LOCAL_NAME, adv.local_name.encode()))
    return bytes(core.AdvertisingData(fields))


def _parse_advertisement(
    adv: BumbleAdvertisement,
) -> tuple[str | None, list[str], dict[int, bytes], int | None]:
    name: str | None = None
    uuids: list[str] = []
    manufacturer: dict[int, bytes] = {}
    tx_power: int | None = None
    for ad_type, value in adv.data.ad_structures:
        raw = bytes(value)
        if ad_type in (core.AdvertisingData.COMPLETE_LOCAL_NAME,
                       core.AdvertisingData.SHORTENED_LOCAL_NAME):
            name = raw.decode("utf-8", errors="replace")
        elif ad_type in (core.AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                         core.AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS):
            uuids += [_uuid_str(core.UUID.from_bytes(raw[i:i + 2]))
                      for i in range(0, len(raw) - 1, 2)]
        elif ad_type in (core.AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                         core.AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
            uuids += [_uuid_str(core.UUID.from_bytes(raw[i:i + 16]))
                      for i in range(0, len(raw) - 15, 16)]
        elif ad_type == core.AdvertisingData.MANUFACTURER_SPECIFIC_DATA and len(raw) >= 2:
            manufacturer[int.from_bytes(raw[:2], "little")] = raw[2:]
        elif ad_type == core.AdvertisingData.TX_POWER_LEVEL and raw:
            tx_power = int.from_bytes(raw[:1], "little", signed=True)
    return name, list(dict.fromkeys(uuids)), manufacturer, tx_power


# =====================================================================================
# the bench


class _BenchClock:
    """A :class:`~crampsense.clock.Clock` whose ``sleep`` waits for the bench's pump."""

    def __init__(self, bench: BumbleBench) -> None:
        self._bench = bench

    def now_ns(self) -> int:
        return self._bench.clock.now_ns()

    def monotonic_ns(self) -> int:
        return self._bench.clock.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await self._bench.wait_s(seconds)


class BumbleBench:
    """Simulated peripherals and one central on a bumble ``LocalLink``; see the module doc.

    Parameters
    ----------
    peripherals : sequence of SimulatedPeripheral
        Devices to host; each advertises once the bench started.
    clock : FakeClock, optional
        The shared clock (a new one at 2024-01-01T00:00Z if omitted).
    client_mtu : int
        MTU the central requests in the exchange (23-517); 23 skips the exchange.
    tick_s : float
        Simulated seconds per pump step (> 0).

    Use as ``async with BumbleBench(...) as bench:`` (or ``await bench.start()`` and
    ``await bench.close()``); bumble needs a running event loop to build its controllers.
    """

    def __init__(
        self,
        peripherals: Sequence[SimulatedPeripheral] = (),
        *,
        clock: FakeClock | None = None,
        client_mtu: int = DEFAULT_CLIENT_MTU,
        tick_s: float = DEFAULT_TICK_S,
    ) -> None:
        if not ATT_DEFAULT_MTU <= client_mtu <= ATT_MAX_MTU:
            msg = f"client_mtu {client_mtu} is outside the ATT range; use 23 to {ATT_MAX_MTU}"
            raise ConfigError(msg, key="client_mtu")
        if not tick_s > 0:
            msg = f"tick_s must be > 0 simulated seconds, got {tick_s!r}; use e.g. 0.05"
            raise ConfigError(msg, key="tick_s")
        if clock is None:
            from datetime import UTC, datetime  # noqa: PLC0415 - only for the default

            clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
        self.clock = clock
        self.client_mtu = client_mtu
        self.tick_s = float(tick_s)
        self._pending = list(peripherals)
        self._links: dict[str, BumbleLink] = {}
        self._open: set[str] = set()
        self.central: Device | None = None
        self._link: LocalLink | None = None
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []
        self._seq = itertools.count()
        self._scanners: list[BumbleBleakScanner] = []
        self._closed = False
        #: Notifications the servers sent / the central's callbacks received.
        self.sent = 0
        self.received = 0
        self._scanner_cls: type[BumbleBleakScanner] | None = None
        self._client_cls: type[BumbleBleakClient] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build the link, the central and every peripheral; start the pump."""
        if self._link is not None:
            return
        self._link = LocalLink()  # type: ignore[no-untyped-call]  # bumble leaves it untyped
        self._wake = asyncio.Event()
        address = Address(CENTRAL_ADDRESS)
        controller = Controller("central", link=self._link, public_address=address)
        self.central = Device(name="crampsense", address=address,
                              host=Host(controller, AsyncPipeSink(controller)))
        self.central.on("advertisement", self._on_advertisement)
        await self.central.power_on()
        pending, self._pending = self._pending, []
        for p in pending:
            await self.add(p)
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def add(self, peripheral: SimulatedPeripheral) -> BumbleLink:
        """Host another peripheral (powered on and advertising).

        Raises
        ------
        DeviceError
            A peripheral with the same address is already on the bench.
        """
        key = peripheral.address.upper()
        if key in self._links:
            msg = f"a peripheral with address {peripheral.address} is already on the bench"
            raise DeviceError(msg, address=peripheral.address)
        if self._link is None:
            msg = "start the bench (async with BumbleBench(...)) before adding peripherals"
            raise DeviceError(msg, address=peripheral.address)
        host = BumbleLink(self, peripheral)
        self._links[key] = host
        await host.power_on(self._link)
        return host

    async def close(self) -> None:
        """Disconnect everything and stop every task the bench started."""
        if self._closed:
            return
        self._closed = True
        self._release_waiters()
        if self._wake is not None:
            self._wake.set()
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        for host in self._links.values():
            conn = host.connection
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.disconnect(), 1.0)
            await host.close()
        if self.central is not None and self.central.is_scanning:
            with contextlib.suppress(Exception):
                await self.central.stop_scanning()
        await asyncio.sleep(0)

    async def __aenter__(self) -> BumbleBench:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ access

    def link(self, address: str) -> BumbleLink:
        """The bench entry of a peripheral (its server, CCCDs, counters).

        Raises
        ------
        DeviceNotFoundError
            No such peripheral on the bench.
        """
        try:
            return self._links[address.upper()]
        except KeyError:
            known = ", ".join(sorted(self._links)) or "none"
            msg = f"no peripheral at {address} on the bench; it has: {known}"
            raise DeviceNotFoundError(msg, address=address) from None

    @property
    def scanner_backend(self) -> type[BaseBleakScanner]:
        """``BleakScanner(backend=bench.scanner_backend)``."""
        if self._scanner_cls is None:
            self._scanner_cls = type("BenchScanner", (BumbleBleakScanner,), {"bench": self})
        return self._scanner_cls

    @property
    def client_backend(self) -> type[BaseBleakClient]:
        """``BleakClient(device, backend=bench.client_backend)``."""
        if self._client_cls is None:
            self._client_cls = type("BenchClient", (BumbleBleakClient,), {"bench": self})
        return self._client_cls

    @property
    def central_clock(self) -> _BenchClock:
        """A clock for the code under test whose ``sleep`` waits for the pump."""
        return _BenchClock(self)

    async def drop_link(self, address: str) -> None:
        """The peripheral ends the connection (the central's disconnected_callback fires)."""
        conn = self.link(address).connection
        if conn is not None:
            await conn.disconnect()

    # ------------------------------------------------------------------ time

    async def wait_s(self, seconds: float) -> bool:
        """Wait until the pump has moved the clock ``seconds`` (``False`` once closed)."""
        delta_ns = round(max(0.0, seconds) * 1e9)
        if self._closed:
            self.clock.advance(delta_ns / 1e9)
            await asyncio.sleep(0)
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self.clock.monotonic_ns() + delta_ns, next(self._seq),
                                       fut))
        if self._wake is not None:
            self._wake.set()
        return await fut

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for _, _, fut in waiters:
            if not fut.done():
                fut.set_result(False)

    async def _run(self) -> None:
        wake = self._wake
        if wake is None:
            return
        while not self._closed:
            if not self._waiters:
                wake.clear()
                await wake.wait()
                continue
            self.clock.advance(self.tick_s)
            now_ns = self.clock.monotonic_ns()
            for key in list(self._open):
                host = self._links[key]
                if host.connection is not None:
                    host.peripheral.tick(now_ns)
            await self._settle()
            while self._waiters and self._waiters[0][0] <= now_ns:
                _, _, fut = heapq.heappop(self._waiters)
                if not fut.done():
                    fut.set_result(True)
            await asyncio.sleep(0)

    async def _settle(self) -> None:
        """Let the stack carry what the peripherals sent in this step to the central."""
        idle_turns = 0
        for _ in range(MAX_DELIVERY_TURNS):
            busy = any(not self._links[k].idle for k in self._open)
            if not busy and self.received >= self.sent:
                return
            before = self.received
            await asyncio.sleep(0)
            idle_turns = 0 if self.received != before or busy else idle_turns + 1
            if idle_turns >= _IDLE_TURNS:
                self.received = self.sent  # lost on the way (unsubscribed): stop waiting
                return

    # ------------------------------------------------------------------ hooks

    def link_opened(self, host: BumbleLink) -> None:
        self._open.add(host.peripheral.address.upper())
        if self._wake is not None:
            self._wake.set()

    def link_closed(self, host: BumbleLink) -> None:
        self._open.discard(host.peripheral.address.upper())
        self.received = max(self.received, self.sent)

    def _on_advertisement(self, adv: BumbleAdvertisement) -> None:
        for scanner in list(self._scanners):
            scanner.receive(adv)

    async def register_scanner(self, scanner: BumbleBleakScanner) -> None:
        self._scanners.append(scanner)
        if self.central is not None and not self.central.is_scanning:
            await self.central.start_scanning(filter_duplicates=False)

    async def unregister_scanner(self, scanner: BumbleBleakScanner) -> None:
        if scanner in self._scanners:
            self._scanners.remove(scanner)
        if not self._scanners and self.central is not None and self.central.is_scanning:
            await self.central.stop_scanning()

    def is_advertising(self, address: str) -> bool:
        host = self._links.get(address.upper())
        return host is not None and host.connection is None and host.device is not None


def _bench_of(obj: object, kind: str) -> BumbleBench:
    bench: BumbleBench | None = getattr(type(obj), "bench", None)
    if bench is None:
        msg = f"{type(obj).__name__} is not bound to a bench; pass bench.{kind}_backend to bleak"
        raise DeviceError(msg)
    return bench


# =====================================================================================
# central side: the bleak backends


class BumbleBleakScanner(BaseBleakScanner):
    """Scanner backend over the bench's central; bleak constructs it as
    ``(detection_callback, service_uuids, scanning_mode, *, bluez, cb, **kwargs)``."""

    bench: ClassVar[BumbleBench | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bluez: Any = None,
        cb: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._bench = _bench_of(self, "scanner")
        if self._service_uuids is not None:
            self._service_uuids = [normalize_uuid_str(u) for u in self._service_uuids]
        self.scanning_mode = scanning_mode

    async def start(self) -> None:
        self.seen_devices = {}
        await self._bench.register_scanner(self)

    async def stop(self) -> None:
        await self._bench.unregister_scanner(self)

    def receive(self, adv: BumbleAdvertisement) -> None:
        """Bench hook: one advertising report from the central's controller."""
        name, uuids, manufacturer, tx_power = _parse_advertisement(adv)
        if not self.is_allowed_uuid(uuids):
            return
        address = adv.address.to_string(with_type_qualifier=False)
        data = AdvertisementData(
            local_name=name,
            manufacturer_data=manufacturer,
            service_data={},
            service_uuids=uuids,
            tx_power=tx_power,
            rssi=int(adv.rssi),
            platform_data=(adv,),
        )
        device = self.create_or_update_device(address, address, name, adv.address, data)
        self.call_detection_callbacks(device, data)


class BumbleBleakClient(BaseBleakClient):
    """Client backend over the bench's central: real ATT/GATT through bumble.

    bleak constructs it as ``(address_or_ble_device, *, disconnected_callback, services,
    timeout, bluez, winrt, **kwargs)``.
    """

    bench: ClassVar[BumbleBench | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Any = None,
        timeout: float = 10.0,
        services: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._bench = _bench_of(self, "client")
        self._service_filter = (
            None if services is None else {normalize_uuid_str(u) for u in services}
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._solicited = False
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}

    # --------------------------------------------------------------- connection

    @property
    def mtu_size(self) -> int:
        conn = self._connection
        return int(conn.att_mtu) if conn is not None else ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        bench = self._bench
        if self.is_connected:
            msg = "Client is already connected"
            raise BleakError(msg)
        if bench.central is None:
            msg = "the bench is not started; use `async with BumbleBench(...)`"
            raise BleakError(msg)
        if not bench.is_advertising(self.address):
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found"
            )
        try:
            conn = await asyncio.wait_for(bench.central.connect(Address(self.address)),
                                          min(self._timeout, CONNECT_TIMEOUT_S))
        except (TimeoutError, core.BaseBumbleError) as exc:
            msg = f"connecting to {self.address} failed: {exc or type(exc).__name__}"
            raise BleakError(msg) from exc
        self._connection = conn
        self._solicited = False
        conn.on("disconnection", lambda _reason: self._on_disconnection(conn))
        peer = Peer(conn)
        self._peer = peer
        try:
            if bench.client_mtu > ATT_DEFAULT_MTU:
                await peer.request_mtu(bench.client_mtu)
            self.services = await self._discover(peer)
            if pair:
                await self.pair()
        except (core.BaseBumbleError, att.ATT_Error, TimeoutError) as exc:
            await self.disconnect()
            msg = f"setting up the connection to {self.address} failed: {exc}"
            raise BleakError(msg) from exc

    def _on_disconnection(self, conn: Connection) -> None:
        if self._connection is not conn:
            return
        self._connection = None
        self._peer = None
        self._subscriptions.clear()
        self.services = None  # as bleak's BlueZ backend leaves it after a disconnect
        if not self._solicited and self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:
                logger.exception("disconnected_callback of %s raised", self.address)

    async def disconnect(self) -> None:
        conn = self._connection
        if conn is None:
            return
        self._solicited = True
        with contextlib.suppress(core.BaseBumbleError, TimeoutError):
            await asyncio.wait_for(conn.disconnect(), CONNECT_TIMEOUT_S)
        self._on_disconnection(conn)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Real SMP pairing (LE Secure Connections, Just Works); the link is encrypted after."""
        conn = self._require()
        try:
            await conn.pair()
        except (core.BaseBumbleError, TimeoutError) as exc:
            msg = f"pairing with {self.address} failed: {exc}"
            raise BleakError(msg) from exc

    async def unpair(self) -> None:
        await self.disconnect()

    # --------------------------------------------------------------- GATT

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services():
            suuid = _uuid_str(service.uuid)
            if suuid in _DIS_HIDDEN or (
                self._service_filter is not None and suuid not in self._service_filter
            ):
                continue
            bservice = BleakGATTService(service, service.handle, suuid)
            collection.add_service(bservice)
            for char in await peer.discover_characteristics(service=service):
                await peer.discover_descriptors(char)
                props = [name for flag, name in _PROPERTY_NAMES.items()
                         if char.properties & flag]
                bchar = BleakGATTCharacteristic(
                    char, char.handle, _uuid_str(char.uuid), props,
                    lambda: self.mtu_size - ATT_HEADER_BYTES, bservice,
                )
                collection.add_characteristic(bchar)
                for desc in char.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, _uuid_str(desc.type), bchar)
                    )
        return collection

    def _require(self) -> Connection:
        if self._connection is None:
            msg = "Not connected"
            raise BleakError(msg)
        return self._connection

    def _require_peer(self) -> Peer:
        self._require()
        if self._peer is None:
            msg = "Not connected"
            raise BleakError(msg)
        return self._peer

    @staticmethod
    def _translate(exc: Exception, what: str) -> BleakError:
        if isinstance(exc, att.ATT_Error):
            return BleakGATTProtocolError(int(exc.error_code))
        return BleakError(f"{what} failed: {exc or type(exc).__name__}")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        peer = self._require_peer()
        try:
            return bytearray(await peer.read_value(characteristic.obj))
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"reading {characteristic.uuid}") from exc

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peer = self._require_peer()
        payload = bytes(data)
        if not response:
            if "write-without-response" not in characteristic.properties:
                msg = (f"characteristic {characteristic.uuid} does not support write without "
                       "response")
                raise BleakError(msg)
            limit = self.mtu_size - ATT_HEADER_BYTES
            if len(payload) > limit:
                msg = f"{len(payload)} bytes exceed max_write_without_response_size {limit}"
                raise BleakError(msg)
        try:
            await peer.write_value(characteristic.obj, payload, with_response=response)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"writing {characteristic.uuid}") from exc

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peer = self._require_peer()
        try:
            return bytearray(await peer.read_value(descriptor.obj))
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"reading descriptor {descriptor.handle}") from exc

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        peer = self._require_peer()
        try:
            await peer.write_value(descriptor.obj, bytes(data), with_response=True)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"writing descriptor {descriptor.handle}") from exc

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Write the real CCCD: ``01 00`` (notify) if the characteristic notifies, else
        ``02 00`` (indicate), as BlueZ does."""
        peer = self._require_peer()
        props = characteristic.properties
        if "notify" not in props and "indicate" not in props:
            msg = f"characteristic {characteristic.uuid} does not support notify or indicate"
            raise BleakError(msg)
        bench = self._bench

        def on_value(value: bytes) -> None:
            bench.received += 1
            try:
                callback(bytearray(value))
            except Exception:
                logger.exception("notification callback for %s raised", characteristic.uuid)

        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        try:
            await peer.gatt_client.subscribe(proxy, on_value, prefer_notify=True)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"subscribing to {characteristic.uuid}") from exc
        self._subscriptions[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        on_value = self._subscriptions.pop(characteristic.handle, None)
        proxy: gatt_client.CharacteristicProxy[bytes] = characteristic.obj
        try:
            await peer.gatt_client.unsubscribe(proxy, on_value, force=True)
        except (att.ATT_Error, core.BaseBumbleError, TimeoutError) as exc:
            raise self._translate(exc, f"unsubscribing from {characteristic.uuid}") from exc


