from __future__ import annotations

from datetime import UTC, datetime

from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseReading,
    ReadingFlag,
)
from device_drivers.uuids import full_uuid, short_uuid

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def meter(**kw: str) -> DeviceIdentity:
    return DeviceIdentity(address="c0:00:00:00:00:01", kind=DeviceKind.GLUCOSE_METER, **kw)


def test_device_key_prefers_system_id_then_serial_then_address() -> None:
    assert meter(system_id="0102030405060708", serial_number="X").key == "sysid:0102030405060708"
    assert meter(serial_number="SN1", model_number="M").key == "sn:M:SN1"
    assert meter().key == "addr:C0:00:00:00:00:01"


def glucose(**kw: object) -> GlucoseReading:
    base: dict[str, object] = {
        "device": meter(),
        "sequence_number": 7,
        "device_time": datetime(2026, 11, 24, 7, 30),
        "measured_at": NOW,
        "received_at": NOW,
        "glucose_mmol_l": 5.5,
        "original_value": 0.0055,
        "original_unit": "mol/L",
    }
    base.update(kw)
    return GlucoseReading(**base)  # type: ignore[arg-type]


def test_control_solution_and_hi_lo_are_not_patient_values() -> None:
    assert glucose().is_patient_value
    assert not glucose(flags=frozenset({ReadingFlag.CONTROL_SOLUTION})).is_patient_value
    assert not glucose(flags=frozenset({ReadingFlag.HIGH_OUT_OF_RANGE})).is_patient_value
    assert not glucose(glucose_mmol_l=None).is_patient_value
    assert glucose().glucose_mg_dl == 99.1


def test_glucose_identity_includes_sequence_and_device_time() -> None:
    a = glucose()
    assert a.identity == glucose().identity
    assert a.identity != glucose(sequence_number=8).identity
    assert a.identity != glucose(device_time=datetime(2026, 11, 24, 7, 31)).identity


def test_classic_cuff_identity_uses_user_time_and_values() -> None:
    cuff = DeviceIdentity(address="x", kind=DeviceKind.BLOOD_PRESSURE_MONITOR, serial_number="7")

    def bp(**kw: object) -> BloodPressureReading:
        base: dict[str, object] = {
            "device": cuff,
            "device_time": datetime(2026, 11, 24, 7, 0),
            "measured_at": NOW,
            "received_at": NOW,
            "systolic_mmhg": 142.0,
            "diastolic_mmhg": 91.0,
            "mean_arterial_mmhg": 108.0,
            "pulse_bpm": 72.0,
            "original_unit": "mmHg",
            "user_id": 1,
        }
        base.update(kw)
        return BloodPressureReading(**base)  # type: ignore[arg-type]

    assert bp().identity == bp(received_at=datetime(2026, 11, 25, tzinfo=UTC)).identity
    assert bp().identity != bp(user_id=2).identity
    assert bp().identity != bp(systolic_mmhg=143.0).identity
    assert bp(sequence_number=5).identity != bp(sequence_number=6).identity

    # no time stamp: the same values measured twice are two readings, told apart by reception
    untimed = bp(device_time=None, measured_at=None)
    later = bp(device_time=None, measured_at=None, received_at=datetime(2026, 11, 25, tzinfo=UTC))
    assert untimed.identity != later.identity
    assert untimed.identity == bp(device_time=None, measured_at=None).identity  # a replay of it


def test_uuid_forms() -> None:
    assert full_uuid(0x2A18) == "00002a18-0000-1000-8000-00805f9b34fb"
    assert short_uuid("00002A52-0000-1000-8000-00805F9B34FB") == 0x2A52
    assert short_uuid("2a35") == 0x2A35
    assert short_uuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e") is None
