"""The demo's reading lines: canonical units, household time, flags instead of numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseContext,
    GlucoseReading,
    ReadingFlag,
)
from edge.clock import CHINA_STANDARD_TIME
from gateway.demo_report import format_reading, reading_lines

METER = DeviceIdentity("F0:5A:4A:00:00:01", DeviceKind.GLUCOSE_METER, system_id="0011223344556677")
CUFF = DeviceIdentity("F0:5A:4A:00:00:02", DeviceKind.BLOOD_PRESSURE_MONITOR)
T0 = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)  # 06:30 on the 25th in Beijing


def _glucose(
    seq: int,
    mmol: float | None,
    *,
    flags: frozenset[ReadingFlag] = frozenset(),
    meal: int | None = None,
) -> GlucoseReading:
    return GlucoseReading(
        device=METER,
        sequence_number=seq,
        device_time=None,
        measured_at=T0 + timedelta(minutes=seq),
        received_at=T0 + timedelta(hours=1),
        glucose_mmol_l=mmol,
        original_value=mmol,
        original_unit="mol/L",
        context=GlucoseContext(meal=meal) if meal else None,
        flags=flags,
    )


def test_glucose_in_mmol_per_litre_at_household_time_with_meal() -> None:
    line = format_reading(_glucose(7, 5.44, meal=3), CHINA_STANDARD_TIME)
    assert line.startswith("2026-11-25 06:37")
    assert "5.4 mmol/L" in line
    assert "空腹 fasting" in line
    assert "#7" in line


def test_control_solution_is_flagged_never_shown_as_a_value() -> None:
    line = format_reading(
        _glucose(3, 6.2, flags=frozenset({ReadingFlag.CONTROL_SOLUTION})), CHINA_STANDARD_TIME
    )
    assert "6.2" not in line
    assert "质控液 control solution" in line


def test_pressure_in_mmhg_with_pulse_and_user_slot() -> None:
    reading = BloodPressureReading(
        device=CUFF,
        device_time=None,
        measured_at=T0,
        received_at=T0,
        systolic_mmhg=186.0,
        diastolic_mmhg=112.0,
        mean_arterial_mmhg=137.0,
        pulse_bpm=88.0,
        original_unit="kPa",
        user_id=2,
    )
    line = format_reading(reading, CHINA_STANDARD_TIME)
    assert "186/112 mmHg" in line
    assert "用户 user 2" in line
    assert "88/min" in line


def test_lines_are_in_time_order_and_limited_to_the_newest() -> None:
    readings = [_glucose(seq, 5.0 + seq / 10) for seq in (5, 1, 4, 2, 3)]
    lines = reading_lines(readings, CHINA_STANDARD_TIME, limit=2)
    assert lines[0].endswith("(3 earlier readings)")
    assert "#4" in lines[1]
    assert "#5" in lines[2]
    assert len(reading_lines(readings, CHINA_STANDARD_TIME)) == 5
