"""Which driver serves an advertising device: a dispatch table keyed by advertised service UUID.

Glucose meters advertise the Glucose Service 0x1808 and cuffs the Blood Pressure Service 0x1810
(specs/ble.md §1.6 step 1, §2.5). Drivers are named, not imported, so this module stays pure and
cheap to import; :func:`driver_name` gives the dotted path the gateway resolves.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from device_drivers.model import DeviceKind
from device_drivers.uuids import BLOOD_PRESSURE_SERVICE, GLUCOSE_SERVICE, short_uuid

__all__ = ["DRIVER_NAMES", "SERVICE_KINDS", "driver_name", "kind_for_services"]

SERVICE_KINDS: Final[Mapping[int, DeviceKind]] = MappingProxyType(
    {
        GLUCOSE_SERVICE: DeviceKind.GLUCOSE_METER,
        BLOOD_PRESSURE_SERVICE: DeviceKind.BLOOD_PRESSURE_MONITOR,
    }
)
"""Advertised 16-bit service UUID -> device kind. Iteration order is the precedence when a device
advertises more than one."""

DRIVER_NAMES: Final[Mapping[DeviceKind, str]] = MappingProxyType(
    {
        DeviceKind.GLUCOSE_METER: "device_drivers.driver:GlucoseMeterDriver",
        DeviceKind.BLOOD_PRESSURE_MONITOR: "device_drivers.driver:BloodPressureDriver",
    }
)


def _as_uuid16(uuid: str | int) -> int | None:
    if isinstance(uuid, int):
        return uuid if 0 <= uuid <= 0xFFFF else None
    try:
        return short_uuid(uuid)
    except ValueError:  # four characters that are not hex digits
        return None


def kind_for_services(uuids: Iterable[str | int]) -> DeviceKind | None:
    """The device kind for a set of advertised service UUIDs (16-bit ints, 4-digit or 128-bit
    strings in any case), or None when no health service we drive is among them."""
    advertised = {u for u in map(_as_uuid16, uuids) if u is not None}
    for service, kind in SERVICE_KINDS.items():
        if service in advertised:
            return kind
    return None


def driver_name(kind: DeviceKind) -> str:
    """``module:Class`` of the driver for a device kind."""
    return DRIVER_NAMES[kind]
