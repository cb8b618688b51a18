"""Name/UUID -> codec lookup, used by ``anjia ble decode`` and by tests that walk every codec.

A key is a 16-bit UUID in hex (``2a18``, ``0x2A18``), a full SIG-base UUID string, or a
snake_case name (``glucose_measurement``; DIS strings also without the ``_string`` suffix).
``sfloat`` and ``float`` decode bare IEEE-11073 values (2 and 4 bytes exactly).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from device_drivers import uuids
from device_drivers.codec._wire import Reader
from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.device_info import PnpId, SystemId, decode_string, encode_string
from device_drivers.codec.glucose import (
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
)
from device_drivers.codec.racp import RacpMessage
from device_drivers.codec.sfloat import (
    MedFloat,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from device_drivers.codec.time_service import CurrentTime
from device_drivers.errors import DriverError

__all__ = [
    "CatalogEntry",
    "UnknownCharacteristicError",
    "WireValue",
    "decode",
    "entries",
    "lookup",
]


class WireValue(Protocol):
    """What every catalogued codec returns: it has a wire form and a JSON-ready dict."""

    def __bytes__(self) -> bytes: ...

    def to_dict(self) -> dict[str, object]: ...


class UnknownCharacteristicError(DriverError, LookupError):
    """``key`` names no catalogued characteristic; ``known`` lists the names that exist."""

    def __init__(self, key: str, known: tuple[str, ...]) -> None:
        self.key = key
        self.known = known
        super().__init__(f"unknown characteristic {key!r}; known: {', '.join(known)}")


@dataclass(frozen=True, slots=True)
class SFloatValue:
    """A bare SFLOAT (2 bytes exactly)."""

    value: MedFloat

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> SFloatValue:
        reader = Reader(data, "sfloat")
        raw = reader.u16("sfloat")
        reader.expect_end()
        return cls(decode_sfloat(raw))

    def __bytes__(self) -> bytes:
        return encode_sfloat(self.value).to_bytes(2, "little")

    def to_dict(self) -> dict[str, object]:
        return {"raw": f"0x{encode_sfloat(self.value):04x}", **self.value.to_dict()}


@dataclass(frozen=True, slots=True)
class FloatValue:
    """A bare FLOAT (4 bytes exactly)."""

    value: MedFloat

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> FloatValue:
        reader = Reader(data, "float")
        raw = reader.uint(4, "float")
        reader.expect_end()
        return cls(decode_float(raw))

    def __bytes__(self) -> bytes:
        return encode_float(self.value).to_bytes(4, "little")

    def to_dict(self) -> dict[str, object]:
        return {"raw": f"0x{encode_float(self.value):08x}", **self.value.to_dict()}


@dataclass(frozen=True, slots=True)
class DeviceInfoString:
    """A DIS string characteristic value."""

    value: str

    def __bytes__(self) -> bytes:
        return encode_string(self.value)

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value}


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    uuid16: int | None
    parse: Callable[[bytes], WireValue]

    def decode(self, data: bytes) -> dict[str, object]:
        """Decode ``data`` to the JSON-ready dict; raises DecodeError when malformed."""
        return self.parse(data).to_dict()


def _string_parser(name: str) -> Callable[[bytes], WireValue]:
    def parse(data: bytes) -> WireValue:
        return DeviceInfoString(decode_string(data, name))

    return parse


_DIS_STRINGS: Final = (
    uuids.MANUFACTURER_NAME,
    uuids.MODEL_NUMBER,
    uuids.SERIAL_NUMBER,
    uuids.HARDWARE_REVISION,
    uuids.FIRMWARE_REVISION,
    uuids.SOFTWARE_REVISION,
)


def _build() -> tuple[CatalogEntry, ...]:
    structs: tuple[tuple[int, Callable[[bytes], WireValue]], ...] = (
        (uuids.GLUCOSE_MEASUREMENT, GlucoseMeasurement.from_bytes),
        (uuids.GLUCOSE_MEASUREMENT_CONTEXT, GlucoseMeasurementContext.from_bytes),
        (uuids.GLUCOSE_FEATURE, GlucoseFeature.from_bytes),
        (uuids.RECORD_ACCESS_CONTROL_POINT, RacpMessage.from_bytes),
        (uuids.BLOOD_PRESSURE_MEASUREMENT, BloodPressureMeasurement.from_bytes),
        (uuids.INTERMEDIATE_CUFF_PRESSURE, IntermediateCuffPressure.from_bytes),
        (uuids.BLOOD_PRESSURE_FEATURE, BloodPressureFeature.from_bytes),
        (uuids.CURRENT_TIME, CurrentTime.from_bytes),
        (uuids.DATE_TIME, DateTime.from_bytes),
        (uuids.BATTERY_LEVEL, BatteryLevel.from_bytes),
        (uuids.SYSTEM_ID, SystemId.from_bytes),
        (uuids.PNP_ID, PnpId.from_bytes),
    )
    built = [CatalogEntry(uuids.CHARACTERISTIC_NAMES[u], u, parse) for u, parse in structs]
    built += [
        CatalogEntry(
            uuids.CHARACTERISTIC_NAMES[u], u, _string_parser(uuids.CHARACTERISTIC_NAMES[u])
        )
        for u in _DIS_STRINGS
    ]
    built += [
        CatalogEntry("sfloat", None, SFloatValue.from_bytes),
        CatalogEntry("float", None, FloatValue.from_bytes),
    ]
    return tuple(built)


_ENTRIES: Final = _build()
_BY_NAME: Final = {entry.name: entry for entry in _ENTRIES} | {
    entry.name.removesuffix("_string"): entry
    for entry in _ENTRIES
    if entry.name.endswith("_string")
}
_BY_UUID: Final = {entry.uuid16: entry for entry in _ENTRIES if entry.uuid16 is not None}


def entries() -> tuple[CatalogEntry, ...]:
    """Every catalogued codec, in a stable order."""
    return _ENTRIES


def lookup(key: str) -> CatalogEntry:
    """The entry for a name or UUID; :class:`UnknownCharacteristicError` when there is none."""
    text = key.strip().lower()
    by_name = _BY_NAME.get(text) or _BY_NAME.get(text.replace("-", "_").replace(" ", "_"))
    if by_name is not None:
        return by_name
    candidate = text.removeprefix("0x")
    number: int | None
    if len(candidate) == 4 and all(c in "0123456789abcdef" for c in candidate):
        number = int(candidate, 16)
    else:
        number = uuids.short_uuid(candidate)
    if number is not None and number in _BY_UUID:
        return _BY_UUID[number]
    raise UnknownCharacteristicError(key, tuple(entry.name for entry in _ENTRIES))


def decode(key: str, data: bytes) -> dict[str, object]:
    """Look ``key`` up and decode ``data``; DecodeError or UnknownCharacteristicError."""
    return lookup(key).decode(data)
