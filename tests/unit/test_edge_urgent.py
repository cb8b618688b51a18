"""Local urgent rules: G1 (level-2 hypo, LO), G6 (HI, >= 33.3), B3 (re-measure), B1-2."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from device_drivers.model import Reading, ReadingFlag
from edge.errors import ThresholdError
from edge.pipeline import EdgeState, ProcessedBatch, process
from edge.urgent import (
    LocalAlert,
    Severity,
    ThresholdSet,
    UrgentRule,
    UrgentThresholds,
    evaluate_urgent,
)
from tests.unit.edge_builders import NOW, cuff, glucose, meter, pressure

F = ReadingFlag
MIN = timedelta(minutes=1)


def run(
    batch: list[Reading],
    state: EdgeState | None = None,
    thresholds: ThresholdSet | None = None,
    person_of: object = None,
) -> ProcessedBatch:
    return process(
        batch,
        NOW,
        state or EdgeState.initial(),
        thresholds,
        person_of=person_of,  # type: ignore[arg-type]
    )


def rules(alerts: tuple[LocalAlert, ...]) -> list[str]:
    return [a.rule.value for a in alerts]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.0, []),  # level 2 is strictly below 3.0 mmol/L
        (2.99, ["G1"]),
        (1.2, ["G1"]),
        (0.4, ["G1"]),  # implausibly low still alerts (safety first), flagged
        (3.5, []),  # level 1 is the cloud's business
        (33.2, []),
        (33.3, ["G6"]),
        (45.0, ["G6"]),
        (50.0, ["G6"]),
        (100.0, []),  # implausible (mg/dL read as mmol/L): no "call 120", flagged instead
    ],
)
def test_glucose_thresholds(value: float, expected: list[str]) -> None:
    assert rules(run([glucose(value)]).local_alerts) == expected


def test_hypo_alert_tells_the_household_what_to_do_in_chinese_first() -> None:
    (alert,) = run([glucose(2.6)]).local_alerts
    assert alert.rule is UrgentRule.G1
    assert alert.severity is Severity.URGENT
    assert alert.value_text == "2.6 mmol/L"
    assert "15–20克" in alert.message_zh
    assert "15分钟后复测" in alert.message_zh
    assert "15–20 g" in alert.message_en
    assert "15 minutes" in alert.message_en
    assert "120" in alert.message_zh
    assert alert.device_key == meter().key
    assert alert.reading_identity == glucose(2.6).identity
    assert alert.measured_at == NOW - timedelta(minutes=5)
    assert alert.raised_at == NOW
    assert alert.alert_id == "G1|" + "|".join(glucose(2.6).identity)


def test_meter_lo_is_an_urgent_low_and_hi_an_emergency_high() -> None:
    lo = glucose(None, flags={F.LOW_OUT_OF_RANGE, F.VALUE_MISSING})
    hi = glucose(None, seq=2, flags={F.HIGH_OUT_OF_RANGE, F.VALUE_MISSING})
    alerts = run([lo, hi]).local_alerts
    by_rule = {a.rule: a for a in alerts}
    assert by_rule[UrgentRule.G1].value_text == "LO"
    assert by_rule[UrgentRule.G6].value_text == "HI"
    assert by_rule[UrgentRule.G6].severity is Severity.EMERGENCY
    assert "120" in by_rule[UrgentRule.G6].message_zh


def test_hi_lo_from_sensor_status_bits_alone_also_alert() -> None:
    lo = glucose(None, sensor_status=1 << 6, flags={F.VALUE_MISSING})
    hi = glucose(None, seq=2, sensor_status=1 << 5, flags={F.VALUE_MISSING})
    assert sorted(rules(run([lo, hi]).local_alerts)) == ["G1", "G6"]


@pytest.mark.parametrize(
    "reading",
    [
        glucose(1.5, flags={F.CONTROL_SOLUTION}),
        glucose(1.5, sample_type=10),  # flag not set by the converter: the edge derives it
        glucose(1.5, sample_location=4),
        glucose(None, flags={F.CONTROL_SOLUTION, F.LOW_OUT_OF_RANGE}),
        glucose(None, flags={F.CONTROL_SOLUTION, F.HIGH_OUT_OF_RANGE}),
        glucose(40.0, sample_type=10),
    ],
)
def test_control_solution_never_alerts(reading: Reading) -> None:
    assert run([reading]).local_alerts == ()


def test_missing_values_never_alert() -> None:
    assert run([glucose(None, flags={F.VALUE_MISSING})]).local_alerts == ()
    assert run([pressure(None, None, flags={F.VALUE_MISSING})]).local_alerts == ()
    assert run([pressure(200.0, 120.0, flags={F.VALUE_MISSING})]).local_alerts == ()


@pytest.mark.parametrize(
    ("systolic", "diastolic", "expected"),
    [
        (179.0, 109.0, []),
        (180.0, 90.0, ["B3"]),
        (150.0, 110.0, ["B3"]),
        (220.0, 130.0, ["B3"]),
    ],
)
def test_single_high_pressure_asks_for_a_re_measure(
    systolic: float, diastolic: float, expected: list[str]
) -> None:
    alerts = run([pressure(systolic, diastolic)]).local_alerts
    assert rules(alerts) == expected
    if alerts:
        assert alerts[0].severity is Severity.WARN
        assert "1–5分钟" in alerts[0].message_zh
        assert "1–5 minutes" in alerts[0].message_en


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (timedelta(seconds=30), ["B3", "B3"]),  # too soon to count as a re-measure
        (timedelta(seconds=60), ["B3", "B1-2"]),
        (timedelta(minutes=3), ["B3", "B1-2"]),
        (timedelta(minutes=10), ["B3", "B1-2"]),  # guideline 1-5 min, allowed up to 10
        (timedelta(minutes=10, seconds=1), ["B3", "B3"]),
    ],
)
def test_second_high_reading_confirms_within_the_window(
    gap: timedelta, expected: list[str]
) -> None:
    first = pressure(186.0, 112.0, at=NOW - 15 * MIN)
    second = pressure(190.0, 115.0, at=NOW - 15 * MIN + gap)
    alerts = run([first, second]).local_alerts
    assert rules(alerts) == expected
    if expected[-1] == "B1-2":
        assert alerts[1].confirms == first.identity
        assert alerts[1].severity is Severity.URGENT
        assert "120" in alerts[1].message_zh
        assert "家庭医生" in alerts[1].message_zh


def test_confirmation_works_across_batches_through_the_state() -> None:
    first = run([pressure(186.0, 112.0, at=NOW - 3 * MIN)])
    assert rules(first.local_alerts) == ["B3"]
    second = run([pressure(188.0, 111.0, at=NOW - MIN)], state=first.state)
    assert rules(second.local_alerts) == ["B1-2"]
    # without the state the second reading is a fresh B3
    assert rules(run([pressure(188.0, 111.0, at=NOW - MIN)]).local_alerts) == ["B3"]


def test_a_normal_re_measure_does_not_confirm() -> None:
    batch = [pressure(186.0, 112.0, at=NOW - 5 * MIN), pressure(150.0, 95.0, at=NOW - 3 * MIN)]
    assert rules(run(batch).local_alerts) == ["B3"]


def test_an_implausible_reading_is_prompted_but_never_confirms() -> None:
    garbage = pressure(186.0, 200.0, at=NOW - 5 * MIN)  # systolic not above diastolic
    real = pressure(190.0, 112.0, at=NOW - 3 * MIN)
    alerts = run([garbage, real]).local_alerts
    assert rules(alerts) == ["B3", "B3"]
    assert F.SYSTOLIC_NOT_ABOVE_DIASTOLIC in alerts[0].reading_flags


def test_confirmation_pairs_the_same_person_only() -> None:
    one = pressure(186.0, 112.0, at=NOW - 5 * MIN, user=1)
    two = pressure(190.0, 112.0, at=NOW - 3 * MIN, user=2)
    assert rules(run([one, two]).local_alerts) == ["B3", "B3"]  # two slots, two people
    # two cuffs of the same person pair through the enrollment
    other_cuff = pressure(190.0, 112.0, at=NOW - 3 * MIN, device=cuff(2))
    owners = {cuff().key: "p-1", cuff(2).key: "p-1"}
    alerts = run([one, other_cuff], person_of=lambda r: owners.get(r.device.key)).local_alerts
    assert rules(alerts) == ["B3", "B1-2"]
    assert {a.person_ref for a in alerts} == {"p-1"}


def test_per_person_thresholds_override_the_defaults() -> None:
    owners = {meter(1).key: "strict", meter(2).key: "default"}
    thresholds = ThresholdSet.of(
        per_person={"strict": UrgentThresholds(hypo_level2_mmol_l=3.9, systolic_crisis_mmhg=170.0)}
    )
    batch: list[Reading] = [
        glucose(3.5, device=meter(1)),
        glucose(3.5, device=meter(2)),
        pressure(172.0, 90.0, device=cuff(1)),
    ]
    owners[cuff(1).key] = "strict"
    out = run(batch, thresholds=thresholds, person_of=lambda r: owners.get(r.device.key))
    assert sorted((a.rule.value, a.person_ref) for a in out.local_alerts) == [
        ("B3", "strict"),
        ("G1", "strict"),
    ]
    # a plain UrgentThresholds is the default for everyone
    everyone = process(batch, NOW, EdgeState.initial(), UrgentThresholds(hypo_level2_mmol_l=3.9))
    assert sorted(rules(everyone.local_alerts)) == ["G1", "G1"]


def test_old_readings_raise_no_local_alert_and_are_counted() -> None:
    old = glucose(2.1, at=NOW - timedelta(hours=3))
    out = run([old, glucose(2.2, seq=2, at=NOW - 59 * MIN)])
    assert rules(out.local_alerts) == ["G1"]
    assert out.local_alerts[0].measured_at == NOW - 59 * MIN
    assert out.stats.urgent_too_old == 1
    longer = ThresholdSet.of(UrgentThresholds(act_window_s=4 * 3600.0))
    assert len(run([old], thresholds=longer).local_alerts) == 1


def test_untrusted_time_alerts_only_for_the_latest_reading_of_the_device() -> None:
    dump = [glucose(2.0 + i / 10, seq=i, at=NOW.replace(year=1999)) for i in range(1, 6)]
    out = run(dump)
    (alert,) = out.local_alerts
    assert alert.reading_identity == dump[-1].identity
    assert F.TIME_FAULT in alert.reading_flags
    assert alert.measured_at == NOW  # judged by its reception, not its broken 1999 clock
    assert out.stats.urgent_untrusted_time == 4


def test_alert_ids_are_stable_across_replays() -> None:
    batch = [glucose(2.5), pressure(200.0, 120.0)]
    a = run(batch).local_alerts
    b = run(list(reversed(batch))).local_alerts
    assert sorted(x.alert_id for x in a) == sorted(x.alert_id for x in b)
    assert len({x.alert_id for x in a}) == 2


def test_duplicates_do_not_alert_twice() -> None:
    first = run([glucose(2.5)])
    again = run([glucose(2.5)], state=first.state)
    assert len(first.local_alerts) == 1
    assert again.local_alerts == ()
    assert again.stats.duplicates_seen_before == 1


def test_evaluate_urgent_directly_prunes_expired_confirmations() -> None:
    first = evaluate_urgent([pressure(190.0, 100.0)], NOW, ThresholdSet())
    assert len(first.recent_high) == 1
    later = evaluate_urgent([], NOW + timedelta(hours=2), ThresholdSet(), first.recent_high)
    assert later.recent_high == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hypo_level2_mmol_l": 0.0},
        {"hypo_level2_mmol_l": math.nan},
        {"systolic_crisis_mmhg": 400.0},
        {"confirm_min_s": 600.0, "confirm_max_s": 60.0},
        {"act_window_s": -1.0},
    ],
)
def test_nonsense_thresholds_raise_a_typed_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ThresholdError) as info:
        UrgentThresholds(**kwargs)
    assert info.value.name in kwargs


def test_alert_records_are_frozen() -> None:
    (alert,) = run([glucose(2.5)]).local_alerts
    with pytest.raises(AttributeError):
        alert.rule = UrgentRule.G6  # type: ignore[misc]
    assert replace(alert, person_ref="p").person_ref == "p"
