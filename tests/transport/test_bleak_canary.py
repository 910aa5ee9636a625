"""Canary: the installed bleak still has every interface crampsense and its simulators use.

When bleak changes one of these, this file fails first, naming what changed, instead of the
transport failing somewhere in the middle of a night. No radio is touched.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakCharacteristicNotFoundError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)

from firmware_sims.backend import SimulatedBleakClient, SimulatedBleakScanner

VERSION = importlib.metadata.version("bleak")


def _params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(fn).parameters)


def _require_params(where: str, fn: Callable[..., Any], names: list[str]) -> None:
    params = _params(fn)
    missing = [n for n in names if n not in params]
    assert not missing, (
        f"bleak {VERSION}: {where} lost parameter(s) {missing}; it now takes {list(params)}. "
        "Update firmware_sims/backend.py and src/crampsense/transport to the new signature."
    )


def test_facades_accept_a_backend_class() -> None:
    _require_params("BleakClient.__init__", BleakClient.__init__, [
        "address_or_ble_device", "disconnected_callback", "services", "timeout", "pair", "backend",
    ])
    _require_params("BleakScanner.__init__", BleakScanner.__init__, [
        "detection_callback", "service_uuids", "scanning_mode", "backend",
    ])
    _require_params("BleakScanner.discover", BleakScanner.discover, ["timeout", "return_adv"])
    _require_params(
        "BleakScanner.find_device_by_address", BleakScanner.find_device_by_address,
        ["device_identifier", "timeout"],
    )
    _require_params(
        "BleakClient.start_notify", BleakClient.start_notify, ["char_specifier", "callback"]
    )
    _require_params(
        "BleakClient.write_gatt_char", BleakClient.write_gatt_char,
        ["char_specifier", "data", "response"],
    )


EXPECTED_CLIENT_ABSTRACT = {
    "connect", "disconnect", "pair", "unpair", "is_connected", "mtu_size",
    "read_gatt_char", "read_gatt_descriptor", "write_gatt_char", "write_gatt_descriptor",
    "start_notify", "stop_notify",
}


def test_base_client_abstract_methods_are_the_ones_we_implement() -> None:
    abstract = set(getattr(BaseBleakClient, "__abstractmethods__", set()))
    added = abstract - EXPECTED_CLIENT_ABSTRACT
    removed = EXPECTED_CLIENT_ABSTRACT - abstract
    assert not added, (
        f"bleak {VERSION}: BaseBleakClient has new abstract method(s) {sorted(added)}; "
        "implement them in firmware_sims/backend.py SimulatedBleakClient"
    )
    assert not removed, (
        f"bleak {VERSION}: BaseBleakClient no longer declares {sorted(removed)} abstract; "
        "check whether the transport still relies on them"
    )
    assert not getattr(SimulatedBleakClient, "__abstractmethods__", set()), (
        "SimulatedBleakClient leaves abstract methods unimplemented"
    )
    _require_params("BaseBleakClient.__init__", BaseBleakClient.__init__, [
        "address_or_ble_device", "disconnected_callback", "timeout",
    ])
    _require_params("BaseBleakClient.connect", BaseBleakClient.connect, ["pair"])
    _require_params(
        "BaseBleakClient.write_gatt_char", BaseBleakClient.write_gatt_char,
        ["characteristic", "data", "response"],
    )
    _require_params(
        "BaseBleakClient.start_notify", BaseBleakClient.start_notify,
        ["characteristic", "callback"],
    )
    assert hasattr(BaseBleakClient, "set_disconnected_callback"), (
        f"bleak {VERSION}: BaseBleakClient.set_disconnected_callback is gone"
    )


def test_base_scanner_constructor_and_helpers() -> None:
    abstract = set(getattr(BaseBleakScanner, "__abstractmethods__", set()))
    assert abstract == {"start", "stop"}, (
        f"bleak {VERSION}: BaseBleakScanner abstract methods are now {sorted(abstract)}, "
        "expected start and stop; update SimulatedBleakScanner"
    )
    _require_params("BaseBleakScanner.__init__", BaseBleakScanner.__init__, [
        "detection_callback", "service_uuids",
    ])
    for helper in (
        "register_detection_callback", "is_allowed_uuid", "call_detection_callbacks",
        "create_or_update_device",
    ):
        assert callable(getattr(BaseBleakScanner, helper, None)), (
            f"bleak {VERSION}: BaseBleakScanner.{helper} is gone; SimulatedBleakScanner uses it"
        )
    _require_params(
        "BaseBleakScanner.create_or_update_device", BaseBleakScanner.create_or_update_device,
        ["key", "address", "name", "details", "adv"],
    )
    # how BleakScanner constructs a backend: positional (callback, uuids, mode), bluez=, cb=
    source = inspect.getsource(BleakScanner.__init__)
    assert "scanning_mode" in source, f"bleak {VERSION}: scanner backend call changed"
    assert "bluez=bluez" in source, f"bleak {VERSION}: scanner backend no longer gets bluez="
    _require_params("SimulatedBleakScanner.__init__", SimulatedBleakScanner.__init__, [
        "detection_callback", "service_uuids", "scanning_mode", "bluez", "cb", "kwargs",
    ])


def test_advertisement_data_fields() -> None:
    expected = (
        "local_name", "manufacturer_data", "service_data", "service_uuids", "tx_power", "rssi",
        "platform_data",
    )
    assert AdvertisementData._fields == expected, (
        f"bleak {VERSION}: AdvertisementData fields are now {AdvertisementData._fields}, "
        f"expected {expected}; update SimulatedBleakScanner.receive_advertisement and the "
        "transport's scan code"
    )
    device = BLEDevice("AA:BB:CC:DD:EE:FF", "x", None)
    assert (device.address, device.name, device.details) == ("AA:BB:CC:DD:EE:FF", "x", None)


def test_gatt_collection_building_blocks() -> None:
    for name in ("add_service", "add_characteristic", "add_descriptor", "get_characteristic"):
        assert callable(getattr(BleakGATTServiceCollection, name, None)), (
            f"bleak {VERSION}: BleakGATTServiceCollection.{name} is gone; the simulated "
            "client's service discovery builds the collection with it"
        )
    _require_params("BleakGATTService.__init__", BleakGATTService.__init__,
                    ["obj", "handle", "uuid"])
    _require_params("BleakGATTCharacteristic.__init__", BleakGATTCharacteristic.__init__, [
        "obj", "handle", "uuid", "properties", "max_write_without_response_size", "service",
    ])
    _require_params("BleakGATTDescriptor.__init__", BleakGATTDescriptor.__init__,
                    ["obj", "handle", "uuid", "characteristic"])
    # and they still fit together the way the simulated backend uses them
    coll = BleakGATTServiceCollection()
    svc = BleakGATTService(None, 16, "0000180d-0000-1000-8000-00805f9b34fb")
    coll.add_service(svc)
    char = BleakGATTCharacteristic(
        None, 18, "00002a37-0000-1000-8000-00805f9b34fb", ["notify"], lambda: 20, svc
    )
    coll.add_characteristic(char)
    coll.add_descriptor(
        BleakGATTDescriptor(None, 19, "00002902-0000-1000-8000-00805f9b34fb", char)
    )
    assert coll.get_characteristic("2a37") is char
    assert char.descriptors[0].handle == 19


def test_exceptions_the_transport_catches() -> None:
    assert issubclass(BleakDeviceNotFoundError, BleakError)
    assert issubclass(BleakCharacteristicNotFoundError, BleakError)
    assert issubclass(BleakGATTProtocolError, BleakError), (
        f"bleak {VERSION}: BleakGATTProtocolError is no longer a BleakError"
    )
    assert int(BleakGATTProtocolError(0x05).code) == 0x05
    assert BleakDeviceNotFoundError("AA", "msg").identifier == "AA"


@pytest.mark.parametrize("facade", [BleakClient, BleakScanner])
def test_facades_expose_backend_id(facade: type) -> None:
    assert isinstance(inspect.getattr_static(facade, "backend_id"), property), (
        f"bleak {VERSION}: {facade.__name__}.backend_id is gone"
    )


def test_real_stack_backend_fits_the_same_interfaces() -> None:
    """firmware_sims/bumble_stack.py relies on these too (its own bleak backend classes)."""
    from firmware_sims.bumble_stack import BumbleBleakClient, BumbleBleakScanner  # noqa: PLC0415

    assert not getattr(BumbleBleakClient, "__abstractmethods__", set()), (
        "BumbleBleakClient leaves abstract methods unimplemented"
    )
    assert not getattr(BumbleBleakScanner, "__abstractmethods__", set()), (
        "BumbleBleakScanner leaves abstract methods unimplemented"
    )
    _require_params("BumbleBleakScanner.__init__", BumbleBleakScanner.__init__, [
        "detection_callback", "service_uuids", "scanning_mode", "bluez", "cb", "kwargs",
    ])
    _require_params("BumbleBleakClient.__init__", BumbleBleakClient.__init__, [
        "address_or_ble_device", "disconnected_callback", "timeout", "services", "kwargs",
    ])
    # the backend reads characteristic.obj / descriptor.obj (its bumble proxies) and the
    # descriptor's handle; the facade passes the backend a BleakGATTCharacteristic
    char = BleakGATTCharacteristic(
        "proxy", 18, "00002a37-0000-1000-8000-00805f9b34fb", ["notify"], lambda: 20,
        BleakGATTService(None, 16, "0000180d-0000-1000-8000-00805f9b34fb"),
    )
    assert char.obj == "proxy"
    desc = BleakGATTDescriptor("dproxy", 19, "00002902-0000-1000-8000-00805f9b34fb", char)
    assert (desc.obj, desc.handle) == ("dproxy", 19)
    # a backend's notify callback receives the data only (bleak wraps the user's callback)
    source = inspect.getsource(BleakClient.start_notify)
    assert "_backend.start_notify" in source, f"bleak {VERSION}: start_notify path changed"
    # the MTU and disconnect state the transport reads
    assert isinstance(inspect.getattr_static(BaseBleakClient, "mtu_size"), property)
    assert isinstance(inspect.getattr_static(BleakClient, "mtu_size"), property)
    _require_params("BaseBleakClient.pair", BaseBleakClient.pair, ["args", "kwargs"])
