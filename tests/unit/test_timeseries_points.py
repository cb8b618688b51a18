"""Pure parts of the time-series mirror: line-protocol vectors and the retry backoff."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cloud.settings import TsdbSettings
from cloud.timeseries.backoff import backoff_s
from cloud.timeseries.points import MirrorReading, line_protocol, to_line

PERSON = uuid.UUID("11111111-1111-4111-8111-111111111111")
HOUSEHOLD = uuid.UUID("22222222-2222-4222-8222-222222222222")
DEVICE = uuid.UUID("33333333-3333-4333-8333-333333333333")
AT = datetime(2026, 3, 1, 7, 30, 5, 250_000, tzinfo=UTC)  # 1772350205250 ms


def reading(kind: str, person: uuid.UUID | None = PERSON, **values: float | None) -> MirrorReading:
    return MirrorReading(kind, AT, HOUSEHOLD, person, DEVICE, values)


def test_blood_pressure_is_one_point_with_four_fields_and_opaque_tags() -> None:
    line = to_line(
        reading(
            "blood_pressure_monitor",
            systolic_mmhg=128.0,
            diastolic_mmhg=82.0,
            mean_arterial_mmhg=97.3,
            pulse_bpm=70.0,
        )
    )
    assert line == (
        "blood_pressure,device=33333333-3333-4333-8333-333333333333,"
        "device_kind=blood_pressure_monitor,household=22222222-2222-4222-8222-222222222222,"
        "person=11111111-1111-4111-8111-111111111111 "
        "systolic=128,diastolic=82,mean=97.3,pulse=70 1772350205250"
    )


def test_glucose_in_mmol_per_litre_and_missing_values_leave_fields_out() -> None:
    line = to_line(reading("glucose_meter", person=None, glucose_mmol_l=5.55))
    assert line is not None
    assert line.startswith("glucose,device=")
    assert "person=" not in line  # unassigned: no person tag
    assert line.endswith(" mmol_l=5.55 1772350205250")
    bp = to_line(reading("blood_pressure_monitor", systolic_mmhg=120.0, diastolic_mmhg=80.0))
    assert bp is not None
    assert " systolic=120,diastolic=80 " in bp


@pytest.mark.parametrize(
    "item",
    [
        reading("glucose_meter", glucose_mmol_l=None),  # HI/LO: no number
        reading("glucose_meter", glucose_mmol_l=float("nan")),
        reading("thermometer", glucose_mmol_l=5.0),  # a kind this version does not know
    ],
)
def test_nothing_to_write_gives_no_line(item: MirrorReading) -> None:
    assert to_line(item) is None
    assert line_protocol([item]) == []


def test_timestamp_is_utc_milliseconds_whatever_the_offset() -> None:
    shanghai = AT.astimezone(timezone(timedelta(hours=8)))
    item = MirrorReading("glucose_meter", shanghai, None, None, None, {"glucose_mmol_l": 6.0})
    assert to_line(item) == "glucose,device_kind=glucose_meter mmol_l=6 1772350205250"
    naive = AT.replace(tzinfo=None)
    with pytest.raises(ValueError, match="aware"):
        to_line(MirrorReading("glucose_meter", naive, None, None, None, {"glucose_mmol_l": 6.0}))


def test_backoff_doubles_from_the_minimum_up_to_the_maximum() -> None:
    assert [backoff_s(n, 1.0, 60.0) for n in range(9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(10_000, 0.5, 30.0) == 30.0
    with pytest.raises(ValueError, match="minimum_s"):
        backoff_s(1, 2.0, 1.0)


def test_settings_refuse_a_maximum_wait_below_the_minimum() -> None:
    with pytest.raises(ValueError, match="retry_max_s"):
        TsdbSettings(retry_min_s=10, retry_max_s=5)
