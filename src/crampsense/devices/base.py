"""What every device family module provides: UUIDs, commands, and pure decoding.

A device family is a :class:`DeviceProtocol`. The transport asks it which services identify the
device, which characteristics to subscribe to, which bytes to write to start and stop
streaming, and hands every notification it receives to :meth:`DeviceProtocol.decode`. No bleak,
no asyncio, no I/O here: bytes in, arrays out.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crampsense.models import Frame, SampleBlock

if TYPE_CHECKING:
    from crampsense.devices.timeline import TimelineBuilder

__all__ = ["Capability", "DeviceProtocol", "GattWrite"]


@dataclass(frozen=True, slots=True)
class GattWrite:
    """One write the transport must perform, in order.

    Attributes
    ----------
    char_uuid : str
        Characteristic to write.
    data : bytes
        Exact bytes.
    response : bool
        Write with response (``True``) or without.
    expect_indication : bool
        The device answers on ``char_uuid`` with an indication that the transport must pass to
        :meth:`DeviceProtocol.check_response` before the next write.
    """

    char_uuid: str
    data: bytes
    response: bool = True
    expect_indication: bool = False


@dataclass(frozen=True, slots=True)
class Capability:
    """One stream a device can deliver, for ``crampsense scan`` and ``devices``."""

    stream: str  # "emg", "acc", "hr", "rr", ...
    channels: tuple[str, ...]
    unit: str
    fs_hz: float | None


class DeviceProtocol(abc.ABC):
    """A device family. Stateless apart from configuration; safe to share."""

    #: Family key stored with a paired device (``"crampsense-band"``).
    family: str
    #: Human-readable family name.
    display_name: str

    @abc.abstractmethod
    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        """True if an advertisement belongs to this family."""

    @abc.abstractmethod
    def capabilities(self) -> tuple[Capability, ...]:
        """The streams this family can deliver with the current configuration."""

    @abc.abstractmethod
    def control_uuids(self) -> tuple[str, ...]:
        """Characteristics to subscribe to *before* writing commands (indications)."""

    @abc.abstractmethod
    def data_uuids(self) -> tuple[str, ...]:
        """Characteristics whose notifications carry samples (recorded as frames)."""

    @abc.abstractmethod
    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        """Writes that start streaming; ``device_time_ns`` is host Unix time to set the clock."""

    @abc.abstractmethod
    def stop_commands(self) -> tuple[GattWrite, ...]:
        """Writes that stop streaming."""

    def check_response(self, char_uuid: str, payload: bytes) -> None:  # noqa: B027
        """Validate a control-point indication; raise ``ProtocolError`` on an error status."""

    @abc.abstractmethod
    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode one notification. Raises ``DecodeError`` (with offset and field) on bad bytes."""

    def timeline_builder(self, stream: str) -> TimelineBuilder | None:
        """A builder that puts this family's ``stream`` blocks back on a regular time grid.

        ``None`` (the default) for irregular streams (heart rate, status) that need no grid.
        Families with sequence numbers and device clocks say here how they wrap.
        """
        return None

    def metadata(self) -> Mapping[str, str]:
        """Configuration to store in a session's metadata (rates, scales), as strings."""
        return {}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> DeviceProtocol:
        """Rebuild the protocol a session was recorded with from its stored :meth:`metadata`.

        The default ignores the metadata (families without options); families with options
        (sample rates) override it. Raises ``ConfigError`` on values it cannot use.
        """
        del metadata
        return cls()
