"""The neutral domain model: typed readings in canonical units.

Drivers produce these; edge, gateway and cloud consume them. Canonical units are in the field names
(``glucose_mmol_l``, ``systolic_mmhg``). What the device sent is kept beside the canonical value
(``original_value`` / ``original_unit``) for audit. Times:

* ``device_time``: the time as the device reported it (naive: BLE health devices carry no zone).
* ``clock_skew_s``: device clock minus gateway clock at the moment of the sync, if it was measured.
* ``measured_at``: aware UTC, corrected for the skew and the household's time zone; None when the
  device reported no time at all (the edge then places it at ``received_at``, flagged).
* ``received_at``: aware UTC, when the gateway received the bytes.

Pure: no I/O, no clock, standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "MGDL_PER_MMOLL",
    "MMHG_PER_KPA",
    "BloodPressureReading",
    "DeviceIdentity",
    "DeviceKind",
    "GlucoseContext",
    "GlucoseReading",
    "Reading",
    "ReadingFlag",
]

MGDL_PER_MMOLL: Final = 18.0156
"""mg/dL per mmol/L for glucose (molar mass 180.156 g/mol)."""

MMHG_PER_KPA: Final = 7.50062
"""mmHg per kPa."""


class DeviceKind(StrEnum):
    GLUCOSE_METER = "glucose_meter"
    BLOOD_PRESSURE_MONITOR = "blood_pressure_monitor"


class ReadingFlag(StrEnum):
    """Status and quality flags. Flagged readings are kept and published, never dropped silently.

    Readings flagged CONTROL_SOLUTION, HIGH_OUT_OF_RANGE or LOW_OUT_OF_RANGE are not patient values
    (see :attr:`GlucoseReading.is_patient_value`).
    """

    # device-reported (sensor status annunciation / measurement status)
    CONTROL_SOLUTION = "control_solution"
    HIGH_OUT_OF_RANGE = "high_out_of_range"  # meter shows "HI": above what it can measure
    LOW_OUT_OF_RANGE = "low_out_of_range"  # meter shows "LO": below what it can measure
    BATTERY_LOW = "battery_low"
    SENSOR_MALFUNCTION = "sensor_malfunction"
    SAMPLE_SIZE_INSUFFICIENT = "sample_size_insufficient"
    STRIP_INSERTION_ERROR = "strip_insertion_error"
    STRIP_TYPE_INCORRECT = "strip_type_incorrect"
    TEMPERATURE_HIGH = "temperature_high"
    TEMPERATURE_LOW = "temperature_low"
    READ_INTERRUPTED = "read_interrupted"
    DEVICE_FAULT = "device_fault"
    TIME_FAULT = "time_fault"
    BODY_MOVEMENT = "body_movement"
    CUFF_TOO_LOOSE = "cuff_too_loose"
    IRREGULAR_PULSE = "irregular_pulse"
    PULSE_ABOVE_RANGE = "pulse_above_range"
    PULSE_BELOW_RANGE = "pulse_below_range"
    IMPROPER_POSITION = "improper_position"
    # the value itself
    VALUE_MISSING = "value_missing"  # an SFLOAT special (NaN, NRes...) instead of a value
    NO_DEVICE_TIME = "no_device_time"  # the device sent no usable time stamp
    CLOCK_UNCORRECTED = "clock_uncorrected"  # the skew was not measured; device time used as is
    # added by the edge (quality checks)
    IMPLAUSIBLE = "implausible"
    SYSTOLIC_NOT_ABOVE_DIASTOLIC = "systolic_not_above_diastolic"
    NARROW_PULSE_PRESSURE = "narrow_pulse_pressure"
    DUPLICATE = "duplicate"


_NOT_PATIENT_VALUE: Final = frozenset(
    {
        ReadingFlag.CONTROL_SOLUTION,
        ReadingFlag.HIGH_OUT_OF_RANGE,
        ReadingFlag.LOW_OUT_OF_RANGE,
        ReadingFlag.VALUE_MISSING,
    }
)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who made a reading. ``key`` is stable across random-address changes when the device
    exposes a System ID or a serial number (Device Information Service)."""

    address: str
    kind: DeviceKind
    system_id: str | None = None  # 16 hex digits, as read (little-endian bytes in hex)
    serial_number: str | None = None
    model_number: str | None = None
    manufacturer: str | None = None

    @property
    def key(self) -> str:
        if self.system_id:
            return f"sysid:{self.system_id.lower()}"
        if self.serial_number:
            return f"sn:{self.model_number or ''}:{self.serial_number}"
        return f"addr:{self.address.upper()}"


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """The Glucose Measurement Context joined to its measurement (codes as in GLS 3.107)."""

    meal: int | None = None  # 1 preprandial, 2 postprandial, 3 fasting, 4 casual, 5 bedtime
    tester: int | None = None
    health: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_g: float | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: int | None = None
    medication_mg: float | None = None  # when sent in kilograms
    medication_ml: float | None = None  # when sent in liters
    hba1c_pct: float | None = None


@dataclass(frozen=True, slots=True)
class GlucoseReading:
    device: DeviceIdentity
    sequence_number: int
    device_time: datetime | None
    measured_at: datetime | None
    received_at: datetime
    glucose_mmol_l: float | None
    original_value: float | None  # as sent, in original_unit
    original_unit: str  # "kg/L" or "mol/L" (as on the wire)
    sample_type: int | None = None
    sample_location: int | None = None
    sensor_status: int = 0
    context: GlucoseContext | None = None
    clock_skew_s: float | None = None
    flags: frozenset[ReadingFlag] = field(default_factory=frozenset)

    kind: DeviceKind = DeviceKind.GLUCOSE_METER

    @property
    def glucose_mg_dl(self) -> float | None:
        if self.glucose_mmol_l is None:
            return None
        return round(self.glucose_mmol_l * MGDL_PER_MMOLL, 1)

    @property
    def is_patient_value(self) -> bool:
        """False for control-solution tests, HI/LO results and missing values."""
        return self.glucose_mmol_l is not None and not (self.flags & _NOT_PATIENT_VALUE)

    @property
    def identity(self) -> tuple[str, ...]:
        """The idempotency key: device, kind, sequence number, device time (GLP 'dedupe on
        device, seq, base time'; the time guards against a sequence reset reusing numbers)."""
        stamp = self.device_time.isoformat() if self.device_time else "-"
        return (self.device.key, self.kind.value, str(self.sequence_number), stamp)


@dataclass(frozen=True, slots=True)
class BloodPressureReading:
    device: DeviceIdentity
    device_time: datetime | None
    measured_at: datetime | None
    received_at: datetime
    systolic_mmhg: float | None
    diastolic_mmhg: float | None
    mean_arterial_mmhg: float | None
    pulse_bpm: float | None
    original_unit: str  # "mmHg" or "kPa" (as on the wire)
    user_id: int | None = None  # cuff user slot; None when absent, 255 = unknown user
    measurement_status: int = 0
    sequence_number: int | None = None  # only from cuffs with a record store
    clock_skew_s: float | None = None
    flags: frozenset[ReadingFlag] = field(default_factory=frozenset)

    kind: DeviceKind = DeviceKind.BLOOD_PRESSURE_MONITOR

    @property
    def is_patient_value(self) -> bool:
        return (
            self.systolic_mmhg is not None
            and self.diastolic_mmhg is not None
            and ReadingFlag.VALUE_MISSING not in self.flags
        )

    @property
    def identity(self) -> tuple[str, ...]:
        """The idempotency key. Classic cuffs have no sequence numbers and resend stored readings
        after a lost confirmation, so the key is device, user slot, time stamp and values (BLP).
        Without a time stamp a resend cannot be told from a new measurement with the same values
        (bp_measurement): the moment it was received stands in for the time stamp, so two such
        measurements stay two readings (a resend in a later session becomes a second reading,
        flagged NO_DEVICE_TIME like the first; never a lost one)."""
        if self.device_time is not None:
            stamp = self.device_time.isoformat()
        else:
            stamp = f"rx {self.received_at.isoformat()}"
        if self.sequence_number is not None:
            return (self.device.key, self.kind.value, f"u{self.user_id}", str(self.sequence_number))
        values = "/".join(
            "-" if v is None else f"{v:g}"
            for v in (
                self.systolic_mmhg,
                self.diastolic_mmhg,
                self.mean_arterial_mmhg,
                self.pulse_bpm,
            )
        )
        return (self.device.key, self.kind.value, f"u{self.user_id}", stamp, values)


Reading = GlucoseReading | BloodPressureReading
