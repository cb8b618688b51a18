"""The demo's doctor view: what the API returned, as a family doctor reads it."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from gateway.demo_doctor_view import doctor_view_lines, reading_count

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _bp(at: str, systolic: float, diastolic: float, *, urgent: bool = False) -> dict[str, object]:
    return {
        "kind": "blood_pressure_monitor",
        "effective_at": at,
        "systolic_mmhg": systolic,
        "diastolic_mmhg": diastolic,
        "pulse_bpm": 72.0,
        "flags": [],
        "urgent": urgent,
    }


def _glucose(at: str, mmol: float | None, flags: list[str] | None = None) -> dict[str, object]:
    return {
        "kind": "glucose_meter",
        "effective_at": at,
        "glucose_mmol_l": mmol,
        "meal": 3,
        "flags": flags or [],
        "urgent": False,
    }


def test_lines_are_local_time_oldest_first_with_urgent_marked() -> None:
    rows = [
        _bp("2026-11-30T23:10:00+00:00", 186, 112, urgent=True),
        _bp("2026-11-30T01:00:00+00:00", 128, 82),
    ]
    lines = doctor_view_lines({"张伟": rows}, SHANGHAI)
    assert lines[0] == "张伟: 2 条读数 readings (血压 BP), 1 条紧急 urgent"
    assert lines[1] == "    11-30 09:00  血压 BP 128/82  mmHg  脉搏 pulse 72/min"
    assert lines[2] == "  ⚠ 12-01 07:10  血压 BP 186/112 mmHg  脉搏 pulse 72/min"


def test_glucose_in_mmol_l_with_meal_and_flagged_values_hidden() -> None:
    rows = [
        _glucose("2026-11-30T00:00:00+00:00", 5.64),
        _glucose("2026-11-30T01:00:00+00:00", 1.1, ["control_solution"]),
    ]
    lines = doctor_view_lines({"李梅": rows}, SHANGHAI)
    assert "血糖 glucose   5.6 mmol/L  空腹 fasting" in lines[1]
    assert "质控液 control solution" in lines[2]
    assert "1.1" not in lines[2]


def test_only_the_newest_are_shown_and_the_rest_counted() -> None:
    rows = [_bp(f"2026-11-{day:02d}T01:00:00+00:00", 120 + day, 80) for day in range(1, 11)]
    lines = doctor_view_lines({"张伟": rows}, SHANGHAI, limit=3)
    assert lines[1] == "  … 还有 7 条更早的 (7 earlier)"
    assert [line.split()[0] for line in lines[2:]] == ["11-08", "11-09", "11-10"]
    assert reading_count({"张伟": rows, "李梅": []}) == 10
    assert doctor_view_lines({"李梅": []}, SHANGHAI) == [
        "李梅: 0 条读数 readings (—), 0 条紧急 urgent"
    ]
