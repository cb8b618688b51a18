"""Quality checks: one vector per flag, boundaries pinned as literals, and values never touched."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.model import Reading, ReadingFlag
from edge.columns import BatchColumns
from edge.errors import ThresholdError
from edge.quality import (
    QualityLimits,
    assess,
    flags_by_row,
    narrow_pulse_pressure,
    status_out_of_range,
)
from tests.unit.edge_builders import NOW, glucose, pressure

F = ReadingFlag
LIMITS = QualityLimits()


def added(reading: Reading, limits: QualityLimits = LIMITS) -> frozenset[ReadingFlag]:
    columns = BatchColumns.of([reading])
    return flags_by_row(assess(columns, limits), (reading.flags,)).get(0, frozenset())


@pytest.mark.parametrize(
    ("value", "flags", "expected"),
    [
        (5.5, set(), set()),
        (0.6, set(), set()),  # lower bound is plausible (10 mg/dL)
        (0.59, set(), {F.IMPLAUSIBLE}),
        (50.0, set(), set()),  # upper bound is plausible (900 mg/dL)
        (50.1, set(), {F.IMPLAUSIBLE}),
        (100.0, set(), {F.IMPLAUSIBLE}),  # mg/dL read as mmol/L
        (0.0055, set(), {F.IMPLAUSIBLE}),  # mol/L not scaled
        (-1.0, set(), {F.IMPLAUSIBLE}),
        (math.nan, set(), {F.IMPLAUSIBLE}),
        (math.inf, set(), {F.IMPLAUSIBLE}),
        (0.3, {F.LOW_OUT_OF_RANGE}, set()),  # a LO result may carry a sentinel number
        (70.0, {F.HIGH_OUT_OF_RANGE}, set()),
        (None, {F.VALUE_MISSING}, set()),
    ],
)
def test_glucose_range(value: float | None, flags: set[ReadingFlag], expected: set[F]) -> None:
    assert added(glucose(value, flags=flags)) == expected


def test_control_solution_is_derived_from_type_or_location() -> None:
    assert added(glucose(6.0, sample_type=10)) == {F.CONTROL_SOLUTION}
    assert added(glucose(6.0, sample_location=4)) == {F.CONTROL_SOLUTION}
    assert added(glucose(6.0, sample_type=None, sample_location=None)) == set()
    # already flagged by the converter: nothing new to add
    assert added(glucose(6.0, sample_type=10, flags={F.CONTROL_SOLUTION})) == set()


def test_hi_lo_are_derived_from_sensor_status_bits_5_and_6() -> None:
    high, low = status_out_of_range(np.array([0, 1 << 5, 1 << 6, 0x0FFF], dtype=np.int64))
    assert high.tolist() == [False, True, False, True]
    assert low.tolist() == [False, False, True, True]
    assert added(glucose(None, sensor_status=0x0020, flags={F.VALUE_MISSING})) == {
        F.HIGH_OUT_OF_RANGE
    }
    # a LO status with a sentinel number below the range: LO, not IMPLAUSIBLE
    assert added(glucose(0.2, sensor_status=0x0040)) == {F.LOW_OUT_OF_RANGE}


@pytest.mark.parametrize(
    ("systolic", "diastolic", "mean", "expected"),
    [
        (120.0, 80.0, 93.3, set()),
        (50.0, 20.0, 30.0, set()),  # both lower bounds are plausible
        (49.0, 30.0, None, {F.IMPLAUSIBLE}),
        (300.0, 200.0, 233.0, set()),
        (301.0, 100.0, None, {F.IMPLAUSIBLE}),
        (160.0, 19.0, None, {F.IMPLAUSIBLE}),
        (250.0, 201.0, None, {F.IMPLAUSIBLE, F.NARROW_PULSE_PRESSURE}),
        (16.0, 10.7, None, {F.IMPLAUSIBLE}),  # kPa read as mmHg
        (120.0, 80.0, 130.0, {F.IMPLAUSIBLE}),  # mean above systolic
        (120.0, 80.0, 75.0, {F.IMPLAUSIBLE}),  # mean below diastolic
        (120.0, 80.0, 78.5, set()),  # within the 2 mmHg tolerance
        (120.0, 80.0, math.inf, {F.IMPLAUSIBLE}),
        (math.nan, 80.0, None, {F.IMPLAUSIBLE}),
        (80.0, 80.0, None, {F.SYSTOLIC_NOT_ABOVE_DIASTOLIC}),
        (70.0, 90.0, None, {F.SYSTOLIC_NOT_ABOVE_DIASTOLIC}),
    ],
)
def test_pressure_ranges(
    systolic: float, diastolic: float, mean: float | None, expected: set[F]
) -> None:
    reading = pressure(systolic, diastolic, mean_arterial_mmhg=mean)
    assert added(reading) == expected


@pytest.mark.parametrize(
    ("systolic", "diastolic", "narrow"),
    [
        (120.0, 90.0, False),  # 30 = exactly 25 % of 120: not below
        (120.0, 91.0, True),  # 29 < 30
        (200.0, 150.0, False),
        (200.0, 151.0, True),
        (120.0, 120.0, False),  # not narrow: systolic not above diastolic instead
        (100.0, 60.0, False),
    ],
)
def test_narrow_pulse_pressure_is_below_a_quarter_of_systolic(
    systolic: float, diastolic: float, narrow: bool
) -> None:
    got = narrow_pulse_pressure(np.array([systolic]), np.array([diastolic]), 0.25)
    assert got.tolist() == [narrow]
    assert (F.NARROW_PULSE_PRESSURE in added(pressure(systolic, diastolic))) is narrow


@pytest.mark.parametrize(
    ("pulse", "expected"),
    [
        (70.0, set()),
        (25.0, set()),
        (24.0, {F.PULSE_BELOW_RANGE}),
        (250.0, set()),
        (251.0, {F.PULSE_ABOVE_RANGE}),
        (None, set()),
    ],
)
def test_pulse_range_does_not_make_the_pressure_implausible(
    pulse: float | None, expected: set[F]
) -> None:
    assert added(pressure(pulse=pulse)) == expected


def test_time_before_2000_or_after_reception_is_a_time_fault() -> None:
    ok = glucose()
    assert added(ok) == set()
    reset_clock = glucose(device_time=ok.device_time.replace(year=1999))  # type: ignore[union-attr]
    assert added(reset_clock) == {F.TIME_FAULT}
    assert added(glucose(at=NOW.replace(year=1999))) == {F.TIME_FAULT}
    assert added(glucose(at=NOW + timedelta(seconds=300))) == set()  # tolerance
    assert added(glucose(at=NOW + timedelta(seconds=301))) == {F.TIME_FAULT}
    assert added(glucose(at=NOW + timedelta(days=365))) == {F.TIME_FAULT}
    # placed at reception by the clock step: not checked again
    placed = glucose(device_time=None, measured_at=NOW, flags={F.NO_DEVICE_TIME})
    assert added(placed) == set()


def test_limits_are_configurable() -> None:
    strict = QualityLimits(glucose_min_mmol_l=1.1, glucose_max_mmol_l=33.3)
    assert added(glucose(1.0), strict) == {F.IMPLAUSIBLE}
    assert added(glucose(1.0)) == set()
    wide = QualityLimits(narrow_pulse_pressure_fraction=0.0)
    assert added(pressure(120.0, 115.0), wide) == set()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"glucose_min_mmol_l": 5.0, "glucose_max_mmol_l": 4.0},
        {"systolic_min_mmhg": -1.0},
        {"pulse_max_bpm": math.nan},
        {"narrow_pulse_pressure_fraction": 1.0},
        {"future_tolerance_s": -1.0},
        {"earliest_time_s": math.inf},
    ],
)
def test_nonsense_limits_raise_a_typed_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ThresholdError) as info:
        QualityLimits(**kwargs)
    assert info.value.name in kwargs


def test_existing_flags_are_not_added_twice() -> None:
    reading = pressure(80.0, 80.0, flags={F.SYSTOLIC_NOT_ABOVE_DIASTOLIC})
    assert added(reading) == set()


finite_or_not = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=400),
)


@settings(max_examples=100, deadline=None)
@given(
    g=finite_or_not,
    sys_=finite_or_not,
    dia=finite_or_not,
    mean=finite_or_not,
    pulse=finite_or_not,
)
def test_vectorised_checks_agree_with_a_scalar_oracle(
    g: float | None,
    sys_: float | None,
    dia: float | None,
    mean: float | None,
    pulse: float | None,
) -> None:
    gr = glucose(g)
    bp = pressure(sys_, dia, mean_arterial_mmhg=mean, pulse=pulse)
    columns = BatchColumns.of([gr, bp])
    masks = assess(columns, LIMITS)
    # glucose oracle
    g_bad = g is not None and not (math.isfinite(g) and 0.6 <= g <= 50.0)
    assert bool(masks.implausible[0]) is g_bad
    # pressure oracle, written out with plain floats
    fin = sys_ is not None and dia is not None and math.isfinite(sys_) and math.isfinite(dia)
    assert bool(masks.systolic_not_above_diastolic[1]) is (fin and sys_ <= dia)  # type: ignore[operator]
    narrow = fin and 0 < sys_ - dia < 0.25 * sys_  # type: ignore[operator]
    assert bool(masks.narrow_pulse_pressure[1]) is narrow
