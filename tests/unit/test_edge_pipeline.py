"""The whole pipeline: nothing lost, no value changed, duplicates across batches, order, state."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.model import GlucoseReading, Reading, ReadingFlag
from edge.clock import Placement
from edge.errors import NaiveTimeError
from edge.pipeline import EdgeConfig, EdgeState, process
from edge.quality import QualityLimits
from tests.unit.edge_builders import NOW, cuff, glucose, meter, pressure

F = ReadingFlag


def values(reading: Reading) -> tuple[object, ...]:
    """Everything but flags and measured_at, with NaN made comparable."""

    def norm(v: object) -> object:
        return "nan" if isinstance(v, float) and math.isnan(v) else v

    if isinstance(reading, GlucoseReading):
        fields = (
            reading.glucose_mmol_l,
            reading.original_value,
            reading.original_unit,
            reading.sample_type,
            reading.sample_location,
            reading.sensor_status,
            reading.sequence_number,
        )
    else:
        fields = (
            reading.systolic_mmhg,
            reading.diastolic_mmhg,
            reading.mean_arterial_mmhg,
            reading.pulse_bpm,
            reading.user_id,
            reading.sequence_number,
        )
    common = (reading.device, reading.device_time, reading.received_at, reading.clock_skew_s)
    return tuple(norm(v) for v in (*fields, *common))


def test_a_batch_comes_out_flagged_ordered_and_complete() -> None:
    batch: list[Reading] = [
        glucose(6.1, seq=12),
        pressure(150.0, 148.0),
        glucose(6.1, seq=12),  # a resent record
        glucose(100.0, seq=11),  # mg/dL read as mmol/L
        pressure(130.0, 85.0, measured_at=None, device_time=None, device=cuff(2), received_at=NOW),
    ]
    out = process(batch, NOW, EdgeState.initial())
    assert [r.sequence_number for r in out.readings if isinstance(r, GlucoseReading)] == [11, 12]
    assert len(out.readings) == 4
    assert len(out.duplicates) == 1
    assert F.DUPLICATE in out.duplicates[0].flags
    assert F.IMPLAUSIBLE in out.readings[0].flags
    narrow = [r for r in out.readings if F.NARROW_PULSE_PRESSURE in r.flags]
    assert len(narrow) == 1
    placed = [r for r in out.readings if F.NO_DEVICE_TIME in r.flags]
    assert len(placed) == 1
    assert placed[0].measured_at == NOW
    assert out.stats.received == 5
    assert out.stats.published == 4
    assert out.stats.duplicates == 1
    assert out.stats.placements == {Placement.AT_RECEPTION: 1}
    assert out.stats.flags_added == {F.IMPLAUSIBLE: 1, F.NARROW_PULSE_PRESSURE: 1}


def test_duplicates_are_detected_across_batches_and_the_old_state_is_untouched() -> None:
    state = EdgeState.initial()
    first = process([glucose(seq=1), glucose(seq=2)], NOW, state)
    second = process([glucose(seq=2), glucose(seq=3)], NOW, first.state)
    assert [r.sequence_number for r in second.readings] == [3]
    assert [r.sequence_number for r in second.duplicates] == [2]
    assert second.stats.duplicates_seen_before == 1
    # the state is a value: processing again from the first state gives the same answer
    again = process([glucose(seq=2), glucose(seq=3)], NOW, first.state)
    assert [r.sequence_number for r in again.readings] == [3]
    assert len(state.seen) == 0


def test_a_small_window_forgets_and_lets_old_identities_through() -> None:
    state = EdgeState.initial(window=2)
    out = process([glucose(seq=1), glucose(seq=2), glucose(seq=3)], NOW, state)
    again = process([glucose(seq=1), glucose(seq=3)], NOW, out.state)
    assert [r.sequence_number for r in again.readings] == [1]  # evicted, published again
    assert [r.sequence_number for r in again.duplicates] == [3]


def test_a_classic_cuff_resending_a_stored_reading_is_a_duplicate() -> None:
    at = NOW - timedelta(minutes=2)
    first = process([pressure(128.0, 84.0, at=at)], NOW, EdgeState.initial())
    resent = pressure(128.0, 84.0, at=at, received_at=NOW + timedelta(seconds=30))
    second = process([resent], NOW + timedelta(seconds=30), first.state)
    assert second.readings == ()
    assert len(second.duplicates) == 1


def test_a_cuff_without_time_measuring_the_same_values_twice_gives_two_readings() -> None:
    untimed = {"device_time": None, "measured_at": None}
    first = process([pressure(128.0, 84.0, **untimed)], NOW, EdgeState.initial())
    again_at = NOW + timedelta(minutes=1)  # the re-measurement AHA asks for, same values
    again = pressure(128.0, 84.0, received_at=again_at, **untimed)
    second = process([again], again_at, first.state)
    assert len(first.readings) == len(second.readings) == 1
    assert second.duplicates == ()


def test_clock_trouble_is_flagged_and_reported() -> None:
    # records 1-2 were made while the meter ran 30 min fast; the household then set it right
    # (skew 0 s at this sync), so 1-2 land 30 min late, after record 3: they get TIME_FAULT.
    # Record 4 comes from a later sync whose skew was +400 s: a skew jump.
    local_now = datetime(2026, 11, 24, 16, 0)  # NOW in UTC+8

    def rec(seq: int, minutes_ago: int, shown_ahead_s: float, skew: float) -> GlucoseReading:
        shown = local_now - timedelta(minutes=minutes_ago) + timedelta(seconds=shown_ahead_s)
        return glucose(seq=seq, measured_at=None, device_time=shown, clock_skew_s=skew)

    batch = [
        rec(1, 50, 1800.0, 0.0),
        rec(2, 40, 1800.0, 0.0),
        rec(3, 30, 0.0, 0.0),
        rec(4, 20, 400.0, 400.0),
    ]
    out = process(batch, NOW, EdgeState.initial())
    faults = [r.sequence_number for r in out.readings if F.TIME_FAULT in r.flags]
    assert faults == [1, 2]
    assert out.stats.placements == {Placement.CORRECTED: 4}
    assert out.readings[3].measured_at == NOW - timedelta(minutes=20)
    (jump,) = out.skew_jumps
    assert jump.row == 3
    assert jump.jump_s == 400.0


def test_config_limits_reach_the_checks() -> None:
    strict = EdgeConfig(quality=QualityLimits(glucose_max_mmol_l=33.3))
    out = process([glucose(40.0)], NOW, EdgeState.initial(), config=strict)
    assert F.IMPLAUSIBLE in out.readings[0].flags
    assert F.IMPLAUSIBLE not in process([glucose(40.0)], NOW, EdgeState.initial()).readings[0].flags


def test_now_must_be_aware() -> None:
    with pytest.raises(NaiveTimeError) as info:
        process([], NOW.replace(tzinfo=None), EdgeState.initial())
    assert info.value.name == "now"


def test_an_empty_batch_is_fine() -> None:
    out = process([], NOW, EdgeState.initial())
    assert out.readings == out.duplicates == out.local_alerts == ()
    assert out.stats.received == 0


# --- property: nothing lost, no value changed ------------------------------------------------

maybe_value = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=0, max_value=400),
)
times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
optional_time = st.one_of(st.none(), times)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    at = draw(optional_time)
    device_n = draw(st.integers(1, 3))
    common = {
        "measured_at": at,
        "device_time": None if draw(st.booleans()) else (at or NOW).replace(tzinfo=None),
        "clock_skew_s": draw(st.one_of(st.none(), st.floats(-1e6, 1e6))),
        "received_at": NOW - timedelta(seconds=draw(st.integers(0, 10_000))),
        "flags": frozenset(draw(st.sets(st.sampled_from(list(ReadingFlag)), max_size=3))),
    }
    if draw(st.booleans()):
        return glucose(
            draw(maybe_value),
            seq=draw(st.integers(0, 20)),
            device=meter(device_n),
            sensor_status=draw(st.integers(0, 0xFFFF)),
            sample_type=draw(st.one_of(st.none(), st.integers(0, 15))),
            **common,
        )
    return pressure(
        draw(maybe_value),
        draw(maybe_value),
        pulse=draw(maybe_value),
        mean_arterial_mmhg=draw(maybe_value),
        user=draw(st.sampled_from([None, 1, 2, 255])),
        sequence_number=draw(st.one_of(st.none(), st.integers(0, 20))),
        device=cuff(device_n),
        **common,
    )


@settings(max_examples=120, deadline=None)
@given(batch=st.lists(readings(), max_size=25))
def test_values_in_equal_values_out(batch: list[Reading]) -> None:
    out = process(batch, NOW, EdgeState.initial())
    everything = [*out.readings, *out.duplicates]
    # nothing lost, nothing invented
    assert Counter(values(r) for r in everything) == Counter(values(r) for r in batch)
    assert len(out.readings) == len({r.identity for r in batch})
    # flags only grow; measured_at is only ever filled in, never moved
    originals: dict[tuple[object, ...], list[Reading]] = {}
    for r in batch:
        originals.setdefault(values(r), []).append(r)
    for r in everything:
        candidates = originals[values(r)]
        assert any(o.flags <= r.flags for o in candidates)
        assert r.measured_at is not None
        assert any(o.measured_at in (None, r.measured_at) for o in candidates)
    # every published reading is unique and every duplicate is flagged
    assert len({r.identity for r in out.readings}) == len(out.readings)
    assert all(F.DUPLICATE in r.flags for r in out.duplicates)
    assert not any(
        F.DUPLICATE in r.flags and F.DUPLICATE not in _orig(r, originals) for r in out.readings
    )
    # control-solution results never alert
    controls = {
        r.identity
        for r in out.readings
        if isinstance(r, GlucoseReading) and F.CONTROL_SOLUTION in r.flags
    }
    assert not any(a.reading_identity in controls for a in out.local_alerts)


def _orig(r: Reading, originals: dict[tuple[object, ...], list[Reading]]) -> frozenset[ReadingFlag]:
    flags: frozenset[ReadingFlag] = frozenset()
    for o in originals[values(r)]:
        flags |= o.flags
    return flags
