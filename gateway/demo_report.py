"""Readings as the demo prints them: one line each, zh-CN first, English beside it.

Glucose in mmol/L, pressure in mmHg, times in the household's zone. Readings that are not patient
values (control solution, HI/LO) are shown with their flag, never as a number to act on.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from device_drivers.model import BloodPressureReading, GlucoseReading, Reading, ReadingFlag

__all__ = ["format_reading", "reading_lines"]

_FLAG_TEXT = {
    ReadingFlag.CONTROL_SOLUTION: "质控液 control solution",
    ReadingFlag.HIGH_OUT_OF_RANGE: "HI 超出量程 above range",
    ReadingFlag.LOW_OUT_OF_RANGE: "LO 低于量程 below range",
}

_MEAL = {1: "餐前 before meal", 2: "餐后 after meal", 3: "空腹 fasting", 5: "睡前 bedtime"}


def _when(moment: datetime | None, device_time: datetime | None, tz: tzinfo) -> str:
    if moment is not None:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if device_time is not None:
        return device_time.strftime("%Y-%m-%d %H:%M") + "?"
    return "时间未知 time unknown"


def _flags(flags: frozenset[ReadingFlag]) -> str:
    shown = [text for flag, text in _FLAG_TEXT.items() if flag in flags]
    return f"  [{'; '.join(shown)}]" if shown else ""


def _glucose(reading: GlucoseReading, tz: tzinfo) -> str:
    when = _when(reading.measured_at, reading.device_time, tz)
    if reading.is_patient_value and reading.glucose_mmol_l is not None:
        value = f"{reading.glucose_mmol_l:5.1f} mmol/L"
    else:
        value = "    — mmol/L"
    meal = ""
    if reading.context is not None and reading.context.meal in _MEAL:
        meal = f"  {_MEAL[reading.context.meal]}"
    return (
        f"{when}  血糖 glucose  #{reading.sequence_number:<4} {value}{meal}{_flags(reading.flags)}"
    )


def _pressure(reading: BloodPressureReading, tz: tzinfo) -> str:
    when = _when(reading.measured_at, reading.device_time, tz)
    if reading.systolic_mmhg is None or reading.diastolic_mmhg is None:
        value = "  —/—   mmHg"
    else:
        value = f"{reading.systolic_mmhg:3.0f}/{reading.diastolic_mmhg:<3.0f} mmHg"
    pulse = f"  脉搏 pulse {reading.pulse_bpm:.0f}/min" if reading.pulse_bpm is not None else ""
    user = f"用户 user {reading.user_id}" if reading.user_id is not None else "用户 user ?"
    return f"{when}  血压 BP  {user}  {value}{pulse}{_flags(reading.flags)}"


def format_reading(reading: Reading, tz: tzinfo) -> str:
    if isinstance(reading, GlucoseReading):
        return _glucose(reading, tz)
    return _pressure(reading, tz)


def reading_lines(
    readings: Iterable[Reading], tz: tzinfo, *, limit: int | None = None
) -> list[str]:
    """Lines for ``readings`` in measurement order; with ``limit``, the newest ``limit`` and a line
    saying how many earlier ones were left out."""
    ordered = sorted(
        readings, key=lambda r: (r.measured_at or r.received_at).timestamp(), reverse=False
    )
    lines = [format_reading(r, tz) for r in ordered]
    if limit is not None and len(lines) > limit:
        hidden = len(lines) - limit
        lines = [f"… 还有 {hidden} 条更早的读数 ({hidden} earlier readings)", *lines[-limit:]]
    return lines
