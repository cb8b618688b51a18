from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseReading,
)
from gateway.enrollment import EnrolledDevice, Enrollment

NOW = datetime(2026, 11, 24, tzinfo=UTC)
CUFF = DeviceIdentity("C0:00:00:00:00:02", DeviceKind.BLOOD_PRESSURE_MONITOR, system_id="AABB")
METER = DeviceIdentity("C0:00:00:00:00:01", DeviceKind.GLUCOSE_METER, serial_number="SN9")


def bp(user_id: int | None, device: DeviceIdentity = CUFF) -> BloodPressureReading:
    return BloodPressureReading(device, None, None, NOW, 120.0, 80.0, 93.0, 70.0, "mmHg", user_id)


def glucose(device: DeviceIdentity = METER) -> GlucoseReading:
    return GlucoseReading(device, 1, None, None, NOW, 5.0, 0.005, "mol/L")


ENROLLMENT = Enrollment.of(
    [
        EnrolledDevice(
            DeviceKind.BLOOD_PRESSURE_MONITOR, system_id="aabb", user_slots={1: "p-dad", 2: "p-mum"}
        ),
        EnrolledDevice(DeviceKind.GLUCOSE_METER, serial_number="SN9", person_ref="p-mum"),
    ],
    version=3,
)


def test_cuff_slots_map_to_people_and_unknown_slots_stay_unassigned() -> None:
    assert ENROLLMENT.attribute(bp(1)).person_ref == "p-dad"
    assert ENROLLMENT.attribute(bp(2)).person_ref == "p-mum"
    guest = ENROLLMENT.attribute(bp(0xFF))
    assert guest.unassigned
    assert guest.reason == "unmapped_slot"
    assert ENROLLMENT.attribute(bp(None)).unassigned


def test_meter_owner_and_unknown_device() -> None:
    assert ENROLLMENT.attribute(glucose()).person_ref == "p-mum"
    stranger = DeviceIdentity("C0:00:00:00:00:09", DeviceKind.GLUCOSE_METER, serial_number="X")
    result = ENROLLMENT.attribute(glucose(stranger))
    assert result.unassigned
    assert result.reason == "unknown_device"


def test_kind_must_match_and_identifier_required() -> None:
    same_serial_cuff = DeviceIdentity("x", DeviceKind.BLOOD_PRESSURE_MONITOR, serial_number="SN9")
    assert ENROLLMENT.attribute(bp(1, same_serial_cuff)).unassigned
    with pytest.raises(ValueError, match="needs a system_id"):
        EnrolledDevice(DeviceKind.GLUCOSE_METER)


def test_newer_version_wins() -> None:
    pushed = Enrollment.of([], version=4)
    assert ENROLLMENT.newer(pushed) is pushed
    assert pushed.newer(ENROLLMENT) is pushed
