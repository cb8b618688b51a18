"""registry: advertised service UUID -> device kind and driver (specs/ble.md §1.6, §2.5)."""

from __future__ import annotations

import importlib

import pytest

from device_drivers.model import DeviceKind
from device_drivers.registry import driver_name, kind_for_services


@pytest.mark.parametrize(
    ("uuids", "kind"),
    [
        (["00001808-0000-1000-8000-00805f9b34fb"], DeviceKind.GLUCOSE_METER),
        (["00001810-0000-1000-8000-00805F9B34FB"], DeviceKind.BLOOD_PRESSURE_MONITOR),
        ([0x180F, 0x1810], DeviceKind.BLOOD_PRESSURE_MONITOR),
        (["180a", "1808"], DeviceKind.GLUCOSE_METER),
        (["1810", "1808"], DeviceKind.GLUCOSE_METER),  # precedence, not argument order
        (["0000180f-0000-1000-8000-00805f9b34fb"], None),
        (["zzzz", "12345678-1234-1234-1234-123456789abc", 0x1_0000], None),
        ([], None),
    ],
)
def test_kind_for_services(uuids: list[str | int], kind: DeviceKind | None) -> None:
    assert kind_for_services(uuids) is kind


@pytest.mark.parametrize("kind", list(DeviceKind))
def test_every_kind_names_a_driver_class(kind: DeviceKind) -> None:
    module, _, cls = driver_name(kind).partition(":")
    assert hasattr(importlib.import_module(module), cls)
