"""The Bluetooth SIG tables: standard UUIDs, Device Information keys, Battery Level.

The one home of the 16-bit UUIDs that the Bluetooth SIG assigns and every device family
shares (as bleak keeps its standard UUIDs in ``bleak/uuids.py``). Family modules keep only
their vendor UUIDs; the Heart Rate Service's measurement codec lives in
:mod:`crampsense.devices.heart_rate`.

References
----------
.. [1] Bluetooth SIG, "Assigned Numbers", section 3.4 (GATT services) and 3.8 (characteristics).
.. [2] Bluetooth SIG, "Battery Service 1.0" and "Device Information Service 1.1".
.. [3] Bluetooth SIG, "Core Specification 5.3", Vol 3 Part G 3.3.3.3 (Client Characteristic
   Configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from crampsense.errors import DecodeError

__all__ = [
    "BATTERY_LEVEL_UUID",
    "BATTERY_MAX_PERCENT",
    "BATTERY_SERVICE_UUID",
    "BODY_SENSOR_LOCATION_UUID",
    "CCCD_UUID",
    "DEVICE_INFORMATION_SERVICE_UUID",
    "DEVICE_INFORMATION_UUIDS",
    "HEART_RATE_CONTROL_POINT_UUID",
    "HEART_RATE_MEASUREMENT_UUID",
    "HEART_RATE_SERVICE_UUID",
    "decode_battery_level",
    "decode_dis_string",
    "sig_uuid",
]


def sig_uuid(short: int) -> str:
    """The lower-case 128-bit form of a 16-bit Bluetooth SIG UUID.

    Examples
    --------
    >>> sig_uuid(0x2A37)
    '00002a37-0000-1000-8000-00805f9b34fb'
    """
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


HEART_RATE_SERVICE_UUID: Final = sig_uuid(0x180D)
HEART_RATE_MEASUREMENT_UUID: Final = sig_uuid(0x2A37)
BODY_SENSOR_LOCATION_UUID: Final = sig_uuid(0x2A38)
HEART_RATE_CONTROL_POINT_UUID: Final = sig_uuid(0x2A39)
BATTERY_SERVICE_UUID: Final = sig_uuid(0x180F)
BATTERY_LEVEL_UUID: Final = sig_uuid(0x2A19)
DEVICE_INFORMATION_SERVICE_UUID: Final = sig_uuid(0x180A)
#: Client Characteristic Configuration descriptor ([3]_): ``01 00`` notify, ``02 00`` indicate.
CCCD_UUID: Final = sig_uuid(0x2902)

#: Device Information Service string characteristics, field name -> UUID ([2]_).
DEVICE_INFORMATION_UUIDS: Final[Mapping[str, str]] = {
    "manufacturer": sig_uuid(0x2A29),
    "model": sig_uuid(0x2A24),
    "serial": sig_uuid(0x2A25),
    "hardware": sig_uuid(0x2A27),
    "firmware": sig_uuid(0x2A26),
    "software": sig_uuid(0x2A28),
}

#: Largest Battery Level value; 101-255 are reserved ([2]_).
BATTERY_MAX_PERCENT: Final = 100


def decode_battery_level(payload: bytes | bytearray) -> int:
    """Decode Battery Level (``0x2A19``): one u8, percent 0-100.

    Raises
    ------
    DecodeError
        Not exactly one byte, or a reserved value above 100.
    """
    if len(payload) != 1:
        msg = f"battery level must be 1 byte, got {len(payload)}; not a 0x2A19 value"
        raise DecodeError(msg, offset=min(len(payload), 1), field="battery_level")
    level = payload[0]
    if level > BATTERY_MAX_PERCENT:
        msg = f"battery level {level} is a reserved value; allowed are 0 to 100 percent"
        raise DecodeError(msg, offset=0, field="battery_level")
    return level


def decode_dis_string(payload: bytes | bytearray, field: str = "device_information") -> str:
    """Decode a Device Information string (UTF-8; trailing NUL padding removed).

    Raises
    ------
    DecodeError
        The bytes are not UTF-8.
    """
    try:
        return bytes(payload).decode("utf-8").rstrip("\x00")
    except UnicodeDecodeError as exc:
        msg = f"device information {field!r} is not UTF-8 ({exc.reason}); read it again"
        raise DecodeError(msg, offset=exc.start, field=field) from exc
