"""bleak backend classes that talk to a :class:`~firmware_sims.world.SimulatedWorld`.

Never instantiate these directly: take the classes bound to a world from
``world.scanner_backend`` / ``world.client_backend`` and pass them to bleak's own facade
(``BleakScanner(backend=...)``, ``BleakClient(device, backend=...)``), so the code under test
is exactly the code that runs against a radio.

What a real stack does and these classes do too
-----------------------------------------------
- Service discovery builds a real :class:`~bleak.backends.service.BleakGATTServiceCollection`
  with realistic handles: application services start at handle 0x0010 (GAP/GATT below are
  hidden, as BlueZ hides them); a characteristic's handle is its value handle; a notify or
  indicate characteristic gets a CCCD (0x2902) right after its value, and a characteristic
  with a description gets a User Description (0x2901) descriptor.
- ATT error responses (:class:`~firmware_sims.peripheral.AttError`) become
  :class:`bleak.exc.BleakGATTProtocolError` (a ``BleakError`` whose ``code`` is the ATT code);
  errors of writes without response are lost, as on air.
- A characteristic defined with ``CharDef(encrypted=True)`` answers reads and writes with ATT
  0x05 (Insufficient Authentication) until :meth:`SimulatedBleakClient.pair` ran, which sets
  ``peripheral.paired`` (a bond: it survives reconnects); a write without response to it is
  lost instead.
- Operations on a closed link raise ``BleakError("Not connected")``; an unknown or switched-off
  address raises ``BleakDeviceNotFoundError`` on connect.
- The ``disconnected_callback`` fires only for unsolicited disconnects; afterwards ``services``
  is ``None`` again (as with BlueZ), so bleak's facade raises ``BleakError`` on use.
- Notification callbacks get only the data as a ``bytearray``; an exception in a callback is
  logged and swallowed, as a D-Bus signal handler would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16, normalize_uuid_str

from crampsense.devices.gatt import CCCD_UUID
from crampsense.errors import DeviceError
from firmware_sims.peripheral import (
    ATT_HEADER_BYTES,
    ATT_INSUFFICIENT_AUTHENTICATION,
    ATT_INVALID_VALUE_LENGTH,
    ATT_READ_NOT_PERMITTED,
    ATT_WRITE_NOT_PERMITTED,
    Advertisement,
    AttError,
    SimulatedPeripheral,
)

if TYPE_CHECKING:
    from firmware_sims.world import SimLink, SimulatedWorld

__all__ = [
    "ADVERTISING_INTERVAL_S",
    "ATT_DEFAULT_MTU",
    "FIRST_APP_HANDLE",
    "SimulatedBleakClient",
    "SimulatedBleakScanner",
    "SimulatedDeviceDetails",
    "bind_client_backend",
    "bind_scanner_backend",
]

logger = logging.getLogger(__name__)

#: First handle of the application services; 0x0001-0x000F hold GAP and GATT, which BlueZ
#: keeps to itself and never shows to bleak.
FIRST_APP_HANDLE: Final = 0x0010
#: How often an active scanner sees each advertising device (s, simulated and real time).
#: Wearables advertise every 100 ms to 1 s; BlueZ reports a device about once a second.
ADVERTISING_INTERVAL_S: Final = 1.0
#: The ATT minimum MTU; every LE device must accept it (Core Spec Vol 3 Part F 3.2.8).
ATT_DEFAULT_MTU: Final = 23
#: Longest attribute value (Core Spec Vol 3 Part F 3.2.9).
MAX_ATTRIBUTE_LEN: Final = 512
USER_DESCRIPTION_UUID: Final = normalize_uuid_16(0x2901)
_CCCD_NOTIFY: Final = b"\x01\x00"
_CCCD_INDICATE: Final = b"\x02\x00"
_CCCD_OFF: Final = b"\x00\x00"


@dataclass(frozen=True, slots=True)
class SimulatedDeviceDetails:
    """``BLEDevice.details`` of a simulated device (the platform handle bleak carries along)."""

    address: str


def _bound_world(obj: object, kind: str) -> SimulatedWorld:
    world: SimulatedWorld | None = getattr(type(obj), "world", None)
    if world is None:
        msg = f"{type(obj).__name__} is not bound to a world; pass world.{kind}_backend to bleak"
        raise DeviceError(msg)
    return world


class SimulatedBleakScanner(BaseBleakScanner):
    """Scanner backend; bleak constructs it as ``(detection_callback, service_uuids,
    scanning_mode, *, bluez, cb, **kwargs)``."""

    world: ClassVar[SimulatedWorld | None] = None

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
        self._world = _bound_world(self, "scanner")
        if self._service_uuids is not None:
            self._service_uuids = [normalize_uuid_str(u) for u in self._service_uuids]
        self.scanning_mode = scanning_mode
        self._active = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start scanning: every advertising device is reported right after the caller's
        next await, then about every second (simulated or real time, whichever is first)."""
        self.seen_devices = {}
        self._active = True
        self._world.register_scanner(self)
        loop = asyncio.get_running_loop()
        # call_soon, not now: bleak's find_device_by_filter registers its callback after
        # start() returns, and a real first advertisement also arrives a moment later.
        loop.call_soon(self._advertise_all)
        self._task = loop.create_task(self._readvertise())

    async def stop(self) -> None:
        self._active = False
        self._world.unregister_scanner(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _advertise_all(self) -> None:
        if self._active:
            self._world.advertise_to(self)

    async def _readvertise(self) -> None:
        while self._active:
            await asyncio.sleep(ADVERTISING_INTERVAL_S)
            self._advertise_all()

    def receive_advertisement(
        self, peripheral: SimulatedPeripheral, adv: Advertisement, details: SimulatedDeviceDetails
    ) -> bool:
        """World hook: one advertisement on air. Returns True if this scanner was listening."""
        if not self._active:
            return False
        uuids = [normalize_uuid_str(u) for u in adv.service_uuids]
        if not self.is_allowed_uuid(uuids):
            return True
        data = AdvertisementData(
            local_name=adv.local_name,
            manufacturer_data=dict(adv.manufacturer_data),
            service_data={},
            service_uuids=uuids,
            tx_power=adv.tx_power,
            rssi=adv.rssi,
            platform_data=(details,),
        )
        device = self.create_or_update_device(
            peripheral.address, peripheral.address, adv.local_name, details, data
        )
        device.details = details
        self.call_detection_callbacks(device, data)
        return True


class SimulatedBleakClient(BaseBleakClient):
    """Client backend; bleak constructs it as ``(address_or_ble_device, *,
    disconnected_callback, services, timeout, bluez, winrt, **kwargs)``."""

    world: ClassVar[SimulatedWorld | None] = None

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
        self._world = _bound_world(self, "client")
        self._implicit_scan = not isinstance(address_or_ble_device, BLEDevice)
        self._name = (
            address_or_ble_device.name
            if isinstance(address_or_ble_device, BLEDevice) and address_or_ble_device.name
            else self.address.replace(":", "-")
        )
        self._service_filter = (
            None if services is None else {normalize_uuid_str(u) for u in services}
        )
        self._link: SimLink | None = None
        self._callbacks: dict[str, NotifyCallback] = {}
        self._cccd: dict[str, bytes] = {}
        self._descriptions: dict[int, bytes] = {}

    # --------------------------------------------------------------- connection

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return self._link.mtu if self.is_connected and self._link else ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._link is not None and self._link.is_open

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            msg = "Client is already connected"
            raise BleakError(msg)
        self._link = self._world.attach(self, self.address, implicit_scan=self._implicit_scan)
        self._callbacks.clear()
        self._cccd.clear()
        self.services = self._discover(self._link.peripheral)
        self._name = self._link.peripheral.name or self._name
        if pair:
            await self.pair()
        await asyncio.sleep(0)

    async def disconnect(self) -> None:
        link = self._link
        if link is None or not link.is_open:
            self._link = None
            return
        try:
            self._world.raise_injected(self.address, "disconnect")
        finally:
            self._world.detach(link)
        await asyncio.sleep(0)

    def link_closed(self, *, unsolicited: bool) -> None:
        """World hook: the link is gone; call the disconnected_callback if unsolicited."""
        self._link = None
        self.services = None
        self._callbacks.clear()
        if unsolicited and self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:
                logger.exception("disconnected_callback of %s raised", self.address)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        link = self._require_link()
        self._world.bond(self.address, paired=True)
        link.peripheral.paired = True

    async def unpair(self) -> None:
        self._world.bond(self.address, paired=False)
        if self._link is not None:
            self._link.peripheral.paired = False
        await self.disconnect()

    # --------------------------------------------------------------- GATT

    def _discover(self, p: SimulatedPeripheral) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        self._descriptions.clear()
        handle = FIRST_APP_HANDLE
        for sdef in p.gatt():
            suuid = normalize_uuid_str(sdef.uuid)
            include = self._service_filter is None or suuid in self._service_filter
            service = BleakGATTService(sdef, handle, suuid)
            handle += 1
            if include:
                collection.add_service(service)
            for cdef in sdef.characteristics:
                value_handle = handle + 1  # declaration first, then the value
                handle += 2
                props: list[CharacteristicPropertyName] = [*cdef.properties]
                char = BleakGATTCharacteristic(
                    cdef, value_handle, normalize_uuid_str(cdef.uuid), props,
                    self._max_write_without_response, service,
                )
                descriptors: list[BleakGATTDescriptor] = []
                if "notify" in props or "indicate" in props:
                    descriptors.append(BleakGATTDescriptor(None, handle, CCCD_UUID, char))
                    handle += 1
                if cdef.description:
                    descriptors.append(
                        BleakGATTDescriptor(cdef.description, handle, USER_DESCRIPTION_UUID, char)
                    )
                    self._descriptions[handle] = cdef.description.encode()
                    handle += 1
                if include:
                    collection.add_characteristic(char)
                    for d in descriptors:
                        collection.add_descriptor(d)
        return collection

    @staticmethod
    def _check_encryption(link: SimLink, characteristic: BleakGATTCharacteristic) -> None:
        """``encrypted`` characteristics answer only a paired central (ATT 0x05 otherwise)."""
        cdef = characteristic.obj
        if getattr(cdef, "encrypted", False) and not link.peripheral.paired:
            raise BleakGATTProtocolError(ATT_INSUFFICIENT_AUTHENTICATION)

    def _max_write_without_response(self) -> int:
        return self.mtu_size - ATT_HEADER_BYTES

    def _require_link(self) -> SimLink:
        if self._link is None or not self._link.is_open:
            msg = "Not connected"
            raise BleakError(msg)
        return self._link

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        link = self._require_link()
        self._world.raise_injected(self.address, "read")
        if "read" not in characteristic.properties:
            raise BleakGATTProtocolError(ATT_READ_NOT_PERMITTED)
        self._check_encryption(link, characteristic)
        try:
            data = link.peripheral.read(characteristic.uuid)
        except AttError as exc:
            raise BleakGATTProtocolError(exc.code) from exc
        await asyncio.sleep(0)
        return bytearray(data[:MAX_ATTRIBUTE_LEN])

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        link = self._require_link()
        self._world.raise_injected(self.address, "write")
        payload = bytes(data)
        uuid = characteristic.uuid
        if response:
            if "write" not in characteristic.properties:
                raise BleakGATTProtocolError(ATT_WRITE_NOT_PERMITTED)
            self._check_encryption(link, characteristic)
            if len(payload) > MAX_ATTRIBUTE_LEN:
                raise BleakGATTProtocolError(ATT_INVALID_VALUE_LENGTH)
            try:
                link.peripheral.write(uuid, payload, with_response=True)
            except AttError as exc:
                raise BleakGATTProtocolError(exc.code) from exc
        else:
            if "write-without-response" not in characteristic.properties:
                msg = f"characteristic {uuid} does not support write without response"
                raise BleakError(msg)
            limit = link.mtu - ATT_HEADER_BYTES
            if len(payload) > limit:
                msg = f"{len(payload)} bytes exceed max_write_without_response_size {limit}"
                raise BleakError(msg)
            if getattr(characteristic.obj, "encrypted", False) and not link.peripheral.paired:
                logger.debug("write without response to %s needs pairing; lost", uuid)
                await asyncio.sleep(0)
                return
            try:
                link.peripheral.write(uuid, payload, with_response=False)
            except AttError as exc:  # a command has no response: the error is lost on air
                logger.debug("write without response to %s rejected and lost: %s", uuid, exc)
        await asyncio.sleep(0)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_link()
        if descriptor.uuid == CCCD_UUID:
            return bytearray(self._cccd.get(descriptor.characteristic_uuid, _CCCD_OFF))
        if descriptor.handle in self._descriptions:
            return bytearray(self._descriptions[descriptor.handle])
        raise BleakGATTProtocolError(ATT_READ_NOT_PERMITTED)

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        self._require_link()
        raise BleakGATTProtocolError(ATT_WRITE_NOT_PERMITTED)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        link = self._require_link()
        self._world.raise_injected(self.address, "start_notify")
        props = characteristic.properties
        if "notify" not in props and "indicate" not in props:
            msg = f"characteristic {characteristic.uuid} does not support notify or indicate"
            raise BleakError(msg)
        uuid = characteristic.uuid
        try:
            link.peripheral.set_subscribed(uuid, True)
        except AttError as exc:
            raise BleakGATTProtocolError(exc.code) from exc
        self._callbacks[uuid] = callback
        self._cccd[uuid] = _CCCD_NOTIFY if "notify" in props else _CCCD_INDICATE
        await asyncio.sleep(0)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        link = self._require_link()
        self._world.raise_injected(self.address, "stop_notify")
        uuid = characteristic.uuid
        self._callbacks.pop(uuid, None)
        self._cccd.pop(uuid, None)
        try:
            link.peripheral.set_subscribed(uuid, False)
        except AttError as exc:
            raise BleakGATTProtocolError(exc.code) from exc
        await asyncio.sleep(0)

    def deliver_notification(self, char_uuid: str, data: bytes) -> None:
        """World hook: a notification arrived; hand it to the registered callback."""
        callback = self._callbacks.get(char_uuid)
        if callback is None:
            return
        try:
            callback(bytearray(data))
        except Exception:
            logger.exception("notification callback for %s raised", char_uuid)


def bind_scanner_backend(world: SimulatedWorld) -> type[SimulatedBleakScanner]:
    """A scanner backend class bound to ``world`` (use ``world.scanner_backend``)."""

    class SimulatedWorldScanner(SimulatedBleakScanner):
        pass

    SimulatedWorldScanner.world = world
    return SimulatedWorldScanner


def bind_client_backend(world: SimulatedWorld) -> type[SimulatedBleakClient]:
    """A client backend class bound to ``world`` (use ``world.client_backend``)."""

    class SimulatedWorldClient(SimulatedBleakClient):
        pass

    SimulatedWorldClient.world = world
    return SimulatedWorldClient
