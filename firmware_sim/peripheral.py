"""Simulated meters as real bumble GATT peripherals over :mod:`firmware_sim.device_state`.

:class:`SimMeter` serves a :class:`~firmware_sim.device_state.SimGlucoseMeter`: Glucose 0x1808
(Measurement 0x2A18 notify, Context 0x2A34 notify, Feature 0x2A51 read, RACP 0x2A52 write +
indicate), Current Time 0x1805, Device Information 0x180A and Battery 0x180F. :class:`SimCuff`
serves a :class:`~firmware_sim.device_state.SimBpMonitor`: Blood Pressure 0x1810 (Measurement
0x2A35 indicate, Intermediate Cuff Pressure 0x2A36 notify, Feature 0x2A49 read) and the same three
support services.

Security (ble.md §1.5): the profiles expect a bonded collector. Every CCCD of the Glucose and
Blood Pressure services, the RACP, the features and Current Time writes need an *encrypted* link
(ATT 0x0F Insufficient Encryption before pairing). Pairing is LE Secure Connections, Just Works
(no display, no keyboard), with bonding into an in-memory key store that lives as long as the
device, so a bonded collector is encrypted again on reconnect.

Pacing: after a RACP report request the write response goes first, then one notification per
record (measurement, then its context), then the final RACP indication, awaiting its
confirmation. The cuff, once a collector enables 0x2A35 indications, indicates its stored readings
one at a time (each awaits its ATT confirmation before the reading is forgotten;
``indication_interval_s`` apart, 0 by default), stays connected for ``idle_disconnect_s`` and
then disconnects itself.

Devices live on a shared :class:`~device_drivers.bumble_air.BumbleAir` (one virtual controller
each). IO module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from bumble import att
from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from device_drivers.bumble_air import BumbleAir
from device_drivers.uuids import (
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    GLUCOSE_FEATURE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    GLUCOSE_SERVICE,
    INTERMEDIATE_CUFF_PRESSURE,
    RECORD_ACCESS_CONTROL_POINT,
)
from firmware_sim.device_state import (
    PlannedIndication,
    RacpOutcome,
    SimBpMonitor,
    SimGlucoseMeter,
    StoredReading,
)
from firmware_sim.errors import SimAttError
from firmware_sim.gatt_base import FAST_ADVERTISING_MS, SimPeripheral, att_error, sig_uuid
from firmware_sim.scenarios import BpSample, GlucoseSample

__all__ = ["APPEARANCE_BLOOD_PRESSURE_ARM", "APPEARANCE_GLUCOSE_METER", "SimCuff", "SimMeter"]

_LOGGER = logging.getLogger(__name__)

APPEARANCE_GLUCOSE_METER: Final = 0x0400  # category 0x010 (Assigned Numbers 2.6)
APPEARANCE_BLOOD_PRESSURE_ARM: Final = 0x0381  # category 0x00E, subcategory arm
DEFAULT_IDLE_DISCONNECT_S: Final = 2.0

_Props = Characteristic.Properties
_Perm = att.Attribute.Permissions


class SimMeter(SimPeripheral):
    """A glucose meter on the air: RACP transfers paced as notifications + final indication."""

    primary_service = GLUCOSE_SERVICE
    appearance = APPEARANCE_GLUCOSE_METER

    def __init__(
        self,
        air: BumbleAir,
        state: SimGlucoseMeter,
        *,
        name: str = "Anjia-GM",
        address: str | None = None,
        advertising_interval_ms: float = FAST_ADVERTISING_MS,
        advertising_window_s: float | None = None,
    ) -> None:
        super().__init__(
            air,
            state,
            name=name,
            address=address,
            advertising_interval_ms=advertising_interval_ms,
            advertising_window_s=advertising_window_s,
        )
        self.state = state
        self._procedure: asyncio.Task[None] | None = None
        self._generation = 0
        self.racp_writes: list[bytes] = []

    def _profile_services(self) -> list[Service]:
        state = self.state
        secure_read = _Perm.READABLE | _Perm.READ_REQUIRES_ENCRYPTION
        chars = [
            self._char(GLUCOSE_MEASUREMENT, _Props.NOTIFY, _Perm(0), b"", secure_cccd=True),
            self._char(GLUCOSE_MEASUREMENT_CONTEXT, _Props.NOTIFY, _Perm(0), b"", secure_cccd=True),
            self._char(
                GLUCOSE_FEATURE,
                _Props.READ,
                secure_read,
                CharacteristicValue(read=lambda _c: state.feature_value()),
            ),
            self._char(
                RECORD_ACCESS_CONTROL_POINT,
                _Props.WRITE | _Props.INDICATE,
                _Perm.WRITEABLE | _Perm.WRITE_REQUIRES_ENCRYPTION,
                CharacteristicValue(write=self._on_racp_write),
                secure_cccd=True,
            ),
        ]
        return [Service(sig_uuid(GLUCOSE_SERVICE), chars)]

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        data = bytes(value)
        self.racp_writes.append(data)
        _LOGGER.debug("%s RACP write %s", self.name, data.hex())
        try:
            outcome = self.state.handle_racp(data)
        except SimAttError as exc:
            _LOGGER.debug("%s RACP refused with ATT 0x%02X", self.name, exc.code)
            raise att_error(exc) from exc
        if outcome.aborts_procedure:
            # Stop the running report between two notifications. Not a task cancel: that could
            # race with the ATT confirmation of an indication already on its way.
            self._generation += 1
        self._procedure = self._spawn(self._serve(connection, outcome, self._generation))

    async def _serve(self, connection: Connection, outcome: RacpOutcome, generation: int) -> None:
        await asyncio.sleep(0)  # the write response leaves first
        racp = self._characteristics[RECORD_ACCESS_CONTROL_POINT]
        for notification in outcome.notifications:
            if generation != self._generation:
                _LOGGER.debug("%s report aborted by the collector", self.name)
                return
            await self.device.notify_subscriber(
                connection, self._characteristics[notification.uuid16], notification.data
            )
            await asyncio.sleep(0)
        if outcome.disconnect:
            _LOGGER.info("%s fault: dropping the link mid-transfer", self.name)
            await connection.disconnect()
            return
        if outcome.indication is None:
            _LOGGER.info("%s fault: not answering the RACP request", self.name)
            return
        if generation != self._generation:
            return
        if outcome.starts_procedure:
            # Finished once the final indication is on its way: the collector's next request can
            # arrive together with the confirmation, before the indicate call below returns.
            self.state.procedure_finished()
        await self.device.indicate_subscriber(connection, racp, outcome.indication)
        _LOGGER.debug(
            "%s RACP done: %d notification(s), answer %s",
            self.name,
            len(outcome.notifications),
            outcome.indication.hex(),
        )

    def _on_link_lost(self) -> None:
        self._generation += 1
        if self._procedure is not None:
            self._procedure.cancel()  # the link is down: no confirmation can race this
            self._procedure = None

    async def add_measurement(self, sample: GlucoseSample) -> None:
        """A new test on the meter: store it and advertise again (a real meter wakes up)."""
        self.state.add_sample(sample)
        await self.advertise()

    async def add_measurements(self, samples: Sequence[GlucoseSample]) -> None:
        for sample in samples:
            self.state.add_sample(sample)
        await self.advertise()


class SimCuff(SimPeripheral):
    """A blood-pressure cuff on the air: indicates stored readings until each is confirmed."""

    primary_service = BLOOD_PRESSURE_SERVICE
    appearance = APPEARANCE_BLOOD_PRESSURE_ARM

    def __init__(
        self,
        air: BumbleAir,
        state: SimBpMonitor,
        *,
        name: str = "Anjia-BP",
        address: str | None = None,
        advertising_interval_ms: float = FAST_ADVERTISING_MS,
        advertising_window_s: float | None = None,
        idle_disconnect_s: float | None = DEFAULT_IDLE_DISCONNECT_S,
        cuff_pressure_interval_s: float = 0.0,
        indication_interval_s: float = 0.0,
    ) -> None:
        super().__init__(
            air,
            state,
            name=name,
            address=address,
            advertising_interval_ms=advertising_interval_ms,
            advertising_window_s=advertising_window_s,
        )
        self.state = state
        self.idle_disconnect_s = idle_disconnect_s
        self.cuff_pressure_interval_s = cuff_pressure_interval_s
        self.indication_interval_s = indication_interval_s
        self._session: asyncio.Task[None] | None = None
        self._live: asyncio.Queue[StoredReading] = asyncio.Queue()
        self.indicated: list[PlannedIndication] = []

    def _profile_services(self) -> list[Service]:
        state = self.state
        chars = [
            self._char(
                BLOOD_PRESSURE_MEASUREMENT, _Props.INDICATE, _Perm(0), b"", secure_cccd=True
            ),
            self._char(INTERMEDIATE_CUFF_PRESSURE, _Props.NOTIFY, _Perm(0), b"", secure_cccd=True),
            self._char(
                BLOOD_PRESSURE_FEATURE,
                _Props.READ,
                _Perm.READABLE | _Perm.READ_REQUIRES_ENCRYPTION,
                CharacteristicValue(read=lambda _c: state.feature_value()),
            ),
        ]
        return [Service(sig_uuid(BLOOD_PRESSURE_SERVICE), chars)]

    def _subscribed(self, uuid16: int, notify: bool, indicate: bool) -> None:
        if uuid16 != BLOOD_PRESSURE_MEASUREMENT or not indicate or self.connection is None:
            return
        if self._session is None or self._session.done():
            self._session = self._spawn(self._run_session(self.connection))

    async def _run_session(self, connection: Connection) -> None:
        plan = self.state.plan_session()
        measurement = self._characteristics[BLOOD_PRESSURE_MEASUREMENT]
        delivered = 0
        for item in plan.indications:
            if plan.disconnect_after is not None and delivered >= plan.disconnect_after:
                _LOGGER.info("%s fault: dropping the link mid-session", self.name)
                await connection.disconnect()
                return
            if delivered and self.indication_interval_s > 0:
                await asyncio.sleep(self.indication_interval_s)  # a slow cuff (pacing knob)
            await self.device.indicate_subscriber(connection, measurement, item.data)
            self.indicated.append(item)
            self.state.confirmed(item)
            delivered += 1
        while True:
            try:
                async with asyncio.timeout(self.idle_disconnect_s):
                    stored = await self._live.get()
            except TimeoutError:
                break
            item = self.state.indication_for(stored)
            await self.device.indicate_subscriber(connection, measurement, item.data)
            self.indicated.append(item)
            self.state.confirmed(item)
        _LOGGER.info("%s idle: disconnecting", self.name)
        await connection.disconnect()

    def _on_link_lost(self) -> None:
        if self._session is not None:
            self._session.cancel()
            self._session = None
        while not self._live.empty():
            self._live.get_nowait()

    async def add_measurement(self, sample: BpSample) -> StoredReading:
        """Measure: notify the cuff pressures (if a collector listens), store the reading,
        indicate it at once when a session runs, else advertise so a collector comes."""
        if self.connection is not None and self.state.notifying(INTERMEDIATE_CUFF_PRESSURE):
            for value in self.state.cuff_pressures(sample):
                await self._notify(INTERMEDIATE_CUFF_PRESSURE, value)
                await asyncio.sleep(self.cuff_pressure_interval_s)
        stored = self.state.add_sample(sample)
        if self._session is not None and not self._session.done():
            self._live.put_nowait(stored)
        else:
            await self.advertise()
        return stored
