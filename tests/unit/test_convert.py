"""convert: wire structs to readings (specs/ble.md §1.1-1.2, §2.1, §3, §4). Literal hex vectors;
expected values are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from device_drivers.codec.blood_pressure import BloodPressureMeasurement
from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.convert import bp_reading, glucose_reading
from device_drivers.model import DeviceIdentity, DeviceKind, GlucoseContext, ReadingFlag

SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2026, 11, 24, 0, 5, tzinfo=UTC)  # 08:05 in Shanghai
METER = DeviceIdentity("C0:00:00:00:00:01", DeviceKind.GLUCOSE_METER, system_id="0102030405060708")
CUFF = DeviceIdentity("C0:00:00:00:00:02", DeviceKind.BLOOD_PRESSURE_MONITOR, serial_number="7")


def gm(text: str) -> GlucoseMeasurement:
    return GlucoseMeasurement.from_bytes(bytes.fromhex(text))


def gctx(text: str) -> GlucoseMeasurementContext:
    return GlucoseMeasurementContext.from_bytes(bytes.fromhex(text))


def bpm(text: str) -> BloodPressureMeasurement:
    return BloodPressureMeasurement.from_bytes(bytes.fromhex(text))


# flags 02, seq 1, 2026-11-24 07:30:00, SFLOAT 0xD001 = 0.001 kg/L (100 mg/dL), type/loc 0x11
KGL_100 = "02 01 00 ea 07 0b 18 07 1e 00 01 d0 11"


def test_glucose_kg_per_litre_to_mmol_keeps_the_original() -> None:
    r = glucose_reading(gm(KGL_100), None, METER, RECEIVED, 0.0, SHANGHAI)
    assert r.glucose_mmol_l == pytest.approx(100 / 18.0156)
    assert r.glucose_mg_dl == 100.0
    assert (r.original_value, r.original_unit) == (0.001, "kg/L")
    assert r.sequence_number == 1
    assert (r.sample_type, r.sample_location) == (1, 1)
    assert r.device_time == datetime(2026, 11, 24, 7, 30)
    assert r.measured_at == datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert r.received_at == RECEIVED
    assert r.clock_skew_s == 0.0
    assert r.flags == frozenset()
    assert r.is_patient_value
    assert r.device == METER


def test_glucose_mol_per_litre() -> None:
    # flags 06 (concentration, mol/L), SFLOAT 0xC037 = 55e-4 mol/L = 5.5 mmol/L
    r = glucose_reading(
        gm("06 02 00 ea 07 0b 18 07 1e 00 37 c0 11"), None, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.glucose_mmol_l == 5.5
    assert (r.original_value, r.original_unit) == (0.0055, "mol/L")


def test_user_facing_time_applies_the_time_offset_and_the_skew() -> None:
    # flags 03: time offset -235 min (0xff15): user facing time 03:35; meter 90 s fast
    r = glucose_reading(
        gm("03 03 00 ea 07 0b 18 07 1e 00 15 ff 01 d0 11"), None, METER, RECEIVED, 90.0, SHANGHAI
    )
    assert r.device_time == datetime(2026, 11, 24, 3, 35)
    assert r.measured_at == datetime(2026, 11, 23, 19, 33, 30, tzinfo=UTC)


def test_meter_on_utc_in_shanghai_is_corrected_by_the_skew() -> None:
    r = glucose_reading(gm(KGL_100), None, METER, RECEIVED, -8 * 3600.0, SHANGHAI)
    assert r.device_time == datetime(2026, 11, 24, 7, 30)  # what the meter showed
    assert r.measured_at == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
    assert ReadingFlag.CLOCK_UNCORRECTED not in r.flags


def test_unknown_skew_reads_household_time_and_flags_it() -> None:
    r = glucose_reading(gm(KGL_100), None, METER, RECEIVED, None, SHANGHAI)
    assert r.measured_at == datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert r.flags == {ReadingFlag.CLOCK_UNCORRECTED}
    assert r.clock_skew_s is None


def test_no_device_time_is_flagged_and_left_for_the_edge() -> None:
    r = glucose_reading(
        gm("02 01 00 00 00 00 00 00 00 00 01 d0 11"), None, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.device_time is None
    assert r.measured_at is None
    assert r.flags == {ReadingFlag.NO_DEVICE_TIME}


@pytest.mark.parametrize(
    "type_location",
    ["4a", "1a", "41"],  # type 10 at location 4; type 10 at the finger; location 4, capillary
)
def test_control_solution_is_flagged_not_dropped(type_location: str) -> None:
    r = glucose_reading(
        gm(f"02 01 00 ea 07 0b 18 07 1e 00 01 d0 {type_location}"),
        None,
        METER,
        RECEIVED,
        0.0,
        SHANGHAI,
    )
    assert ReadingFlag.CONTROL_SOLUTION in r.flags
    assert r.glucose_mg_dl == 100.0
    assert not r.is_patient_value


@pytest.mark.parametrize(
    ("status", "flag"),
    [("20 00", ReadingFlag.HIGH_OUT_OF_RANGE), ("40 00", ReadingFlag.LOW_OUT_OF_RANGE)],
)
def test_hi_lo_status_bits_are_flagged_not_dropped(status: str, flag: ReadingFlag) -> None:
    # flags 0a: concentration + sensor status annunciation; status bit 5 (0x0020) HI, bit 6
    # (0x0040) LO: the value is kept, the flag says it is beyond what the meter can measure
    r = glucose_reading(
        gm(f"0a 01 00 ea 07 0b 18 07 1e 00 01 d0 11 {status}"), None, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.flags == {flag}
    assert r.glucose_mmol_l is not None
    assert not r.is_patient_value


def test_every_sensor_status_bit_maps_to_a_flag() -> None:
    r = glucose_reading(
        gm("0a 01 00 ea 07 0b 18 07 1e 00 01 d0 11 ff ff"), None, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.sensor_status == 0xFFFF
    assert r.flags == {
        ReadingFlag.BATTERY_LOW,
        ReadingFlag.SENSOR_MALFUNCTION,
        ReadingFlag.SAMPLE_SIZE_INSUFFICIENT,
        ReadingFlag.STRIP_INSERTION_ERROR,
        ReadingFlag.STRIP_TYPE_INCORRECT,
        ReadingFlag.HIGH_OUT_OF_RANGE,
        ReadingFlag.LOW_OUT_OF_RANGE,
        ReadingFlag.TEMPERATURE_HIGH,
        ReadingFlag.TEMPERATURE_LOW,
        ReadingFlag.READ_INTERRUPTED,
        ReadingFlag.DEVICE_FAULT,
        ReadingFlag.TIME_FAULT,
    }


@pytest.mark.parametrize("special", ["ff 07", "00 08", "fe 07", "02 08", "01 08"])
def test_sfloat_special_is_none_and_value_missing_never_2047(special: str) -> None:
    r = glucose_reading(
        gm(f"02 01 00 ea 07 0b 18 07 1e 00 {special} 11"), None, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.glucose_mmol_l is None
    assert r.original_value is None
    assert r.original_unit == "kg/L"
    assert ReadingFlag.VALUE_MISSING in r.flags
    assert not r.is_patient_value


def test_measurement_without_concentration_is_value_missing() -> None:
    r = glucose_reading(gm("00 01 00 ea 07 0b 18 07 1e 00"), None, METER, RECEIVED, 0.0, SHANGHAI)
    assert r.glucose_mmol_l is None
    assert r.flags == {ReadingFlag.VALUE_MISSING}


def test_context_mapping_to_domain_units() -> None:
    # flags 53: carbohydrate (id 1 breakfast, 0xE005 = 0.05 kg), meal 2 postprandial,
    # medication (id 1, 0xA002 = 2e-6 kg), HbA1c 0xF041 = 6.5 %
    ctx = gctx("53 05 00 01 05 e0 02 01 02 a0 41 f0")
    m = gm("12 05 00 ea 07 0b 18 07 1e 00 01 d0 11")
    r = glucose_reading(m, ctx, METER, RECEIVED, 0.0, SHANGHAI)
    assert r.context == GlucoseContext(
        meal=2,
        carbohydrate_id=1,
        carbohydrate_g=50.0,
        medication_id=1,
        medication_mg=2.0,
        hba1c_pct=6.5,
    )


def test_context_tester_health_exercise_and_liquid_medication() -> None:
    # flags 3c: tester 1 / health 5 (0x51), exercise 1800 s (0x0708) at 50 %, medication id 5
    # in litres (0xE001 = 0.01 L = 10 mL)
    ctx = gctx("3c 05 00 51 08 07 32 05 01 e0")
    r = glucose_reading(gm(KGL_100), None, METER, RECEIVED, 0.0, SHANGHAI)
    with_ctx = glucose_reading(
        gm("12 05 00 ea 07 0b 18 07 1e 00 01 d0 11"), ctx, METER, RECEIVED, 0.0, SHANGHAI
    )
    assert r.context is None
    assert with_ctx.context == GlucoseContext(
        tester=1,
        health=5,
        exercise_duration_s=1800,
        exercise_intensity_pct=50,
        medication_id=5,
        medication_ml=10.0,
    )


def test_context_of_another_record_is_refused() -> None:
    with pytest.raises(ValueError, match="seq"):
        glucose_reading(gm(KGL_100), gctx("02 09 00 01"), METER, RECEIVED, 0.0, SHANGHAI)


def test_naive_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        glucose_reading(gm(KGL_100), None, METER, datetime(2026, 1, 1), 0.0, SHANGHAI)


def test_non_finite_skew_is_treated_as_unknown() -> None:
    r = glucose_reading(gm(KGL_100), None, METER, RECEIVED, float("nan"), SHANGHAI)
    assert ReadingFlag.CLOCK_UNCORRECTED in r.flags
    assert r.clock_skew_s is None


def test_skew_that_leaves_datetime_range_leaves_measured_at_to_the_edge() -> None:
    r = glucose_reading(
        gm("02 01 00 2e 06 01 01 00 00 00 01 d0 11"), None, METER, RECEIVED, 1e12, SHANGHAI
    )
    assert r.device_time == datetime(1582, 1, 1)
    assert r.measured_at is None


# -- blood pressure --------------------------------------------------------------------------------

# flags 1e: time stamp, pulse, user id, status (mmHg); 120/80 MAP 93, 2026-11-24 08:00:00,
# pulse 72, user 1, status 0
BP_USER1 = "1e 78 00 50 00 5d 00 ea 07 0b 18 08 00 00 48 00 01 00 00"


def test_bp_mmhg() -> None:
    r = bp_reading(bpm(BP_USER1), CUFF, RECEIVED, 0.0, SHANGHAI)
    assert (r.systolic_mmhg, r.diastolic_mmhg, r.mean_arterial_mmhg, r.pulse_bpm) == (
        120.0,
        80.0,
        93.0,
        72.0,
    )
    assert r.original_unit == "mmHg"
    assert r.user_id == 1
    assert r.device_time == datetime(2026, 11, 24, 8, 0)
    assert r.measured_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert r.sequence_number is None
    assert r.flags == frozenset()
    assert r.is_patient_value


def test_bp_kpa_to_mmhg() -> None:
    # flags 01 (kPa): 0xF0A0 = 16.0, 0xF06B = 10.7, 0xF07D = 12.5 kPa
    r = bp_reading(bpm("01 a0 f0 6b f0 7d f0"), CUFF, RECEIVED, 0.0, SHANGHAI)
    assert (r.systolic_mmhg, r.diastolic_mmhg, r.mean_arterial_mmhg) == (120.0, 80.3, 93.8)
    assert r.original_unit == "kPa"
    assert r.pulse_bpm is None
    assert r.user_id is None
    assert r.flags == {ReadingFlag.NO_DEVICE_TIME}


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        ("01 00", {ReadingFlag.BODY_MOVEMENT}),
        ("02 00", {ReadingFlag.CUFF_TOO_LOOSE}),
        ("04 00", {ReadingFlag.IRREGULAR_PULSE}),
        ("08 00", {ReadingFlag.PULSE_ABOVE_RANGE}),
        ("10 00", {ReadingFlag.PULSE_BELOW_RANGE}),
        ("18 00", set()),  # pulse range 3 is RFU
        ("20 00", {ReadingFlag.IMPROPER_POSITION}),
        (
            "25 00",
            {ReadingFlag.BODY_MOVEMENT, ReadingFlag.IRREGULAR_PULSE, ReadingFlag.IMPROPER_POSITION},
        ),
    ],
)
def test_bp_measurement_status_flags(status: str, flags: set[ReadingFlag]) -> None:
    r = bp_reading(
        bpm(f"1e 78 00 50 00 5d 00 ea 07 0b 18 08 00 00 48 00 01 {status}"),
        CUFF,
        RECEIVED,
        0.0,
        SHANGHAI,
    )
    assert r.flags == flags
    assert r.measurement_status == int.from_bytes(bytes.fromhex(status), "little")


def test_failed_bp_reading_is_value_missing_not_2047() -> None:
    r = bp_reading(bpm("00 ff 07 ff 07 ff 07"), CUFF, RECEIVED, 0.0, SHANGHAI)
    assert (r.systolic_mmhg, r.diastolic_mmhg, r.mean_arterial_mmhg) == (None, None, None)
    assert ReadingFlag.VALUE_MISSING in r.flags
    assert not r.is_patient_value


def test_bp_special_map_alone_is_not_a_missing_value() -> None:
    r = bp_reading(bpm("00 78 00 50 00 ff 07"), CUFF, RECEIVED, 0.0, SHANGHAI)
    assert r.mean_arterial_mmhg is None
    assert ReadingFlag.VALUE_MISSING not in r.flags
    assert r.is_patient_value


def test_bp_sequence_number_and_skew_are_carried() -> None:
    r = bp_reading(bpm(BP_USER1), CUFF, RECEIVED, -120.0, SHANGHAI, sequence_number=42)
    assert r.sequence_number == 42
    assert r.clock_skew_s == -120.0
    assert r.measured_at == datetime(2026, 11, 24, 0, 2, tzinfo=UTC)
    assert r.identity == (CUFF.key, "blood_pressure_monitor", "u1", "42")


def test_bp_identity_differs_per_user_and_is_stable() -> None:
    a = bp_reading(bpm(BP_USER1), CUFF, RECEIVED, 0.0, SHANGHAI)
    again = bp_reading(bpm(BP_USER1), CUFF, RECEIVED + timedelta(hours=1), 3.0, SHANGHAI)
    user2 = bp_reading(bpm(BP_USER1[:-8] + "02 00 00"), CUFF, RECEIVED, 0.0, SHANGHAI)
    assert a.identity == again.identity
    assert a.identity != user2.identity
