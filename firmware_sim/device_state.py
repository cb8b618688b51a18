"""The state of a simulated glucose meter and blood-pressure cuff, and the meter's RACP server.

Nothing here talks to a radio: :mod:`firmware_sim.peripheral` puts these objects behind bumble
GATT servers, calls :meth:`SimGlucoseMeter.handle_racp` on each write of the Record Access Control
Point and sends what it returns; tests drive them directly with literal hex.

* :class:`SimGlucoseMeter` (ble.md §1): a bounded record store (oldest record dropped when full), a
  u16 sequence counter that wraps, optional context records, a device clock with skew, drift and
  zone (:mod:`firmware_sim.device_clock`), Device Information, Glucose Feature, battery, and the
  RACP server of §1.4: report (all, <=, >=, within range, first, last; by sequence number or user
  facing time), delete, report number, abort; response codes as in §1.4, and the GLS application
  errors 0x80 (procedure already in progress) and 0x81 (CCCD improperly configured) raised as
  :class:`~firmware_sim.errors.SimAttError`.
* :class:`SimBpMonitor` (ble.md §2): user slots (1, 2, guest 0xFF), a store of readings not yet
  delivered that is indicated again on every connection until each indication is confirmed,
  intermediate cuff pressures while measuring, clock, Device Information, BP Feature, battery.

Every payload is encoded with the device layer's codecs (``bytes(GlucoseMeasurement(...))``), the
same classes the collector decodes with. Faults come from :class:`~firmware_sim.faults.Faults`.

Pure: no I/O; the true time comes from an injected clock.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, TypeVar

from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.blood_pressure import (
    UNIT_KPA,
    UNIT_MMHG,
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.device_info import PnpId, SystemId
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
from device_drivers.codec.sfloat import MedFloat, Special
from device_drivers.codec.time_service import CurrentTime
from device_drivers.errors import DecodeError
from device_drivers.model import MGDL_PER_MMOLL, MMHG_PER_KPA
from device_drivers.uuids import (
    CURRENT_TIME,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    RECORD_ACCESS_CONTROL_POINT,
)
from firmware_sim.device_clock import DeviceClock, TrueClock
from firmware_sim.errors import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_OUT_OF_RANGE,
    ATT_PROCEDURE_ALREADY_IN_PROGRESS,
    SimAttError,
    SimConfigError,
)
from firmware_sim.faults import Faults, RecordFault, TransferDice
from firmware_sim.scenarios import BpSample, GlucoseSample

__all__ = [
    "BpSessionPlan",
    "DeviceInformation",
    "GlucoseRecord",
    "Notification",
    "PlannedIndication",
    "RacpOutcome",
    "SimBpMonitor",
    "SimDevice",
    "SimGlucoseMeter",
    "StoredReading",
    "cuff_pressure_profile",
]

_T = TypeVar("_T")
_EARLIEST: Final = datetime(1582, 1, 1)  # noqa: DTZ001 - GATT Date Time is naive local time
_LATEST: Final = datetime(9999, 12, 31, 23, 59, 59)  # noqa: DTZ001 - idem

DEFAULT_CAPACITY: Final = 1000
DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN: Final = 480  # China Standard Time
GLUCOSE_FEATURE_DEFAULT: Final = 0x02FF  # bits 0-7 and 9 (time fault) of ble.md §1.3
BP_FEATURE_DEFAULT: Final = 0x003F  # bits 0-5 of ble.md §2.3
GUEST_USER: Final = 0xFF
TESTER_SELF: Final = 1
HEALTH_NO_ISSUES: Final = 5
_TRUNCATE_BYTES: Final = 2
_RESERVED: Final = MedFloat(0, 0, Special.RESERVED)


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """Device Information Service 0x180A values (ble.md §3)."""

    manufacturer: str
    model: str
    serial: str
    system_id: SystemId
    hardware_revision: str = "1.0"
    firmware_revision: str = "1.4.2"
    software_revision: str = "1.4.2"
    pnp_id: PnpId | None = None

    @classmethod
    def glucose_meter(cls, serial: str = "AJG0000001") -> DeviceInformation:
        return cls(
            "Anjia Sim 安家",
            "AJ-G100",
            serial,
            _system_id(serial),
            pnp_id=PnpId(1, 0x05F1, 0x0100, 0x0142),
        )

    @classmethod
    def bp_monitor(cls, serial: str = "AJB0000001") -> DeviceInformation:
        return cls(
            "Anjia Sim 安家",
            "AJ-B200",
            serial,
            _system_id(serial),
            pnp_id=PnpId(1, 0x05F1, 0x0200, 0x0142),
        )


def _system_id(serial: str) -> SystemId:
    digest = sum((i + 1) * ord(c) for i, c in enumerate(serial)) * 2654435761
    return SystemId(digest & 0xFF_FFFF_FFFF, 0x5A_4A_41)  # "AJZ" as a made-up OUI


@dataclass(frozen=True, slots=True)
class Notification:
    """One value to send: notification (measurement/context) or indication (cuff reading)."""

    uuid16: int
    data: bytes
    sequence_number: int | None = None


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


class SimDevice:
    """What both devices share: clock, identity, battery, faults, connection bookkeeping."""

    def __init__(
        self,
        now: TrueClock,
        *,
        info: DeviceInformation,
        faults: Faults,
        household_utc_offset_minutes: int,
        battery_percent: int,
    ) -> None:
        zone = faults.clock_zone_offset_minutes
        self.clock = DeviceClock(
            now,
            zone_offset_minutes=household_utc_offset_minutes if zone is None else zone,
            skew_s=faults.clock_skew_s,
            drift_ppm=faults.clock_drift_ppm,
        )
        self.info = info
        self.faults = faults
        self._dice = TransferDice(faults)
        self._battery = BatteryLevel(battery_percent)
        self.connection_number = 0
        self.connected = False
        self._subscriptions: dict[int, tuple[bool, bool]] = {}

    # -- battery ------------------------------------------------------------------------------
    @property
    def battery_percent(self) -> int:
        return self._battery.percent

    @battery_percent.setter
    def battery_percent(self, percent: int) -> None:
        self._battery = BatteryLevel(percent)

    def battery_value(self) -> bytes:
        return bytes(self._battery)

    # -- time -----------------------------------------------------------------------------------
    def current_time_value(self) -> bytes:
        return bytes(self.clock.current_time())

    def write_current_time(self, data: bytes) -> None:
        """A write of Current Time 0x2A2B sets the device clock (ble.md §3)."""
        try:
            value = CurrentTime.from_bytes(data)
            self.clock.write(value)
        except (DecodeError, SimConfigError) as exc:
            raise SimAttError(CURRENT_TIME, ATT_OUT_OF_RANGE, str(exc)) from exc

    # -- connections ----------------------------------------------------------------------------
    def on_connect(self) -> None:
        self.connection_number += 1
        self.connected = True
        self._subscriptions.clear()

    def on_disconnect(self) -> None:
        self.connected = False
        self._subscriptions.clear()

    def set_subscription(self, uuid16: int, *, notify: bool, indicate: bool) -> None:
        """A CCCD write on this connection (bumble's ``characteristic_subscription``)."""
        self._subscriptions[uuid16] = (notify, indicate)

    def notifying(self, uuid16: int) -> bool:
        return self._subscriptions.get(uuid16, (False, False))[0]

    def indicating(self, uuid16: int) -> bool:
        return self._subscriptions.get(uuid16, (False, False))[1]

    @property
    def faults_active(self) -> bool:
        """Whether the transfer faults apply on the current connection."""
        return self.faults.active_on(self.connection_number)

    def _record_fault(self, index: int) -> RecordFault:
        return self._dice.record_fault(index, self.faults_active)


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
        measurement = replace(measurement, concentration=_RESERVED)
    data = bytes(measurement)
    if fault.truncate:
        data = data[:-_TRUNCATE_BYTES]
    out = [Notification(GLUCOSE_MEASUREMENT, data, record.sequence_number)]
    if record.context is not None:
        out.append(
            Notification(GLUCOSE_MEASUREMENT_CONTEXT, bytes(record.context), record.sequence_number)
        )
    return out


# -- blood pressure ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoredReading:
    """A cuff reading not yet delivered (indicated and confirmed)."""

    reading_id: int
    measurement: BloodPressureMeasurement
    measured_at: datetime

    @property
    def user_id(self) -> int | None:
        return self.measurement.user_id


@dataclass(frozen=True, slots=True)
class PlannedIndication:
    """One 0x2A35 indication of a cuff session; confirm it with :meth:`SimBpMonitor.confirmed`."""

    reading_id: int
    data: bytes
    user_id: int | None
    keep_after_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class BpSessionPlan:
    """What the cuff indicates once a collector enabled 0x2A35 indications (ble.md §2.4-§2.5).

    ``disconnect_after``: drop the link after that many confirmed indications (fault).
    """

    indications: tuple[PlannedIndication, ...]
    disconnect_after: int | None = None


def cuff_pressure_profile(
    systolic_mmhg: int, diastolic_mmhg: int, *, inflate_step: int = 20, deflate_step: int = 6
) -> tuple[int, ...]:
    """Cuff pressures (mmHg) while measuring: inflate to 30 above systolic, deflate to 10 below
    diastolic (oscillometric measurement on deflation)."""
    if inflate_step < 1 or deflate_step < 1:
        raise SimConfigError("cuff_pressure_profile", "steps must be >= 1 mmHg")
    top = systolic_mmhg + 30
    bottom = max(diastolic_mmhg - 10, 0)
    rising = [*range(0, top, inflate_step), top]
    falling = [p for p in range(top - deflate_step, bottom - deflate_step, -deflate_step) if p >= 0]
    return (*rising, *falling)


def _pressure(mmhg: float, unit: str) -> MedFloat:
    if unit == UNIT_KPA:
        return MedFloat(round(mmhg / MMHG_PER_KPA * 10), -1)
    return MedFloat(round(mmhg), 0)


class SimBpMonitor(SimDevice):
    """A blood-pressure cuff with user slots and a store of undelivered readings (ble.md §2)."""

    def __init__(
        self,
        now: TrueClock,
        *,
        samples: Iterable[BpSample] = (),
        users: tuple[int, ...] = (1, 2, GUEST_USER),
        unit: str = UNIT_MMHG,
        capacity: int = 200,
        info: DeviceInformation | None = None,
        feature: int = BP_FEATURE_DEFAULT,
        battery_percent: int = 74,
        faults: Faults | None = None,
        household_utc_offset_minutes: int = DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN,
    ) -> None:
        super().__init__(
            now,
            info=info or DeviceInformation.bp_monitor(),
            faults=faults or Faults(),
            household_utc_offset_minutes=household_utc_offset_minutes,
            battery_percent=battery_percent,
        )
        if unit not in (UNIT_MMHG, UNIT_KPA):
            raise SimConfigError("unit", f"{unit!r} is not {UNIT_MMHG} or {UNIT_KPA}")
        if capacity < 1:
            raise SimConfigError("capacity", "must be at least 1")
        if not users or any(not 0 <= u <= 0xFF for u in users):
            raise SimConfigError("users", "user ids are 1..254, or 0xFF for the guest")
        self.users = users
        self.unit = unit
        self.feature = BloodPressureFeature(feature)
        self._pending: deque[StoredReading] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self.delivered: list[StoredReading] = []
        for sample in samples:
            self.add_sample(sample)

    @property
    def pending(self) -> tuple[StoredReading, ...]:
        """Readings not yet confirmed by a collector, oldest first."""
        return tuple(self._pending)

    def feature_value(self) -> bytes:
        return bytes(self.feature)

    def measurement_for(self, sample: BpSample) -> BloodPressureMeasurement:
        if sample.user_id not in self.users:
            raise SimConfigError("user_id", f"{sample.user_id} is not a user slot {self.users}")
        return BloodPressureMeasurement(
            systolic=_pressure(sample.systolic_mmhg, self.unit),
            diastolic=_pressure(sample.diastolic_mmhg, self.unit),
            mean_arterial_pressure=_pressure(sample.mean_arterial_mmhg, self.unit),
            unit=self.unit,
            timestamp=DateTime.from_datetime(self.clock.at(sample.measured_at)),
            pulse_rate=MedFloat(sample.pulse_bpm, 0),
            user_id=sample.user_id,
            measurement_status=sample.measurement_status,
        )

    def add_sample(self, sample: BpSample) -> StoredReading:
        """Store a finished measurement until a collector confirms it."""
        stored = StoredReading(next(self._ids), self.measurement_for(sample), sample.measured_at)
        self._pending.append(stored)
        return stored

    def cuff_pressures(self, sample: BpSample, **steps: int) -> tuple[bytes, ...]:
        """Intermediate Cuff Pressure 0x2A36 values while measuring ``sample`` (ble.md §2.2)."""
        return tuple(
            bytes(
                IntermediateCuffPressure(
                    cuff_pressure=_pressure(p, self.unit), unit=self.unit, user_id=sample.user_id
                )
            )
            for p in cuff_pressure_profile(sample.systolic_mmhg, sample.diastolic_mmhg, **steps)
        )

    def plan_session(self) -> BpSessionPlan:
        """The stored readings to indicate now, one by one, each awaiting its confirmation."""
        planned: list[PlannedIndication] = []
        for index, stored in enumerate(self._pending):
            fault = self._record_fault(index)
            if fault.drop:
                continue
            item = self._indication(stored, fault)
            planned.append(item)
            if fault.duplicate:
                planned.append(item)
        limit = self.faults.disconnect_after_records if self.faults_active else None
        return BpSessionPlan(tuple(planned), limit)

    def indication_for(self, stored: StoredReading) -> PlannedIndication:
        """A live reading's indication (no faults)."""
        return self._indication(stored, RecordFault())

    def _indication(self, stored: StoredReading, fault: RecordFault) -> PlannedIndication:
        measurement = stored.measurement
        if fault.reserved_sfloat:
            measurement = replace(measurement, systolic=_RESERVED)
        data = bytes(measurement)
        if fault.truncate:
            data = data[:-_TRUNCATE_BYTES]
        return PlannedIndication(
            stored.reading_id, data, stored.user_id, keep_after_confirmation=fault.lose_confirmation
        )

    def confirmed(self, indication: PlannedIndication) -> bool:
        """The collector confirmed ``indication``: forget the reading (unless the fault says the
        cuff lost the confirmation). True when a reading was removed."""
        if indication.keep_after_confirmation:
            return False
        for stored in self._pending:
            if stored.reading_id == indication.reading_id:
                self._pending.remove(stored)
                self.delivered.append(stored)
                return True
        return False
