"""Codec behaviour beyond the vector tables: encoders, builders, validation, derived values.
Wire constants are written as literals (a symmetric codec bug cannot hide behind a round trip)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.device_info import PnpId, SystemId, decode_string
from device_drivers.codec.glucose import (
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
)
from device_drivers.codec.racp import (
    RacpFilterType,
    RacpMessage,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
)
from device_drivers.codec.sfloat import (
    MedFloat,
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from device_drivers.codec.time_service import AdjustReason, CurrentTime
from device_drivers.errors import DecodeError, EncodeError

# ------------------------------------------------------------------------------------ SFLOAT


def test_precision_is_kept_and_distinct() -> None:
    values = [decode_sfloat(raw) for raw in (0x0002, 0xF014, 0xE0C8)]
    assert [v.value for v in values] == [2.0, 2.0, 2.0]
    assert [str(v.decimal) for v in values] == ["2", "2.0", "2.00"]
    assert len(set(values)) == 3
    assert [encode_sfloat(v) for v in values] == [0x0002, 0xF014, 0xE0C8]


def test_value_has_no_float_noise() -> None:
    assert decode_sfloat(0xF0BD).value == 18.9
    assert decode_sfloat(0xB076).value == 0.00118
    assert decode_float(0xFE12D687).value == 12345.67


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x07FF, Special.NAN),
        (0x0800, Special.NRES),
        (0x07FE, Special.POSITIVE_INFINITY),
        (0x0802, Special.NEGATIVE_INFINITY),
        (0x0801, Special.RESERVED),
    ],
)
def test_sfloat_specials_are_results_not_numbers(raw: int, special: Special) -> None:
    decoded = decode_sfloat(raw)
    assert decoded.special is special
    assert decoded.value is None
    assert decoded.decimal is None
    assert encode_sfloat(decoded) == raw


@pytest.mark.parametrize(
    ("raw", "special"),
    [
        (0x007FFFFF, Special.NAN),
        (0x00800000, Special.NRES),
        (0x007FFFFE, Special.POSITIVE_INFINITY),
        (0x00800002, Special.NEGATIVE_INFINITY),
        (0x00800001, Special.RESERVED),
    ],
)
def test_float_specials(raw: int, special: Special) -> None:
    assert decode_float(raw) == MedFloat(0, 0, special)
    assert encode_float(MedFloat(0, 0, special)) == raw


def test_special_strings_are_the_spec_names() -> None:
    assert [s.value for s in Special] == ["NaN", "NRes", "+INF", "-INF", "reserved"]


@pytest.mark.parametrize(
    "value",
    [
        MedFloat(2048, 0),  # mantissa too big
        MedFloat(-2049, 0),
        MedFloat(1, 8),  # exponent too big
        MedFloat(1, -9),
        MedFloat(2047, 0),  # would be sent as NaN
        MedFloat(-2048, 0),  # would be NRes
        MedFloat(2046, 0),  # would be +INF
    ],
)
def test_encode_sfloat_rejects_unrepresentable(value: MedFloat) -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(value)


def test_special_with_digits_is_rejected() -> None:
    with pytest.raises(EncodeError):
        MedFloat(1, 0, Special.NAN)


@pytest.mark.parametrize(
    ("given", "exponent", "want"),
    [
        (114, None, MedFloat(114, 0)),
        (2.0, None, MedFloat(20, -1)),
        ("2.00", None, MedFloat(200, -2)),
        (0.0055, None, MedFloat(55, -4)),
        (Decimal("18.9"), None, MedFloat(189, -1)),
        (120000, None, MedFloat(1200, 2)),  # only as many zeros moved as needed to fit
        (0.001, None, MedFloat(1, -3)),
        (5.55, -1, MedFloat(56, -1)),  # explicit exponent rounds half-even (5.55 -> 5.6)
        (5.45, -1, MedFloat(54, -1)),
        (float("nan"), None, MedFloat.nan()),
        (float("inf"), None, MedFloat(0, 0, Special.POSITIVE_INFINITY)),
        (float("-inf"), None, MedFloat(0, 0, Special.NEGATIVE_INFINITY)),
    ],
)
def test_from_value(
    given: float | int | str | Decimal, exponent: int | None, want: MedFloat
) -> None:
    assert MedFloat.from_value(given, exponent) == want


def test_from_value_refuses_to_drop_digits_silently() -> None:
    with pytest.raises(EncodeError):
        MedFloat.from_value(123.456)  # 123456e-3 does not fit 12 bits
    assert MedFloat.from_value(123.456, width=32) == MedFloat(123456, -3)
    with pytest.raises(EncodeError):
        MedFloat.from_value(2047)  # collides with NaN on SFLOAT
    assert encode_float(MedFloat.from_value(2047, width=32)) == 2047


def test_decode_rejects_out_of_range_raw() -> None:
    with pytest.raises(DecodeError):
        decode_sfloat(0x10000)
    with pytest.raises(DecodeError):
        decode_float(-1)


# --------------------------------------------------------------------------------- Date Time


def test_date_time_literals() -> None:
    value = DateTime(2024, 3, 15, 10, 30, 0)
    assert bytes(value) == b"\xe8\x07\x03\x0f\x0a\x1e\x00"
    assert value.iso() == "2024-03-15T10:30:00"
    assert DateTime.from_datetime(datetime(2024, 3, 15, 10, 30, 0, 999)) == value
    assert DateTime(0, 3, 15, 10, 30, 0).to_datetime() is None


def test_date_time_construction_validates() -> None:
    with pytest.raises(EncodeError):
        DateTime(2025, 2, 29, 0, 0, 0)
    with pytest.raises(EncodeError):
        DateTime(2024, 1, 1, 0, 0, 60)


# ------------------------------------------------------------------------------------ Glucose

BASE = DateTime(2024, 3, 15, 10, 30, 0)


def test_glucose_measurement_encodes_to_spec_bytes() -> None:
    measurement = GlucoseMeasurement(
        sequence_number=123,
        base_time=BASE,
        concentration=MedFloat(1, -3),
        concentration_unit="kg/L",
        type=1,
        sample_location=1,
    )
    assert bytes(measurement) == bytes.fromhex("027b00e807030f0a1e0001d011")
    assert measurement.glucose_mg_dl == 100.0
    assert measurement.glucose_mmol_l == pytest.approx(100 / 18.0156, rel=1e-12)


def test_glucose_all_fields_literal() -> None:
    measurement = GlucoseMeasurement(
        sequence_number=0x0102,
        base_time=BASE,
        time_offset_minutes=-235,
        concentration=MedFloat(55, -4),
        concentration_unit="mol/L",
        type=2,
        sample_location=3,
        sensor_status=0x0820,
        context_information_follows=True,
    )
    assert bytes(measurement) == bytes.fromhex("1f0201e807030f0a1e0015ff37c0322008")
    assert measurement.glucose_mmol_l == 5.5
    assert measurement.glucose_mg_dl == pytest.approx(5.5 * 18.0156, rel=1e-12)
    assert measurement.user_facing_time == datetime(2024, 3, 15, 6, 35, 0)
    assert measurement.flags == GlucoseMeasurement.Flags(0x1F)


def test_glucose_time_offset_past_year_9999_is_an_unknown_time() -> None:
    # found by hypothesis: 9999-12-15 plus 17 days cannot be a datetime; the reading keeps its
    # value and reports no user-facing time rather than crashing the decoder
    measurement = GlucoseMeasurement(0, DateTime(9999, 12, 15, 0, 0, 0), time_offset_minutes=24480)
    assert measurement.user_facing_time is None
    assert measurement.to_dict()["user_facing_time"] is None
    assert GlucoseMeasurement.from_bytes(bytes(measurement)) == measurement


def test_glucose_partial_concentration_fields_are_rejected() -> None:
    with pytest.raises(EncodeError):
        GlucoseMeasurement(1, BASE, concentration=MedFloat(1, -3))
    with pytest.raises(EncodeError):
        GlucoseMeasurement(1, BASE, MedFloat(1, -3), "mg/dL", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        GlucoseMeasurement(1, BASE, None, MedFloat(1, -3), "kg/L", 16, 1)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        bytes(GlucoseMeasurement(0x10000, BASE))


def test_glucose_unencodable_concentration_names_the_characteristic() -> None:
    bad = GlucoseMeasurement(1, BASE, None, MedFloat(5000, 0), "kg/L", 1, 1)
    with pytest.raises(EncodeError) as info:
        bytes(bad)
    assert info.value.characteristic == "glucose_measurement"


def test_control_solution() -> None:
    assert GlucoseMeasurement(1, BASE, None, MedFloat(1, -3), "kg/L", 10, 1).is_control_solution
    assert GlucoseMeasurement(1, BASE, None, MedFloat(1, -3), "kg/L", 1, 4).is_control_solution
    assert not GlucoseMeasurement(1, BASE, None, MedFloat(1, -3), "kg/L", 1, 1).is_control_solution


def test_context_extended_flags_precede_carbohydrate() -> None:
    context = GlucoseMeasurementContext(
        sequence_number=7, extended_flags=0, carbohydrate_id=2, carbohydrate_kg=MedFloat(50, 0)
    )
    assert bytes(context) == bytes.fromhex("81070000023200")


def test_context_medication_units_flag() -> None:
    liters = GlucoseMeasurementContext(
        1, medication_id=1, medication=MedFloat(1, -3), medication_unit="L"
    )
    kilos = GlucoseMeasurementContext(
        1, medication_id=1, medication=MedFloat(1, -3), medication_unit="kg"
    )
    assert bytes(liters)[0] == 0x30
    assert bytes(kilos)[0] == 0x10
    with pytest.raises(EncodeError):
        GlucoseMeasurementContext(1, medication_id=1, medication=MedFloat(1, -3))


def test_glucose_feature_properties() -> None:
    feature = GlucoseFeature.from_bytes(b"\x01\x04")
    assert feature.low_battery_detection
    assert feature.multiple_bond_support
    assert not feature.time_fault
    assert bytes(feature) == b"\x01\x04"


# --------------------------------------------------------------------------------------- RACP


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (RacpMessage.report_all(), b"\x01\x01"),
        (RacpMessage.report_greater_or_equal(42), b"\x01\x03\x01\x2a\x00"),
        (RacpMessage.report_within_range(10, 20), b"\x01\x04\x01\x0a\x00\x14\x00"),
        (RacpMessage.report_number_all(), b"\x04\x01"),
        (RacpMessage.report_number_greater_or_equal(0x1234), b"\x04\x03\x01\x34\x12"),
        (RacpMessage.delete_all(), b"\x02\x01"),
        (RacpMessage.abort(), b"\x03\x00"),
        (RacpMessage.response(1, 1), b"\x06\x00\x01\x01"),
        (RacpMessage.response(1, 6), b"\x06\x00\x01\x06"),
        (RacpMessage.number_response(258), b"\x05\x00\x02\x01"),
    ],
)
def test_racp_builders_are_the_spec_bytes(message: RacpMessage, wire: bytes) -> None:
    assert bytes(message) == wire
    assert RacpMessage.from_bytes(wire) == message


def test_racp_enum_values() -> None:
    assert [int(c) for c in RacpOpCode] == [1, 2, 3, 4, 5, 6]
    assert [int(c) for c in RacpOperator] == [0, 1, 2, 3, 4, 5, 6]
    assert [int(c) for c in RacpFilterType] == [1, 2]
    assert [int(c) for c in RacpResponseCode] == list(range(1, 10))


def test_racp_enums_are_open() -> None:
    unknown = RacpOpCode(0x42)
    assert unknown == 0x42
    assert unknown.name == "UNKNOWN_0x42"
    assert RacpResponseCode(0xF0) == 0xF0
    assert RacpOpCode.name_of(0x42) is None
    assert RacpOpCode.name_of(1) == "report_stored_records"


def test_racp_success_and_response_flags() -> None:
    assert RacpMessage.from_bytes(b"\x06\x00\x01\x01").is_success
    assert not RacpMessage.from_bytes(b"\x06\x00\x01\x06").is_success
    assert RacpMessage.from_bytes(b"\x05\x00\x00\x00").is_response
    assert not RacpMessage.report_all().is_response


def test_racp_time_filter_round_trip() -> None:
    start, end = DateTime(2024, 3, 15, 0, 0, 0), DateTime(2024, 3, 15, 23, 59, 59)
    message = RacpMessage(
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOperator.WITHIN_RANGE_OF,
        RacpFilterType.USER_FACING_TIME,
        time_operands=(start, end),
    )
    wire = bytes(message)
    assert wire == bytes.fromhex("010402e807030f000000e807030f173b3b")
    assert RacpMessage.from_bytes(wire) == message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"op_code": 5, "operator": 0},  # count missing
        {"op_code": 6, "operator": 0, "request_op_code": 1},  # response code missing
        {"op_code": 1, "operator": 1, "number_of_records": 3},
        {"op_code": 1, "operator": 3, "operands": (1,)},  # filter type missing
        {"op_code": 256, "operator": 0},
        {"op_code": 1, "operator": 3, "filter_type": 1, "operands": (70000,)},
    ],
)
def test_racp_invalid_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(EncodeError):
        RacpMessage(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- Blood pressure


def test_bp_measurement_literal() -> None:
    measurement = BloodPressureMeasurement(
        systolic=MedFloat(138, 0),
        diastolic=MedFloat(88, 0),
        mean_arterial_pressure=MedFloat(120, 0),
        unit="mmHg",
        timestamp=DateTime(2026, 11, 24, 7, 30, 0),
        pulse_rate=MedFloat(60, 0),
        user_id=1,
        measurement_status=0x0027,
    )
    assert bytes(measurement) == bytes.fromhex("1e 8a00 5800 7800 ea07 0b 18 07 1e 00 3c00 01 2700")


def test_bp_kpa_flag_and_unit_check() -> None:
    measurement = BloodPressureMeasurement(
        MedFloat(189, -1), MedFloat(11, 0), MedFloat(159, -1), "kPa"
    )
    assert bytes(measurement) == bytes.fromhex("01bdf00b009ff0")
    with pytest.raises(EncodeError):
        BloodPressureMeasurement(MedFloat(1, 0), MedFloat(1, 0), MedFloat(1, 0), "psi")


def test_intermediate_cuff_pressure_sends_nan_for_unused_slots() -> None:
    assert bytes(IntermediateCuffPressure(MedFloat(215, -1))) == bytes.fromhex("00d7f0ff07ff07")


def test_bp_feature_properties() -> None:
    feature = BloodPressureFeature(0x0100)
    assert feature.user_facing_time_support
    assert not feature.body_movement_detection
    assert bytes(feature) == b"\x00\x01"


# ------------------------------------------------------------------- CTS, battery, DIS


def test_current_time_from_datetime() -> None:
    value = CurrentTime.from_datetime(
        datetime(2026, 11, 24, 7, 30, 15, 500_000), AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE
    )
    assert bytes(value) == bytes.fromhex("ea070b18071e0f028002")  # Tuesday, 128/256 s
    assert value.to_datetime() == datetime(2026, 11, 24, 7, 30, 15, 500_000)


def test_current_time_validates_day_of_week() -> None:
    with pytest.raises(EncodeError):
        CurrentTime(BASE, day_of_week=8)


def test_battery_range() -> None:
    assert bytes(BatteryLevel(87)) == b"\x57"
    with pytest.raises(EncodeError):
        BatteryLevel(101)


def test_system_id_hex_is_wire_order() -> None:
    system_id = SystemId(
        manufacturer_identifier=0xABCDEF0102, organizationally_unique_identifier=0x123456
    )
    assert bytes(system_id) == b"\x02\x01\xef\xcd\xab\x56\x34\x12"
    assert system_id.hex == "0201efcdab563412"
    with pytest.raises(EncodeError):
        SystemId(1 << 40, 0)


def test_pnp_id_literal() -> None:
    assert bytes(PnpId(1, 0x0059, 0x1234, 0x0001)) == b"\x01\x59\x00\x34\x12\x01\x00"
    with pytest.raises(EncodeError):
        PnpId(1, 0x10000, 0, 0)


def test_decode_string_errors_name_the_characteristic() -> None:
    assert decode_string(b"AJ\x00\x00") == "AJ"
    with pytest.raises(DecodeError) as info:
        decode_string(b"\xc3", "model_number_string")
    assert info.value.characteristic == "model_number_string"


def test_non_bytes_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        GlucoseMeasurement.from_bytes("00")  # type: ignore[arg-type]
