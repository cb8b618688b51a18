"""Plausibility checks over a batch, vectorised with numpy. They return flags; they never change,
clamp or drop a value.

Every check is a function of numpy columns (see :class:`edge.columns.BatchColumns`) returning a
boolean mask, so it can be tested with vectors and reused by the cloud. :func:`assess` runs them
all; :func:`flags_by_row` turns the masks into the flags to *add* to each reading.

What is checked, and where each default comes from (docs/edge.md has the table):

* Glucose outside 0.6-50.0 mmol/L (10-900 mg/dL) with no HI/LO flag: IMPLAUSIBLE. Home meters
  display roughly 10-600 mg/dL (0.6-33.3 mmol/L, e.g. the Dario manual) and show "LO"/"HI" beyond
  their range; the widest display range found is 20-900 mg/dL (GlucoDr Plus manual). A number
  outside every meter's range that is not flagged HI/LO cannot come from a meter working in spec:
  it is a unit or decoding error. A non-finite value is IMPLAUSIBLE too.
* Glucose control-solution and HI/LO consistency (BLE Glucose Measurement, specs/ble.md 1.1): type
  10 or sample location 4 is a control-solution test; Sensor Status Annunciation bit 5/6 mean
  "result higher/lower than the device can process". The converter sets CONTROL_SOLUTION,
  HIGH_OUT_OF_RANGE and LOW_OUT_OF_RANGE from these; the edge re-derives them because the urgent
  rules depend on them (a control-solution result must never alert).
* Pressure: systolic outside 50-300, diastolic outside 20-200 mmHg, or a mean arterial pressure
  outside [diastolic, systolic] (with a small tolerance): IMPLAUSIBLE. Design choice: wider than
  physiology at rest and than a home cuff's measuring range (cuff pressure about 0-299 mmHg); the
  aim is catching decoding and unit errors (kPa read as mmHg), not judging the patient.
* Systolic at or below diastolic: SYSTOLIC_NOT_ABOVE_DIASTOLIC (impossible physiologically).
* Pulse pressure (systolic - diastolic) below 25 % of systolic: NARROW_PULSE_PRESSURE. The common
  clinical definition of a narrow pulse pressure ("less than one quarter of the systolic", Cleveland
  Clinic health library "Pulse pressure"; emergency texts use <= 20-25 mmHg). At home it is most
  often a measurement artifact (cuff, movement), sometimes a real finding (heart failure, aortic
  stenosis): flagged, kept, shown to the doctor.
* Pulse outside 25-250 /min: PULSE_ABOVE_RANGE / PULSE_BELOW_RANGE (the same flags as the cuff's
  own pulse-range status bits, BLS Measurement Status bits 3-4), not IMPLAUSIBLE: a glitch in the
  pulse does not spoil the pressure.
* Time: a device time before 2000-01-01 (clock never set or reset), a measured_at before
  2000-01-01, or a measured_at more than 5 minutes after the gateway received the reading (nothing
  is measured after it is received): TIME_FAULT. Readings already flagged NO_DEVICE_TIME are placed
  at their reception time by :mod:`edge.clock` and are not checked again.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from device_drivers.model import ReadingFlag
from edge.columns import BatchColumns
from edge.errors import ThresholdError

__all__ = [
    "CONTROL_SOLUTION_SAMPLE_LOCATION",
    "CONTROL_SOLUTION_SAMPLE_TYPE",
    "EPOCH_2000_S",
    "STATUS_RESULT_HIGH_BIT",
    "STATUS_RESULT_LOW_BIT",
    "QualityLimits",
    "QualityMasks",
    "assess",
    "control_solution",
    "flags_by_row",
    "glucose_implausible",
    "narrow_pulse_pressure",
    "pressure_implausible",
    "pulse_out_of_range",
    "status_out_of_range",
    "systolic_not_above_diastolic",
    "time_fault",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

EPOCH_2000_S: Final = 946_684_800.0
"""2000-01-01T00:00:00Z in Unix seconds; no reading in this system can be older."""

CONTROL_SOLUTION_SAMPLE_TYPE: Final = 10  # specs/ble.md 1.1, Type low nibble
CONTROL_SOLUTION_SAMPLE_LOCATION: Final = 4  # specs/ble.md 1.1, Sample Location high nibble
STATUS_RESULT_HIGH_BIT: Final = 5  # "result higher than the device can process"
STATUS_RESULT_LOW_BIT: Final = 6  # "result lower than the device can process"


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Plausibility limits. Defaults and their sources: module docstring and docs/edge.md."""

    glucose_min_mmol_l: float = 0.6  # 10 mg/dL
    glucose_max_mmol_l: float = 50.0  # 900 mg/dL
    systolic_min_mmhg: float = 50.0
    systolic_max_mmhg: float = 300.0
    diastolic_min_mmhg: float = 20.0
    diastolic_max_mmhg: float = 200.0
    mean_arterial_tolerance_mmhg: float = 2.0
    narrow_pulse_pressure_fraction: float = 0.25
    pulse_min_bpm: float = 25.0
    pulse_max_bpm: float = 250.0
    earliest_time_s: float = EPOCH_2000_S
    future_tolerance_s: float = 300.0

    def __post_init__(self) -> None:
        for lo_name, hi_name in (
            ("glucose_min_mmol_l", "glucose_max_mmol_l"),
            ("systolic_min_mmhg", "systolic_max_mmhg"),
            ("diastolic_min_mmhg", "diastolic_max_mmhg"),
            ("pulse_min_bpm", "pulse_max_bpm"),
        ):
            lo, hi = getattr(self, lo_name), getattr(self, hi_name)
            if not (math.isfinite(lo) and lo >= 0):
                raise ThresholdError(lo_name, lo, "needs a finite value >= 0")
            if not (math.isfinite(hi) and hi > lo):
                raise ThresholdError(hi_name, hi, f"needs a finite value above {lo_name} ({lo})")
        fraction = self.narrow_pulse_pressure_fraction
        if not 0 <= fraction < 1:
            raise ThresholdError("narrow_pulse_pressure_fraction", fraction, "needs 0 <= f < 1")
        for name in ("mean_arterial_tolerance_mmhg", "future_tolerance_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ThresholdError(name, value, "needs a finite value >= 0")
        if not math.isfinite(self.earliest_time_s):
            raise ThresholdError("earliest_time_s", self.earliest_time_s, "needs a finite value")


def _outside(values: Floats, lo: float, hi: float) -> Bools:
    """True where a value is non-finite or outside [lo, hi]; NaN counts as non-finite."""
    with np.errstate(invalid="ignore"):
        return np.asarray(~np.isfinite(values) | (values < lo) | (values > hi), dtype=np.bool_)


def glucose_implausible(
    glucose_mmol_l: Floats, present: Bools, hi_lo: Bools, limits: QualityLimits
) -> Bools:
    """Present glucose values outside the plausible range (or non-finite) without a HI/LO flag."""
    outside = _outside(glucose_mmol_l, limits.glucose_min_mmol_l, limits.glucose_max_mmol_l)
    return present & ~hi_lo & outside


def control_solution(sample_type: Floats, sample_location: Floats) -> Bools:
    """Glucose rows whose type or sample location says control solution (NaN = absent: False)."""
    return np.asarray(
        (sample_type == CONTROL_SOLUTION_SAMPLE_TYPE)
        | (sample_location == CONTROL_SOLUTION_SAMPLE_LOCATION),
        dtype=np.bool_,
    )


def status_out_of_range(sensor_status: Ints) -> tuple[Bools, Bools]:
    """(result above the meter's range, result below it) from the Sensor Status Annunciation."""
    high = (sensor_status >> STATUS_RESULT_HIGH_BIT) & 1
    low = (sensor_status >> STATUS_RESULT_LOW_BIT) & 1
    return high.astype(np.bool_), low.astype(np.bool_)


def pressure_implausible(
    systolic: Floats,
    systolic_present: Bools,
    diastolic: Floats,
    diastolic_present: Bools,
    mean_arterial: Floats,
    limits: QualityLimits,
) -> Bools:
    """Systolic or diastolic outside their ranges (or non-finite), or a mean arterial pressure that
    is non-finite or not between diastolic and systolic. Absent values (NaN, not present) pass."""
    bad_sys = systolic_present & _outside(
        systolic, limits.systolic_min_mmhg, limits.systolic_max_mmhg
    )
    bad_dia = diastolic_present & _outside(
        diastolic, limits.diastolic_min_mmhg, limits.diastolic_max_mmhg
    )
    tol = limits.mean_arterial_tolerance_mmhg
    has_map = ~np.isnan(mean_arterial)
    both = np.isfinite(systolic) & np.isfinite(diastolic)
    with np.errstate(invalid="ignore"):
        map_outside = both & ((mean_arterial < diastolic - tol) | (mean_arterial > systolic + tol))
    bad_map = has_map & (~np.isfinite(mean_arterial) | map_outside)
    return np.asarray(bad_sys | bad_dia | bad_map, dtype=np.bool_)


def systolic_not_above_diastolic(systolic: Floats, diastolic: Floats) -> Bools:
    """Both finite and systolic <= diastolic."""
    both = np.isfinite(systolic) & np.isfinite(diastolic)
    with np.errstate(invalid="ignore"):
        return np.asarray(both & (systolic <= diastolic), dtype=np.bool_)


def narrow_pulse_pressure(systolic: Floats, diastolic: Floats, fraction: float) -> Bools:
    """0 < systolic - diastolic < fraction * systolic (both finite)."""
    both = np.isfinite(systolic) & np.isfinite(diastolic)
    with np.errstate(invalid="ignore"):
        pulse_pressure = systolic - diastolic
        narrow = (pulse_pressure > 0) & (pulse_pressure < fraction * systolic)
    return np.asarray(both & narrow, dtype=np.bool_)


def pulse_out_of_range(pulse_bpm: Floats, limits: QualityLimits) -> tuple[Bools, Bools]:
    """(above, below) the plausible pulse range; NaN (absent) is neither."""
    with np.errstate(invalid="ignore"):
        above = pulse_bpm > limits.pulse_max_bpm
        below = pulse_bpm < limits.pulse_min_bpm
    return np.asarray(above, dtype=np.bool_), np.asarray(below, dtype=np.bool_)


def time_fault(
    measured_at_s: Floats,
    device_time_s: Floats,
    received_at_s: Floats,
    no_device_time: Bools,
    limits: QualityLimits,
) -> Bools:
    """A device time or measured_at before ``earliest_time_s``, or a measured_at later than the
    reception plus ``future_tolerance_s``. NaN times (absent) pass; NO_DEVICE_TIME rows pass."""
    earliest = limits.earliest_time_s
    with np.errstate(invalid="ignore"):
        too_early = (device_time_s < earliest) | (measured_at_s < earliest)
        future = measured_at_s > received_at_s + limits.future_tolerance_s
    return np.asarray((too_early | future) & ~no_device_time, dtype=np.bool_)


@dataclass(frozen=True, slots=True, eq=False)
class QualityMasks:
    """One boolean mask per flag the checks can add; row ``i`` is reading ``i`` of the batch."""

    implausible: Bools
    systolic_not_above_diastolic: Bools
    narrow_pulse_pressure: Bools
    pulse_above_range: Bools
    pulse_below_range: Bools
    time_fault: Bools
    control_solution: Bools
    high_out_of_range: Bools
    low_out_of_range: Bools

    def by_flag(self) -> tuple[tuple[ReadingFlag, Bools], ...]:
        return (
            (ReadingFlag.IMPLAUSIBLE, self.implausible),
            (ReadingFlag.SYSTOLIC_NOT_ABOVE_DIASTOLIC, self.systolic_not_above_diastolic),
            (ReadingFlag.NARROW_PULSE_PRESSURE, self.narrow_pulse_pressure),
            (ReadingFlag.PULSE_ABOVE_RANGE, self.pulse_above_range),
            (ReadingFlag.PULSE_BELOW_RANGE, self.pulse_below_range),
            (ReadingFlag.TIME_FAULT, self.time_fault),
            (ReadingFlag.CONTROL_SOLUTION, self.control_solution),
            (ReadingFlag.HIGH_OUT_OF_RANGE, self.high_out_of_range),
            (ReadingFlag.LOW_OUT_OF_RANGE, self.low_out_of_range),
        )


def assess(columns: BatchColumns, limits: QualityLimits) -> QualityMasks:
    """Run every check over the batch. A mask is True where the flag applies (whether or not the
    reading already carries it; :func:`flags_by_row` leaves out what is already there)."""
    c = columns
    g = c.is_glucose
    status_high, status_low = status_out_of_range(c.sensor_status)
    high = c.high_out_of_range | (g & status_high)
    low = c.low_out_of_range | (g & status_low)
    control = c.control_solution | (g & control_solution(c.sample_type, c.sample_location))
    pulse_above, pulse_below = pulse_out_of_range(c.pulse_bpm, limits)
    implausible = glucose_implausible(
        c.glucose_mmol_l, c.glucose_present, high | low, limits
    ) | pressure_implausible(
        c.systolic_mmhg,
        c.systolic_present,
        c.diastolic_mmhg,
        c.diastolic_present,
        c.mean_arterial_mmhg,
        limits,
    )
    return QualityMasks(
        implausible=implausible,
        systolic_not_above_diastolic=systolic_not_above_diastolic(
            c.systolic_mmhg, c.diastolic_mmhg
        ),
        narrow_pulse_pressure=narrow_pulse_pressure(
            c.systolic_mmhg, c.diastolic_mmhg, limits.narrow_pulse_pressure_fraction
        ),
        pulse_above_range=pulse_above,
        pulse_below_range=pulse_below,
        time_fault=time_fault(
            c.measured_at_s, c.device_time_s, c.received_at_s, c.no_device_time, limits
        ),
        control_solution=control,
        high_out_of_range=high,
        low_out_of_range=low,
    )


def flags_by_row(
    masks: QualityMasks, existing: tuple[frozenset[ReadingFlag], ...]
) -> dict[int, frozenset[ReadingFlag]]:
    """The flags to add, by row, for rows that gain at least one flag they do not already have."""
    pairs = masks.by_flag()
    any_flag = np.zeros(len(existing), dtype=np.bool_)
    for _, mask in pairs:
        any_flag |= mask
    out: dict[int, frozenset[ReadingFlag]] = {}
    for i in np.flatnonzero(any_flag).tolist():
        found = frozenset(flag for flag, mask in pairs if mask[i]) - existing[i]
        if found:
            out[i] = found
    return out
