"""Canary: the bleak and bumble internals our backends subclass or call still look as we expect.

Like bleak-retry-connector's tests/test_bleak_conformance.py: no mocks, it inspects the real
installed packages, so a version bump that changes them fails here first, with a clear message.
"""

from __future__ import annotations

import inspect

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakGATTProtocolError
from bumble import att, gatt_client
from bumble.device import Connection, Device, Peer

from device_drivers.bumble_backend.client import BumbleBleakClient
from device_drivers.bumble_backend.scanner import BumbleBleakScanner


def _params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_client_implements_exactly_the_abstract_members() -> None:
    expected = {
        "mtu_size",
        "connect",
        "disconnect",
        "pair",
        "unpair",
        "is_connected",
        "read_gatt_char",
        "read_gatt_descriptor",
        "write_gatt_char",
        "write_gatt_descriptor",
        "start_notify",
        "stop_notify",
    }
    assert set(BaseBleakClient.__abstractmethods__) == expected
    implemented = {
        name for name in expected if name in BumbleBleakClient.__dict__
    }  # defined on our class, not inherited
    assert implemented == expected
    assert not BumbleBleakClient.__abstractmethods__
    # `name` is optional in BaseBleakClient (raises NotImplementedError); we provide it.
    assert "name" in BumbleBleakClient.__dict__


def test_scanner_implements_exactly_the_abstract_members() -> None:
    assert set(BaseBleakScanner.__abstractmethods__) == {"start", "stop"}
    assert not BumbleBleakScanner.__abstractmethods__


def test_base_scanner_helpers_we_call_exist() -> None:
    for name in ("create_or_update_device", "call_detection_callbacks", "is_allowed_uuid"):
        assert callable(getattr(BaseBleakScanner, name))
    assert _params(BaseBleakScanner.create_or_update_device) == [
        "self",
        "key",
        "address",
        "name",
        "details",
        "adv",
    ]
    assert list(AdvertisementData._fields) == [
        "local_name",
        "manufacturer_data",
        "service_data",
        "service_uuids",
        "tx_power",
        "rssi",
        "platform_data",
    ]


def test_gatt_object_constructors() -> None:
    assert _params(BleakGATTService.__init__) == ["self", "obj", "handle", "uuid"]
    assert _params(BleakGATTCharacteristic.__init__) == [
        "self",
        "obj",
        "handle",
        "uuid",
        "properties",
        "max_write_without_response_size",
        "service",
    ]
    assert _params(BleakGATTDescriptor.__init__) == [
        "self",
        "obj",
        "handle",
        "uuid",
        "characteristic",
    ]
    for name in ("add_service", "add_characteristic", "add_descriptor"):
        assert callable(getattr(BleakGATTServiceCollection, name))


def test_facades_pass_backend_and_extra_kwargs_through() -> None:
    client_params = inspect.signature(BleakClient.__init__).parameters
    scanner_params = inspect.signature(BleakScanner.__init__).parameters
    for params in (client_params, scanner_params):
        assert "backend" in params
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert _params(BaseBleakClient.connect) == ["self", "pair", "kwargs"]


def test_gatt_protocol_error_carries_the_code() -> None:
    assert int(BleakGATTProtocolError(0x81).code) == 0x81


@pytest.mark.parametrize(
    ("owner", "names"),
    [
        (Device, ["connect", "start_scanning", "stop_scanning", "is_scanning", "keystore"]),
        (Connection, ["pair", "encrypt", "disconnect", "is_encrypted", "EVENT_DISCONNECTION"]),
        (
            Peer,
            [
                "discover_services",
                "discover_characteristics",
                "discover_descriptors",
                "request_mtu",
            ],
        ),
        (
            gatt_client.CharacteristicProxy,
            ["read_value", "write_value", "subscribe", "unsubscribe"],
        ),
        (gatt_client.Client, ["cached_values", "mtu"]),
    ],
)
def test_bumble_members_we_use_exist(owner: type, names: list[str]) -> None:
    missing = [
        n
        for n in names
        if not hasattr(owner, n)
        and n not in getattr(owner, "__annotations__", {})
        # instance attributes set in __init__ (cached_values, mtu) are checked by source
        and f"self.{n}" not in inspect.getsource(owner)
    ]
    assert not missing


def test_bumble_att_error_carries_the_code() -> None:
    assert att.ATT_Error(0x0F).error_code == 0x0F
    assert "prefer_notify" in _params(gatt_client.CharacteristicProxy.subscribe)
