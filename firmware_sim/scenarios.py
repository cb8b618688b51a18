"""Seeded physiological scenarios: what a household's meters hold after N days of use.

Each scenario returns samples in canonical units (glucose mmol/L, pressures mmHg, pulse bpm) with
the *true* time of each test as aware UTC. The simulated devices (:mod:`firmware_sim.device_state`)
stamp them with their own, possibly wrong, clock and convert them to the wire unit they are set to
(kg/L or mol/L, mmHg or kPa). Times follow a household day in its local zone: fasting test before
breakfast, two hours after breakfast, before dinner, at bedtime; blood pressure in the morning
before medication and in the evening, two readings a minute apart each time (home BP protocol).

The clinical property a scenario is named for holds by construction and is checked by
tests/unit/test_scenarios.py:

========================================  =====================================================
``well_controlled``                       all glucose 3.9..10.0 mmol/L, BP means < 135/85
``sustained_home_hypertension``           user 1's 7-day home mean >= 135/85 mmHg
``hypertensive_crisis``                   user 1: a reading >= 180/120, re-checked minutes later
                                          (also >= 180/120)
``nocturnal_level2_hypoglycaemia``        a glucose < 3.0 mmol/L between 00:00 and 05:00 local
``missed_readings``                       no reading at all for >= 3 whole days
``hi_lo``                                 a meter HI (status bit 5, > 33.3 mmol/L) and LO (bit 6,
                                          < 1.1 mmol/L)
``control_solution``                      a control-solution test (type 10, location 4)
========================================  =====================================================

Pure: no I/O, no clock (``end`` is a parameter), randomness only from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from types import MappingProxyType
from typing import Final

__all__ = [
    "BP_USERS",
    "SCENARIOS",
    "BpSample",
    "GlucoseSample",
    "ScenarioData",
    "ScenarioError",
    "ScenarioSpec",
    "generate",
    "scenario_names",
]

# Glucose Measurement codes (spec ble.md §1.1, §1.2)
CAPILLARY_PLASMA: Final = 2
CONTROL_SOLUTION_TYPE: Final = 10
FINGER: Final = 1
CONTROL_SOLUTION_LOCATION: Final = 4
MEAL_PREPRANDIAL: Final = 1
MEAL_POSTPRANDIAL: Final = 2
MEAL_FASTING: Final = 3
MEAL_CASUAL: Final = 4
MEAL_BEDTIME: Final = 5
CARB_BREAKFAST: Final = 1
STATUS_RESULT_TOO_HIGH: Final = 1 << 5
STATUS_RESULT_TOO_LOW: Final = 1 << 6
STATUS_IRREGULAR_PULSE: Final = 1 << 2

METER_HIGH_LIMIT_MMOL_L: Final = 33.3  # 600 mg/dL, the usual upper limit of a strip meter
METER_LOW_LIMIT_MMOL_L: Final = 1.1  # 20 mg/dL
BP_USERS: Final = (1, 2)
"""The cuff's user slots the scenarios use; user 1 is the person the scenario is about."""


class ScenarioError(ValueError):
    """Unknown scenario name or impossible parameters."""

    def __init__(self, name: str, fault: str) -> None:
        self.name = name
        self.fault = fault
        super().__init__(f"scenario {name!r}: {fault}")


@dataclass(frozen=True, slots=True)
class GlucoseSample:
    """One glucose test as it happened (canonical mmol/L, true time in aware UTC)."""

    measured_at: datetime
    glucose_mmol_l: float
    meal: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_g: float | None = None
    sample_type: int = CAPILLARY_PLASMA
    sample_location: int = FINGER
    sensor_status: int | None = None

    @property
    def is_control_solution(self) -> bool:
        return (
            self.sample_type == CONTROL_SOLUTION_TYPE
            or self.sample_location == CONTROL_SOLUTION_LOCATION
        )


@dataclass(frozen=True, slots=True)
class BpSample:
    """One cuff measurement (canonical mmHg and bpm, true time in aware UTC)."""

    measured_at: datetime
    systolic_mmhg: int
    diastolic_mmhg: int
    pulse_bpm: int
    user_id: int = 1
    measurement_status: int | None = None

    @property
    def mean_arterial_mmhg(self) -> int:
        return round(self.diastolic_mmhg + (self.systolic_mmhg - self.diastolic_mmhg) / 3)


@dataclass(frozen=True, slots=True)
class ScenarioData:
    """What :func:`generate` returns: samples in time order."""

    name: str
    seed: int
    utc_offset_minutes: int
    glucose: tuple[GlucoseSample, ...]
    blood_pressure: tuple[BpSample, ...]

    def last_glucose(self, count: int) -> ScenarioData:
        """The same scenario keeping only the newest ``count`` glucose samples."""
        kept = self.glucose[-count:] if count > 0 else ()
        return replace(self, glucose=kept)


@dataclass(frozen=True, slots=True)
class _Context:
    name: str
    rng: random.Random
    end: datetime  # aware UTC
    days: int
    zone: timezone

    def day_dates(self) -> list[date]:
        last = self.end.astimezone(self.zone).date()
        return [last - timedelta(days=self.days - 1 - i) for i in range(self.days)]

    def at(self, day: date, start: time, spread_min: int) -> datetime:
        """A local time ``start`` + up to ``spread_min`` random minutes, as aware UTC."""
        local = datetime.combine(day, start, tzinfo=self.zone)
        local += timedelta(minutes=self.rng.uniform(0, spread_min), seconds=self.rng.randint(0, 59))
        return local.replace(microsecond=0).astimezone(UTC)

    def in_past(self, moment: datetime) -> bool:
        return moment <= self.end


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    summary_zh: str
    summary_en: str
    build: Callable[[_Context], tuple[list[GlucoseSample], list[BpSample]]]
    min_days: int = 1


def _gauss(rng: random.Random, mean: float, sd: float, low: float, high: float) -> float:
    return min(max(rng.gauss(mean, sd), low), high)


def _mmol(value: float) -> float:
    return round(value, 1)  # meters display 0.1 mmol/L


# -- building blocks ---------------------------------------------------------------------------
_GLUCOSE_SLOTS: Final = (
    # (local start, spread min, meal, mean, sd, low, high, probability)
    (time(6, 30), 60, MEAL_FASTING, 5.6, 0.5, 4.4, 6.9, 1.0),
    (time(9, 0), 45, MEAL_POSTPRANDIAL, 7.8, 0.8, 5.5, 9.8, 0.85),
    (time(17, 30), 60, MEAL_PREPRANDIAL, 6.0, 0.6, 4.4, 7.5, 0.7),
    (time(21, 45), 45, MEAL_BEDTIME, 6.8, 0.7, 4.8, 8.8, 0.85),
)


def _glucose_days(ctx: _Context) -> Iterator[tuple[date, list[GlucoseSample]]]:
    for day in ctx.day_dates():
        samples: list[GlucoseSample] = []
        for start, spread, meal, mean, sd, low, high, probability in _GLUCOSE_SLOTS:
            # Draw every value even when the slot is skipped: the stream stays aligned by day.
            at = ctx.at(day, start, spread)
            value = _mmol(_gauss(ctx.rng, mean, sd, low, high))
            carbs = round(ctx.rng.uniform(40, 70))
            if ctx.rng.random() > probability or not ctx.in_past(at):
                continue
            post = meal == MEAL_POSTPRANDIAL
            samples.append(
                GlucoseSample(
                    measured_at=at,
                    glucose_mmol_l=value,
                    meal=meal,
                    carbohydrate_id=CARB_BREAKFAST if post else None,
                    carbohydrate_g=float(carbs) if post else None,
                )
            )
        yield day, samples


@dataclass(frozen=True, slots=True)
class _BpProfile:
    systolic: float
    diastolic: float
    pulse: float
    sd_systolic: float = 6.0
    sd_diastolic: float = 4.0


_NORMAL_USER_1: Final = _BpProfile(118, 76, 68)
_NORMAL_USER_2: Final = _BpProfile(112, 72, 72)
_HYPERTENSIVE_USER_1: Final = _BpProfile(148, 93, 74, 5.0, 3.0)


def _bp_reading(
    ctx: _Context, at: datetime, profile: _BpProfile, user_id: int, shift: float = 0.0
) -> BpSample:
    systolic = round(_gauss(ctx.rng, profile.systolic + shift, profile.sd_systolic, 90, 175))
    diastolic = round(_gauss(ctx.rng, profile.diastolic + shift / 2, profile.sd_diastolic, 55, 115))
    diastolic = min(diastolic, systolic - 25)
    pulse = round(_gauss(ctx.rng, profile.pulse, 5.0, 50, 110))
    return BpSample(at, systolic, diastolic, pulse, user_id)


def _bp_days(
    ctx: _Context, profiles: Mapping[int, _BpProfile]
) -> Iterator[tuple[date, list[BpSample]]]:
    for day in ctx.day_dates():
        samples: list[BpSample] = []
        for user_id, profile in profiles.items():
            for start, shift in ((time(6, 45), 4.0), (time(20, 30), 0.0)):
                first = ctx.at(day, start, 45)
                for repeat in range(2):
                    at = first + timedelta(minutes=repeat, seconds=ctx.rng.randint(50, 70))
                    reading = _bp_reading(ctx, at, profile, user_id, shift)
                    if ctx.in_past(at):
                        samples.append(reading)
        samples.sort(key=lambda s: s.measured_at)
        yield day, samples


def _flatten_glucose(days: Iterator[tuple[date, list[GlucoseSample]]]) -> list[GlucoseSample]:
    return [sample for _day, samples in days for sample in samples]


def _flatten_bp(days: Iterator[tuple[date, list[BpSample]]]) -> list[BpSample]:
    return [sample for _day, samples in days for sample in samples]


def _normal_bp(ctx: _Context) -> list[BpSample]:
    return _flatten_bp(_bp_days(ctx, {1: _NORMAL_USER_1, 2: _NORMAL_USER_2}))


def _latest_day_with_time(ctx: _Context, start: time, spread_min: int) -> datetime:
    """The newest local day whose ``start`` + spread lies in the past, as aware UTC."""
    for day in reversed(ctx.day_dates()):
        at = ctx.at(day, start, spread_min)
        if ctx.in_past(at):
            return at
    raise ScenarioError(ctx.name, "the time window is too short for this scenario")


# -- scenarios ---------------------------------------------------------------------------------
def _well_controlled(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    return _flatten_glucose(_glucose_days(ctx)), _normal_bp(ctx)


def _sustained_home_hypertension(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    glucose = _flatten_glucose(_glucose_days(ctx))
    bp = _flatten_bp(_bp_days(ctx, {1: _HYPERTENSIVE_USER_1, 2: _NORMAL_USER_2}))
    return glucose, bp


def _hypertensive_crisis(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    glucose = _flatten_glucose(_glucose_days(ctx))
    bp = _flatten_bp(_bp_days(ctx, {1: _HYPERTENSIVE_USER_1, 2: _NORMAL_USER_2}))
    first = _latest_day_with_time(ctx, time(7, 50), 20)
    systolic = ctx.rng.randint(184, 196)
    diastolic = ctx.rng.randint(121, 128)
    crisis = BpSample(first, systolic, diastolic, ctx.rng.randint(88, 98), 1)
    recheck_at = first + timedelta(minutes=5)
    recheck = BpSample(
        recheck_at,
        systolic - ctx.rng.randint(0, 4),
        diastolic - ctx.rng.randint(0, 1),
        ctx.rng.randint(86, 96),
        1,
    )
    bp.append(crisis)
    if ctx.in_past(recheck_at):
        bp.append(recheck)
    return glucose, bp


def _nocturnal_hypo(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    glucose = _flatten_glucose(_glucose_days(ctx))
    at = _latest_day_with_time(ctx, time(2, 40), 60)
    glucose.append(GlucoseSample(at, _mmol(ctx.rng.uniform(2.3, 2.9)), meal=MEAL_CASUAL))
    recheck_at = at + timedelta(minutes=15)
    if ctx.in_past(recheck_at):  # after 15 g of fast sugar (the 15-15 rule)
        glucose.append(
            GlucoseSample(recheck_at, _mmol(ctx.rng.uniform(3.9, 4.6)), meal=MEAL_CASUAL)
        )
    return glucose, _normal_bp(ctx)


MISSED_DAYS: Final = 4


def _missed_readings(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    dates = ctx.day_dates()
    first_missing = max(1, (len(dates) - MISSED_DAYS) // 2)
    missing = set(dates[first_missing : first_missing + MISSED_DAYS])
    zone = ctx.zone
    glucose = [
        s
        for s in _flatten_glucose(_glucose_days(ctx))
        if s.measured_at.astimezone(zone).date() not in missing
    ]
    bp = [s for s in _normal_bp(ctx) if s.measured_at.astimezone(zone).date() not in missing]
    return glucose, bp


def _hi_lo(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    glucose = _flatten_glucose(_glucose_days(ctx))
    high_at = _latest_day_with_time(ctx, time(19, 30), 30)
    low_at = _latest_day_with_time(ctx, time(15, 0), 30)
    glucose.append(
        GlucoseSample(
            high_at,
            _mmol(METER_HIGH_LIMIT_MMOL_L + 0.1),
            meal=MEAL_CASUAL,
            sensor_status=STATUS_RESULT_TOO_HIGH,
        )
    )
    glucose.append(
        GlucoseSample(
            low_at,
            _mmol(METER_LOW_LIMIT_MMOL_L - 0.1),
            meal=MEAL_CASUAL,
            sensor_status=STATUS_RESULT_TOO_LOW,
        )
    )
    return glucose, _normal_bp(ctx)


def _control_solution(ctx: _Context) -> tuple[list[GlucoseSample], list[BpSample]]:
    glucose = _flatten_glucose(_glucose_days(ctx))
    at = _latest_day_with_time(ctx, time(10, 30), 60)
    glucose.append(
        GlucoseSample(
            at,
            _mmol(ctx.rng.uniform(6.2, 7.6)),  # a level-2 control solution range
            sample_type=CONTROL_SOLUTION_TYPE,
            sample_location=CONTROL_SOLUTION_LOCATION,
        )
    )
    return glucose, _normal_bp(ctx)


SCENARIOS: Final[Mapping[str, ScenarioSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            ScenarioSpec(
                "well_controlled",
                "控制良好：血糖和血压都在目标范围内",
                "well controlled: glucose and blood pressure in target",
                _well_controlled,
            ),
            ScenarioSpec(
                "sustained_home_hypertension",
                "持续家庭高血压：7 天家庭血压均值 ≥ 135/85 mmHg",
                "sustained home hypertension: 7-day home mean >= 135/85 mmHg",
                _sustained_home_hypertension,
                min_days=7,
            ),
            ScenarioSpec(
                "hypertensive_crisis",
                "高血压危象：一次 ≥ 180/120 mmHg，数分钟后复测仍然如此",
                "hypertensive crisis: a reading >= 180/120 mmHg, confirmed by a re-check",
                _hypertensive_crisis,
            ),
            ScenarioSpec(
                "nocturnal_level2_hypoglycaemia",
                "夜间 2 级低血糖：夜里血糖 < 3.0 mmol/L",
                "nocturnal level 2 hypoglycaemia: glucose < 3.0 mmol/L at night",
                _nocturnal_hypo,
            ),
            ScenarioSpec(
                "missed_readings",
                "漏测：连续几天没有任何测量",
                "missed readings: several days without any measurement",
                _missed_readings,
                min_days=MISSED_DAYS + 3,
            ),
            ScenarioSpec(
                "hi_lo",
                "超出量程：血糖仪显示 HI 和 LO",
                "out of range: the meter shows HI and LO",
                _hi_lo,
            ),
            ScenarioSpec(
                "control_solution",
                "质控液测试：不是病人的血糖值",
                "control solution test: not a patient value",
                _control_solution,
            ),
        )
    }
)


def scenario_names() -> tuple[str, ...]:
    return tuple(SCENARIOS)


def generate(
    name: str,
    *,
    seed: int,
    end: datetime,
    days: int = 14,
    utc_offset_minutes: int = 480,
) -> ScenarioData:
    """The samples of scenario ``name`` for the ``days`` local days ending at ``end``.

    ``end`` is aware (the simulated "now"); nothing is generated after it. The same ``name``,
    ``seed``, ``end``, ``days`` and offset give the same samples. ``utc_offset_minutes`` is the
    household's zone (China Standard Time +480 by default).
    """
    spec = SCENARIOS.get(name)
    if spec is None:
        raise ScenarioError(name, f"unknown; choose one of {', '.join(SCENARIOS)}")
    if end.tzinfo is None or end.utcoffset() is None:
        raise ScenarioError(name, "end must be an aware datetime")
    if days < spec.min_days:
        raise ScenarioError(name, f"needs at least {spec.min_days} day(s), got {days}")
    zone = timezone(timedelta(minutes=utc_offset_minutes))
    rng = random.Random(f"{name}:{seed}")  # noqa: S311 - simulation, not security
    ctx = _Context(name, rng, end.astimezone(UTC), days, zone)
    glucose, bp = spec.build(ctx)
    return ScenarioData(
        name=name,
        seed=seed,
        utc_offset_minutes=utc_offset_minutes,
        glucose=tuple(sorted(glucose, key=lambda s: s.measured_at)),
        blood_pressure=tuple(sorted(bp, key=lambda s: s.measured_at)),
    )
