"""The Bluetooth SIG Heart Rate Service: what nearly every chest strap and watch exposes.

Pure functions over bytes, no I/O. A strap gives crampsense heart rate and beat-to-beat (RR)
intervals, which the summary uses to show arousals around a cramp; it carries no EMG.

Wire format of Heart Rate Measurement (``0x2A37``, notify), little-endian::

    byte 0      flags   bit0  heart rate is u16 (else u8), bpm
                        bit1  sensor contact detected
                        bit2  sensor contact feature supported
                        bit3  energy expended field present (u16, kJ)
                        bit4  RR intervals present
                        bit5-7 reserved (ignored)
    1 or 2      heart rate (u8 or u16), bpm
    (2)         energy expended, kJ                      if bit3
    (2 × n)     RR intervals, u16 in 1/1024 s, oldest first, filling the rest   if bit4

References
----------
.. [1] Bluetooth SIG, "Heart Rate Service 1.0" (2011) and "GATT Specification Supplement",
   section "Heart Rate Measurement".
.. [2] Bluetooth SIG, "Battery Service 1.0" and "Device Information Service 1.1".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from crampsense.devices.base import Capability, DeviceProtocol, GattWrite, PacketBatch
from crampsense.devices.gatt import (
    BATTERY_LEVEL_UUID,
    DEVICE_INFORMATION_UUIDS,
    HEART_RATE_MEASUREMENT_UUID,
    HEART_RATE_SERVICE_UUID,
    decode_battery_level,
)
from crampsense.errors import DecodeError
from crampsense.models import Frame, SampleBlock

__all__ = [
    "BODY_SENSOR_LOCATIONS",
    "FLAG_CONTACT_DETECTED",
    "FLAG_CONTACT_SUPPORTED",
    "FLAG_ENERGY_PRESENT",
    "FLAG_HR_U16",
    "FLAG_RR_PRESENT",
    "RR_TICKS_PER_S",
    "HeartRateMeasurement",
    "HeartRateProtocol",
    "decode_body_sensor_location",
    "decode_heart_rate_measurement",
]

logger = logging.getLogger(__name__)


#: Body Sensor Location (0x2A38) values ([1]_); other values are reserved.
BODY_SENSOR_LOCATIONS: Final[Mapping[int, str]] = {
    0: "other",
    1: "chest",
    2: "wrist",
    3: "finger",
    4: "hand",
    5: "ear lobe",
    6: "foot",
}

FLAG_HR_U16: Final = 0x01
FLAG_CONTACT_DETECTED: Final = 0x02
FLAG_CONTACT_SUPPORTED: Final = 0x04
FLAG_ENERGY_PRESENT: Final = 0x08
FLAG_RR_PRESENT: Final = 0x10

#: RR intervals are counted in 1/1024 s ticks (the spec's resolution, ~0.98 ms).
RR_TICKS_PER_S: Final = 1024


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded Heart Rate Measurement notification.

    Attributes
    ----------
    heart_rate_bpm : int
        Heart rate in beats per minute.
    contact_supported : bool
        The sensor reports skin contact at all (flag bit 2).
    contact_detected : bool
        Skin contact detected (flag bit 1); meaningful only if ``contact_supported``.
    energy_expended_kj : int or None
        Accumulated energy expended in kJ, ``None`` when absent.
    rr_ticks : tuple of int
        RR intervals as sent, in 1/1024 s, oldest first.
    hr_u16 : bool
        The heart rate was sent in the u16 form (as sent).
    """

    heart_rate_bpm: int
    contact_supported: bool
    contact_detected: bool
    energy_expended_kj: int | None
    rr_ticks: tuple[int, ...]
    hr_u16: bool = False

    @property
    def rr_intervals_s(self) -> tuple[float, ...]:
        """RR intervals in seconds (exact ``ticks / 1024``), oldest first."""
        return tuple(t / RR_TICKS_PER_S for t in self.rr_ticks)

    @property
    def flags(self) -> int:
        """The flags byte this measurement is encoded with."""
        flags = FLAG_HR_U16 if self.hr_u16 else 0
        if self.contact_supported:
            flags |= FLAG_CONTACT_SUPPORTED
            if self.contact_detected:
                flags |= FLAG_CONTACT_DETECTED
        if self.energy_expended_kj is not None:
            flags |= FLAG_ENERGY_PRESENT
        if self.rr_ticks:
            flags |= FLAG_RR_PRESENT
        return flags


def _u16(payload: bytes, offset: int, field: str) -> int:
    if offset + 2 > len(payload):
        msg = (
            f"heart rate measurement of {len(payload)} bytes ends inside the u16 {field}; "
            "the notification was truncated (check the MTU) or is not a 0x2A37 value"
        )
        raise DecodeError(msg, offset=offset, field=field)
    return payload[offset] | (payload[offset + 1] << 8)


def decode_heart_rate_measurement(payload: bytes | bytearray) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement (``0x2A37``) value.

    Parameters
    ----------
    payload : bytes or bytearray
        The notification value, byte for byte (bleak hands over a ``bytearray``).

    Returns
    -------
    HeartRateMeasurement

    Raises
    ------
    DecodeError
        Empty payload, a field cut short, an odd RR tail, or trailing bytes although the RR
        flag is clear (``offset`` and ``field`` name where).

    Notes
    -----
    Strict about trailing bytes: the spec says RR intervals fill the rest of the packet, so
    extra bytes without the RR flag mean a format this decoder does not understand. The raw
    bytes stay in the session log either way.

    Examples
    --------
    >>> m = decode_heart_rate_measurement(bytes.fromhex("164837040703"))
    >>> m.heart_rate_bpm, m.contact_detected, [round(s, 3) for s in m.rr_intervals_s]
    (72, True, [1.054, 0.757])
    >>> m = decode_heart_rate_measurement(bytes.fromhex("194801 2c01 0004"))
    >>> m.heart_rate_bpm, m.energy_expended_kj, m.rr_intervals_s
    (328, 300, (1.0,))
    """
    payload = bytes(payload)
    if not payload:
        msg = "empty heart rate measurement; a 0x2A37 value has at least a flags byte and a rate"
        raise DecodeError(msg, offset=0, field="flags")
    flags = payload[0]
    offset = 1
    hr_u16 = bool(flags & FLAG_HR_U16)
    if hr_u16:
        heart_rate = _u16(payload, offset, "heart_rate")
        offset += 2
    else:
        if offset >= len(payload):
            msg = (
                f"heart rate measurement of {len(payload)} byte(s) has no heart rate after "
                "the flags; the notification was truncated or is not a 0x2A37 value"
            )
            raise DecodeError(msg, offset=offset, field="heart_rate")
        heart_rate = payload[offset]
        offset += 1
    energy: int | None = None
    if flags & FLAG_ENERGY_PRESENT:
        energy = _u16(payload, offset, "energy_expended")
        offset += 2
    rest = len(payload) - offset
    rr: tuple[int, ...] = ()
    if flags & FLAG_RR_PRESENT:
        if rest % 2:
            msg = (
                f"RR interval section of {rest} bytes is not a whole number of u16 values; "
                "the notification was truncated or corrupted"
            )
            raise DecodeError(msg, offset=len(payload) - 1, field="rr_interval")
        rr = tuple(int(v) for v in np.frombuffer(payload, dtype="<u2", offset=offset))
    elif rest:
        msg = (
            f"{rest} trailing byte(s) after a heart rate measurement whose flags 0x{flags:02X} "
            "announce no RR intervals; the device does not follow the Heart Rate Service spec"
        )
        raise DecodeError(msg, offset=offset, field="trailing")
    return HeartRateMeasurement(
        heart_rate_bpm=heart_rate,
        contact_supported=bool(flags & FLAG_CONTACT_SUPPORTED),
        contact_detected=bool(flags & FLAG_CONTACT_DETECTED),
        energy_expended_kj=energy,
        rr_ticks=rr,
        hr_u16=hr_u16,
    )


def decode_body_sensor_location(payload: bytes | bytearray) -> str:
    """Decode Body Sensor Location (``0x2A38``) to a name (``"chest"``, ...).

    Raises
    ------
    DecodeError
        Not exactly one byte, or a reserved value.
    """
    if len(payload) != 1:
        msg = f"body sensor location must be 1 byte, got {len(payload)}; not a 0x2A38 value"
        raise DecodeError(msg, offset=min(len(payload), 1), field="body_sensor_location")
    name = BODY_SENSOR_LOCATIONS.get(payload[0])
    if name is None:
        msg = f"body sensor location {payload[0]} is reserved; known values are 0 to 6"
        raise DecodeError(msg, offset=0, field="body_sensor_location")
    return name


#: Measurements of one layout (flags byte and length) are decoded together only when at least
#: this many share it; fewer cost less one by one than numpy's fixed cost per group.
_MIN_BATCH_PACKETS: Final = 8


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the fields of a Heart Rate Measurement of one flags byte and length are."""

    hr_u16: bool
    energy_offset: int | None
    rr_offset: int
    n_rr: int
    flags: int  # as HeartRateMeasurement.flags gives it (normalised)


def _layout(flags: int, length: int) -> _Layout | None:
    """The layout of a measurement, or ``None`` if the decoder rejects that flags/length."""
    offset = 1
    hr_u16 = bool(flags & FLAG_HR_U16)
    offset += 2 if hr_u16 else 1
    if length < offset:
        return None
    energy_offset = None
    if flags & FLAG_ENERGY_PRESENT:
        energy_offset = offset
        offset += 2
        if length < offset:
            return None
    rest = length - offset
    if (flags & FLAG_RR_PRESENT and rest % 2) or (not flags & FLAG_RR_PRESENT and rest):
        return None
    n_rr = rest // 2
    norm = FLAG_HR_U16 if hr_u16 else 0
    if flags & FLAG_CONTACT_SUPPORTED:
        norm |= FLAG_CONTACT_SUPPORTED | (flags & FLAG_CONTACT_DETECTED)
    if energy_offset is not None:
        norm |= FLAG_ENERGY_PRESENT
    if n_rr:
        norm |= FLAG_RR_PRESENT
    return _Layout(hr_u16, energy_offset, offset, n_rr, norm)


def _u16_at(rows: npt.NDArray[np.uint8], offset: int) -> npt.NDArray[np.int64]:
    return rows[:, offset].astype(np.int64) | (rows[:, offset + 1].astype(np.int64) << 8)


def _measurement_batches(
    rows: npt.NDArray[np.uint8], layout: _Layout, index: npt.NDArray[np.int64]
) -> list[PacketBatch]:
    """The hr, rr and energy batches of measurements ``rows`` (n, length) of one layout."""
    k = index.size
    none = np.full(k, -1, dtype=np.int64)
    flags = np.full(k, layout.flags, dtype=np.int64)

    def batch(stream: str, unit: str, values: npt.NDArray[np.float32], n: int) -> PacketBatch:
        return PacketBatch(
            stream=stream, channels=(stream,), unit=unit, fs_hz=None, index=index,
            values=values.reshape(1, -1), n_samples=np.full(k, n, dtype=np.int64),
            sequence=none, device_ticks=none, flags=flags,
        )

    hr = _u16_at(rows, 1) if layout.hr_u16 else rows[:, 1].astype(np.int64)
    out = [batch("hr", "bpm", hr.astype(np.float32), 1)]
    if layout.n_rr:
        ticks = rows[:, layout.rr_offset :].reshape(k, layout.n_rr, 2).astype(np.int64)
        rr_ticks = ticks[:, :, 0] | (ticks[:, :, 1] << 8)
        rr_s = (rr_ticks.astype(np.float64) / RR_TICKS_PER_S).astype(np.float32)
        out.append(batch("rr", "s", rr_s, layout.n_rr))
    if layout.energy_offset is not None:
        energy = _u16_at(rows, layout.energy_offset)
        out.append(batch("energy", "kJ", energy.astype(np.float32), 1))
    return out


def _block(frame: Frame, stream: str, unit: str, values: list[float], flags: int) -> SampleBlock:
    return SampleBlock(
        device_address=frame.device_address,
        stream=stream,
        channels=(stream,),
        unit=unit,
        fs_hz=None,
        values=np.asarray(values, dtype=np.float32).reshape(1, -1),
        flags=flags,
    )


class HeartRateProtocol(DeviceProtocol):
    """Any strap or watch exposing the standard Heart Rate Service (``0x180D``).

    No commands: subscribing to ``0x2A37`` starts the stream. :meth:`decode` turns each
    notification into blocks of stream ``"hr"`` (``"bpm"``, one value), ``"rr"`` (``"s"``,
    zero or more values, only when present) and ``"energy"`` (``"kJ"``, only when present);
    Battery Level notifications (``0x2A19``) become stream ``"battery"`` (``"percent"``).
    Every block's ``flags`` is the measurement's flags byte (:data:`FLAG_CONTACT_DETECTED`...).
    """

    family = "heart-rate"
    display_name = "Heart Rate Service (strap or watch)"

    def matches(self, local_name: str | None, service_uuids: Sequence[str]) -> bool:
        return any(_normalize(u) == HEART_RATE_SERVICE_UUID for u in service_uuids)

    def capabilities(self) -> tuple[Capability, ...]:
        return (
            Capability(stream="hr", channels=("hr",), unit="bpm", fs_hz=None),
            Capability(stream="rr", channels=("rr",), unit="s", fs_hz=None),
        )

    def control_uuids(self) -> tuple[str, ...]:
        return ()

    def data_uuids(self) -> tuple[str, ...]:
        return (HEART_RATE_MEASUREMENT_UUID,)

    def start_commands(self, device_time_ns: int) -> tuple[GattWrite, ...]:
        return ()

    def stop_commands(self) -> tuple[GattWrite, ...]:
        return ()

    def device_information_uuids(self) -> Mapping[str, str]:
        """Strings worth reading once after connecting (field -> UUID)."""
        return DEVICE_INFORMATION_UUIDS

    def decode(self, frame: Frame) -> list[SampleBlock]:
        uuid = _normalize(frame.characteristic_uuid)
        if uuid == BATTERY_LEVEL_UUID:
            level = decode_battery_level(frame.payload)
            return [_block(frame, "battery", "percent", [float(level)], 0)]
        if uuid != HEART_RATE_MEASUREMENT_UUID:
            msg = (
                f"characteristic {frame.characteristic_uuid} is not a heart rate or battery "
                "characteristic; record only the UUIDs in data_uuids()"
            )
            raise DecodeError(msg, offset=0, field="characteristic_uuid")
        m = decode_heart_rate_measurement(frame.payload)
        flags = m.flags
        blocks = [_block(frame, "hr", "bpm", [float(m.heart_rate_bpm)], flags)]
        if m.rr_ticks:
            blocks.append(_block(frame, "rr", "s", list(m.rr_intervals_s), flags))
        if m.energy_expended_kj is not None:
            blocks.append(_block(frame, "energy", "kJ", [float(m.energy_expended_kj)], flags))
        return blocks

    def decode_batch(
        self,
        char_uuid: str,
        payloads: Sequence[bytes],
        host_time_ns: npt.NDArray[np.int64],
    ) -> list[PacketBatch] | None:
        """Decode many Heart Rate Measurements at once (vectorised).

        A measurement's layout depends only on its flags byte and length, so measurements are
        grouped by both and each group is read as one byte array. Groups the decoder rejects,
        and groups of fewer than :data:`_MIN_BATCH_PACKETS`, are left for :meth:`decode`.
        Values and flags are bit for bit those of :meth:`decode`.

        Returns
        -------
        list of PacketBatch or None
            ``None`` for any characteristic but ``0x2A37`` (decode per frame); otherwise up to
            three batches (``hr``, ``rr``, ``energy``) per layout.
        """
        del host_time_ns  # measurements carry no device time
        if _normalize(char_uuid) != HEART_RATE_MEASUREMENT_UUID:
            return None
        total = len(payloads)
        lengths = np.fromiter(map(len, payloads), dtype=np.int64, count=total)
        joined = np.frombuffer(b"".join(payloads), dtype=np.uint8)
        if joined.size == 0:
            return []
        starts = np.cumsum(lengths) - lengths
        first = np.where(lengths > 0, joined[np.minimum(starts, joined.size - 1)], 0)
        key = lengths * 256 + first
        out: list[PacketBatch] = []
        for k in np.unique(key[lengths > 0]).tolist():
            index = np.flatnonzero(key == k).astype(np.int64)
            length, flags = divmod(int(k), 256)
            layout = _layout(flags, length)
            if index.size < _MIN_BATCH_PACKETS or layout is None:
                continue
            rows = joined[starts[index][:, None] + np.arange(length)]
            out.extend(_measurement_batches(rows, layout, index))
        return out

    def metadata(self) -> Mapping[str, str]:
        return {"family": self.family, "rr_resolution_s": f"1/{RR_TICKS_PER_S}"}


def _normalize(uuid: str) -> str:
    """Lower-case 128-bit form of a UUID given as 16-bit (``"180d"``) or full string."""
    u = uuid.strip().lower()
    if len(u) == 4:  # 16-bit short form
        return f"0000{u}-0000-1000-8000-00805f9b34fb"
    if len(u) == 8:  # 32-bit short form
        return f"{u}-0000-1000-8000-00805f9b34fb"
    return u
