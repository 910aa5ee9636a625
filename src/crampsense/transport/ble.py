"""Scanning and connecting through bleak's public API, with the backend passed in.

This module and :mod:`crampsense.transport.ingest` are the only places that import bleak. The
same code talks to real adapters (``scanner_backend=None, client_backend=None``: bleak picks the
platform's), to the firmware simulators (``SimulatedWorld.scanner_backend`` /
``client_backend``) and to the same simulators over a real host stack
(``firmware_sims.bumble_stack.BumbleBench``), exactly as bleak's own ``backend=`` argument
intends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from crampsense.devices.base import DeviceProtocol
from crampsense.devices.gatt import DEVICE_INFORMATION_UUIDS
from crampsense.devices.registry import identify
from crampsense.errors import DeviceError, DeviceNotFoundError
from crampsense.transport.base import DEFAULT_SCAN_TIMEOUT_S, FoundDevice, Transport

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BleTransport",
    "describe_streams",
    "read_device_information",
    "read_strings",
]

logger = logging.getLogger(__name__)


def describe_streams(protocol: DeviceProtocol) -> tuple[str, ...]:
    """``("emg (2 ch, 1000 Hz)", ...)`` for what a device family streams."""
    return tuple(
        f"{c.stream} ({len(c.channels)} ch" + (f", {c.fs_hz:g} Hz)" if c.fs_hz else ")")
        for c in protocol.capabilities()
    )


def _found(device: BLEDevice, adv: AdvertisementData) -> FoundDevice:
    name = adv.local_name or device.name or ""
    protocol = identify(name, adv.service_uuids)
    streams = describe_streams(protocol) if protocol else ()
    return FoundDevice(
        address=device.address,
        name=name,
        rssi=adv.rssi,
        service_uuids=tuple(u.lower() for u in adv.service_uuids),
        family=protocol.family if protocol else None,
        streams=streams,
        ble_device=device,
    )


class BleTransport(Transport):
    """The :class:`~crampsense.transport.base.Transport` over bleak, with its backends passed in.

    Parameters
    ----------
    scanner_backend, client_backend : type or None
        bleak backend classes; ``None`` selects the platform's real Bluetooth stack.
    """

    def __init__(
        self,
        *,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
    ) -> None:
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend

    @property
    def simulated(self) -> bool:
        """Whether a bleak backend other than the platform's was passed in."""
        return self.client_backend is not None

    async def scan(
        self, timeout_s: float = DEFAULT_SCAN_TIMEOUT_S, *, only_known: bool = False
    ) -> list[FoundDevice]:
        """Listen for ``timeout_s`` and return what was heard, strongest first."""
        try:
            if self.scanner_backend is None:
                found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
            else:
                found = await BleakScanner.discover(
                    timeout=timeout_s, return_adv=True, backend=self.scanner_backend
                )
        except (BleakError, OSError) as exc:
            raise DeviceError(
                f"Bluetooth scan failed: {exc}; check that Bluetooth is on and this user may use "
                "it (or use --simulate)"
            ) from exc
        devices = [_found(dev, adv) for dev, adv in found.values()]
        if only_known:
            devices = [d for d in devices if d.family is not None]
        return sorted(devices, key=lambda d: -d.rssi)

    async def find(self, address: str, timeout_s: float = DEFAULT_SCAN_TIMEOUT_S) -> BLEDevice:
        """A fresh scan for one address (BlueZ needs this before every reconnect)."""
        try:
            if self.scanner_backend is None:
                device = await BleakScanner.find_device_by_address(address, timeout=timeout_s)
            else:
                device = await BleakScanner.find_device_by_address(
                    address, timeout=timeout_s, backend=self.scanner_backend
                )
        except (BleakError, OSError) as exc:
            raise DeviceError(f"Bluetooth scan failed: {exc}", address=address) from exc
        if device is None:
            raise DeviceNotFoundError(
                f"no advertisement from {address} within {timeout_s:g} s; wake the device "
                "(take it off the charger, touch its electrodes) and check the address with "
                "`crampsense scan`",
                address=address,
            )
        return device

    def client(
        self,
        device: BLEDevice,
        *,
        disconnected_callback: Callable[[BleakClient], None] | None = None,
        timeout_s: float = 20.0,
    ) -> BleakClient:
        """A new (not yet connected) client for ``device``; never reuse one after a drop."""
        return BleakClient(
            device,
            disconnected_callback=disconnected_callback,
            timeout=timeout_s,
            backend=self.client_backend,
        )


async def read_strings(
    client: BleakClient, uuids: Sequence[str], *, timeout_s: float = 5.0
) -> dict[str, str]:
    """Read UTF-8 characteristics that exist (Device Information); skip the absent ones."""
    out: dict[str, str] = {}
    services = client.services
    for uuid in uuids:
        if services.get_characteristic(uuid) is None:
            continue
        try:
            raw = await asyncio.wait_for(client.read_gatt_char(uuid), timeout_s)
        except (BleakError, TimeoutError) as exc:
            logger.debug("reading %s failed: %s", uuid, exc)
            continue
        out[uuid] = bytes(raw).decode("utf-8", errors="replace").rstrip("\x00")
    return out


async def read_device_information(
    client: BleakClient, *, timeout_s: float = 5.0
) -> dict[str, str]:
    """The Device Information strings a connected device has, by key (``"firmware"``, ...).

    Keys are those of :data:`crampsense.devices.gatt.DEVICE_INFORMATION_UUIDS`; absent or
    unreadable strings are left out (an empty dict for a device without the service).
    """
    raw = await read_strings(client, list(DEVICE_INFORMATION_UUIDS.values()), timeout_s=timeout_s)
    return {key: raw[uuid] for key, uuid in DEVICE_INFORMATION_UUIDS.items() if uuid in raw}
