"""Property tests: from_bytes(bytes(x)) == x for every wire struct, and a seeded fuzz over random
bytes that may only ever raise DecodeError.

The round trip alone cannot catch a symmetric bug (encoder and decoder wrong the same way); the
spec vectors in test_codec_vectors.py do that. The fuzz seed is printed and can be pinned with
ANJIA_FUZZ_SEED=<int>.
"""

from __future__ import annotations

import calendar
import os
import random
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.codec import catalog
from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.device_info import PnpId, SystemId
from device_drivers.codec.glucose import (
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
)
from device_drivers.codec.racp import RacpMessage
from device_drivers.codec.sfloat import (
    MedFloat,
    Special,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from device_drivers.codec.time_service import CurrentTime
from device_drivers.errors import DecodeError, EncodeError

# ---------------------------------------------------------------------------- strategies

specials = st.sampled_from(list(Special)).map(lambda s: MedFloat(0, 0, s))
_SFLOAT_COLLISIONS = {2047, 2046, -2048, -2047, -2046}


def _sfloat_number(m: int, e: int) -> bool:
    return not (e == 0 and m in _SFLOAT_COLLISIONS)


sfloats = st.one_of(
    specials,
    st.builds(MedFloat, st.integers(-2048, 2047), st.integers(-8, 7)).filter(
        lambda v: _sfloat_number(v.mantissa, v.exponent)
    ),
)
_FLOAT_COLLISIONS = {0x7FFFFF, 0x7FFFFE, -0x800000, -0x7FFFFF, -0x7FFFFE}
floats32 = st.one_of(
    specials,
    st.builds(MedFloat, st.integers(-(1 << 23), (1 << 23) - 1), st.integers(-128, 127)).filter(
        lambda v: not (v.exponent == 0 and v.mantissa in _FLOAT_COLLISIONS)
    ),
)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
nibble = st.integers(0, 15)


@st.composite
def date_times(draw: st.DrawFn) -> DateTime:
    year = draw(st.sampled_from([0, 1582, 9999]) | st.integers(1582, 9999))
    month = draw(st.integers(0, 12))
    last = calendar.monthrange(year or 2000, month)[1] if month else 31
    day = draw(st.integers(0, last))
    return DateTime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )


@st.composite
def glucose_measurements(draw: st.DrawFn) -> GlucoseMeasurement:
    has_conc = draw(st.booleans())
    return GlucoseMeasurement(
        sequence_number=draw(u16),
        base_time=draw(date_times()),
        time_offset_minutes=draw(st.none() | st.integers(-32768, 32767)),
        concentration=draw(sfloats) if has_conc else None,
        concentration_unit=draw(st.sampled_from(["kg/L", "mol/L"])) if has_conc else None,
        type=draw(nibble) if has_conc else None,
        sample_location=draw(nibble) if has_conc else None,
        sensor_status=draw(st.none() | u16),
        context_information_follows=draw(st.booleans()),
    )


@st.composite
def contexts(draw: st.DrawFn) -> GlucoseMeasurementContext:
    carb, tester, exercise, med = (draw(st.booleans()) for _ in range(4))
    return GlucoseMeasurementContext(
        sequence_number=draw(u16),
        extended_flags=draw(st.none() | u8),
        carbohydrate_id=draw(u8) if carb else None,
        carbohydrate_kg=draw(sfloats) if carb else None,
        meal=draw(st.none() | u8),
        tester=draw(nibble) if tester else None,
        health=draw(nibble) if tester else None,
        exercise_duration_s=draw(u16) if exercise else None,
        exercise_intensity_pct=draw(u8) if exercise else None,
        medication_id=draw(u8) if med else None,
        medication=draw(sfloats) if med else None,
        medication_unit=draw(st.sampled_from(["kg", "L"])) if med else None,
        hba1c_pct=draw(st.none() | sfloats),
    )


def _bp_optional(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "unit": draw(st.sampled_from(["mmHg", "kPa"])),
        "timestamp": draw(st.none() | date_times()),
        "pulse_rate": draw(st.none() | sfloats),
        "user_id": draw(st.none() | u8),
        "measurement_status": draw(st.none() | u16),
    }


@st.composite
def bp_measurements(draw: st.DrawFn) -> BloodPressureMeasurement:
    return BloodPressureMeasurement(
        draw(sfloats), draw(sfloats), draw(sfloats), **_bp_optional(draw)
    )


@st.composite
def cuff_pressures(draw: st.DrawFn) -> IntermediateCuffPressure:
    return IntermediateCuffPressure(draw(sfloats), **_bp_optional(draw))


@st.composite
def racp_messages(draw: st.DrawFn) -> RacpMessage:
    kind = draw(st.sampled_from(["plain", "seq", "time", "number", "response", "unknown"]))
    op = draw(st.sampled_from([1, 2, 4]))
    if kind == "plain":
        return RacpMessage(draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([0, 1, 5, 6])))
    if kind == "seq":
        operator = draw(st.sampled_from([2, 3, 4]))
        count = 2 if operator == 4 else 1
        return RacpMessage(op, operator, 1, tuple(draw(u16) for _ in range(count)))
    if kind == "time":
        operator = draw(st.sampled_from([2, 3, 4]))
        count = 2 if operator == 4 else 1
        times = tuple(draw(date_times()) for _ in range(count))
        return RacpMessage(op, operator, 2, time_operands=times)
    if kind == "number":
        return RacpMessage.number_response(draw(u16))
    if kind == "response":
        return RacpMessage.response(draw(u8), draw(u8))
    unknown_op = draw(st.integers(7, 255))
    return RacpMessage(unknown_op, draw(u8), raw_operand=draw(st.binary(max_size=8)))


STRUCTS: list[tuple[Callable[[bytes], object], st.SearchStrategy[Any]]] = [
    (DateTime.from_bytes, date_times()),
    (GlucoseMeasurement.from_bytes, glucose_measurements()),
    (GlucoseMeasurementContext.from_bytes, contexts()),
    (GlucoseFeature.from_bytes, st.builds(GlucoseFeature, u16)),
    (RacpMessage.from_bytes, racp_messages()),
    (BloodPressureMeasurement.from_bytes, bp_measurements()),
    (IntermediateCuffPressure.from_bytes, cuff_pressures()),
    (BloodPressureFeature.from_bytes, st.builds(BloodPressureFeature, u16)),
    (
        CurrentTime.from_bytes,
        st.builds(CurrentTime, date_times(), st.integers(0, 7), u8, u8),
    ),
    (BatteryLevel.from_bytes, st.builds(BatteryLevel, st.integers(0, 100))),
    (
        SystemId.from_bytes,
        st.builds(SystemId, st.integers(0, (1 << 40) - 1), st.integers(0, (1 << 24) - 1)),
    ),
    (PnpId.from_bytes, st.builds(PnpId, u8, u16, u16, u16)),
]


@pytest.mark.parametrize(
    ("parse", "strategy"),
    [pytest.param(p, s, id=p.__qualname__.split(".")[0]) for p, s in STRUCTS],
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_struct_round_trip(
    parse: Callable[[bytes], object], strategy: st.SearchStrategy[Any], data: st.DataObject
) -> None:
    value = data.draw(strategy)
    wire = bytes(value)
    assert parse(wire) == value
    # and the dict view never fails on a valid struct
    assert isinstance(value.to_dict(), dict)


@given(sfloats)
def test_sfloat_round_trip(value: MedFloat) -> None:
    assert decode_sfloat(encode_sfloat(value)) == value


@given(floats32)
def test_float_round_trip(value: MedFloat) -> None:
    assert decode_float(encode_float(value)) == value


@given(st.integers(0, 0xFFFF))
def test_every_sfloat_code_decodes_and_reencodes(raw: int) -> None:
    assert encode_sfloat(decode_sfloat(raw)) == raw


@given(st.decimals(min_value=Decimal("-20.47"), max_value=Decimal("20.47"), places=2))
def test_from_value_keeps_two_decimals(value: Decimal) -> None:
    encoded = MedFloat.from_value(value)
    assert encoded.decimal == value
    assert decode_sfloat(encode_sfloat(encoded)) == encoded


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=4))
def test_from_value_is_exact_or_refuses(value: Decimal) -> None:
    try:
        encoded = MedFloat.from_value(value)
    except EncodeError:
        return
    assert encoded.decimal == value
    assert decode_sfloat(encode_sfloat(encoded)) == encoded


# ------------------------------------------------------------------------------------ fuzz

FUZZ_CASES = 3000
VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _fuzz_seed() -> int:
    pinned = os.environ.get("ANJIA_FUZZ_SEED")
    return int(pinned) if pinned else random.SystemRandom().randrange(1 << 32)


def _valid_payloads(name: str) -> list[bytes]:
    out = []
    for path in sorted(VECTORS.glob("codec_*.toml")):
        with path.open("rb") as fh:
            for case in tomllib.load(fh).get("case", []):
                if catalog.lookup(case["characteristic"]).name == name:
                    out.append(bytes.fromhex(case["hex"]))
    return out


def _mutate(rng: random.Random, seed_payload: bytes) -> bytes:
    data = bytearray(seed_payload)
    action = rng.randrange(4)
    if action == 0 and data:  # flip bits in a few bytes
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif action == 1:  # truncate
        del data[rng.randrange(len(data) + 1) :]
    elif action == 2:  # append junk
        data += rng.randbytes(rng.randrange(1, 6))
    elif data:  # replace one byte
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("entry", catalog.entries(), ids=lambda e: e.name)
def test_fuzz_only_raises_decode_error(entry: catalog.CatalogEntry) -> None:
    """Random and mutated payloads: the only exception allowed is DecodeError for this
    characteristic, and whatever decodes re-encodes to a payload that decodes the same."""
    seed = _fuzz_seed()
    print(f"fuzz {entry.name}: ANJIA_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    seeds = _valid_payloads(entry.name)
    failures: list[tuple[str, str]] = []
    decoded = 0
    for _ in range(FUZZ_CASES):
        if seeds and rng.random() < 0.7:
            payload = _mutate(rng, rng.choice(seeds))
        else:
            payload = rng.randbytes(rng.randrange(0, 24))
        try:
            result = entry.decode(payload)
        except DecodeError as exc:
            if exc.characteristic != entry.name or exc.payload != payload:
                failures.append((payload.hex(), repr(exc)))
            continue
        decoded += 1
        canonical = bytes(entry.parse(payload))
        if entry.decode(canonical) != result:
            failures.append((payload.hex(), "re-encoding changed the decoded value"))
    assert not failures, f"seed {seed}: {failures[:5]}"
    assert decoded > 0, f"seed {seed}: nothing decoded; the fuzz is not reaching the decoder"
