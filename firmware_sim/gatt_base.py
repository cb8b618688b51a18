"""What both simulated peripherals share: a bumble Device on the air with pairing (Just Works,
bonding, in-memory key store), advertising, connection bookkeeping, CCCDs that need encryption,
and the support services Current Time 0x1805, Device Information 0x180A and Battery 0x180F
(ble.md §1.5, §3). :mod:`firmware_sim.peripheral` adds the Glucose and Blood Pressure services.

IO module.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Callable
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
    CURRENT_TIME,
    CURRENT_TIME_SERVICE,
    DEVICE_INFORMATION_SERVICE,
    FIRMWARE_REVISION,
    HARDWARE_REVISION,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    PNP_ID,
    SERIAL_NUMBER,
    SOFTWARE_REVISION,
    SYSTEM_ID,
)
from firmware_sim.device_base import SimDevice
from firmware_sim.errors import SimAttError

__all__ = ["FAST_ADVERTISING_MS", "SimPeripheral", "att_error", "sig_uuid"]

_LOGGER = logging.getLogger(__name__)

FAST_ADVERTISING_MS: Final = 20.0

_Props = Characteristic.Properties
_Perm = att.Attribute.Permissions
_SECURE_CCCD: Final = _Perm.READABLE | _Perm.WRITEABLE | _Perm.WRITE_REQUIRES_ENCRYPTION


def sig_uuid(short: int) -> UUID:
    return UUID.from_16_bits(short)


def _pairing_config(_connection: Connection) -> PairingConfig:
    # Just Works: the simulated meter has neither display nor keyboard (ble.md §1.5).
    return PairingConfig(
        sc=True,
        mitm=False,
        bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.NO_OUTPUT_NO_INPUT),
    )


def att_error(exc: SimAttError) -> att.ATT_Error:
    return att.ATT_Error(exc.code)


class SimPeripheral(abc.ABC):
    """Device, advertising, connection bookkeeping and the support services; a subclass adds its
    profile's services (glucose meter, blood-pressure cuff)."""

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
        self._advertising_lock = asyncio.Lock()

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
                        b"".join(bytes(sig_uuid(u)) for u in self.advertised_services),
                    ),
                    (AdvertisingData.APPEARANCE, self.appearance.to_bytes(2, "little")),
                ]
            )
        )

    async def advertise(self) -> None:
        """(Re)start advertising, for ``advertising_window_s`` if set (then the device sleeps
        until the next measurement, like a real meter)."""
        async with self._advertising_lock:  # a disconnection and a new test can race here
            await self._advertise()

    async def _advertise(self) -> None:
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

    def _on_link_lost(self) -> None:  # noqa: B027 - an optional hook: nothing by default
        """Subclasses stop their running procedures."""

    def _on_subscription(
        self, _bearer: object, characteristic: Characteristic[Any], notify: bool, indicate: bool
    ) -> None:
        uuid16 = _short(characteristic.uuid)
        if uuid16 is None:
            return
        self._state.set_subscription(uuid16, notify=notify, indicate=indicate)
        self._subscribed(uuid16, notify, indicate)

    def _subscribed(self, uuid16: int, notify: bool, indicate: bool) -> None:  # noqa: B027
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
        char: Characteristic[Any] = Characteristic(sig_uuid(uuid16), properties, permissions, value)
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

    @abc.abstractmethod
    def _profile_services(self) -> list[Service]:
        """The services of the device's profile, built with the GATT server's callbacks."""

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
            Service(sig_uuid(CURRENT_TIME_SERVICE), [current_time]),
            Service(sig_uuid(DEVICE_INFORMATION_SERVICE), dis),
            Service(sig_uuid(BATTERY_SERVICE), [battery]),
        ]

    def _write_current_time(self, _connection: Connection, value: bytes) -> None:
        try:
            self._state.write_current_time(bytes(value))
        except SimAttError as exc:
            raise att_error(exc) from exc
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
