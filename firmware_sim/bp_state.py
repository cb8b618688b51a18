"""The simulated blood-pressure cuff (ble.md §2).

:class:`SimBpMonitor` has user slots (1, 2, guest 0xFF), a store of readings not yet delivered that
is indicated again on every connection until each indication is confirmed (BLS 1.0 cuffs have no
RACP, §2.4), intermediate cuff pressures while measuring (§2.2), a device clock, Device
Information, BP Feature and battery. Payloads are encoded with the device layer's codecs.

Pure: no I/O; the true time comes from an injected clock.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from device_drivers.codec.blood_pressure import (
    UNIT_KPA,
    UNIT_MMHG,
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from device_drivers.codec.date_time import DateTime
from device_drivers.codec.sfloat import MedFloat
from device_drivers.model import MMHG_PER_KPA
from firmware_sim.device_base import (
    DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN,
    RESERVED_SFLOAT,
    TRUNCATE_BYTES,
    DeviceInformation,
    SimDevice,
)
from firmware_sim.device_clock import TrueClock
from firmware_sim.errors import SimConfigError
from firmware_sim.faults import Faults, RecordFault
from firmware_sim.scenarios import BpSample

__all__ = [
    "BpSessionPlan",
    "PlannedIndication",
    "SimBpMonitor",
    "StoredReading",
    "cuff_pressure_profile",
]

BP_FEATURE_DEFAULT: Final = 0x003F  # bits 0-5 of ble.md §2.3
GUEST_USER: Final = 0xFF


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
            measurement = replace(measurement, systolic=RESERVED_SFLOAT)
        data = bytes(measurement)
        if fault.truncate:
            data = data[:-TRUNCATE_BYTES]
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
