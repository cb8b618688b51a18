"""Record sync with a glucose meter over the Record Access Control Point: a sans-I/O state machine.

Spec: specs/ble.md §1.4 (RACP frames and response codes), §1.6 (the collector's flow) and §1.1-1.2
(measurement and context records, joined by sequence number).

The flow, for a stored watermark ``w`` (the highest sequence number already committed):

1. Subscribe to Glucose Measurement 0x2A18, Measurement Context 0x2A34 (when the meter has it) and
   RACP 0x2A52, *before* any RACP write (or the meter answers ATT error 0x81).
2. First sync (no watermark): report all records, ``01 01``.
3. Otherwise ask how many records are new, ``04 03 01 <w+1>`` -> ``05 00 <n>``.

   * ``n > 0``: report them, ``01 03 01 <w+1>``; the meter must then send at least ``n`` records
     before its success response, or the transfer fails as incomplete (a notification was lost;
     the watermark stays where it was so the next sync fetches them again).
   * ``n == 0``: nothing new, *or* the meter was reset and its sequence numbers restarted below
     ``w`` (battery change, "delete all"). Ask for the newest record, ``01 06``: if its sequence
     number is below ``w``, emit :class:`ResyncRequired` and report all records (the receiver
     deduplicates on the reading identity); otherwise there is nothing new.
   * A meter that does not support counting (response code other than success to op 4) is asked
     for ``01 03 01 <w+1>`` directly.

4. Collect notifications until the RACP response ``06 00 01 01`` (success) or ``06 00 01 06`` (no
   records found). Any other response code fails the transfer. A step that sees no progress for
   longer than the step timeout is aborted with ``03 00`` and fails.
5. The watermark is committed (:attr:`GlucoseTransfer.committed_watermark`) only when the transfer
   ends with success.

Robustness: a notification sent twice produces one record; a notification that does not decode
becomes a :class:`MalformedRecord` event (with the :class:`DecodeError`) and the transfer goes on;
a measurement whose "context follows" flag is set waits for its context until the next
measurement or the final response, then is emitted with or without it.

Known limit: a meter reset whose new sequence numbers already climbed past ``w`` before the next
sync cannot be told from new records by sequence numbers alone; the reading identity (which
includes the device time) keeps such records apart downstream. A watermark of 0xFFFF (the u16
wrapped) falls back to reporting all records.

Pure: no I/O, no clock (time comes in as ``now`` arguments, in seconds on any monotonic scale).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.codec.racp import (
    RacpMessage,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
)
from device_drivers.errors import DecodeError
from device_drivers.session.common import LocalProtocolError, Subscribe, Write
from device_drivers.session.glucose_events import (
    FailureReason,
    MalformedRecord,
    NoRecords,
    Output,
    RecordCountReported,
    RecordReceived,
    ResyncRequired,
    TransferComplete,
    TransferEvent,
    TransferFailed,
    TransferMode,
    TransferState,
    UnexpectedValue,
    UnmatchedContext,
)
from device_drivers.uuids import (
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    RECORD_ACCESS_CONTROL_POINT,
)

__all__ = [
    "RACP_STEP_TIMEOUT_S",
    "FailureReason",
    "GlucoseTransfer",
    "MalformedRecord",
    "NoRecords",
    "Output",
    "RecordCountReported",
    "RecordReceived",
    "ResyncRequired",
    "Subscribe",
    "TransferComplete",
    "TransferEvent",
    "TransferFailed",
    "TransferMode",
    "TransferState",
    "UnexpectedValue",
    "UnmatchedContext",
    "Write",
]

_LOGGER = logging.getLogger(__name__)

RACP_STEP_TIMEOUT_S: Final = 30.0
"""No progress for this long aborts the procedure (TI's reference server uses 30 s)."""

_MAX_SEQUENCE: Final = 0xFFFF


class GlucoseTransfer:
    """One RACP record sync. Create one per connection; feed it every value the link delivers.

    ``watermark``: the last committed sequence number, None for a first sync.
    ``has_context``: the meter has the Measurement Context characteristic 0x2A34.
    ``count_first``: ask for the number of new records before reporting them (recommended: it
    detects lost notifications and, with the probe, sequence resets).
    ``meter_highest_sequence``: the meter's highest sequence number if known from elsewhere; below
    the watermark it forces a resync at once.
    """

    def __init__(
        self,
        watermark: int | None,
        *,
        has_context: bool = True,
        count_first: bool = True,
        meter_highest_sequence: int | None = None,
        step_timeout_s: float = RACP_STEP_TIMEOUT_S,
    ) -> None:
        for name, value in (("watermark", watermark), ("meter_highest", meter_highest_sequence)):
            if value is not None and not 0 <= value <= _MAX_SEQUENCE:
                raise ValueError(f"{name} must be a u16 sequence number, got {value!r}")
        if step_timeout_s <= 0:
            raise ValueError("step_timeout_s must be positive")
        self._initial_watermark = watermark
        self._has_context = has_context
        self._count_first = count_first
        self._meter_highest_hint = meter_highest_sequence
        self._step_timeout_s = step_timeout_s

        self._state = TransferState.IDLE
        self._mode = TransferMode.INCREMENTAL
        self._committed = watermark
        self._last_progress: float | None = None
        self._expected: int | None = None
        self._probe_highest: int | None = None
        self._seen: dict[int, GlucoseMeasurement] = {}  # seq -> the record delivered
        self._seen_context: dict[int, GlucoseMeasurementContext] = {}
        self._malformed: set[bytes] = set()  # distinct malformed measurement payloads
        self._pending: GlucoseMeasurement | None = None  # waits for its context
        self._early_context: dict[int, GlucoseMeasurementContext] = {}

    # -- read-only view ------------------------------------------------------------------------

    @property
    def state(self) -> TransferState:
        return self._state

    @property
    def mode(self) -> TransferMode:
        return self._mode

    @property
    def committed_watermark(self) -> int | None:
        """The watermark to store: advanced only after the meter's final success response."""
        return self._committed

    @property
    def expected_count(self) -> int | None:
        return self._expected

    @property
    def received_count(self) -> int:
        """Distinct records received so far (malformed measurement notifications included)."""
        return len(self._seen) + len(self._malformed)

    @property
    def highest_sequence(self) -> int | None:
        return max(self._seen) if self._seen else None

    @property
    def deadline(self) -> float | None:
        """When the current step times out, on the scale of the ``now`` values passed in; None
        before start, after the end, or when no ``now`` was ever given."""
        if self._last_progress is None or self._state in _TERMINAL:
            return None
        return self._last_progress + self._step_timeout_s

    # -- inputs --------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> list[Output]:
        """Subscriptions, then the first RACP write."""
        self._require({TransferState.IDLE}, "start")
        self._touch(now)
        out: list[Output] = [Subscribe(GLUCOSE_MEASUREMENT)]
        if self._has_context:
            out.append(Subscribe(GLUCOSE_MEASUREMENT_CONTEXT))
        out.append(Subscribe(RECORD_ACCESS_CONTROL_POINT))
        w = self._initial_watermark
        if w is None or w >= _MAX_SEQUENCE:
            out += self._report_all(TransferMode.ALL)
        elif self._meter_highest_hint is not None and self._meter_highest_hint < w:
            out.append(ResyncRequired(w, self._meter_highest_hint))
            out += self._report_all(TransferMode.RESYNC)
        elif self._count_first:
            self._state = TransferState.COUNTING
            out.append(_racp(RacpMessage.report_number_greater_or_equal(w + 1)))
        else:
            out += self._report_after(w)
        return out

    def on_notify(self, uuid16: int, data: bytes, now: float | None = None) -> list[Output]:
        """A notification (measurement or context) arrived."""
        return self.on_value(uuid16, data, now)

    def on_indicate(self, uuid16: int, data: bytes, now: float | None = None) -> list[Output]:
        """An indication (the RACP response) arrived."""
        return self.on_value(uuid16, data, now)

    def on_values(
        self, values: Iterable[tuple[int, bytes]], now: float | None = None
    ) -> list[Output]:
        """Several values at once, in arrival order: same outputs as feeding them one by one."""
        out: list[Output] = []
        for uuid16, data in values:
            out += self.on_value(uuid16, data, now)
        return out

    def on_value(self, uuid16: int, data: bytes, now: float | None = None) -> list[Output]:
        """Any value from the link, routed by characteristic."""
        self._require_started("on_value")
        data = bytes(data)
        if self._state in _TERMINAL:
            _LOGGER.debug("value on 0x%04x after the transfer ended: %s", uuid16, data.hex())
            return []
        self._touch(now)
        if uuid16 == RECORD_ACCESS_CONTROL_POINT:
            return self._on_racp(data)
        if uuid16 == GLUCOSE_MEASUREMENT:
            return self._on_measurement(data)
        if uuid16 == GLUCOSE_MEASUREMENT_CONTEXT:
            return self._on_context(data)
        return [UnexpectedValue(uuid16, data, self._state)]

    def on_timeout(self, now: float) -> list[Output]:
        """The driver's timer fired. Before the deadline (when one is known) this does nothing;
        after it, the procedure is aborted (``03 00``) and the transfer fails."""
        self._require_started("on_timeout")
        if self._state in _TERMINAL:
            raise LocalProtocolError("GlucoseTransfer", self._state.value, "on_timeout")
        deadline = self.deadline
        if deadline is not None and now < deadline:
            return []
        stage = self._state
        out: list[Output] = self._flush_pending()
        out.append(_racp(RacpMessage.abort()))
        out.append(self._fail(FailureReason.TIMEOUT, stage))
        return out

    # -- RACP ----------------------------------------------------------------------------------

    def _on_racp(self, data: bytes) -> list[Output]:
        try:
            msg = RacpMessage.from_bytes(data)
        except DecodeError as exc:
            stage = self._state
            out = [*self._flush_pending(), _malformed(RECORD_ACCESS_CONTROL_POINT, exc)]
            out.append(_racp(RacpMessage.abort()))
            out.append(self._fail(FailureReason.MALFORMED_RESPONSE, stage))
            return out
        if self._state is TransferState.COUNTING:
            return self._racp_counting(msg, data)
        if self._state is TransferState.PROBING:
            return self._racp_probing(msg, data)
        return self._racp_reporting(msg, data)

    def _racp_counting(self, msg: RacpMessage, data: bytes) -> list[Output]:
        w = self._initial_watermark
        assert w is not None
        if msg.op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            count = msg.number_of_records or 0
            self._expected = count
            out: list[Output] = [RecordCountReported(count)]
            if count > 0:
                return out + self._report_after(w)
            self._state = TransferState.PROBING
            out.append(
                _racp(RacpMessage(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.LAST_RECORD))
            )
            return out
        if _is_response_to(msg, RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS):
            # counting is optional for the meter: fall back to reporting directly
            _LOGGER.debug("meter cannot count records (response 0x%02x)", msg.response_code or 0)
            return self._report_after(w)
        return [UnexpectedValue(RECORD_ACCESS_CONTROL_POINT, data, self._state)]

    def _racp_probing(self, msg: RacpMessage, data: bytes) -> list[Output]:
        w = self._initial_watermark
        assert w is not None
        if not _is_response_to(msg, RacpOpCode.REPORT_STORED_RECORDS):
            return [UnexpectedValue(RECORD_ACCESS_CONTROL_POINT, data, self._state)]
        newest = self._probe_highest
        if msg.response_code == RacpResponseCode.SUCCESS and newest is not None:
            if newest < w:
                _LOGGER.info(
                    "sequence numbers went backwards (newest %d < watermark %d)", newest, w
                )
                return [ResyncRequired(w, newest), *self._report_all(TransferMode.RESYNC)]
            if newest > w:  # the count said none, the newest says otherwise: fetch them
                self._expected = None
                return self._report_after(w)
        return self._finish_no_records()

    def _racp_reporting(self, msg: RacpMessage, data: bytes) -> list[Output]:
        if not _is_response_to(msg, RacpOpCode.REPORT_STORED_RECORDS):
            return [UnexpectedValue(RECORD_ACCESS_CONTROL_POINT, data, self._state)]
        out = self._flush_pending()
        out += [UnmatchedContext(c) for _, c in sorted(self._early_context.items())]
        self._early_context.clear()
        code = msg.response_code
        received = self.received_count
        if code == RacpResponseCode.NO_RECORDS_FOUND and received == 0:
            return out + self._finish_no_records()
        if code in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND):
            if self._expected is not None and received < self._expected:
                failed = self._fail(
                    FailureReason.INCOMPLETE,
                    TransferState.REPORTING,
                    expected=self._expected,
                    received=received,
                )
                return [*out, failed]
            if received == 0:
                return out + self._finish_no_records()
            highest = self.highest_sequence
            if highest is not None:
                if self._mode is TransferMode.INCREMENTAL and self._initial_watermark is not None:
                    self._committed = max(highest, self._initial_watermark)
                else:
                    self._committed = highest
            self._state = TransferState.DONE
            out.append(TransferComplete(received, highest))
            return out
        out.append(
            self._fail(
                FailureReason.RESPONSE_CODE,
                TransferState.REPORTING,
                response_code=code,
                request_op_code=msg.request_op_code,
            )
        )
        return out

    # -- records -------------------------------------------------------------------------------

    def _on_measurement(self, data: bytes) -> list[Output]:
        if self._state not in (TransferState.REPORTING, TransferState.PROBING):
            return [UnexpectedValue(GLUCOSE_MEASUREMENT, data, self._state)]
        try:
            m = GlucoseMeasurement.from_bytes(data)
        except DecodeError as exc:
            if data in self._malformed:
                return []  # the same broken notification twice
            if self._state is TransferState.REPORTING:
                self._malformed.add(data)  # counts as received: the meter did send a record
            return [_malformed(GLUCOSE_MEASUREMENT, exc)]
        seq = m.sequence_number
        if self._state is TransferState.PROBING:
            self._probe_highest = (
                seq if self._probe_highest is None else max(seq, self._probe_highest)
            )
            return []
        if self._seen.get(seq) == m:
            return []  # the same notification twice
        if seq in self._seen:
            _LOGGER.warning("seq=%d: a different record reuses a sequence number", seq)
        out = self._flush_pending()
        self._seen[seq] = m
        if m.context_information_follows and self._has_context:
            early = self._early_context.pop(seq, None)
            if early is not None:
                self._seen_context[seq] = early
                out.append(RecordReceived(m, early))
            else:
                self._pending = m
        else:
            out.append(RecordReceived(m, None))
        return out

    def _on_context(self, data: bytes) -> list[Output]:
        if self._state is TransferState.PROBING:
            return []
        if self._state is not TransferState.REPORTING:
            return [UnexpectedValue(GLUCOSE_MEASUREMENT_CONTEXT, data, self._state)]
        try:
            ctx = GlucoseMeasurementContext.from_bytes(data)
        except DecodeError as exc:
            return [_malformed(GLUCOSE_MEASUREMENT_CONTEXT, exc)]
        seq = ctx.sequence_number
        pending = self._pending
        if pending is not None and pending.sequence_number == seq:
            self._pending = None
            self._seen_context[seq] = ctx
            return [RecordReceived(pending, ctx)]
        if self._seen_context.get(seq) == ctx or self._early_context.get(seq) == ctx:
            return []  # the same context twice
        if seq in self._seen:
            return [UnmatchedContext(ctx)]  # its measurement went out already
        self._early_context[seq] = ctx  # arrived before its measurement: wait for it
        return []

    def _flush_pending(self) -> list[Output]:
        pending, self._pending = self._pending, None
        return [] if pending is None else [RecordReceived(pending, None)]

    # -- transitions ---------------------------------------------------------------------------

    def _report_all(self, mode: TransferMode) -> list[Output]:
        self._mode = mode
        self._state = TransferState.REPORTING
        self._expected = None
        return [_racp(RacpMessage.report_all())]

    def _report_after(self, w: int) -> list[Output]:
        self._mode = TransferMode.INCREMENTAL
        self._state = TransferState.REPORTING
        return [_racp(RacpMessage.report_greater_or_equal(w + 1))]

    def _finish_no_records(self) -> list[Output]:
        self._state = TransferState.DONE
        return [NoRecords()]

    def _fail(
        self,
        reason: FailureReason,
        stage: TransferState,
        *,
        response_code: int | None = None,
        request_op_code: int | None = None,
        expected: int | None = None,
        received: int | None = None,
    ) -> TransferFailed:
        self._state = TransferState.FAILED
        return TransferFailed(reason, stage, response_code, request_op_code, expected, received)

    def _touch(self, now: float | None) -> None:
        if now is not None:
            self._last_progress = now

    def _require(self, allowed: set[TransferState], action: str) -> None:
        if self._state not in allowed:
            raise LocalProtocolError("GlucoseTransfer", self._state.value, action)

    def _require_started(self, action: str) -> None:
        if self._state is TransferState.IDLE:
            raise LocalProtocolError("GlucoseTransfer", self._state.value, action)


_TERMINAL: Final = frozenset({TransferState.DONE, TransferState.FAILED})


def _racp(msg: RacpMessage) -> Write:
    return Write(RECORD_ACCESS_CONTROL_POINT, bytes(msg))


def _is_response_to(msg: RacpMessage, request: int) -> bool:
    return msg.op_code == RacpOpCode.RESPONSE_CODE and msg.request_op_code == request


def _malformed(uuid16: int, exc: DecodeError) -> MalformedRecord:
    return MalformedRecord(uuid16, exc.payload, exc.fault, exc)
