"""What the family doctor sees at the end of the demo: each person's readings from the cloud's API.

Input is the JSON the API returned (``GET /persons/{id}/readings``, :class:`ReadingPublic`);
output is lines, zh-CN first with English beside it, glucose in mmol/L and pressure in mmHg at the
household's local time. Readings flagged as not patient values (control solution, HI/LO) show
their flag, never a number. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from device_drivers.model import DeviceKind, ReadingFlag

__all__ = ["doctor_view_lines", "reading_count"]

_NOT_A_VALUE = {
    ReadingFlag.CONTROL_SOLUTION.value: "质控液 control solution",
    ReadingFlag.HIGH_OUT_OF_RANGE.value: "HI 超出量程 above range",
    ReadingFlag.LOW_OUT_OF_RANGE.value: "LO 低于量程 below range",
}
_KIND = {
    DeviceKind.GLUCOSE_METER.value: "血糖 glucose",
    DeviceKind.BLOOD_PRESSURE_MONITOR.value: "血压 BP",
}
_MEAL = {1: "餐前 before meal", 2: "餐后 after meal", 3: "空腹 fasting", 5: "睡前 bedtime"}


def _local(value: str, tz: tzinfo) -> str:
    return datetime.fromisoformat(value).astimezone(tz).strftime("%m-%d %H:%M")


def _value(row: Mapping[str, Any]) -> str:
    flags = [str(f) for f in row.get("flags") or ()]
    hidden = [_NOT_A_VALUE[f] for f in flags if f in _NOT_A_VALUE]
    if row["kind"] == DeviceKind.GLUCOSE_METER.value:
        if hidden or row.get("glucose_mmol_l") is None:
            return f"血糖 glucose    —  [{'; '.join(hidden) or '无数值 no value'}]"
        meal = _MEAL.get(row.get("meal") or 0, "")
        return f"血糖 glucose {row['glucose_mmol_l']:5.1f} mmol/L" + (f"  {meal}" if meal else "")
    systolic, diastolic = row.get("systolic_mmhg"), row.get("diastolic_mmhg")
    if systolic is None or diastolic is None:
        return "血压 BP  —/— mmHg"
    pulse = row.get("pulse_bpm")
    tail = f"  脉搏 pulse {pulse:.0f}/min" if pulse is not None else ""
    return f"血压 BP {systolic:3.0f}/{diastolic:<3.0f} mmHg{tail}"


def reading_count(readings: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
    return sum(len(rows) for rows in readings.values())


def doctor_view_lines(
    readings: Mapping[str, Sequence[Mapping[str, Any]]],
    tz: tzinfo,
    *,
    limit: int = 5,
) -> list[str]:
    """Per person (name -> readings as the API returned them): a summary line, then the newest
    ``limit`` readings, oldest first, urgent ones marked."""
    lines: list[str] = []
    for name, rows in readings.items():
        ordered = sorted(rows, key=lambda r: datetime.fromisoformat(r["effective_at"]))
        urgent = sum(1 for r in ordered if r.get("urgent"))
        kinds = sorted({_KIND.get(str(r["kind"]), str(r["kind"])) for r in ordered})
        lines.append(
            f"{name}: {len(ordered)} 条读数 readings ({', '.join(kinds) or '—'}), "
            f"{urgent} 条紧急 urgent"
        )
        shown = ordered[-limit:]
        if len(ordered) > len(shown):
            hidden = len(ordered) - len(shown)
            lines.append(f"  … 还有 {hidden} 条更早的 ({hidden} earlier)")
        for row in shown:
            mark = "⚠ " if row.get("urgent") else "  "
            lines.append(f"  {mark}{_local(row['effective_at'], tz)}  {_value(row)}")
    return lines
