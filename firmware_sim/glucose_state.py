"""The simulated glucose meter: record store, sequence numbers and the RACP server (ble.md §1).

:class:`SimGlucoseMeter` holds a bounded record store (oldest record dropped when full), a u16
sequence counter that wraps, optional context records, a device clock, Device Information, Glucose
Feature and battery, and serves the Record Access Control Point of §1.4: report (all, <=, >=, within
range, first, last; by sequence number or user facing time), delete, report number, abort, with
the response codes of §1.4 and the GLS application errors 0x80 (procedure already in progress) and
0x81 (CCCD improperly configured) raised as :class:`~firmware_sim.errors.SimAttError`.
:mod:`firmware_sim.peripheral` calls :meth:`SimGlucoseMeter.handle_racp` on each RACP write and
sends what it returns. Payloads are encoded with the device layer's codecs.

Pure: no I/O; the true time comes from an injected clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, TypeVar

from device_drivers.codec.date_time import DateTime
from device_drivers.codec.glucose import (
    UNIT_KG_L,
    UNIT_MOL_L,
    GlucoseFeature,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
)
from device_drivers.codec.racp import (
    RacpFilterType,
    RacpMessage,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
)
from device_drivers.codec.sfloat import MedFloat
from device_drivers.errors import DecodeError
from device_drivers.model import MGDL_PER_MMOLL
from device_drivers.uuids import (
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    RECORD_ACCESS_CONTROL_POINT,
)
from firmware_sim.device_base import (
    DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN,
    RESERVED_SFLOAT,
    TRUNCATE_BYTES,
    DeviceInformation,
    Notification,
    SimDevice,
)
from firmware_sim.device_clock import TrueClock
from firmware_sim.errors import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_PROCEDURE_ALREADY_IN_PROGRESS,
    SimAttError,
    SimConfigError,
)
from firmware_sim.faults import Faults, RecordFault
from firmware_sim.scenarios import GlucoseSample

__all__ = ["DEFAULT_CAPACITY", "GlucoseRecord", "RacpOutcome", "SimGlucoseMeter"]

_T = TypeVar("_T")
_EARLIEST: Final = datetime(1582, 1, 1)  # noqa: DTZ001 - GATT Date Time is naive local time
_LATEST: Final = datetime(9999, 12, 31, 23, 59, 59)  # noqa: DTZ001 - idem

DEFAULT_CAPACITY: Final = 1000
GLUCOSE_FEATURE_DEFAULT: Final = 0x02FF  # bits 0-7 and 9 (time fault) of ble.md §1.3
TESTER_SELF: Final = 1
HEALTH_NO_ISSUES: Final = 5


@dataclass(frozen=True, slots=True)
class RacpOutcome:
    """What the GATT server does after a RACP write (ble.md §1.4).

    Send ``notifications`` in order, then indicate ``indication`` on the RACP. ``disconnect``:
    drop the link after the notifications instead (fault). ``indication`` None without
    ``disconnect``: never answer (fault). ``aborts_procedure``: stop a running report first.
    """

    request: RacpMessage | None
    notifications: tuple[Notification, ...] = ()
    indication: bytes | None = None
    disconnect: bool = False
    aborts_procedure: bool = False
    starts_procedure: bool = False

    @property
    def response(self) -> RacpMessage | None:
        return None if self.indication is None else RacpMessage.from_bytes(self.indication)


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """One stored record: the measurement as the meter will send it, and its context."""

    measurement: GlucoseMeasurement
    context: GlucoseMeasurementContext | None
    measured_at: datetime
    """True (aware) time of the test, for tests; the meter itself only knows its base time."""

    @property
    def sequence_number(self) -> int:
        return self.measurement.sequence_number


def _glucose_concentration(mmol_l: float, unit: str) -> MedFloat:
    if unit == UNIT_MOL_L:
        return MedFloat(round(mmol_l * 10), -4)  # 5.6 mmol/L = 56e-4 mol/L
    return MedFloat(round(mmol_l * MGDL_PER_MMOLL), -5)  # 101 mg/dL = 101e-5 kg/L


class SimGlucoseMeter(SimDevice):
    """A glucose meter's memory and RACP server (ble.md §1)."""

    def __init__(
        self,
        now: TrueClock,
        *,
        samples: Iterable[GlucoseSample] = (),
        capacity: int = DEFAULT_CAPACITY,
        unit: str = UNIT_KG_L,
        first_sequence_number: int = 1,
        with_context: bool = True,
        info: DeviceInformation | None = None,
        feature: int = GLUCOSE_FEATURE_DEFAULT,
        battery_percent: int = 86,
        faults: Faults | None = None,
        household_utc_offset_minutes: int = DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN,
    ) -> None:
        super().__init__(
            now,
            info=info or DeviceInformation.glucose_meter(),
            faults=faults or Faults(),
            household_utc_offset_minutes=household_utc_offset_minutes,
            battery_percent=battery_percent,
        )
        if capacity < 1:
            raise SimConfigError("capacity", "must be at least 1")
        if unit not in (UNIT_KG_L, UNIT_MOL_L):
            raise SimConfigError("unit", f"{unit!r} is not {UNIT_KG_L} or {UNIT_MOL_L}")
        if not 0 <= first_sequence_number <= 0xFFFF:
            raise SimConfigError("first_sequence_number", "must fit in uint16")
        self.capacity = capacity
        self.unit = unit
        self.first_sequence_number = first_sequence_number
        self.with_context = with_context
        self.feature = GlucoseFeature(feature)
        self.time_offset_minutes = 0
        self._next_sequence = first_sequence_number
        self._records: deque[GlucoseRecord] = deque(maxlen=capacity)
        self._procedure_running = False
        for sample in samples:
            self.add_sample(sample)

    # -- the store ------------------------------------------------------------------------------
    @property
    def records(self) -> tuple[GlucoseRecord, ...]:
        """Stored records, oldest first."""
        return tuple(self._records)

    @property
    def next_sequence_number(self) -> int:
        return self._next_sequence

    @property
    def procedure_running(self) -> bool:
        return self._procedure_running

    def add_sample(self, sample: GlucoseSample) -> GlucoseRecord:
        """Store a test: stamp it with the meter's clock, number it, convert to the wire unit."""
        sequence = self._next_sequence
        self._next_sequence = (sequence + 1) & 0xFFFF
        context = self._context_for(sequence, sample)
        measurement = GlucoseMeasurement(
            sequence_number=sequence,
            base_time=DateTime.from_datetime(self.clock.at(sample.measured_at)),
            time_offset_minutes=self.time_offset_minutes,
            concentration=_glucose_concentration(sample.glucose_mmol_l, self.unit),
            concentration_unit=self.unit,
            type=sample.sample_type,
            sample_location=sample.sample_location,
            sensor_status=sample.sensor_status,
            context_information_follows=context is not None,
        )
        record = GlucoseRecord(measurement, context, sample.measured_at)
        self._records.append(record)  # a full deque drops the oldest record
        return record

    def _context_for(
        self, sequence: int, sample: GlucoseSample
    ) -> GlucoseMeasurementContext | None:
        if not self.with_context or (sample.meal is None and sample.carbohydrate_id is None):
            return None
        has_carbs = sample.carbohydrate_id is not None and sample.carbohydrate_g is not None
        return GlucoseMeasurementContext(
            sequence_number=sequence,
            carbohydrate_id=sample.carbohydrate_id if has_carbs else None,
            carbohydrate_kg=(
                MedFloat(round(sample.carbohydrate_g), -3)
                if has_carbs and sample.carbohydrate_g is not None
                else None
            ),
            meal=sample.meal,
            tester=TESTER_SELF,
            health=HEALTH_NO_ISSUES,
        )

    def reset_sequence(self) -> None:
        """As after a battery change on some meters: memory cleared, numbering restarts."""
        self._records.clear()
        self._next_sequence = self.first_sequence_number

    def on_connect(self) -> None:
        super().on_connect()
        self._procedure_running = False
        if self.faults.reset_sequence_on_connection == self.connection_number:
            self.reset_sequence()

    def on_disconnect(self) -> None:
        super().on_disconnect()
        self._procedure_running = False

    def procedure_finished(self) -> None:
        """The peripheral sent the final indication (or gave up): accept new requests."""
        self._procedure_running = False

    def feature_value(self) -> bytes:
        return bytes(self.feature)

    # -- RACP (ble.md §1.4) ---------------------------------------------------------------------
    def handle_racp(self, data: bytes) -> RacpOutcome:
        """Serve one write of the Record Access Control Point.

        Raises :class:`SimAttError` 0x81 when measurement notifications or RACP indications are
        not enabled, 0x80 when a report runs and this is not an Abort. Everything else is
        answered by RACP indication (op code 0x06 response code or 0x05 number of records).
        """
        if not (
            self.notifying(GLUCOSE_MEASUREMENT) and self.indicating(RECORD_ACCESS_CONTROL_POINT)
        ):
            raise SimAttError(
                RECORD_ACCESS_CONTROL_POINT,
                ATT_CCCD_IMPROPERLY_CONFIGURED,
                "enable 0x2A18 notifications and 0x2A52 indications first",
            )
        op_code = data[0] if data else 0
        if self._procedure_running and op_code != RacpOpCode.ABORT_OPERATION:
            raise SimAttError(
                RECORD_ACCESS_CONTROL_POINT,
                ATT_PROCEDURE_ALREADY_IN_PROGRESS,
                "a report is running; only Abort is accepted",
            )
        if self.faults_active and self.faults.silent_racp:
            self._procedure_running = True  # hangs until the link drops
            return RacpOutcome(None, starts_procedure=True)
        if op_code in (
            RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
            RacpOpCode.RESPONSE_CODE,
        ):  # server-to-client op codes written by a client
            return _respond(None, op_code, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
        try:
            request = RacpMessage.from_bytes(data)
        except DecodeError:
            if len(data) >= 2 and not RacpOpCode.known(op_code):
                return _respond(None, op_code, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
            return _respond(None, op_code, RacpResponseCode.INVALID_OPERAND)
        return self._dispatch(request)

    def _dispatch(self, request: RacpMessage) -> RacpOutcome:
        op = request.op_code
        if op == RacpOpCode.ABORT_OPERATION:
            if request.operator != RacpOperator.NULL or request.raw_operand:
                return _respond(request, op, RacpResponseCode.INVALID_OPERATOR)
            running = self._procedure_running
            self._procedure_running = False
            return RacpOutcome(
                request,
                indication=bytes(RacpMessage.response(op, RacpResponseCode.SUCCESS)),
                aborts_procedure=running,
            )
        if op not in (
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOpCode.DELETE_STORED_RECORDS,
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
        ):
            return _respond(request, op, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
        selected = self._select(request)
        if isinstance(selected, RacpResponseCode):
            return _respond(request, op, selected)
        if self.faults_active and self.faults.racp_response_code is not None:
            return _respond(request, op, self.faults.racp_response_code)
        if op == RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
            return RacpOutcome(
                request, indication=bytes(RacpMessage.number_response(len(selected)))
            )
        if not selected:
            return _respond(request, op, RacpResponseCode.NO_RECORDS_FOUND)
        if op == RacpOpCode.DELETE_STORED_RECORDS:
            doomed = {id(r) for r in selected}
            kept = [r for r in self._records if id(r) not in doomed]
            self._records.clear()
            self._records.extend(kept)
            return _respond(request, op, RacpResponseCode.SUCCESS)
        return self._report(request, selected)

    def _select(self, request: RacpMessage) -> list[GlucoseRecord] | RacpResponseCode:
        operator = request.operator
        records = list(self._records)
        if operator == RacpOperator.NULL:
            return RacpResponseCode.INVALID_OPERATOR
        if operator == RacpOperator.ALL_RECORDS:
            return records
        if operator == RacpOperator.FIRST_RECORD:
            return records[:1]
        if operator == RacpOperator.LAST_RECORD:
            return records[-1:]
        if operator not in (
            RacpOperator.LESS_THAN_OR_EQUAL_TO,
            RacpOperator.GREATER_THAN_OR_EQUAL_TO,
            RacpOperator.WITHIN_RANGE_OF,
        ):
            return RacpResponseCode.OPERATOR_NOT_SUPPORTED
        if request.filter_type == RacpFilterType.SEQUENCE_NUMBER:
            low, high = _bounds(request, request.operands, 0, 0xFFFF)
            if low > high:
                return RacpResponseCode.INVALID_OPERAND
            return [r for r in records if low <= r.sequence_number <= high]
        if request.filter_type == RacpFilterType.USER_FACING_TIME:
            times = [t.to_datetime() for t in request.time_operands]
            if any(t is None for t in times):
                return RacpResponseCode.INVALID_OPERAND
            known = [t for t in times if t is not None]
            low_t, high_t = _bounds(request, known, _EARLIEST, _LATEST)
            if low_t > high_t:
                return RacpResponseCode.INVALID_OPERAND
            return [
                r
                for r in records
                if (ufl := r.measurement.user_facing_time) is not None and low_t <= ufl <= high_t
            ]
        return RacpResponseCode.OPERAND_NOT_SUPPORTED

    def _report(self, request: RacpMessage, selected: list[GlucoseRecord]) -> RacpOutcome:
        notifications: list[Notification] = []
        limit = self.faults.disconnect_after_records if self.faults_active else None
        for index, record in enumerate(selected):
            if limit is not None and index >= limit:
                self._procedure_running = True
                return RacpOutcome(
                    request, tuple(notifications), disconnect=True, starts_procedure=True
                )
            fault = self._record_fault(index)
            if fault.drop:
                continue
            sent = _glucose_notifications(record, fault)
            notifications.extend(sent)
            if fault.duplicate:
                notifications.extend(sent)
        self._procedure_running = True
        return RacpOutcome(
            request,
            tuple(notifications),
            indication=bytes(
                RacpMessage.response(RacpOpCode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
            ),
            starts_procedure=True,
        )


def _bounds(request: RacpMessage, values: Sequence[_T], lowest: _T, highest: _T) -> tuple[_T, _T]:
    """(low, high) inclusive of a <=, >= or within-range filter."""
    if request.operator == RacpOperator.LESS_THAN_OR_EQUAL_TO:
        return lowest, values[0]
    if request.operator == RacpOperator.GREATER_THAN_OR_EQUAL_TO:
        return values[0], highest
    return values[0], values[1]


def _respond(request: RacpMessage | None, op_code: int, code: int) -> RacpOutcome:
    return RacpOutcome(request, indication=bytes(RacpMessage.response(op_code, code)))


def _glucose_notifications(record: GlucoseRecord, fault: RecordFault) -> list[Notification]:
    measurement = record.measurement
    if fault.reserved_sfloat and measurement.concentration is not None:
        measurement = replace(measurement, concentration=RESERVED_SFLOAT)
    data = bytes(measurement)
    if fault.truncate:
        data = data[:-TRUNCATE_BYTES]
    out = [Notification(GLUCOSE_MEASUREMENT, data, record.sequence_number)]
    if record.context is not None:
        out.append(
            Notification(GLUCOSE_MEASUREMENT_CONTEXT, bytes(record.context), record.sequence_number)
        )
    return out
