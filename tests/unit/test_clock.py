"""session.clock: skew from Current Time 0x2A2B, whether to write it, and time correction
(specs/ble.md §3). Wire vectors are literal hex."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.codec.time_service import CurrentTime
from device_drivers.session.clock import (
    ClockDecision,
    current_time_for,
    device_time_to_utc,
    gateway_local_time,
    measure_skew,
    plan_clock,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
READ_AT = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


def cts(text: str) -> CurrentTime:
    return CurrentTime.from_bytes(bytes.fromhex(text))


def test_skew_is_device_minus_gateway_local_time_with_fractions() -> None:
    # 2026-11-24 08:00:30, Tuesday, 128/256 s, external reference update
    device = cts("ea 07 0b 18 08 00 1e 02 80 02")
    assert measure_skew(device, READ_AT, SHANGHAI) == 30.5


def test_meter_left_on_utc_in_shanghai_has_minus_eight_hours() -> None:
    device = cts("ea 07 0b 18 00 00 00 02 00 00")  # 00:00:00 = UTC, not local
    skew = measure_skew(device, READ_AT, SHANGHAI)
    assert skew == -8 * 3600
    # a reading the meter stamped 2026-11-23 23:15 (its UTC clock) happened at 23:15 UTC
    measured = device_time_to_utc(
        datetime(2026, 11, 23, 23, 15), SHANGHAI, clock_skew_s=skew, reference=READ_AT
    )
    assert measured == datetime(2026, 11, 23, 23, 15, tzinfo=UTC)


def test_unknown_device_date_gives_no_skew_and_asks_for_a_write() -> None:
    device = cts("00 00 00 00 00 00 00 00 00 00")
    assert measure_skew(device, READ_AT, SHANGHAI) is None
    assert plan_clock(None, writable=True).decision is ClockDecision.WRITE


@pytest.mark.parametrize(
    ("skew", "writable", "decision"),
    [
        (0.0, True, ClockDecision.KEEP),
        (-60.0, True, ClockDecision.KEEP),
        (60.5, True, ClockDecision.WRITE),
        (-3600.0, True, ClockDecision.WRITE),
        (-3600.0, False, ClockDecision.CANNOT_WRITE),
        (5.0, False, ClockDecision.KEEP),
    ],
)
def test_plan_clock_tolerance(skew: float, writable: bool, decision: ClockDecision) -> None:
    plan = plan_clock(skew, writable=writable, tolerance_s=60.0)
    assert plan.decision is decision
    assert plan.skew_s == skew


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        plan_clock(1.0, writable=True, tolerance_s=-1)


def test_current_time_to_write_is_household_local_time_external_reference() -> None:
    now = datetime(2026, 11, 24, 0, 0, 0, 500_000, tzinfo=UTC)
    value = current_time_for(now, SHANGHAI)
    # 2026-11-24 08:00:00, Tuesday (2), 128/256, adjust reason 0x02
    assert bytes(value) == bytes.fromhex("ea 07 0b 18 08 00 00 02 80 02")


def test_writing_then_reading_back_gives_zero_skew() -> None:
    now = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)
    value = CurrentTime.from_bytes(bytes(current_time_for(now, SHANGHAI)))
    assert measure_skew(value, now, SHANGHAI) == 0.0


def test_free_running_clock_across_dst_uses_the_offset_at_the_read() -> None:
    # Set in winter (CET, +1), not following DST: in summer (CEST, +2) it is an hour behind.
    summer_read = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # 12:00 CEST
    skew = measure_skew(cts("ea 07 07 01 0b 00 00 03 00 00"), summer_read, BERLIN)
    assert skew == -3600
    winter_record = datetime(2026, 1, 10, 10, 0)  # meter said 10:00 = 10:00 CET = 09:00 UTC
    assert device_time_to_utc(
        winter_record, BERLIN, clock_skew_s=skew, reference=summer_read
    ) == datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    summer_record = datetime(2026, 6, 30, 9, 0)  # meter 09:00 = 10:00 CEST = 08:00 UTC
    assert device_time_to_utc(
        summer_record, BERLIN, clock_skew_s=skew, reference=summer_read
    ) == datetime(2026, 6, 30, 8, 0, tzinfo=UTC)


def test_without_skew_the_device_time_is_household_local_time() -> None:
    assert device_time_to_utc(
        datetime(2026, 11, 24, 7, 30), SHANGHAI, clock_skew_s=None, reference=READ_AT
    ) == datetime(2026, 11, 23, 23, 30, tzinfo=UTC)


def test_naive_and_aware_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="naive"):
        device_time_to_utc(READ_AT, SHANGHAI, clock_skew_s=0.0, reference=READ_AT)
    with pytest.raises(ValueError, match="aware"):
        device_time_to_utc(
            datetime(2026, 1, 1), SHANGHAI, clock_skew_s=0.0, reference=datetime(2026, 1, 1)
        )
    with pytest.raises(ValueError, match="aware"):
        gateway_local_time(datetime(2026, 1, 1), SHANGHAI)


_instants = st.integers(min_value=1_600_000_000, max_value=2_000_000_000).map(
    lambda s: datetime.fromtimestamp(s, tz=UTC)
)


@given(
    true_time=_instants,
    read_at=_instants,
    skew_s=st.integers(min_value=-400 * 86_400, max_value=400 * 86_400),
    zone=st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "America/Sao_Paulo", "UTC"]),
)
def test_any_skewed_fixed_offset_clock_is_corrected(
    true_time: datetime, read_at: datetime, skew_s: int, zone: str
) -> None:
    """A device clock running ``skew_s`` ahead of household local time: the measured skew
    recovers it and the correction recovers the true instant (zones without DST today)."""
    tz = ZoneInfo(zone)
    offset = read_at.astimezone(tz).utcoffset()
    assert offset is not None

    def shows(instant: datetime) -> datetime:
        """What the device's naive clock shows at an instant (free running since it was set)."""
        return (instant + offset).replace(tzinfo=None) + timedelta(seconds=skew_s)

    device_now = CurrentTime.from_bytes(bytes(CurrentTime.from_datetime(shows(read_at))))
    measured = measure_skew(device_now, read_at, tz)
    assert measured == skew_s
    corrected = device_time_to_utc(shows(true_time), tz, clock_skew_s=measured, reference=read_at)
    assert corrected == true_time
