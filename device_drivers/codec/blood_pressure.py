"""Blood Pressure Service wire structs: Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36,
Feature 0x2A49. Spec: ble.md §2.1-§2.3; Bluetooth BLS 1.1 §3.

Length policy as in :mod:`device_drivers.codec.glucose`: truncated payloads raise
:class:`DecodeError`, trailing bytes after the announced fields are tolerated (GATT values may be
extended), RFU flag bits are ignored on read and sent as 0. A failed reading arrives as SFLOAT
special values (NaN 0x07FF...): they decode to a :class:`MedFloat` special, never to 2047.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from device_drivers.codec._names import bit_names, medfloat_fields
from device_drivers.codec._wire import Reader, pack_sfloat, pack_uint
from device_drivers.codec.date_time import DateTime, read_date_time
from device_drivers.codec.sfloat import MedFloat
from device_drivers.errors import EncodeError

__all__ = [
    "MEASUREMENT_STATUS_NAMES",
    "UNKNOWN_USER",
    "BloodPressureFeature",
    "BloodPressureMeasurement",
    "IntermediateCuffPressure",
]

_MEASUREMENT: Final = "blood_pressure_measurement"
_CUFF: Final = "intermediate_cuff_pressure"
_FEATURE: Final = "blood_pressure_feature"

UNIT_MMHG: Final = "mmHg"
UNIT_KPA: Final = "kPa"
UNKNOWN_USER: Final = 0xFF

# Single-bit measurement status flags (bit number -> name); bits 3-4 are the pulse rate range.
MEASUREMENT_STATUS_NAMES: Final[dict[int, str]] = {
    0: "body_movement_detected",
    1: "cuff_too_loose",
    2: "irregular_pulse_detected",
    5: "improper_measurement_position",
}
PULSE_RATE_RANGE_NAMES: Final[dict[int, str]] = {
    0: "within_range",
    1: "above_upper_limit",
    2: "below_lower_limit",
}


class _Flags(IntFlag):
    UNITS_KPA = 0x01
    TIMESTAMP_PRESENT = 0x02
    PULSE_RATE_PRESENT = 0x04
    USER_ID_PRESENT = 0x08
    MEASUREMENT_STATUS_PRESENT = 0x10


@dataclass(frozen=True, slots=True)
class _Optional:
    timestamp: DateTime | None
    pulse_rate: MedFloat | None
    user_id: int | None
    measurement_status: int | None


def _check_unit(characteristic: str, unit: str) -> None:
    if unit not in (UNIT_MMHG, UNIT_KPA):
        raise EncodeError(characteristic, f"unit {unit!r} is not mmHg or kPa")


def _read(reader: Reader) -> tuple[_Flags, MedFloat, MedFloat, MedFloat, _Optional]:
    flags = _Flags(reader.u8("flags") & 0x1F)
    first = reader.sfloat("systolic")
    second = reader.sfloat("diastolic")
    third = reader.sfloat("mean arterial pressure")
    timestamp = read_date_time(reader, "time stamp") if flags & _Flags.TIMESTAMP_PRESENT else None
    pulse = reader.sfloat("pulse rate") if flags & _Flags.PULSE_RATE_PRESENT else None
    user = reader.u8("user id") if flags & _Flags.USER_ID_PRESENT else None
    status = reader.u16("measurement status") if flags & _Flags.MEASUREMENT_STATUS_PRESENT else None
    # Trailing bytes tolerated (module docstring).
    return flags, first, second, third, _Optional(timestamp, pulse, user, status)


def _flags(unit: str, extra: _Optional) -> _Flags:
    flags = _Flags(0)
    if unit == UNIT_KPA:
        flags |= _Flags.UNITS_KPA
    if extra.timestamp is not None:
        flags |= _Flags.TIMESTAMP_PRESENT
    if extra.pulse_rate is not None:
        flags |= _Flags.PULSE_RATE_PRESENT
    if extra.user_id is not None:
        flags |= _Flags.USER_ID_PRESENT
    if extra.measurement_status is not None:
        flags |= _Flags.MEASUREMENT_STATUS_PRESENT
    return flags


def _write_optional(out: bytearray, characteristic: str, extra: _Optional) -> None:
    if extra.timestamp is not None:
        out += bytes(extra.timestamp)
    if extra.pulse_rate is not None:
        out += pack_sfloat(extra.pulse_rate, characteristic, "pulse_rate")
    if extra.user_id is not None:
        out += pack_uint(extra.user_id, 1, characteristic, "user_id")
    if extra.measurement_status is not None:
        out += pack_uint(extra.measurement_status, 2, characteristic, "measurement_status")


def _optional_dict(out: dict[str, object], extra: _Optional) -> None:
    out["timestamp"] = None if extra.timestamp is None else extra.timestamp.iso()
    medfloat_fields(out, "pulse_rate", extra.pulse_rate)
    out["user_id"] = extra.user_id
    out["user_id_name"] = "unknown_user" if extra.user_id == UNKNOWN_USER else None
    status = extra.measurement_status
    out["measurement_status"] = status
    if status is None:
        out["measurement_status_names"] = None
        out["pulse_rate_range"] = None
        out["pulse_rate_range_name"] = None
    else:
        pulse_range = (status >> 3) & 0x03
        out["measurement_status_names"] = bit_names(MEASUREMENT_STATUS_NAMES, status)
        out["pulse_rate_range"] = pulse_range
        out["pulse_rate_range_name"] = PULSE_RATE_RANGE_NAMES.get(pulse_range)


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """Blood Pressure Measurement 0x2A35 (ble.md §2.1), in ``unit`` "mmHg" or "kPa"."""

    Flags = _Flags

    systolic: MedFloat
    diastolic: MedFloat
    mean_arterial_pressure: MedFloat
    unit: str = UNIT_MMHG
    timestamp: DateTime | None = None
    pulse_rate: MedFloat | None = None
    user_id: int | None = None
    measurement_status: int | None = None

    def __post_init__(self) -> None:
        _check_unit(_MEASUREMENT, self.unit)

    def _optional(self) -> _Optional:
        return _Optional(self.timestamp, self.pulse_rate, self.user_id, self.measurement_status)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> BloodPressureMeasurement:
        flags, systolic, diastolic, mean, extra = _read(Reader(data, _MEASUREMENT))
        return cls(
            systolic=systolic,
            diastolic=diastolic,
            mean_arterial_pressure=mean,
            unit=UNIT_KPA if flags & _Flags.UNITS_KPA else UNIT_MMHG,
            timestamp=extra.timestamp,
            pulse_rate=extra.pulse_rate,
            user_id=extra.user_id,
            measurement_status=extra.measurement_status,
        )

    @property
    def flags(self) -> _Flags:
        return _flags(self.unit, self._optional())

    def __bytes__(self) -> bytes:
        out = bytearray((self.flags,))
        out += pack_sfloat(self.systolic, _MEASUREMENT, "systolic")
        out += pack_sfloat(self.diastolic, _MEASUREMENT, "diastolic")
        out += pack_sfloat(self.mean_arterial_pressure, _MEASUREMENT, "mean_arterial_pressure")
        _write_optional(out, _MEASUREMENT, self._optional())
        return bytes(out)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        medfloat_fields(out, "systolic", self.systolic)
        medfloat_fields(out, "diastolic", self.diastolic)
        medfloat_fields(out, "mean_arterial_pressure", self.mean_arterial_pressure)
        out["unit"] = self.unit
        _optional_dict(out, self._optional())
        return out


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """Intermediate Cuff Pressure 0x2A36 (ble.md §2.2): the live cuff pressure while inflating.

    Same layout as 0x2A35; the diastolic and MAP slots are ignored on decode (some devices send
    zeros there) and sent as NaN 0x07FF.
    """

    Flags = _Flags

    cuff_pressure: MedFloat
    unit: str = UNIT_MMHG
    timestamp: DateTime | None = None
    pulse_rate: MedFloat | None = None
    user_id: int | None = None
    measurement_status: int | None = None

    def __post_init__(self) -> None:
        _check_unit(_CUFF, self.unit)

    def _optional(self) -> _Optional:
        return _Optional(self.timestamp, self.pulse_rate, self.user_id, self.measurement_status)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> IntermediateCuffPressure:
        flags, cuff, _diastolic, _mean, extra = _read(Reader(data, _CUFF))
        return cls(
            cuff_pressure=cuff,
            unit=UNIT_KPA if flags & _Flags.UNITS_KPA else UNIT_MMHG,
            timestamp=extra.timestamp,
            pulse_rate=extra.pulse_rate,
            user_id=extra.user_id,
            measurement_status=extra.measurement_status,
        )

    @property
    def flags(self) -> _Flags:
        return _flags(self.unit, self._optional())

    def __bytes__(self) -> bytes:
        out = bytearray((self.flags,))
        out += pack_sfloat(self.cuff_pressure, _CUFF, "cuff_pressure")
        nan = pack_sfloat(MedFloat.nan(), _CUFF, "diastolic")
        out += nan + nan
        _write_optional(out, _CUFF, self._optional())
        return bytes(out)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        medfloat_fields(out, "cuff_pressure", self.cuff_pressure)
        out["unit"] = self.unit
        _optional_dict(out, self._optional())
        return out


_BP_FEATURE_BITS: Final[dict[int, str]] = {
    0: "body_movement_detection",
    1: "cuff_fit_detection",
    2: "irregular_pulse_detection",
    3: "pulse_rate_range_detection",
    4: "measurement_position_detection",
    5: "multiple_bond_support",
    6: "e2e_crc_support",
    7: "user_data_service_support",
    8: "user_facing_time_support",
}


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    """Blood Pressure Feature 0x2A49, a uint16 bit field (ble.md §2.3; bits 6-8 from BLS 1.1)."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or not 0 <= self.value <= 0xFFFF:
            raise EncodeError(_FEATURE, f"value {self.value!r} does not fit in uint16")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> BloodPressureFeature:
        return cls(Reader(data, _FEATURE).u16("feature"))

    def __bytes__(self) -> bytes:
        return self.value.to_bytes(2, "little")

    def _bit(self, bit: int) -> bool:
        return bool(self.value & (1 << bit))

    @property
    def body_movement_detection(self) -> bool:
        return self._bit(0)

    @property
    def cuff_fit_detection(self) -> bool:
        return self._bit(1)

    @property
    def irregular_pulse_detection(self) -> bool:
        return self._bit(2)

    @property
    def pulse_rate_range_detection(self) -> bool:
        return self._bit(3)

    @property
    def measurement_position_detection(self) -> bool:
        return self._bit(4)

    @property
    def multiple_bond_support(self) -> bool:
        return self._bit(5)

    @property
    def e2e_crc_support(self) -> bool:
        return self._bit(6)

    @property
    def user_data_service_support(self) -> bool:
        return self._bit(7)

    @property
    def user_facing_time_support(self) -> bool:
        return self._bit(8)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"value": self.value}
        out.update({name: self._bit(bit) for bit, name in _BP_FEATURE_BITS.items()})
        return out
