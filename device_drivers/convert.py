"""Wire structs to typed readings: canonical units, corrected times, status flags.

Spec: specs/ble.md §1.1 (glucose units kg/L and mol/L, type and sample location, sensor status
annunciation), §1.2 (context codes and units), §2.1 (blood pressure in mmHg or kPa, measurement
status), §3 (clock skew), §4 (SFLOAT specials are "no value", never 2047).

* Glucose goes to mmol/L: kg/L x 100 000 = mg/dL, / 18.0156 = mmol/L; mol/L x 1000 = mmol/L. The
  value and unit as sent are kept in ``original_value``/``original_unit``.
* Pressure goes to mmHg: kPa x :data:`~device_drivers.model.MMHG_PER_KPA`, rounded to 0.1 mmHg.
* ``device_time`` is the time the user saw on the device (glucose: base time + time offset),
  naive. ``measured_at`` is that time corrected by the clock skew, in aware UTC
  (:func:`device_drivers.session.clock.device_time_to_utc`); with no skew it is the device time
  read in the household zone and flagged CLOCK_UNCORRECTED; with no device time it is None and
  flagged NO_DEVICE_TIME (the edge places it at ``received_at``).
* Nothing is dropped: control-solution tests, HI/LO results and missing values are flagged
  (CONTROL_SOLUTION, HIGH_OUT_OF_RANGE, LOW_OUT_OF_RANGE, VALUE_MISSING) and passed on.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from device_drivers.codec.blood_pressure import BloodPressureMeasurement
from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.codec.sfloat import MedFloat
from device_drivers.model import (
    MMHG_PER_KPA,
    BloodPressureReading,
    DeviceIdentity,
    GlucoseContext,
    GlucoseReading,
    ReadingFlag,
)
from device_drivers.session.clock import device_time_to_utc

__all__ = [
    "BP_STATUS_FLAGS",
    "CONTROL_SOLUTION_LOCATION",
    "CONTROL_SOLUTION_TYPE",
    "GLUCOSE_STATUS_FLAGS",
    "bp_reading",
    "glucose_context",
    "glucose_reading",
    "pressure_mmhg",
]

CONTROL_SOLUTION_TYPE: Final = 10
"""Glucose Measurement type (low nibble) 10: control solution (GLS §1.1)."""
CONTROL_SOLUTION_LOCATION: Final = 4
"""Glucose Measurement sample location (high nibble) 4: control solution."""

PRESSURE_MMHG_DIGITS: Final = 1

GLUCOSE_STATUS_FLAGS: Final[Mapping[int, ReadingFlag]] = MappingProxyType(
    {
        0: ReadingFlag.BATTERY_LOW,
        1: ReadingFlag.SENSOR_MALFUNCTION,
        2: ReadingFlag.SAMPLE_SIZE_INSUFFICIENT,
        3: ReadingFlag.STRIP_INSERTION_ERROR,
        4: ReadingFlag.STRIP_TYPE_INCORRECT,
        5: ReadingFlag.HIGH_OUT_OF_RANGE,
        6: ReadingFlag.LOW_OUT_OF_RANGE,
        7: ReadingFlag.TEMPERATURE_HIGH,
        8: ReadingFlag.TEMPERATURE_LOW,
        9: ReadingFlag.READ_INTERRUPTED,
        10: ReadingFlag.DEVICE_FAULT,
        11: ReadingFlag.TIME_FAULT,
    }
)
"""Sensor Status Annunciation bit -> flag (GLS §1.1; bits 12-15 RFU)."""

BP_STATUS_FLAGS: Final[Mapping[int, ReadingFlag]] = MappingProxyType(
    {
        0: ReadingFlag.BODY_MOVEMENT,
        1: ReadingFlag.CUFF_TOO_LOOSE,
        2: ReadingFlag.IRREGULAR_PULSE,
        5: ReadingFlag.IMPROPER_POSITION,
    }
)
"""Measurement Status bit -> flag (BLS §2.1); bits 3-4 are the pulse-rate range, handled apart."""

_PULSE_RANGE_FLAGS: Final[Mapping[int, ReadingFlag]] = MappingProxyType(
    {1: ReadingFlag.PULSE_ABOVE_RANGE, 2: ReadingFlag.PULSE_BELOW_RANGE}
)


def _bits(value: int | None, table: Mapping[int, ReadingFlag]) -> set[ReadingFlag]:
    if not value:
        return set()
    return {flag for bit, flag in table.items() if value >> bit & 1}


def _decimal(value: MedFloat | None) -> Decimal | None:
    return None if value is None else value.decimal


def _scaled(value: MedFloat | None, factor: Decimal | int) -> float | None:
    d = _decimal(value)
    return None if d is None else float(d * factor)


def pressure_mmhg(value: MedFloat | None, unit: str) -> float | None:
    """A pressure as sent (mmHg or kPa) in mmHg; kPa is converted and rounded to 0.1 mmHg."""
    if value is None or value.value is None:
        return None
    if unit == "mmHg":
        return value.value
    if unit == "kPa":
        return round(value.value * MMHG_PER_KPA, PRESSURE_MMHG_DIGITS)
    raise ValueError(f"unknown pressure unit {unit!r}")


def glucose_context(context: GlucoseMeasurementContext) -> GlucoseContext:
    """The context record in domain units: carbohydrate in grams, medication in mg or mL."""
    medication_mg = medication_ml = None
    if context.medication_unit == "kg":
        medication_mg = _scaled(context.medication, 1_000_000)
    elif context.medication_unit == "L":
        medication_ml = _scaled(context.medication, 1000)
    return GlucoseContext(
        meal=context.meal,
        tester=context.tester,
        health=context.health,
        carbohydrate_id=context.carbohydrate_id,
        carbohydrate_g=_scaled(context.carbohydrate_kg, 1000),
        exercise_duration_s=context.exercise_duration_s,
        exercise_intensity_pct=context.exercise_intensity_pct,
        medication_id=context.medication_id,
        medication_mg=medication_mg,
        medication_ml=medication_ml,
        hba1c_pct=_scaled(context.hba1c_pct, 1),
    )


def _place(
    device_time: datetime | None,
    received_at: datetime,
    clock_skew_s: float | None,
    tz: tzinfo,
) -> tuple[datetime | None, set[ReadingFlag]]:
    if device_time is None:
        return None, {ReadingFlag.NO_DEVICE_TIME}
    flags = set() if clock_skew_s is not None else {ReadingFlag.CLOCK_UNCORRECTED}
    try:
        measured = device_time_to_utc(
            device_time, tz, clock_skew_s=clock_skew_s, reference=received_at
        )
    except OverflowError:  # shifted out of datetime's range: the edge flags it TIME_FAULT
        return None, flags
    return measured, flags


def _require_aware(received_at: datetime) -> None:
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError(f"received_at must be timezone-aware, got {received_at!r}")


def _usable_skew(clock_skew_s: float | None) -> float | None:
    """A NaN or infinite skew is no measurement at all."""
    return clock_skew_s if clock_skew_s is not None and math.isfinite(clock_skew_s) else None


def glucose_reading(
    measurement: GlucoseMeasurement,
    context: GlucoseMeasurementContext | None,
    device: DeviceIdentity,
    received_at: datetime,
    clock_skew_s: float | None,
    tz: tzinfo,
) -> GlucoseReading:
    """A Glucose Measurement (and its context, joined by sequence number) as a reading."""
    _require_aware(received_at)
    clock_skew_s = _usable_skew(clock_skew_s)
    if context is not None and context.sequence_number != measurement.sequence_number:
        raise ValueError(
            f"context seq {context.sequence_number} does not belong to measurement "
            f"seq {measurement.sequence_number}"
        )
    conc = measurement.concentration
    unit = measurement.concentration_unit
    value = measurement.glucose_mmol_l  # exact conversion by the codec; None for a special
    flags = _bits(measurement.sensor_status, GLUCOSE_STATUS_FLAGS)
    if value is None:
        flags.add(ReadingFlag.VALUE_MISSING)
    if (
        measurement.type == CONTROL_SOLUTION_TYPE
        or measurement.sample_location == CONTROL_SOLUTION_LOCATION
    ):
        flags.add(ReadingFlag.CONTROL_SOLUTION)
    device_time = measurement.user_facing_time
    measured_at, time_flags = _place(device_time, received_at, clock_skew_s, tz)
    return GlucoseReading(
        device=device,
        sequence_number=measurement.sequence_number,
        device_time=device_time,
        measured_at=measured_at,
        received_at=received_at,
        glucose_mmol_l=value,
        original_value=None if conc is None else conc.value,
        original_unit=unit or "",
        sample_type=measurement.type,
        sample_location=measurement.sample_location,
        sensor_status=measurement.sensor_status or 0,
        context=None if context is None else glucose_context(context),
        clock_skew_s=clock_skew_s,
        flags=frozenset(flags | time_flags),
    )


def bp_reading(
    measurement: BloodPressureMeasurement,
    device: DeviceIdentity,
    received_at: datetime,
    clock_skew_s: float | None,
    tz: tzinfo,
    sequence_number: int | None = None,
) -> BloodPressureReading:
    """A Blood Pressure Measurement as a reading. VALUE_MISSING when systolic or diastolic is an
    SFLOAT special (a failed measurement); a special MAP or pulse is just None."""
    _require_aware(received_at)
    clock_skew_s = _usable_skew(clock_skew_s)
    unit = measurement.unit
    systolic = pressure_mmhg(measurement.systolic, unit)
    diastolic = pressure_mmhg(measurement.diastolic, unit)
    status = measurement.measurement_status
    flags = _bits(status, BP_STATUS_FLAGS)
    pulse_range = _PULSE_RANGE_FLAGS.get(((status or 0) >> 3) & 0b11)
    if pulse_range is not None:
        flags.add(pulse_range)
    if systolic is None or diastolic is None:
        flags.add(ReadingFlag.VALUE_MISSING)
    device_time = None if measurement.timestamp is None else measurement.timestamp.to_datetime()
    measured_at, time_flags = _place(device_time, received_at, clock_skew_s, tz)
    pulse = measurement.pulse_rate
    return BloodPressureReading(
        device=device,
        device_time=device_time,
        measured_at=measured_at,
        received_at=received_at,
        systolic_mmhg=systolic,
        diastolic_mmhg=diastolic,
        mean_arterial_mmhg=pressure_mmhg(measurement.mean_arterial_pressure, unit),
        pulse_bpm=None if pulse is None else pulse.value,
        original_unit=unit,
        user_id=measurement.user_id,
        measurement_status=status or 0,
        sequence_number=sequence_number,
        clock_skew_s=clock_skew_s,
        flags=frozenset(flags | time_flags),
    )
