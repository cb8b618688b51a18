"""BloodPressureSession: indications from a cuff, resend dedupe, multi-user (specs/ble.md §2.4-2.5).
Wire vectors are literal hex."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.convert import bp_reading
from device_drivers.model import DeviceIdentity, DeviceKind
from device_drivers.session.bp_measurement import (
    BloodPressureSession,
    BpOutput,
    CuffPressure,
    DuplicateMeasurement,
    MalformedMeasurement,
    MeasurementReceived,
    SessionEnded,
    SessionState,
    UnexpectedValue,
    fresh_readings,
)
from device_drivers.session.common import LocalProtocolError, Subscribe

BPM, ICP = 0x2A35, 0x2A36


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def stored(user: int, minute: int = 0, systolic: int = 120) -> bytes:
    """flags 1e (time stamp, pulse, user, status; mmHg): <systolic>/80 MAP 93,
    2026-11-24 08:<minute>:00, pulse 72, user id, status 0."""
    return h(
        f"1e {systolic:02x} 00 50 00 5d 00 ea 07 0b 18 08 {minute:02x} 00 48 00 {user:02x} 00 00"
    )


NO_STAMP = h("0c 78 00 50 00 5d 00 48 00 01")  # flags 0c: pulse + user, no time stamp


def received(out: list[BpOutput]) -> list[MeasurementReceived]:
    return [o for o in out if isinstance(o, MeasurementReceived)]


def started(**kw: bool) -> BloodPressureSession:
    s = BloodPressureSession(**kw)
    s.start()
    return s


def test_start_subscribes_the_measurement_then_the_cuff_pressure() -> None:
    assert BloodPressureSession().start() == [Subscribe(BPM)]
    assert BloodPressureSession(has_intermediate_cuff_pressure=True).start() == [
        Subscribe(BPM),
        Subscribe(ICP),
    ]


def test_measurement_is_decoded_by_the_codec() -> None:
    s = started()
    (event,) = s.on_indicate(BPM, stored(1))
    assert isinstance(event, MeasurementReceived)
    m = event.measurement
    assert m.systolic.value == 120
    assert m.user_id == 1
    assert m.timestamp is not None
    assert m.timestamp.iso() == "2026-11-24T08:00:00"


def test_resent_stored_reading_is_deduplicated_within_the_session() -> None:
    s = started()
    out = s.on_values([(BPM, stored(1)), (BPM, stored(1, minute=5)), (BPM, stored(1))])
    assert [type(o) for o in out] == [
        MeasurementReceived,
        MeasurementReceived,
        DuplicateMeasurement,
    ]
    assert (s.received_count, s.duplicate_count) == (2, 1)
    assert s.close() == [SessionEnded(received=2, duplicates=1)]


def test_same_time_and_values_for_two_users_are_two_readings() -> None:
    s = started()
    out = s.on_values([(BPM, stored(1)), (BPM, stored(2)), (BPM, stored(2))])
    assert [r.measurement.user_id for r in received(out)] == [1, 2]


def test_same_user_and_time_with_other_values_is_kept() -> None:
    s = started()
    assert len(received(s.on_values([(BPM, stored(1)), (BPM, stored(1, systolic=130))]))) == 2


def test_without_time_stamp_a_repeat_cannot_be_told_from_a_new_measurement() -> None:
    s = started()
    assert len(received(s.on_values([(BPM, NO_STAMP), (BPM, NO_STAMP)]))) == 2


def test_intermediate_cuff_pressure() -> None:
    s = started(has_intermediate_cuff_pressure=True)
    # flags 00: cuff 150 mmHg, diastolic/MAP NaN (ignored)
    assert s.on_notify(ICP, h("00 96 00 ff 07 ff 07")) == [CuffPressure(150.0, "mmHg")]
    # flags 09 (kPa + user): 0xF0A0 = 16.0 kPa, zeros in the ignored slots (Nordic), user 2
    assert s.on_notify(ICP, h("09 a0 f0 00 00 00 00 02")) == [CuffPressure(16.0, "kPa", 2)]
    assert s.on_notify(ICP, h("00 ff 07 ff 07 ff 07")) == [CuffPressure(None, "mmHg")]
    assert CuffPressure(16.0, "kPa").mmhg == 120.0


def test_malformed_value_is_an_event_and_the_session_goes_on() -> None:
    s = started()
    (bad,) = s.on_indicate(BPM, h("1e 78 00 50"))
    assert isinstance(bad, MalformedMeasurement)
    assert bad.payload == h("1e 78 00 50")
    assert bad.error.characteristic == "blood_pressure_measurement"
    assert len(received(s.on_indicate(BPM, stored(1)))) == 1


def test_value_on_another_characteristic_is_unexpected() -> None:
    s = started()
    assert s.on_notify(0x2A19, h("64")) == [UnexpectedValue(0x2A19, h("64"))]


def test_local_misuse_raises_and_values_after_close_are_ignored() -> None:
    s = BloodPressureSession()
    with pytest.raises(LocalProtocolError):
        s.on_indicate(BPM, stored(1))
    with pytest.raises(LocalProtocolError):
        s.close()
    s.start()
    with pytest.raises(LocalProtocolError):
        s.start()
    s.close()
    assert s.state is SessionState.CLOSED
    assert s.on_indicate(BPM, stored(1)) == []
    with pytest.raises(LocalProtocolError) as err:
        s.close()
    assert err.value.state == "closed"


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(0, 5)), max_size=30))
def test_any_order_of_resends_passes_each_reading_once(items: list[tuple[int, int]]) -> None:
    s = started()
    out = s.on_values([(BPM, stored(user, minute)) for user, minute in items])
    got = [
        (r.measurement.user_id, r.measurement.timestamp.minutes)
        for r in received(out)
        if r.measurement.timestamp is not None
    ]
    assert got == list(dict.fromkeys(items))
    assert s.duplicate_count == len(items) - len(set(items))


# -- across sessions ------------------------------------------------------------------------------

CUFF = DeviceIdentity("C0:00:00:00:00:02", DeviceKind.BLOOD_PRESSURE_MONITOR, serial_number="7")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def collect(payloads: list[bytes]) -> list[MeasurementReceived]:
    s = started()
    return received(s.on_values([(BPM, p) for p in payloads]))


def test_resends_in_a_later_session_are_dropped_against_seen_identities() -> None:
    first_at = datetime(2026, 11, 24, 0, 10, tzinfo=UTC)
    first = [
        bp_reading(e.measurement, CUFF, first_at, 0.0, SHANGHAI)
        for e in collect([stored(1), stored(2)])
    ]
    seen = frozenset(r.identity for r in fresh_readings(first, frozenset()))
    # the confirmation of user 2's reading was lost: the cuff resends it with a new one
    later_at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    later = [
        bp_reading(e.measurement, CUFF, later_at, 2.0, SHANGHAI)
        for e in collect([stored(2), stored(1, minute=40)])
    ]
    fresh = fresh_readings(later, seen)
    assert [(r.user_id, r.device_time) for r in fresh] == [(1, datetime(2026, 11, 24, 8, 40))]
    assert seen == frozenset(r.identity for r in first)  # not modified


def test_fresh_readings_also_collapses_repeats_within_the_batch() -> None:
    at = datetime(2026, 11, 24, 0, 10, tzinfo=UTC)
    r = bp_reading(
        received(started().on_indicate(BPM, stored(1)))[0].measurement, CUFF, at, 0.0, SHANGHAI
    )
    assert fresh_readings([r, r], set()) == [r]
