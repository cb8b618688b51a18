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
one at a time (each awaits its ATT confirmation before the reading is forgotten), stays connected
for ``idle_disconnect_s`` and then disconnects itself.

Devices live on a shared :class:`~device_drivers.bumble_air.BumbleAir` (one virtual controller
each). IO module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Final, Self

from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Descriptor,
    Service,
)
from bumble.keys import MemoryKeyStore
from bumble.pairing import PairingConfig, PairingDelegate

from device_drivers.bumble_air import BumbleAir
from device_drivers.codec.device_info import encode_string
from device_drivers.uuids import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    CURRENT_TIME,
    CURRENT_TIME_SERVICE,
    DEVICE_INFORMATION_SERVICE,
    FIRMWARE_REVISION,
    GLUCOSE_FEATURE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    GLUCOSE_SERVICE,
    HARDWARE_REVISION,
    INTERMEDIATE_CUFF_PRESSURE,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    PNP_ID,
    RECORD_ACCESS_CONTROL_POINT,
    SERIAL_NUMBER,
    SOFTWARE_REVISION,
    SYSTEM_ID,
)
from firmware_sim.device_state import (
    PlannedIndication,
    RacpOutcome,
    SimBpMonitor,
    SimDevice,
    SimGlucoseMeter,
    StoredReading,
)
from firmware_sim.errors import SimAttError
from firmware_sim.scenarios import BpSample, GlucoseSample

__all__ = ["APPEARANCE_BLOOD_PRESSURE_ARM", "APPEARANCE_GLUCOSE_METER", "SimCuff", "SimMeter"]

_LOGGER = logging.getLogger(__name__)

APPEARANCE_GLUCOSE_METER: Final = 0x0400  # category 0x010 (Assigned Numbers 2.6)
APPEARANCE_BLOOD_PRESSURE_ARM: Final = 0x0381  # category 0x00E, subcategory arm
FAST_ADVERTISING_MS: Final = 20.0
DEFAULT_IDLE_DISCONNECT_S: Final = 2.0

_Props = Characteristic.Properties
_Perm = att.Attribute.Permissions
_SECURE_CCCD: Final = _Perm.READABLE | _Perm.WRITEABLE | _Perm.WRITE_REQUIRES_ENCRYPTION


def _uuid(short: int) -> UUID:
    return UUID.from_16_bits(short)


def _pairing_config(_connection: Connection) -> PairingConfig:
    # Just Works: the simulated meter has neither display nor keyboard (ble.md §1.5).
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
    )


def _att_error(exc: SimAttError) -> att.ATT_Error:
    return att.ATT_Error(exc.code)


class _SimPeripheral:
    """Device, advertising, connection bookkeeping and the support services."""

    primary_service: int
    appearance: int

    def __init__(
        self,
        air: BumbleAir,
        state: SimDevice,
        *,
        name: str,
        address: str | None,
        advertising_interval_ms: float,
        advertising_window_s: float | None,
    ) -> None:
        if len(name.encode()) > 18:
            raise ValueError("name longer than 18 bytes does not fit the advertising data")
        self.air = air
        self.name = name
        self._state = state
        self._requested_address = address
        self._interval_ms = advertising_interval_ms
        self._window_s = advertising_window_s
        self._device: Device | None = None
        self.connection: Connection | None = None
        self.connections = 0
        self.pairings = 0
        self._characteristics: dict[int, Characteristic[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._window_task: asyncio.Task[None] | None = None
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._device

    @property
    def address(self) -> str:
        """The static random address it advertises with (connect to this)."""
        return str(self.device.random_address)

    @property
    def advertised_services(self) -> tuple[int, ...]:
        return (self.primary_service,)

    async def start(self) -> Self:
        device = await self.air.create_device(self.name, self._requested_address)
        device.keystore = MemoryKeyStore()
        device.pairing_config_factory = _pairing_config
        device.add_services(self._services(device))
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        self._device = device
        await device.power_on()
        await self.advertise()
        _LOGGER.info("%s advertising as %s", self.name, self.address)
        return self

    async def stop(self) -> None:
        """Disconnect, stop advertising and power off. The link goes first, so no ATT
        confirmation can arrive for a procedure that is being cancelled."""
        self._stopped = True
        if self._window_task is not None:
            self._window_task.cancel()
        if self._device is None:
            return
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._device.stop_advertising()
        await self._device.power_off()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- advertising ----------------------------------------------------------------------------
    def advertising_data(self) -> bytes:
        flags = (
            AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG
            | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG
        )
        return bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([flags])),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                        b"".join(bytes(_uuid(u)) for u in self.advertised_services),
                    ),
                    (AdvertisingData.APPEARANCE, self.appearance.to_bytes(2, "little")),
                ]
            )
        )

    async def advertise(self) -> None:
        """(Re)start advertising, for ``advertising_window_s`` if set (then the device sleeps
        until the next measurement, like a real meter)."""
        if self._stopped or self.connection is not None:
            return
        kind = (
            AdvertisingType.UNDIRECTED_SCANNABLE
            if self._state.faults.unconnectable
            else AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
        )
        await self.device.start_advertising(
            advertising_type=kind,
            advertising_data=self.advertising_data(),
            advertising_interval_min=self._interval_ms,
            advertising_interval_max=self._interval_ms,
        )
        if self._window_s is not None:
            if self._window_task is not None:
                self._window_task.cancel()
            self._window_task = asyncio.create_task(self._end_window(self._window_s))

    async def _end_window(self, window_s: float) -> None:
        await asyncio.sleep(window_s)
        if self.connection is None and self._device is not None:
            await self._device.stop_advertising()
            _LOGGER.debug("%s stopped advertising (window of %.1f s over)", self.name, window_s)

    # -- connections ----------------------------------------------------------------------------
    def _on_connection(self, connection: Connection) -> None:
        self.connections += 1
        if self._state.faults.unconnectable:
            # Real controllers honour the non-connectable advertising type; bumble's virtual
            # controller connects anyway, so hang up before serving anything.
            _LOGGER.info("%s fault: refusing the connection", self.name)
            self._spawn(connection.disconnect())
            return
        self.connection = connection
        self._state.on_connect()
        _LOGGER.info("%s connected to %s", self.name, connection.peer_address)

        def on_pairing(_keys: object) -> None:
            self.pairings += 1

        def on_disconnection(reason: int) -> None:
            if self.connection is connection:
                self.connection = None
            self._state.on_disconnect()
            self._on_link_lost()
            _LOGGER.info("%s disconnected (reason 0x%02X)", self.name, reason)
            if self._window_s is None:
                self._spawn(self.advertise())

        connection.on(connection.EVENT_PAIRING, on_pairing)
        connection.on(connection.EVENT_DISCONNECTION, on_disconnection)

    def _on_link_lost(self) -> None:
        """Subclasses stop their running procedures."""

    def _on_subscription(
        self, _bearer: object, characteristic: Characteristic[Any], notify: bool, indicate: bool
    ) -> None:
        uuid16 = _short(characteristic.uuid)
        if uuid16 is None:
            return
        self._state.set_subscription(uuid16, notify=notify, indicate=indicate)
        self._subscribed(uuid16, notify, indicate)

    def _subscribed(self, uuid16: int, notify: bool, indicate: bool) -> None:
        """Subclasses react to CCCD writes."""

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.warning("%s: task failed", self.name, exc_info=task.exception())

    async def disconnect(self) -> None:
        """Drop the link from the device side (what a meter does when it goes to sleep)."""
        if self.connection is not None:
            await self.connection.disconnect()

    async def set_battery(self, percent: int) -> None:
        self._state.battery_percent = percent
        await self._notify(BATTERY_LEVEL, self._state.battery_value())

    async def _notify(self, uuid16: int, data: bytes) -> None:
        if self.connection is not None:
            await self.device.notify_subscriber(
                self.connection, self._characteristics[uuid16], data
            )

    # -- GATT database ----------------------------------------------------------------------------
    def _char(
        self,
        uuid16: int,
        properties: Characteristic.Properties,
        permissions: att.Attribute.Permissions,
        value: Any,
        *,
        secure_cccd: bool = False,
    ) -> Characteristic[Any]:
        char: Characteristic[Any] = Characteristic(_uuid(uuid16), properties, permissions, value)
        self._characteristics[uuid16] = char
        if secure_cccd:
            self._secure_cccds.append(char)
        return char

    _secure_cccds: list[Characteristic[Any]]

    def _services(self, device: Device) -> list[Service]:
        self._secure_cccds = []
        services = [*self._profile_services(), *self._support_services()]
        server = device.gatt_server
        for char in self._secure_cccds:
            # Our own CCCD (bumble adds an open one otherwise) so subscribing needs encryption.
            char.descriptors = [
                Descriptor(
                    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                    _SECURE_CCCD,
                    att.AttributeValueV2(
                        read=_bind_read_cccd(server, char), write=_bind_write_cccd(server, char)
                    ),
                )
            ]
        return services

    def _profile_services(self) -> list[Service]:
        raise NotImplementedError

    def _support_services(self) -> list[Service]:
        state = self._state
        info = state.info
        read = _Perm.READABLE
        dis = [
            self._char(MANUFACTURER_NAME, _Props.READ, read, encode_string(info.manufacturer)),
            self._char(MODEL_NUMBER, _Props.READ, read, encode_string(info.model)),
            self._char(SERIAL_NUMBER, _Props.READ, read, encode_string(info.serial)),
            self._char(HARDWARE_REVISION, _Props.READ, read, encode_string(info.hardware_revision)),
            self._char(FIRMWARE_REVISION, _Props.READ, read, encode_string(info.firmware_revision)),
            self._char(SOFTWARE_REVISION, _Props.READ, read, encode_string(info.software_revision)),
            self._char(SYSTEM_ID, _Props.READ, read, bytes(info.system_id)),
        ]
        if info.pnp_id is not None:
            dis.append(self._char(PNP_ID, _Props.READ, read, bytes(info.pnp_id)))
        current_time = self._char(
            CURRENT_TIME,
            _Props.READ | _Props.WRITE | _Props.NOTIFY,
            _Perm.READABLE | _Perm.WRITEABLE | _Perm.WRITE_REQUIRES_ENCRYPTION,
            CharacteristicValue(
                read=lambda _c: state.current_time_value(), write=self._write_current_time
            ),
        )
        battery = self._char(
            BATTERY_LEVEL,
            _Props.READ | _Props.NOTIFY,
            read,
            CharacteristicValue(read=lambda _c: state.battery_value()),
        )
        return [
            Service(_uuid(CURRENT_TIME_SERVICE), [current_time]),
            Service(_uuid(DEVICE_INFORMATION_SERVICE), dis),
            Service(_uuid(BATTERY_SERVICE), [battery]),
        ]

    def _write_current_time(self, _connection: Connection, value: bytes) -> None:
        try:
            self._state.write_current_time(bytes(value))
        except SimAttError as exc:
            raise _att_error(exc) from exc
        _LOGGER.info("%s clock set by the collector", self.name)


def _short(uuid: UUID) -> int | None:
    data = uuid.to_bytes()
    return int.from_bytes(data, "little") if len(data) == 2 else None


def _bind_read_cccd(server: Any, char: Characteristic[Any]) -> Callable[[Any], bytes]:
    def read(bearer: Any) -> bytes:
        value: bytes = server.read_cccd(bearer, char)
        return value

    return read


def _bind_write_cccd(server: Any, char: Characteristic[Any]) -> Callable[[Any, bytes], None]:
    def write(bearer: Any, value: bytes) -> None:
        server.write_cccd(bearer, char, value)

    return write


class SimMeter(_SimPeripheral):
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
        return [Service(_uuid(GLUCOSE_SERVICE), chars)]

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        data = bytes(value)
        self.racp_writes.append(data)
        _LOGGER.debug("%s RACP write %s", self.name, data.hex())
        try:
            outcome = self.state.handle_racp(data)
        except SimAttError as exc:
            _LOGGER.debug("%s RACP refused with ATT 0x%02X", self.name, exc.code)
            raise _att_error(exc) from exc
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
        await self.device.indicate_subscriber(connection, racp, outcome.indication)
        if outcome.starts_procedure:
            self.state.procedure_finished()
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


class SimCuff(_SimPeripheral):
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
        return [Service(_uuid(BLOOD_PRESSURE_SERVICE), chars)]

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
