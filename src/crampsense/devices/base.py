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
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from crampsense.models import Frame, SampleBlock

if TYPE_CHECKING:
    from crampsense.devices.timeline import TimelineBuilder

__all__ = ["Capability", "ControlEvent", "DeviceProtocol", "GattWrite", "PacketBatch"]


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
class ControlEvent:
    """What an unsolicited control-point message means (see :meth:`DeviceProtocol.on_control`).

    Attributes
    ----------
    action : {"restart", "mark"}
        ``"restart"``: the device stopped streaming on its own (Polar's "measurement stopped");
        the transport marks it in the session and sends the start commands again.
        ``"mark"``: only record it in the session.
    detail : str
        One line for the session mark and the log (what the device said).
    """

    action: Literal["restart", "mark"]
    detail: str


@dataclass(frozen=True, slots=True)
class Capability:
    """One stream a device can deliver, for ``crampsense scan`` and ``devices``."""

    stream: str  # "emg", "acc", "hr", "rr", ...
    channels: tuple[str, ...]
    unit: str
    fs_hz: float | None


@dataclass(frozen=True, slots=True, eq=False)
class PacketBatch:
    """Many notifications of one stream, decoded at once by :meth:`DeviceProtocol.decode_batch`.

    The batch form of a list of :class:`~crampsense.models.SampleBlock`: packet ``i`` is the
    block that :meth:`DeviceProtocol.decode` gives for ``payloads[index[i]]``, with its samples
    ``values[:, starts[i] : starts[i] + n_samples[i]]`` (``starts`` being the running sum of
    ``n_samples``) and its scalars at position ``i`` of the per-packet arrays.

    Attributes
    ----------
    stream : str
        Stream name (``"emg"``, ``"acc"``, ``"status"``, ...), as in ``SampleBlock.stream``.
    channels : tuple of str
        One per row of ``values``.
    unit : str
        Unit of ``values``.
    fs_hz : float or None
        Nominal sample rate (Hz), ``None`` for irregular streams.
    index : ndarray of int64, shape (n_packets,)
        Positions, strictly increasing, of the decoded packets in the ``payloads`` given to
        ``decode_batch``.
    values : ndarray of float32, shape (n_channels, n_samples.sum())
        The packets' samples back to back, in ``unit``.
    n_samples : ndarray of int64, shape (n_packets,)
        Samples (per channel) of each packet.
    sequence, device_ticks : ndarray of int64, shape (n_packets,)
        Sequence number and device timestamp as sent; ``-1`` where the family has none.
    flags : ndarray of int64, shape (n_packets,)
        Device status bits per packet.
    """

    stream: str
    channels: tuple[str, ...]
    unit: str
    fs_hz: float | None
    index: npt.NDArray[np.int64]
    values: npt.NDArray[np.float32]
    n_samples: npt.NDArray[np.int64]
    sequence: npt.NDArray[np.int64]
    device_ticks: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int64]

    @property
    def n_packets(self) -> int:
        return int(self.index.shape[0])


class DeviceProtocol(abc.ABC):
    """A device family. Stateless apart from configuration; safe to share."""

    #: Family key stored with a paired device (``"crampsense-band"``).
    family: str
    #: Human-readable family name.
    display_name: str
    #: Smallest ATT MTU with which the device streams at all (Polar PMD needs 232); the
    #: transport says so in one line when the link's MTU is smaller.
    min_mtu: int = 23

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

    def on_control(self, char_uuid: str, payload: bytes) -> ControlEvent | None:
        """Interpret a control-point message that answers no command (an unsolicited one).

        The default ignores it (``None``); families whose devices report state changes this way
        (Polar's ``01 [types]`` "measurement stopped") return a :class:`ControlEvent`.
        """
        del char_uuid, payload
        return None

    def for_advertisement(self, local_name: str | None) -> DeviceProtocol:
        """The protocol for a device advertising ``local_name`` (what ``scan`` shows).

        ``self`` by default; families whose models differ in what they stream (Polar H10 vs
        Verity Sense) return the named model's protocol. Pairing then confirms it with the
        Device Information strings (:meth:`configure`).
        """
        del local_name
        return self

    def configure(self, device_info: Mapping[str, str]) -> DeviceProtocol:
        """The protocol to use for a device with these Device Information strings.

        Parameters
        ----------
        device_info : mapping of str to str
            Strings read from the Device Information Service; keys among ``"manufacturer"``,
            ``"model"``, ``"serial"``, ``"hardware"``, ``"firmware"``, ``"software"`` (absent
            when the device does not have them).

        Returns
        -------
        DeviceProtocol
            ``self`` by default; families whose wire format depends on the firmware (the
            Ganglion: firmware 2 or 3 from the software revision) return a configured copy.
            Called when pairing (the options are stored with the paired device) and after every
            connect, where a result whose :meth:`metadata` differs from the recording's means
            the device changed since pairing.
        """
        del device_info
        return self

    @abc.abstractmethod
    def decode(self, frame: Frame) -> list[SampleBlock]:
        """Decode one notification. Raises ``DecodeError`` (with offset and field) on bad bytes."""

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode many notifications of one characteristic at once (an optional fast path).

        Parameters
        ----------
        char_uuid : str
            The characteristic all ``payloads`` arrived on.
        payloads : sequence of bytes
            Notification values in arrival order.
        host_time_ns : ndarray of int64, shape (len(payloads),)
            Their host receive times (Unix ns); families whose decoding depends on them use it.

        Returns
        -------
        list of PacketBatch or None
            ``None`` (the default) means "decode each frame with :meth:`decode`". Otherwise
            the batches hold exactly what :meth:`decode` gives for the payloads they cover
            (``PacketBatch.index``), bit for bit; every payload *not* covered must be decoded
            with :meth:`decode` by the caller (this is how malformed packets still raise
            ``DecodeError``). Never raises ``DecodeError`` itself.
        """
        del char_uuid, payloads, host_time_ns
        return None

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
