"""Seeded scenarios: deterministic, and the clinical property each is named for really holds."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from statistics import mean

import pytest

from firmware_sim.scenarios import (
    SCENARIOS,
    ScenarioData,
    ScenarioError,
    generate,
    scenario_names,
)

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 20:00 in the household (UTC+8)
CST = timezone(timedelta(hours=8))
SEEDS = (0, 1, 2, 17, 2026)


def make(name: str, seed: int = 1, days: int = 14) -> ScenarioData:
    return generate(name, seed=seed, end=END, days=days)


@pytest.mark.parametrize("name", scenario_names())
def test_same_seed_same_samples_other_seed_other_samples(name: str) -> None:
    assert make(name, seed=5) == make(name, seed=5)
    assert make(name, seed=5).glucose != make(name, seed=6).glucose


@pytest.mark.parametrize("name", scenario_names())
def test_samples_are_ordered_aware_utc_and_in_the_past(name: str) -> None:
    data = make(name)
    for samples in (data.glucose, data.blood_pressure):
        times = [s.measured_at for s in samples]
        assert times == sorted(times)
        assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
        assert all(END - timedelta(days=14) <= t <= END for t in times)
    assert data.glucose
    assert data.blood_pressure


def test_registry_has_bilingual_summaries() -> None:
    assert set(SCENARIOS) == {
        "well_controlled",
        "sustained_home_hypertension",
        "hypertensive_crisis",
        "nocturnal_level2_hypoglycaemia",
        "missed_readings",
        "hi_lo",
        "control_solution",
    }
    for spec in SCENARIOS.values():
        assert spec.summary_zh
        assert spec.summary_en


def test_unknown_scenario_and_bad_parameters() -> None:
    with pytest.raises(ScenarioError) as info:
        generate("nope", seed=1, end=END)
    assert info.value.name == "nope"
    with pytest.raises(ScenarioError):
        generate("well_controlled", seed=1, end=datetime(2026, 1, 1))  # naive
    with pytest.raises(ScenarioError):
        generate("sustained_home_hypertension", seed=1, end=END, days=3)  # needs 7 days


@pytest.mark.parametrize("seed", SEEDS)
def test_well_controlled_stays_in_target(seed: int) -> None:
    data = make("well_controlled", seed)
    assert all(3.9 <= s.glucose_mmol_l <= 10.0 for s in data.glucose)
    user1 = [r for r in data.blood_pressure if r.user_id == 1]
    assert mean(r.systolic_mmhg for r in user1) < 135
    assert mean(r.diastolic_mmhg for r in user1) < 85
    assert not any(s.is_control_solution or s.sensor_status for s in data.glucose)


@pytest.mark.parametrize("seed", SEEDS)
def test_sustained_home_hypertension_7_day_mean(seed: int) -> None:
    data = make("sustained_home_hypertension", seed, days=7)
    user1 = [r for r in data.blood_pressure if r.user_id == 1]
    assert len(user1) >= 24  # mornings and evenings, two readings each
    assert mean(r.systolic_mmhg for r in user1) >= 135
    assert mean(r.diastolic_mmhg for r in user1) >= 85
    user2 = [r for r in data.blood_pressure if r.user_id == 2]
    assert mean(r.systolic_mmhg for r in user2) < 135  # the other household member is fine


@pytest.mark.parametrize("seed", SEEDS)
def test_hypertensive_crisis_is_rechecked(seed: int) -> None:
    data = make("hypertensive_crisis", seed)
    crisis = [r for r in data.blood_pressure if r.systolic_mmhg >= 180 and r.diastolic_mmhg >= 120]
    assert len(crisis) == 2
    first, recheck = crisis
    assert first.user_id == recheck.user_id == 1
    assert timedelta(minutes=1) <= recheck.measured_at - first.measured_at <= timedelta(minutes=15)
    assert all(r.systolic_mmhg > r.diastolic_mmhg for r in data.blood_pressure)


@pytest.mark.parametrize("seed", SEEDS)
def test_nocturnal_level2_hypo_at_night(seed: int) -> None:
    data = make("nocturnal_level2_hypoglycaemia", seed)
    low = [s for s in data.glucose if s.glucose_mmol_l < 3.0]
    assert len(low) == 1
    local = low[0].measured_at.astimezone(CST)
    assert 0 <= local.hour < 5
    later = [s for s in data.glucose if s.measured_at > low[0].measured_at]
    assert later[0].glucose_mmol_l >= 3.9  # re-check after treatment


@pytest.mark.parametrize("seed", SEEDS)
def test_missed_readings_has_a_gap_of_days(seed: int) -> None:
    data = make("missed_readings", seed)
    every = sorted(
        [s.measured_at for s in data.glucose] + [r.measured_at for r in data.blood_pressure]
    )
    longest = max(b - a for a, b in itertools.pairwise(every))
    assert longest >= timedelta(days=3)
    assert make("well_controlled", seed).glucose  # the ordinary scenario has no such gap
    ordinary = sorted(s.measured_at for s in make("well_controlled", seed).blood_pressure)
    assert max(b - a for a, b in itertools.pairwise(ordinary)) < timedelta(days=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_hi_lo_flags_and_out_of_range_values(seed: int) -> None:
    data = make("hi_lo", seed)
    high = [s for s in data.glucose if s.sensor_status == 1 << 5]
    low = [s for s in data.glucose if s.sensor_status == 1 << 6]
    assert len(high) == 1
    assert len(low) == 1
    assert high[0].glucose_mmol_l > 33.3
    assert low[0].glucose_mmol_l < 1.1


@pytest.mark.parametrize("seed", SEEDS)
def test_control_solution_type_10_location_4(seed: int) -> None:
    data = make("control_solution", seed)
    control = [s for s in data.glucose if s.is_control_solution]
    assert len(control) == 1
    assert (control[0].sample_type, control[0].sample_location) == (10, 4)
    assert control[0].meal is None


def test_glucose_times_follow_the_household_day() -> None:
    data = make("well_controlled", days=14)
    hours = {s.measured_at.astimezone(CST).hour for s in data.glucose}
    assert hours <= {6, 7, 9, 10, 17, 18, 21, 22}
    fasting = [s for s in data.glucose if s.meal == 3]
    assert all(6 <= s.measured_at.astimezone(CST).hour < 8 for s in fasting)


def test_last_glucose_keeps_the_newest() -> None:
    data = make("well_controlled", days=30)
    last = data.last_glucose(10)
    assert last.glucose == data.glucose[-10:]
    assert last.blood_pressure == data.blood_pressure
