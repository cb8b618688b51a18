"""Builders for edge tests: readings with sensible defaults, overridable by keyword."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseReading,
    ReadingFlag,
)

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
CST_OFFSET = timedelta(hours=8)


def meter(n: int = 1) -> DeviceIdentity:
    return DeviceIdentity(
        address=f"C0:00:00:00:00:{n:02X}",
        kind=DeviceKind.GLUCOSE_METER,
        system_id=f"{n:016x}",
    )


def cuff(n: int = 1) -> DeviceIdentity:
    return DeviceIdentity(
        address=f"C1:00:00:00:00:{n:02X}",
        kind=DeviceKind.BLOOD_PRESSURE_MONITOR,
        serial_number=f"CUFF{n}",
        model_number="BP1",
    )


def glucose(
    value: float | None = 5.5,
    *,
    seq: int = 1,
    at: datetime = NOW - timedelta(minutes=5),
    flags: set[ReadingFlag] | frozenset[ReadingFlag] = frozenset(),
    device: DeviceIdentity | None = None,
    **kw: object,
) -> GlucoseReading:
    """A glucose reading measured at ``at`` (UTC) on a meter whose clock is right (UTC+8)."""
    fields: dict[str, object] = {
        "device": device or meter(),
        "sequence_number": seq,
        "device_time": (at + CST_OFFSET).replace(tzinfo=None),
        "measured_at": at,
        "received_at": NOW,
        "glucose_mmol_l": value,
        "original_value": None if value is None else value / 1000,
        "original_unit": "mol/L",
        "sample_type": 1,
        "sample_location": 1,
        "clock_skew_s": 0.0,
        "flags": frozenset(flags),
    }
    fields.update(kw)
    return GlucoseReading(**fields)  # type: ignore[arg-type]


def pressure(
    systolic: float | None = 120.0,
    diastolic: float | None = 80.0,
    *,
    at: datetime = NOW - timedelta(minutes=5),
    pulse: float | None = 70.0,
    user: int | None = 1,
    flags: set[ReadingFlag] | frozenset[ReadingFlag] = frozenset(),
    device: DeviceIdentity | None = None,
    **kw: object,
) -> BloodPressureReading:
    mean = None
    if systolic is not None and diastolic is not None:
        mean = round(diastolic + (systolic - diastolic) / 3, 1)
    fields: dict[str, object] = {
        "device": device or cuff(),
        "device_time": (at + CST_OFFSET).replace(tzinfo=None),
        "measured_at": at,
        "received_at": NOW,
        "systolic_mmhg": systolic,
        "diastolic_mmhg": diastolic,
        "mean_arterial_mmhg": mean,
        "pulse_bpm": pulse,
        "original_unit": "mmHg",
        "user_id": user,
        "clock_skew_s": 0.0,
        "flags": frozenset(flags),
    }
    fields.update(kw)
    return BloodPressureReading(**fields)  # type: ignore[arg-type]
