"""The events and states of :mod:`device_drivers.session.glucose_transfer` (RACP record sync,
specs/ble.md §1.4, §1.6), kept apart so the state machine module stays small.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.errors import DecodeError
from device_drivers.session.common import Subscribe, Write

__all__ = [
    "FailureReason",
    "MalformedRecord",
    "NoRecords",
    "Output",
    "RecordCountReported",
    "RecordReceived",
    "ResyncRequired",
    "TransferComplete",
    "TransferEvent",
    "TransferFailed",
    "TransferMode",
    "TransferState",
    "UnexpectedValue",
    "UnmatchedContext",
]


class TransferState(StrEnum):
    IDLE = "idle"  # constructed, start() not called yet
    COUNTING = "counting"  # "report number of stored records >= w+1" written
    PROBING = "probing"  # "report last record" written, to detect a sequence reset
    REPORTING = "reporting"  # "report stored records" written, collecting notifications
    DONE = "done"  # ended with success or no records; watermark committed
    FAILED = "failed"  # ended with a failure; watermark unchanged


class TransferMode(StrEnum):
    ALL = "all"  # first sync: every stored record
    INCREMENTAL = "incremental"  # records after the watermark
    RESYNC = "resync"  # sequence numbers went backwards: all records again, deduplicated later


class FailureReason(StrEnum):
    RESPONSE_CODE = "response_code"  # the meter answered with a failure response code
    TIMEOUT = "timeout"  # no progress within the step timeout; abort written
    INCOMPLETE = "incomplete"  # fewer records arrived than the meter announced
    MALFORMED_RESPONSE = "malformed_response"  # a RACP indication that does not decode


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordCountReported:
    """The meter said how many records match (``05 00 <count>``)."""

    count: int


@dataclass(frozen=True, slots=True)
class RecordReceived:
    """One stored record, with its context when the meter sent one."""

    measurement: GlucoseMeasurement
    context: GlucoseMeasurementContext | None = None


@dataclass(frozen=True, slots=True)
class MalformedRecord:
    """A notification or indication that did not decode. The bytes are kept in ``error.payload``.
    Equality ignores the exception object (two decodes of the same bytes are the same event)."""

    uuid16: int
    payload: bytes
    fault: str
    error: DecodeError = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class UnmatchedContext:
    """A context record whose measurement never arrived, or arrived earlier without the
    "context follows" flag or before another measurement. Kept, never dropped."""

    context: GlucoseMeasurementContext


@dataclass(frozen=True, slots=True)
class UnexpectedValue:
    """A value the procedure did not ask for in its current state (logged by the driver)."""

    uuid16: int
    data: bytes
    state: TransferState


@dataclass(frozen=True, slots=True)
class ResyncRequired:
    """Sequence numbers went backwards (meter reset): all records are being reported again.
    ``meter_highest_sequence`` is the newest record's number, when it was seen."""

    watermark: int
    meter_highest_sequence: int | None


@dataclass(frozen=True, slots=True)
class TransferComplete:
    """The meter answered success. ``count`` distinct records (malformed ones included) arrived;
    ``highest_sequence`` is the highest sequence number among them (None if all were malformed)."""

    count: int
    highest_sequence: int | None


@dataclass(frozen=True, slots=True)
class NoRecords:
    """Nothing new: the meter answered "no records found", or the reset probe found none."""


@dataclass(frozen=True, slots=True)
class TransferFailed:
    """The transfer ended without success; the watermark was not advanced. ``stage`` is the state
    the transfer was in; ``response_code``/``request_op_code`` are set for RESPONSE_CODE."""

    reason: FailureReason
    stage: TransferState
    response_code: int | None = None
    request_op_code: int | None = None
    expected: int | None = None
    received: int | None = None


TransferEvent = (
    RecordCountReported
    | RecordReceived
    | MalformedRecord
    | UnmatchedContext
    | UnexpectedValue
    | ResyncRequired
    | TransferComplete
    | NoRecords
    | TransferFailed
)
Output = Subscribe | Write | TransferEvent
"""What the machine returns: actions (Subscribe, Write) to perform in order, and events."""
