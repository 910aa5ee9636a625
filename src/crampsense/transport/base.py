"""The one seam between crampsense and a radio: :class:`Transport`.

Everything above the transport (pairing, the ingest session, the overnight recorder) talks to
this small interface and never knows which radio it holds, the way an httpx client never knows
its transport. :class:`~crampsense.transport.ble.BleTransport` implements it with bleak; the
radio underneath is chosen by the bleak backends passed to it: the platform's Bluetooth stack,
the firmware simulators' world, or the simulators over bumble's real ATT/GATT stack.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakClient
from bleak.backends.device import BLEDevice

__all__ = ["DEFAULT_SCAN_TIMEOUT_S", "FoundDevice", "Transport"]

#: Long enough to catch a device advertising every 1-2 s (typical for wearables waiting to be
#: connected), short enough that a user waiting at the terminal is not bored.
DEFAULT_SCAN_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """One advertising device, with the family crampsense recognised (``None`` if unknown)."""

    address: str
    name: str
    rssi: int
    service_uuids: tuple[str, ...]
    family: str | None
    streams: tuple[str, ...]
    ble_device: BLEDevice


class Transport(abc.ABC):
    """Find devices and open (not yet connected) clients to them."""

    @property
    @abc.abstractmethod
    def simulated(self) -> bool:
        """Whether the radio is a simulation (nothing real is paired or recorded)."""

    @abc.abstractmethod
    async def scan(
        self, timeout_s: float = DEFAULT_SCAN_TIMEOUT_S, *, only_known: bool = False
    ) -> list[FoundDevice]:
        """Listen for ``timeout_s`` and return what was heard, strongest first.

        With ``only_known``, devices of no family crampsense can read are left out.

        Raises
        ------
        DeviceError
            The radio cannot scan (Bluetooth off, no permission).
        """

    @abc.abstractmethod
    async def find(self, address: str, timeout_s: float = DEFAULT_SCAN_TIMEOUT_S) -> BLEDevice:
        """A fresh scan for one address (BlueZ needs one before every reconnect).

        Raises
        ------
        DeviceNotFoundError
            No advertisement from ``address`` within ``timeout_s``.
        """

    @abc.abstractmethod
    def client(
        self,
        device: BLEDevice,
        *,
        disconnected_callback: Callable[[BleakClient], None] | None = None,
        timeout_s: float = 20.0,
    ) -> BleakClient:
        """A new (not yet connected) client for ``device``; never reuse one after a drop."""
