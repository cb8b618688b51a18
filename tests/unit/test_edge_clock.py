"""Clock placement, skew jumps and time running backwards."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from device_drivers.model import ReadingFlag
from edge.clock import (
    CHINA_STANDARD_TIME,
    ClockPolicy,
    Placement,
    find_skew_jumps,
    place_in_time,
    skew_jumps,
    time_runs_backwards,
)
from edge.columns import BatchColumns
from edge.errors import ThresholdError
from tests.unit.edge_builders import NOW, glucose, meter, pressure

F = ReadingFlag


def test_a_reading_with_measured_at_is_left_alone() -> None:
    reading = glucose()
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert placed is reading
    assert how is Placement.KEPT


def test_skew_is_subtracted_from_device_wall_time_in_the_household_zone() -> None:
    # the meter shows 08:10 local while the gateway shows 08:00: skew +600 s
    reading = glucose(
        measured_at=None, device_time=datetime(2026, 11, 24, 8, 10), clock_skew_s=600.0
    )
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.CORRECTED
    assert placed.measured_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert placed.flags == reading.flags
    assert placed.device_time == reading.device_time  # raw time kept for audit


def test_negative_and_fractional_skew() -> None:
    reading = glucose(
        measured_at=None, device_time=datetime(2026, 11, 24, 8, 0), clock_skew_s=-90.5
    )
    placed, _ = place_in_time(reading, CHINA_STANDARD_TIME)
    assert placed.measured_at == datetime(2026, 11, 24, 0, 1, 30, 500000, tzinfo=UTC)


def test_household_zone_is_a_parameter() -> None:
    synced_in_july = datetime(2026, 7, 1, 10, 30, tzinfo=UTC)
    reading = glucose(
        measured_at=None,
        device_time=datetime(2026, 7, 1, 12, 0),
        clock_skew_s=0.0,
        received_at=synced_in_july,
    )
    berlin, _ = place_in_time(reading, ZoneInfo("Europe/Berlin"))  # CEST, UTC+2 in July
    assert berlin.measured_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    plus5, _ = place_in_time(reading, timezone(timedelta(hours=5)))
    assert plus5.measured_at == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_a_skewed_clock_keeps_the_offset_in_force_at_the_sync() -> None:
    # device clocks do not follow DST: a July reading synced in November (CET, UTC+1) is read
    # on the November offset, as device_drivers.session.clock.device_time_to_utc does
    reading = glucose(measured_at=None, device_time=datetime(2026, 7, 1, 12, 0), clock_skew_s=0.0)
    berlin, _ = place_in_time(reading, ZoneInfo("Europe/Berlin"))
    assert berlin.measured_at == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)


def test_unknown_skew_uses_device_time_and_flags_it() -> None:
    reading = glucose(measured_at=None, device_time=datetime(2026, 11, 24, 8, 0), clock_skew_s=None)
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.UNCORRECTED
    assert placed.measured_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert F.CLOCK_UNCORRECTED in placed.flags


def test_no_device_time_is_placed_at_reception_and_flagged() -> None:
    reading = pressure(measured_at=None, device_time=None)
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.AT_RECEPTION
    assert placed.measured_at == NOW == reading.received_at
    assert F.NO_DEVICE_TIME in placed.flags
    assert placed.systolic_mmhg == reading.systolic_mmhg


@pytest.mark.parametrize("skew", [math.nan, math.inf, -math.inf])
def test_a_non_finite_skew_counts_as_unmeasured(skew: float) -> None:
    reading = glucose(measured_at=None, device_time=datetime(2026, 11, 24, 8, 0), clock_skew_s=skew)
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.UNCORRECTED
    assert placed.measured_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert F.CLOCK_UNCORRECTED in placed.flags


def test_a_clock_reset_to_2000_is_placed_right_by_its_skew() -> None:
    # the meter believes it is 2000-01-01 10:00 while the gateway's local time is 16:00 today
    skew = (datetime(2000, 1, 1, 10, 0) - datetime(2026, 11, 24, 16, 0)).total_seconds()
    reading = glucose(measured_at=None, device_time=datetime(2000, 1, 1, 9, 50), clock_skew_s=skew)
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.CORRECTED
    assert placed.measured_at == datetime(2026, 11, 24, 7, 50, tzinfo=UTC)


@pytest.mark.parametrize(
    ("device_time", "skew"),
    [
        (datetime(2026, 11, 24, 8, 0), 1e15),  # beyond timedelta's range
        (datetime(1, 1, 1, 0, 0), 60.0),  # underflows datetime
        (datetime(9999, 12, 31, 23, 59), -86_400.0),  # overflows datetime
    ],
)
def test_unplaceable_time_goes_to_reception_with_time_fault(
    device_time: datetime, skew: float
) -> None:
    reading = glucose(measured_at=None, device_time=device_time, clock_skew_s=skew)
    placed, how = place_in_time(reading, CHINA_STANDARD_TIME)
    assert how is Placement.UNPLACEABLE
    assert placed.measured_at == NOW
    assert F.TIME_FAULT in placed.flags


def test_skew_jumps_compare_each_device_with_its_own_previous_skew() -> None:
    codes = np.array([0, 1, 0, 0, 1, 0], dtype=np.int64)
    skews = np.array([10.0, 3600.0, 12.0, np.nan, 3601.0, 900.0])
    assert skew_jumps(codes, skews, 300.0).tolist() == [False, False, False, False, False, True]
    assert skew_jumps(codes, skews, 1000.0).tolist() == [False] * 6
    assert not skew_jumps(np.array([0], dtype=np.int64), np.array([5.0]), 1.0).any()


def test_find_skew_jumps_reports_device_and_size() -> None:
    batch = [
        glucose(seq=1, clock_skew_s=5.0),
        glucose(seq=2, clock_skew_s=3605.0),
        glucose(seq=3, clock_skew_s=3606.0, device=meter(2)),
    ]
    (jump,) = find_skew_jumps(BatchColumns.of(batch), ClockPolicy().skew_jump_s)
    assert jump.device_key == meter().key
    assert jump.row == 1
    assert jump.jump_s == 3600.0


def test_time_running_backwards_flags_the_earlier_records() -> None:
    # seq order, device 0: 100, 200, 5000 (clock set back here) -> 300, 400
    codes = np.array([0, 0, 0, 0, 0, 1, 1], dtype=np.int64)
    has_seq = np.ones(7, dtype=np.bool_)
    times = np.array([100.0, 200.0, 5000.0, 300.0, 400.0, 50.0, 10.0])
    got = time_runs_backwards(codes, has_seq, times, 60.0)
    assert got.tolist() == [False, False, True, False, False, False, False]
    # device 1 went back by 40 s only: within the tolerance
    assert time_runs_backwards(codes, has_seq, times, 30.0).tolist()[5] is True


def test_time_running_backwards_skips_rows_without_sequence_or_time() -> None:
    codes = np.zeros(3, dtype=np.int64)
    times = np.array([500.0, np.nan, 100.0])
    assert time_runs_backwards(codes, np.array([True, True, True]), times, 0.0).tolist() == [
        True,
        False,
        False,
    ]
    no_seq = np.array([False, True, True])
    assert not time_runs_backwards(codes, no_seq, times, 0.0).any()


def test_clock_policy_rejects_nonsense() -> None:
    with pytest.raises(ThresholdError):
        ClockPolicy(skew_jump_s=-1.0)
    with pytest.raises(ThresholdError):
        ClockPolicy(backwards_tolerance_s=math.nan)
