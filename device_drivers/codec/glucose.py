"""Glucose Service wire structs: Measurement 0x2A18, Measurement Context 0x2A34, Feature 0x2A51.

Spec: ble.md §1.1 (measurement), §1.2 (context), §1.3 (feature); Bluetooth GLS 1.0.1 §3.

Length policy (all codecs of this package): a payload shorter than its flags say raises
:class:`DecodeError`. Extra trailing bytes after the last field the flags announce are *tolerated*
and ignored, because GATT characteristics may be extended by later versions of a service and a
collector must not reject a value a newer sensor sends. RFU flag bits are ignored on read and
sent as 0. RFU code values (type, sample location, meal...) are kept as integers with a ``None``
name: a reading is never dropped because a nibble is new to us.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntFlag
from typing import Final

from device_drivers.codec._names import bit_names, code_name, medfloat_fields
from device_drivers.codec._wire import Reader, pack_sfloat, pack_sint, pack_uint
from device_drivers.codec.date_time import DateTime, read_date_time
from device_drivers.codec.sfloat import MedFloat
from device_drivers.errors import EncodeError

__all__ = [
    "GLUCOSE_TYPE_NAMES",
    "SAMPLE_LOCATION_NAMES",
    "SENSOR_STATUS_NAMES",
    "GlucoseFeature",
    "GlucoseMeasurement",
    "GlucoseMeasurementContext",
]

_MEASUREMENT: Final = "glucose_measurement"
_CONTEXT: Final = "glucose_measurement_context"
_FEATURE: Final = "glucose_feature"

_MGDL_PER_MMOLL: Final = Decimal("18.0156")  # glucose 180.156 g/mol (model.MGDL_PER_MMOLL)
_MGDL_PER_KGL: Final = Decimal(100_000)  # 1 kg/L = 100 000 mg/dL
_MMOLL_PER_MOLL: Final = Decimal(1000)

UNIT_KG_L: Final = "kg/L"
UNIT_MOL_L: Final = "mol/L"

GLUCOSE_TYPE_NAMES: Final[dict[int, str]] = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATION_NAMES: Final[dict[int, str]] = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
SENSOR_STATUS_NAMES: Final[dict[int, str]] = {
    0: "battery_low",
    1: "sensor_malfunction",
    2: "sample_size_insufficient",
    3: "strip_insertion_error",
    4: "strip_type_incorrect",
    5: "result_too_high",
    6: "result_too_low",
    7: "temperature_too_high",
    8: "temperature_too_low",
    9: "read_interrupted",
    10: "general_device_fault",
    11: "time_fault",
}
CARBOHYDRATE_NAMES: Final[dict[int, str]] = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEAL_NAMES: Final[dict[int, str]] = {
    1: "preprandial",
    2: "postprandial",
    3: "fasting",
    4: "casual",
    5: "bedtime",
}
TESTER_NAMES: Final[dict[int, str]] = {
    1: "self",
    2: "health_care_professional",
    3: "lab_test",
    15: "not_available",
}
HEALTH_NAMES: Final[dict[int, str]] = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATION_NAMES: Final[dict[int, str]] = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}
EXERCISE_DURATION_OVERRUN: Final = 0xFFFF


# Flag bits (ble.md §1.1, §1.2) as plain ints for decoding; the IntFlag classes reuse them.
_GM_TIME_OFFSET: Final = 0x01
_GM_CONCENTRATION: Final = 0x02
_GM_UNITS_MOL_L: Final = 0x04
_GM_SENSOR_STATUS: Final = 0x08
_GM_CONTEXT_FOLLOWS: Final = 0x10
_CTX_CARBOHYDRATE: Final = 0x01
_CTX_MEAL: Final = 0x02
_CTX_TESTER_HEALTH: Final = 0x04
_CTX_EXERCISE: Final = 0x08
_CTX_MEDICATION: Final = 0x10
_CTX_MEDICATION_LITERS: Final = 0x20
_CTX_HBA1C: Final = 0x40
_CTX_EXTENDED: Final = 0x80


def _check_nibble(characteristic: str, field: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 15:
        raise EncodeError(characteristic, f"{field} {value!r} does not fit in a nibble (0..15)")


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """Glucose Measurement 0x2A18 (ble.md §1.1).

    ``concentration`` is what the meter sent, in ``concentration_unit`` ("kg/L" or "mol/L");
    ``glucose_mmol_l`` and ``glucose_mg_dl`` derive the clinical units. ``type`` and
    ``sample_location`` are present exactly when ``concentration`` is.
    """

    class Flags(IntFlag):
        TIME_OFFSET_PRESENT = _GM_TIME_OFFSET
        CONCENTRATION_PRESENT = _GM_CONCENTRATION
        UNITS_MOL_L = _GM_UNITS_MOL_L
        SENSOR_STATUS_PRESENT = _GM_SENSOR_STATUS
        CONTEXT_INFORMATION_FOLLOWS = _GM_CONTEXT_FOLLOWS

    sequence_number: int
    base_time: DateTime
    time_offset_minutes: int | None = None
    concentration: MedFloat | None = None
    concentration_unit: str | None = None
    type: int | None = None
    sample_location: int | None = None
    sensor_status: int | None = None
    context_information_follows: bool = False

    def __post_init__(self) -> None:
        present = (
            self.concentration is not None,
            self.concentration_unit is not None,
            self.type is not None,
            self.sample_location is not None,
        )
        if any(present) and not all(present):
            raise EncodeError(
                _MEASUREMENT,
                "concentration, concentration_unit, type and sample_location go together",
            )
        if self.concentration_unit not in (None, UNIT_KG_L, UNIT_MOL_L):
            raise EncodeError(
                _MEASUREMENT, f"unit {self.concentration_unit!r} is not kg/L or mol/L"
            )
        if self.type is not None:
            _check_nibble(_MEASUREMENT, "type", self.type)
        if self.sample_location is not None:
            _check_nibble(_MEASUREMENT, "sample_location", self.sample_location)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> GlucoseMeasurement:
        reader = Reader(data, _MEASUREMENT)
        # plain int masks: IntFlag arithmetic costs a microsecond per test, per record
        flags = reader.u8("flags") & 0x1F
        sequence_number = reader.u16("sequence number")
        base_time = read_date_time(reader, "base time")
        time_offset = reader.s16("time offset") if flags & _GM_TIME_OFFSET else None
        concentration: MedFloat | None = None
        unit: str | None = None
        glucose_type: int | None = None
        location: int | None = None
        if flags & _GM_CONCENTRATION:
            concentration = reader.sfloat("glucose concentration")
            unit = UNIT_MOL_L if flags & _GM_UNITS_MOL_L else UNIT_KG_L
            type_location = reader.u8("type-sample location")
            glucose_type = type_location & 0x0F
            location = type_location >> 4
        status = reader.u16("sensor status annunciation") if flags & _GM_SENSOR_STATUS else None
        # Trailing bytes tolerated (module docstring).
        return cls(
            sequence_number=sequence_number,
            base_time=base_time,
            time_offset_minutes=time_offset,
            concentration=concentration,
            concentration_unit=unit,
            type=glucose_type,
            sample_location=location,
            sensor_status=status,
            context_information_follows=bool(flags & _GM_CONTEXT_FOLLOWS),
        )

    @property
    def flags(self) -> GlucoseMeasurement.Flags:
        flags = self.Flags(0)
        if self.time_offset_minutes is not None:
            flags |= self.Flags.TIME_OFFSET_PRESENT
        if self.concentration is not None:
            flags |= self.Flags.CONCENTRATION_PRESENT
            if self.concentration_unit == UNIT_MOL_L:
                flags |= self.Flags.UNITS_MOL_L
        if self.sensor_status is not None:
            flags |= self.Flags.SENSOR_STATUS_PRESENT
        if self.context_information_follows:
            flags |= self.Flags.CONTEXT_INFORMATION_FOLLOWS
        return flags

    def __bytes__(self) -> bytes:
        out = bytearray((self.flags,))
        out += pack_uint(self.sequence_number, 2, _MEASUREMENT, "sequence_number")
        out += bytes(self.base_time)
        if self.time_offset_minutes is not None:
            out += pack_sint(self.time_offset_minutes, 2, _MEASUREMENT, "time_offset_minutes")
        if self.concentration is not None:
            assert self.type is not None  # __post_init__: they go together
            assert self.sample_location is not None
            out += pack_sfloat(self.concentration, _MEASUREMENT, "concentration")
            out.append(self.type | (self.sample_location << 4))
        if self.sensor_status is not None:
            out += pack_uint(self.sensor_status, 2, _MEASUREMENT, "sensor_status")
        return bytes(out)

    @property
    def user_facing_time(self) -> datetime | None:
        """base_time + time_offset (naive local time as the user saw it); None when unknown, or
        when the offset carries it past what a date can hold (year 9999 plus days)."""
        base = self.base_time.to_datetime()
        if base is None:
            return None
        try:
            return base + timedelta(minutes=self.time_offset_minutes or 0)
        except OverflowError:
            return None

    def _concentration_decimal(self) -> Decimal | None:
        return None if self.concentration is None else self.concentration.decimal

    @property
    def glucose_mmol_l(self) -> float | None:
        """mmol/L: mol/L x 1000, or kg/L x 100 000 / 18.0156. None when absent or special."""
        exact = self._concentration_decimal()
        if exact is None:
            return None
        if self.concentration_unit == UNIT_MOL_L:
            return float(exact * _MMOLL_PER_MOLL)
        return float(exact * _MGDL_PER_KGL / _MGDL_PER_MMOLL)

    @property
    def glucose_mg_dl(self) -> float | None:
        """mg/dL: kg/L x 100 000, or mol/L x 1000 x 18.0156. None when absent or special."""
        exact = self._concentration_decimal()
        if exact is None:
            return None
        if self.concentration_unit == UNIT_KG_L:
            return float(exact * _MGDL_PER_KGL)
        return float(exact * _MMOLL_PER_MOLL * _MGDL_PER_MMOLL)

    @property
    def is_control_solution(self) -> bool:
        return self.type == 10 or self.sample_location == 4

    def to_dict(self) -> dict[str, object]:
        user_time = self.user_facing_time
        out: dict[str, object] = {
            "sequence_number": self.sequence_number,
            "base_time": self.base_time.iso(),
            "time_offset_minutes": self.time_offset_minutes,
            "user_facing_time": None if user_time is None else user_time.isoformat(),
        }
        medfloat_fields(out, "concentration", self.concentration)
        out.update(
            {
                "concentration_unit": self.concentration_unit,
                "glucose_mmol_l": self.glucose_mmol_l,
                "glucose_mg_dl": self.glucose_mg_dl,
                "type": self.type,
                "type_name": code_name(GLUCOSE_TYPE_NAMES, self.type),
                "sample_location": self.sample_location,
                "sample_location_name": code_name(SAMPLE_LOCATION_NAMES, self.sample_location),
                "sensor_status": self.sensor_status,
                "sensor_status_names": bit_names(SENSOR_STATUS_NAMES, self.sensor_status),
                "context_information_follows": self.context_information_follows,
            }
        )
        return out


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    """Glucose Measurement Context 0x2A34 (ble.md §1.2). Joined to its measurement by
    ``sequence_number``. Note the wire order: extended flags come *before* the carbohydrate
    fields. ``exercise_duration_s`` 0xFFFF means "overrun" (longer than the field can hold)."""

    class Flags(IntFlag):
        CARBOHYDRATE_PRESENT = _CTX_CARBOHYDRATE
        MEAL_PRESENT = _CTX_MEAL
        TESTER_HEALTH_PRESENT = _CTX_TESTER_HEALTH
        EXERCISE_PRESENT = _CTX_EXERCISE
        MEDICATION_PRESENT = _CTX_MEDICATION
        MEDICATION_UNITS_LITERS = _CTX_MEDICATION_LITERS
        HBA1C_PRESENT = _CTX_HBA1C
        EXTENDED_FLAGS_PRESENT = _CTX_EXTENDED

    sequence_number: int
    extended_flags: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_kg: MedFloat | None = None
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: int | None = None
    medication: MedFloat | None = None
    medication_unit: str | None = None
    hba1c_pct: MedFloat | None = None

    def __post_init__(self) -> None:
        groups = {
            "carbohydrate_id, carbohydrate_kg": (self.carbohydrate_id, self.carbohydrate_kg),
            "tester, health": (self.tester, self.health),
            "exercise_duration_s, exercise_intensity_pct": (
                self.exercise_duration_s,
                self.exercise_intensity_pct,
            ),
            "medication_id, medication, medication_unit": (
                self.medication_id,
                self.medication,
                self.medication_unit,
            ),
        }
        for names, values in groups.items():
            if any(v is not None for v in values) and any(v is None for v in values):
                raise EncodeError(_CONTEXT, f"{names} go together")
        if self.medication_unit not in (None, "kg", "L"):
            raise EncodeError(_CONTEXT, f"medication_unit {self.medication_unit!r} is not kg or L")
        if self.tester is not None:
            _check_nibble(_CONTEXT, "tester", self.tester)
        if self.health is not None:
            _check_nibble(_CONTEXT, "health", self.health)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> GlucoseMeasurementContext:
        reader = Reader(data, _CONTEXT)
        flags = reader.u8("flags")  # plain int masks, as in GlucoseMeasurement.from_bytes
        sequence_number = reader.u16("sequence number")
        extended = reader.u8("extended flags") if flags & _CTX_EXTENDED else None
        carb_id: int | None = None
        carb: MedFloat | None = None
        if flags & _CTX_CARBOHYDRATE:
            carb_id = reader.u8("carbohydrate id")
            carb = reader.sfloat("carbohydrate")
        meal = reader.u8("meal") if flags & _CTX_MEAL else None
        tester: int | None = None
        health: int | None = None
        if flags & _CTX_TESTER_HEALTH:
            tester_health = reader.u8("tester-health")
            tester, health = tester_health & 0x0F, tester_health >> 4
        duration: int | None = None
        intensity: int | None = None
        if flags & _CTX_EXERCISE:
            duration = reader.u16("exercise duration")
            intensity = reader.u8("exercise intensity")
        med_id: int | None = None
        med: MedFloat | None = None
        med_unit: str | None = None
        if flags & _CTX_MEDICATION:
            med_id = reader.u8("medication id")
            med = reader.sfloat("medication")
            med_unit = "L" if flags & _CTX_MEDICATION_LITERS else "kg"
        hba1c = reader.sfloat("HbA1c") if flags & _CTX_HBA1C else None
        return cls(
            sequence_number=sequence_number,
            extended_flags=extended,
            carbohydrate_id=carb_id,
            carbohydrate_kg=carb,
            meal=meal,
            tester=tester,
            health=health,
            exercise_duration_s=duration,
            exercise_intensity_pct=intensity,
            medication_id=med_id,
            medication=med,
            medication_unit=med_unit,
            hba1c_pct=hba1c,
        )

    @property
    def flags(self) -> GlucoseMeasurementContext.Flags:
        flags = self.Flags(0)
        if self.carbohydrate_id is not None:
            flags |= self.Flags.CARBOHYDRATE_PRESENT
        if self.meal is not None:
            flags |= self.Flags.MEAL_PRESENT
        if self.tester is not None:
            flags |= self.Flags.TESTER_HEALTH_PRESENT
        if self.exercise_duration_s is not None:
            flags |= self.Flags.EXERCISE_PRESENT
        if self.medication_id is not None:
            flags |= self.Flags.MEDICATION_PRESENT
            if self.medication_unit == "L":
                flags |= self.Flags.MEDICATION_UNITS_LITERS
        if self.hba1c_pct is not None:
            flags |= self.Flags.HBA1C_PRESENT
        if self.extended_flags is not None:
            flags |= self.Flags.EXTENDED_FLAGS_PRESENT
        return flags

    def __bytes__(self) -> bytes:
        c = _CONTEXT
        out = bytearray((self.flags,))
        out += pack_uint(self.sequence_number, 2, c, "sequence_number")
        if self.extended_flags is not None:
            out += pack_uint(self.extended_flags, 1, c, "extended_flags")
        if self.carbohydrate_id is not None and self.carbohydrate_kg is not None:
            out += pack_uint(self.carbohydrate_id, 1, c, "carbohydrate_id")
            out += pack_sfloat(self.carbohydrate_kg, c, "carbohydrate_kg")
        if self.meal is not None:
            out += pack_uint(self.meal, 1, c, "meal")
        if self.tester is not None and self.health is not None:
            out.append(self.tester | (self.health << 4))
        if self.exercise_duration_s is not None and self.exercise_intensity_pct is not None:
            out += pack_uint(self.exercise_duration_s, 2, c, "exercise_duration_s")
            out += pack_uint(self.exercise_intensity_pct, 1, c, "exercise_intensity_pct")
        if self.medication_id is not None and self.medication is not None:
            out += pack_uint(self.medication_id, 1, c, "medication_id")
            out += pack_sfloat(self.medication, c, "medication")
        if self.hba1c_pct is not None:
            out += pack_sfloat(self.hba1c_pct, c, "hba1c_pct")
        return bytes(out)

    def to_dict(self) -> dict[str, object]:
        overrun = self.exercise_duration_s == EXERCISE_DURATION_OVERRUN
        out: dict[str, object] = {
            "sequence_number": self.sequence_number,
            "extended_flags": self.extended_flags,
            "carbohydrate_id": self.carbohydrate_id,
            "carbohydrate_id_name": code_name(CARBOHYDRATE_NAMES, self.carbohydrate_id),
        }
        medfloat_fields(out, "carbohydrate_kg", self.carbohydrate_kg)
        out.update(
            {
                "meal": self.meal,
                "meal_name": code_name(MEAL_NAMES, self.meal),
                "tester": self.tester,
                "tester_name": code_name(TESTER_NAMES, self.tester),
                "health": self.health,
                "health_name": code_name(HEALTH_NAMES, self.health),
                # 0xFFFF is "overrun", not 18.2 hours: never a plausible wrong number.
                "exercise_duration_s": None if overrun else self.exercise_duration_s,
                "exercise_duration_overrun": overrun,
                "exercise_intensity_pct": self.exercise_intensity_pct,
                "medication_id": self.medication_id,
                "medication_id_name": code_name(MEDICATION_NAMES, self.medication_id),
            }
        )
        medfloat_fields(out, "medication", self.medication)
        out["medication_unit"] = self.medication_unit
        medfloat_fields(out, "hba1c_pct", self.hba1c_pct)
        return out


_GLUCOSE_FEATURE_BITS: Final[dict[int, str]] = {
    0: "low_battery_detection",
    1: "sensor_malfunction_detection",
    2: "sample_size",
    3: "strip_insertion_error_detection",
    4: "strip_type_error_detection",
    5: "result_high_low_detection",
    6: "temperature_high_low_detection",
    7: "read_interrupt_detection",
    8: "general_device_fault",
    9: "time_fault",
    10: "multiple_bond_support",
}


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """Glucose Feature 0x2A51, a uint16 bit field (ble.md §1.3). RFU bits are kept in ``value``."""

    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int) or not 0 <= self.value <= 0xFFFF:
            raise EncodeError(_FEATURE, f"value {self.value!r} does not fit in uint16")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> GlucoseFeature:
        return cls(Reader(data, _FEATURE).u16("feature"))

    def __bytes__(self) -> bytes:
        return self.value.to_bytes(2, "little")

    def _bit(self, bit: int) -> bool:
        return bool(self.value & (1 << bit))

    @property
    def low_battery_detection(self) -> bool:
        return self._bit(0)

    @property
    def sensor_malfunction_detection(self) -> bool:
        return self._bit(1)

    @property
    def sample_size(self) -> bool:
        return self._bit(2)

    @property
    def strip_insertion_error_detection(self) -> bool:
        return self._bit(3)

    @property
    def strip_type_error_detection(self) -> bool:
        return self._bit(4)

    @property
    def result_high_low_detection(self) -> bool:
        return self._bit(5)

    @property
    def temperature_high_low_detection(self) -> bool:
        return self._bit(6)

    @property
    def read_interrupt_detection(self) -> bool:
        return self._bit(7)

    @property
    def general_device_fault(self) -> bool:
        return self._bit(8)

    @property
    def time_fault(self) -> bool:
        return self._bit(9)

    @property
    def multiple_bond_support(self) -> bool:
        return self._bit(10)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"value": self.value}
        out.update({name: self._bit(bit) for bit, name in _GLUCOSE_FEATURE_BITS.items()})
        return out
