"""The firmware side of a simulated wearable: GATT table, link, and what a device must implement.

A :class:`SimulatedPeripheral` is what a device's firmware is: it owns a GATT table, answers
reads and writes, and sends notifications through the :class:`Link` it is given when a central
connects. It never sleeps on its own: the :class:`~firmware_sims.world.SimulatedWorld` pump calls
:meth:`SimulatedPeripheral.tick` with the current simulated time, and the peripheral sends
whatever packets are due by then. That keeps several devices on one clock, deterministic, and
able to run a night at any speed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "ATT_ATTRIBUTE_NOT_FOUND",
    "ATT_HEADER_BYTES",
    "ATT_INSUFFICIENT_AUTHENTICATION",
    "ATT_INVALID_VALUE_LENGTH",
    "ATT_READ_NOT_PERMITTED",
    "ATT_WRITE_NOT_PERMITTED",
    "Advertisement",
    "AttError",
    "CharDef",
    "CharProperty",
    "Link",
    "ServiceDef",
    "SignalSource",
    "SimulatedPeripheral",
]


#: ATT opcode + handle in front of a notification's value: it carries at most MTU - 3 bytes.
ATT_HEADER_BYTES: Final = 3
#: ATT error codes the simulators answer with (Core Spec Vol 3 Part F 3.4.1.1).
ATT_READ_NOT_PERMITTED: Final = 0x02
ATT_WRITE_NOT_PERMITTED: Final = 0x03
ATT_INSUFFICIENT_AUTHENTICATION: Final = 0x05
ATT_ATTRIBUTE_NOT_FOUND: Final = 0x0A
ATT_INVALID_VALUE_LENGTH: Final = 0x0D

CharProperty = Literal["read", "write", "write-without-response", "notify", "indicate"]


@dataclass(frozen=True, slots=True)
class CharDef:
    """A characteristic in a simulated GATT table (UUIDs lower-case, 128-bit form)."""

    uuid: str
    properties: tuple[CharProperty, ...]
    description: str = ""
    #: Reads and writes need an encrypted link (a paired central): before pairing they fail
    #: with ATT 0x05 "Insufficient Authentication" (0x0F on a real stack without encryption).
    encrypted: bool = False


@dataclass(frozen=True, slots=True)
class ServiceDef:
    """A primary service and its characteristics, in handle order."""

    uuid: str
    characteristics: tuple[CharDef, ...]


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What the peripheral puts on air while advertising."""

    local_name: str
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    tx_power: int | None = None
    rssi: int = -60


class AttError(Exception):
    """An ATT error response (e.g. 0x03 write not permitted, 0x05 insufficient authentication).

    Raised by a peripheral's ``read``/``write``; the client backend turns it into a
    :class:`bleak.exc.BleakError`, as a real stack would.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"ATT error 0x{code:02X}: {message}")
        self.code = code


class Link(Protocol):
    """The connection as the peripheral sees it (implemented by the world/backend)."""

    @property
    def mtu(self) -> int:
        """Negotiated ATT MTU; a notification carries at most ``mtu - 3`` bytes."""
        ...

    def notify(self, char_uuid: str, data: bytes) -> None:
        """Send a notification or indication; silently truncated to ``mtu - 3`` bytes."""
        ...

    def now_ns(self) -> int:
        """Simulated monotonic time in nanoseconds (the device's own time base)."""
        ...


class SignalSource(Protocol):
    """Physiological samples a simulated sensor measures, indexed by sample number.

    ``emg_uv(i, n)`` returns samples ``i .. i+n-1`` at ``emg_fs_hz``; asking for the same
    range twice gives the same numbers, whatever the chunking.
    """

    @property
    def emg_fs_hz(self) -> float: ...

    @property
    def acc_fs_hz(self) -> float: ...

    @property
    def emg_channels(self) -> tuple[str, ...]: ...

    @property
    def duration_s(self) -> float: ...

    def emg_uv(self, start: int, n: int) -> npt.NDArray[np.float32]:
        """EMG in µV, shape (n_channels, n)."""
        ...

    def acc_mg(self, start: int, n: int) -> npt.NDArray[np.float32]:
        """Accelerometer in milli-g, shape (3, n) at ``acc_fs_hz`` (x along the shank)."""
        ...

    def lead_off(self, start: int, n: int) -> npt.NDArray[np.bool_]:
        """Per EMG sample: electrodes off the skin, shape (n,)."""
        ...


class SimulatedPeripheral(abc.ABC):
    """Base class of every simulated device's firmware.

    Subclasses define :meth:`gatt` and the protocol behaviour. The world calls
    :meth:`on_connect`, :meth:`on_disconnect`, :meth:`read`, :meth:`write`,
    :meth:`set_subscribed` and :meth:`tick`.
    """

    #: MTU the firmware asks for in the exchange (the link uses min(client, this)).
    preferred_mtu: int = 247

    def __init__(self, address: str, name: str) -> None:
        self.address = address
        self.name = name
        self.link: Link | None = None
        self.subscribed: set[str] = set()
        #: True once a central paired with (bonded to) this device; ``encrypted``
        #: characteristics answer only then. Survives disconnects, as a bond does.
        self.paired: bool = False

    @abc.abstractmethod
    def gatt(self) -> tuple[ServiceDef, ...]:
        """The GATT table, services in handle order."""

    @abc.abstractmethod
    def advertisement(self) -> Advertisement:
        """The current advertisement."""

    def on_connect(self, link: Link) -> None:
        self.link = link
        self.subscribed.clear()

    def on_disconnect(self) -> None:
        """Link lost; a real firmware stops streaming and forgets subscriptions."""
        self.link = None
        self.subscribed.clear()

    def set_subscribed(self, char_uuid: str, enabled: bool) -> None:
        """The central wrote the CCCD of ``char_uuid``."""
        if enabled:
            self.subscribed.add(char_uuid)
        else:
            self.subscribed.discard(char_uuid)

    @abc.abstractmethod
    def read(self, char_uuid: str) -> bytes:
        """Answer a read; raise :class:`AttError` if not permitted."""

    @abc.abstractmethod
    def write(self, char_uuid: str, data: bytes, *, with_response: bool) -> None:
        """Handle a write; raise :class:`AttError` to reject it."""

    def tick(self, now_ns: int) -> None:  # noqa: B027 - optional hook, default does nothing
        """Send everything due up to simulated monotonic time ``now_ns`` (default: nothing)."""

    def finished(self) -> bool:
        """True once the device has nothing more to stream (its source is exhausted)."""
        return False
