"""GlucoseTransfer: RACP record sync driven by literal wire vectors (specs/ble.md §1.4, §1.6).

Wire constants are literals here on purpose: a wrong enum in the codec must fail these tests.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.session.common import LocalProtocolError
from device_drivers.session.glucose_transfer import (
    FailureReason,
    GlucoseTransfer,
    MalformedRecord,
    NoRecords,
    Output,
    RecordCountReported,
    RecordReceived,
    ResyncRequired,
    Subscribe,
    TransferComplete,
    TransferFailed,
    TransferMode,
    TransferState,
    UnexpectedValue,
    UnmatchedContext,
    Write,
)

GM, CTX, RACP = 0x2A18, 0x2A34, 0x2A52


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def meas(seq: int, *, ctx: bool = False, minute: int = 30) -> bytes:
    """Glucose Measurement: flags 0x02 (concentration, kg/L; 0x12 with context follows), seq,
    2026-11-24 07:<minute>:00, 0.001 kg/L (SFLOAT 0xD001 = 100 mg/dL), capillary whole blood /
    finger (0x11)."""
    flags = "12" if ctx else "02"
    return h(f"{flags} {seq & 0xFF:02x} {seq >> 8:02x} ea 07 0b 18 07 {minute:02x} 00 01 d0 11")


def context(seq: int, meal: int = 1) -> bytes:
    """Glucose Measurement Context: flags 0x02 (meal present), seq, meal."""
    return h(f"02 {seq & 0xFF:02x} {seq >> 8:02x} {meal:02x}")


SUCCESS = h("06 00 01 01")
NO_RECORDS = h("06 00 01 06")
REPORT_ALL = Write(RACP, h("01 01"))
REPORT_LAST = Write(RACP, h("01 06"))
ABORT = Write(RACP, h("03 00"))
SUBSCRIPTIONS = [Subscribe(GM), Subscribe(CTX), Subscribe(RACP)]


def records(outputs: list[Output]) -> list[RecordReceived]:
    return [o for o in outputs if isinstance(o, RecordReceived)]


def seqs(outputs: list[Output]) -> list[int]:
    return [r.measurement.sequence_number for r in records(outputs)]


def feed(t: GlucoseTransfer, *values: tuple[int, bytes]) -> list[Output]:
    out: list[Output] = []
    for uuid16, data in values:
        out += t.on_value(uuid16, data)
    return out


# -- first sync and incremental sync --------------------------------------------------------------


def test_first_sync_subscribes_before_reporting_all_records() -> None:
    t = GlucoseTransfer(None)
    assert t.start() == [*SUBSCRIPTIONS, REPORT_ALL]
    assert t.state is TransferState.REPORTING
    assert t.mode is TransferMode.ALL


def test_without_context_characteristic_context_is_not_subscribed() -> None:
    assert GlucoseTransfer(None, has_context=False).start() == [
        Subscribe(GM),
        Subscribe(RACP),
        REPORT_ALL,
    ]


def test_full_first_transfer_commits_highest_sequence_only_after_success() -> None:
    t = GlucoseTransfer(None)
    t.start()
    out = feed(t, (GM, meas(0)), (GM, meas(1)), (GM, meas(2)))
    assert seqs(out) == [0, 1, 2]
    assert all(r.context is None for r in records(out))
    assert t.committed_watermark is None  # not before the final response
    done = t.on_indicate(RACP, SUCCESS)
    assert done == [TransferComplete(3, 2)]
    assert t.committed_watermark == 2
    assert t.state is TransferState.DONE


def test_record_fields_come_from_the_codec() -> None:
    t = GlucoseTransfer(None)
    t.start()
    (rec,) = records(t.on_notify(GM, meas(7, minute=0x2D)))
    m = rec.measurement
    assert m.sequence_number == 7
    assert m.concentration is not None
    assert m.concentration.value == 0.001
    assert m.concentration_unit == "kg/L"


def test_incremental_sync_counts_then_reports_after_the_watermark() -> None:
    t = GlucoseTransfer(10)
    assert t.start() == [*SUBSCRIPTIONS, Write(RACP, h("04 03 01 0b 00"))]
    assert t.state is TransferState.COUNTING
    out = t.on_indicate(RACP, h("05 00 02 00"))
    assert out == [RecordCountReported(2), Write(RACP, h("01 03 01 0b 00"))]
    assert t.expected_count == 2
    out = feed(t, (GM, meas(11)), (GM, meas(12)))
    assert seqs(out) == [11, 12]
    assert t.committed_watermark == 10
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(2, 12)]
    assert t.committed_watermark == 12
    assert t.mode is TransferMode.INCREMENTAL


def test_incremental_sync_without_counting_reports_directly() -> None:
    t = GlucoseTransfer(0x1233, count_first=False)
    assert t.start()[-1] == Write(RACP, h("01 03 01 34 12"))


def test_meter_that_cannot_count_falls_back_to_reporting() -> None:
    t = GlucoseTransfer(10)
    t.start()
    assert t.on_indicate(RACP, h("06 00 04 02")) == [Write(RACP, h("01 03 01 0b 00"))]
    feed(t, (GM, meas(11)))
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(1, 11)]


def test_wrapped_watermark_reports_all_records() -> None:
    t = GlucoseTransfer(0xFFFF)
    assert t.start()[-1] == REPORT_ALL


# -- context joins -------------------------------------------------------------------------------


def test_context_is_joined_to_its_measurement_by_sequence_number() -> None:
    t = GlucoseTransfer(None)
    t.start()
    assert t.on_notify(GM, meas(5, ctx=True)) == []  # waits for its context
    (rec,) = records(t.on_notify(CTX, context(5, meal=3)))
    assert rec.measurement.sequence_number == 5
    assert rec.context is not None
    assert rec.context.sequence_number == 5
    assert rec.context.meal == 3


def test_measurement_waiting_for_context_is_released_by_the_next_measurement() -> None:
    t = GlucoseTransfer(None)
    t.start()
    t.on_notify(GM, meas(5, ctx=True))
    out = t.on_notify(GM, meas(6))
    assert [(r.measurement.sequence_number, r.context) for r in records(out)] == [
        (5, None),
        (6, None),
    ]
    # the context that comes after its measurement went out is kept, not dropped
    (late,) = t.on_notify(CTX, context(5))
    assert isinstance(late, UnmatchedContext)
    assert late.context.sequence_number == 5


def test_measurement_waiting_for_context_is_released_by_the_final_response() -> None:
    t = GlucoseTransfer(None)
    t.start()
    t.on_notify(GM, meas(5, ctx=True))
    out = t.on_indicate(RACP, SUCCESS)
    assert [type(o) for o in out] == [RecordReceived, TransferComplete]
    assert records(out)[0].context is None
    assert t.committed_watermark == 5


def test_context_arriving_before_its_measurement_is_joined() -> None:
    t = GlucoseTransfer(None)
    t.start()
    assert t.on_notify(CTX, context(8)) == []
    (rec,) = records(t.on_notify(GM, meas(8, ctx=True)))
    assert rec.context is not None
    assert rec.context.sequence_number == 8


def test_context_without_any_measurement_surfaces_at_the_end() -> None:
    t = GlucoseTransfer(None)
    t.start()
    t.on_notify(CTX, context(9))
    out = t.on_indicate(RACP, NO_RECORDS)
    assert [type(o) for o in out] == [UnmatchedContext, NoRecords]


def test_duplicate_context_is_ignored() -> None:
    t = GlucoseTransfer(None)
    t.start()
    out = feed(t, (GM, meas(5, ctx=True)), (CTX, context(5)), (CTX, context(5)))
    assert len(out) == 1


# -- nothing new, failures, timeouts -------------------------------------------------------------


def test_first_sync_with_no_records() -> None:
    t = GlucoseTransfer(None)
    t.start()
    assert t.on_indicate(RACP, NO_RECORDS) == [NoRecords()]
    assert t.state is TransferState.DONE
    assert t.committed_watermark is None


def test_nothing_new_probes_the_newest_record_and_keeps_the_watermark() -> None:
    t = GlucoseTransfer(10)
    t.start()
    assert t.on_indicate(RACP, h("05 00 00 00")) == [RecordCountReported(0), REPORT_LAST]
    assert t.state is TransferState.PROBING
    assert t.on_notify(GM, meas(10)) == []  # the probe's record is not a new record
    assert t.on_indicate(RACP, SUCCESS) == [NoRecords()]
    assert t.committed_watermark == 10


def test_empty_meter_during_probe_is_no_records() -> None:
    t = GlucoseTransfer(10)
    t.start()
    t.on_indicate(RACP, h("05 00 00 00"))
    assert t.on_indicate(RACP, NO_RECORDS) == [NoRecords()]
    assert t.committed_watermark == 10


@pytest.mark.parametrize("code", [0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x7F])
def test_failure_response_code_fails_without_moving_the_watermark(code: int) -> None:
    t = GlucoseTransfer(10)
    t.start()
    t.on_indicate(RACP, h("05 00 01 00"))
    t.on_notify(GM, meas(11))
    out = t.on_indicate(RACP, bytes([0x06, 0x00, 0x01, code]))
    assert out == [
        TransferFailed(
            FailureReason.RESPONSE_CODE,
            TransferState.REPORTING,
            response_code=code,
            request_op_code=0x01,
        )
    ]
    assert t.state is TransferState.FAILED
    assert t.committed_watermark == 10


def test_timeout_aborts_with_03_00_then_fails() -> None:
    t = GlucoseTransfer(None, step_timeout_s=5.0)
    t.start(now=100.0)
    assert t.deadline == 105.0
    t.on_notify(GM, meas(1), now=103.0)
    assert t.deadline == 108.0
    assert t.on_timeout(107.9) == []  # early timer: nothing happens
    t.on_notify(GM, meas(2, ctx=True), now=108.0)
    out = t.on_timeout(113.0)
    assert out[0] == RecordReceived(GlucoseMeasurement.from_bytes(meas(2, ctx=True)), None)
    assert out[1:] == [ABORT, TransferFailed(FailureReason.TIMEOUT, TransferState.REPORTING)]
    assert t.committed_watermark is None
    assert t.deadline is None
    # the meter's answer to the abort, arriving late, is ignored
    assert t.on_indicate(RACP, h("06 00 03 01")) == []


def test_timeout_without_time_tracking_fires_at_once() -> None:
    t = GlucoseTransfer(10)
    t.start()
    assert t.on_timeout(0.0) == [
        ABORT,
        TransferFailed(FailureReason.TIMEOUT, TransferState.COUNTING),
    ]


def test_fewer_records_than_announced_is_incomplete() -> None:
    t = GlucoseTransfer(10)
    t.start()
    t.on_indicate(RACP, h("05 00 03 00"))
    feed(t, (GM, meas(11)), (GM, meas(13)))  # 12 was lost on the air
    out = t.on_indicate(RACP, SUCCESS)
    assert out == [
        TransferFailed(FailureReason.INCOMPLETE, TransferState.REPORTING, expected=3, received=2)
    ]
    assert t.committed_watermark == 10


def test_malformed_racp_response_aborts_and_fails() -> None:
    t = GlucoseTransfer(None)
    t.start()
    out = t.on_indicate(RACP, h("06 00"))
    assert isinstance(out[0], MalformedRecord)
    assert out[0].payload == h("06 00")
    assert out[1:] == [
        ABORT,
        TransferFailed(FailureReason.MALFORMED_RESPONSE, TransferState.REPORTING),
    ]


def test_unexpected_racp_response_is_reported_and_the_transfer_goes_on() -> None:
    t = GlucoseTransfer(None)
    t.start()
    assert t.on_indicate(RACP, h("06 00 03 01")) == [
        UnexpectedValue(RACP, h("06 00 03 01"), TransferState.REPORTING)
    ]
    t.on_notify(GM, meas(0))
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(1, 0)]


# -- duplicates, malformed records ----------------------------------------------------------------


def test_duplicate_notification_gives_one_record() -> None:
    t = GlucoseTransfer(None)
    t.start()
    out = feed(t, (GM, meas(1)), (GM, meas(1)), (GM, meas(2)), (GM, meas(1)))
    assert seqs(out) == [1, 2]
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(2, 2)]


def test_malformed_notification_mid_transfer_is_an_event_and_the_transfer_goes_on() -> None:
    t = GlucoseTransfer(10)
    t.start()
    t.on_indicate(RACP, h("05 00 03 00"))
    truncated = meas(12)[:7]
    out = feed(t, (GM, meas(11)), (GM, truncated), (GM, truncated), (GM, meas(13)))
    assert seqs(out) == [11, 13]
    (bad,) = [o for o in out if isinstance(o, MalformedRecord)]
    assert bad.uuid16 == GM
    assert bad.payload == truncated
    assert bad.error.characteristic == "glucose_measurement"
    # the broken record was sent, so the announced count is met
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(3, 13)]
    assert t.committed_watermark == 13


def test_same_sequence_with_other_content_is_kept() -> None:
    t = GlucoseTransfer(None)
    t.start()
    out = feed(t, (GM, meas(4, minute=1)), (GM, meas(4, minute=2)))
    assert seqs(out) == [4, 4]


# -- sequence reset ------------------------------------------------------------------------------


def test_sequence_reset_found_by_the_probe_triggers_a_full_resync() -> None:
    t = GlucoseTransfer(100)
    t.start()
    t.on_indicate(RACP, h("05 00 00 00"))  # nothing >= 101 ...
    t.on_notify(GM, meas(3))  # ... and the newest record is 3: the meter was reset
    out = t.on_indicate(RACP, SUCCESS)
    assert out == [ResyncRequired(100, 3), REPORT_ALL]
    assert t.mode is TransferMode.RESYNC
    assert t.committed_watermark == 100
    got = feed(t, (GM, meas(0)), (GM, meas(1)), (GM, meas(2)), (GM, meas(3)))
    assert seqs(got) == [0, 1, 2, 3]
    assert t.on_indicate(RACP, SUCCESS) == [TransferComplete(4, 3)]
    assert t.committed_watermark == 3  # the new, lower watermark


def test_known_highest_sequence_below_watermark_resyncs_at_once() -> None:
    t = GlucoseTransfer(100, meter_highest_sequence=7)
    assert t.start() == [*SUBSCRIPTIONS, ResyncRequired(100, 7), REPORT_ALL]


def test_newer_record_than_an_empty_count_is_fetched() -> None:
    t = GlucoseTransfer(10)
    t.start()
    t.on_indicate(RACP, h("05 00 00 00"))
    t.on_notify(GM, meas(12))
    assert t.on_indicate(RACP, SUCCESS) == [Write(RACP, h("01 03 01 0b 00"))]


# -- local misuse --------------------------------------------------------------------------------


def test_local_misuse_raises_a_typed_error() -> None:
    t = GlucoseTransfer(None)
    with pytest.raises(LocalProtocolError) as err:
        t.on_notify(GM, meas(1))
    assert err.value.state == "idle"
    t.start()
    with pytest.raises(LocalProtocolError):
        t.start()
    t.on_indicate(RACP, NO_RECORDS)
    with pytest.raises(LocalProtocolError) as err:
        t.on_timeout(1.0)
    assert err.value.action == "on_timeout"


@pytest.mark.parametrize("bad", [-1, 0x10000])
def test_watermark_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="u16"):
        GlucoseTransfer(bad)


def test_values_after_the_end_are_ignored() -> None:
    t = GlucoseTransfer(None)
    t.start()
    t.on_indicate(RACP, NO_RECORDS)
    assert t.on_notify(GM, meas(1)) == []


# -- batching and hypothesis ---------------------------------------------------------------------

TRANSFER: list[tuple[int, bytes]] = [
    (RACP, h("05 00 04 00")),
    (GM, meas(11)),
    (GM, meas(12, ctx=True)),
    (CTX, context(12)),
    (GM, meas(12, ctx=True)),
    (GM, meas(13)[:5]),
    (GM, meas(14, ctx=True)),
    (RACP, SUCCESS),
]


def test_events_identical_in_one_call_or_one_by_one() -> None:
    one, many = GlucoseTransfer(10), GlucoseTransfer(10)
    one.start()
    many.start()
    batched = one.on_values(TRANSFER)
    single = feed(many, *TRANSFER)
    assert batched == single
    assert batched[-1] == TransferComplete(4, 14)
    assert one.committed_watermark == many.committed_watermark == 14


@given(
    order=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=40),
    with_ctx=st.sets(st.integers(min_value=0, max_value=9)),
)
def test_any_order_of_duplicates_yields_each_sequence_once(
    order: list[int], with_ctx: set[int]
) -> None:
    t = GlucoseTransfer(None)
    t.start()
    out: list[Output] = []
    for seq in order:
        out += t.on_notify(GM, meas(seq, ctx=seq in with_ctx))
        if seq in with_ctx:
            out += t.on_notify(CTX, context(seq))
    out += t.on_indicate(RACP, SUCCESS)
    got = seqs(out)
    assert sorted(got) == sorted(set(order))
    assert out[-1] == TransferComplete(len(set(order)), max(order))
    assert t.committed_watermark == max(order)
    for rec in records(out):
        seq = rec.measurement.sequence_number
        if seq in with_ctx:
            assert rec.context == GlucoseMeasurementContext.from_bytes(context(seq))
