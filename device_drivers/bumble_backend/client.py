"""A bleak 3.x client backend over bumble.

Use it as ``BleakClient(address, backend=BumbleBleakClient, air=air)``.

Ported in spirit from the closed hbldh/bleak PR #1681 (spec ble.md §6.2) to the 3.1 backend API
(§6.1): ``connect`` fills ``self.services`` itself, GATT objects are bleak's concrete classes with
lowercase 128-bit UUIDs. Unlike that PR, the client never opens the radio: it uses the air's single
central (see :mod:`.central`), so a scanner and any number of clients share one link or transport.

Behaviour follows the BlueZ backend, which is what the gateway runs in production:

* ``connect`` first makes sure the device is advertising (recently heard by the central, or heard
  while scanning until the timeout), else :class:`~bleak.exc.BleakDeviceNotFoundError`. The whole
  connect (locate, create, pair, MTU exchange, discovery) honours one timeout and raises
  :class:`TimeoutError` when it runs out, disconnecting whatever was established.
* ``pair=True``: a bonded device is encrypted with the stored bond while connecting; an unbonded
  one is paired and bonded (Just Works by default) the first time it answers an operation with
  ATT Insufficient Authentication/Encryption (0x05/0x0F, spec ble.md §1.5), and that operation is
  retried once. Pairing on demand, as BlueZ's own security retry and macOS do, keeps devices that
  do not support pairing usable; ``pair()`` pairs at once. With ``pair=False`` nothing is
  encrypted or retried unless ``pair()`` is called.
* ATT errors surface as :class:`~bleak.exc.BleakGATTProtocolError` with the ATT code; link loss
  during an operation as :class:`.errors.BumbleLinkLostError`; pairing failures as
  :class:`.errors.BumblePairingError`.
* The disconnected callback runs once per connection, for a peer-initiated drop and for
  ``disconnect()`` alike (as with BlueZ).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.core import UUID
from bumble.device import Connection, Peer
from bumble.gatt import GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.pairing import PairingDelegate

from device_drivers.bumble_backend.central import CentralState, central_state
from device_drivers.bumble_backend.errors import (
    BumbleConnectionError,
    BumbleLinkLostError,
    BumblePairingError,
)
from device_drivers.bumble_backend.mapping import property_names, uuid_text

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = ["BumbleBleakClient"]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MTU: Final = 247
"""ATT MTU requested after connecting (BlueZ negotiates one too); 23 stays if the peer refuses."""
CANCEL_GRACE_S: Final = 2.0
"""How long to wait for the controller to confirm a cancelled connection attempt."""
SECURITY_ATT_ERRORS: Final = frozenset(
    {
        att.ErrorCode.INSUFFICIENT_AUTHENTICATION,
        att.ErrorCode.INSUFFICIENT_ENCRYPTION,
        att.ErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    }
)


def _really_cancelled() -> bool:
    """True when our own task is being cancelled (not bumble aborting a request on link loss)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class BumbleBleakClient(BaseBleakClient):
    """bleak client backend on a :class:`~device_drivers.bumble_air.BumbleAir`'s central.

    Extra keyword arguments (passed through ``BleakClient(..., **kwargs)``): ``air`` (required),
    ``pairing_delegate`` (a bumble ``PairingDelegate`` for passkey entry; default Just Works) and
    ``mtu`` (ATT MTU to request, default 247).
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        air: BumbleAir | None = None,
        services: set[str] | None = None,
        pairing_delegate: PairingDelegate | None = None,
        mtu: int = DEFAULT_MTU,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=disconnected_callback,
            timeout=timeout,
            **kwargs,
        )
        if air is None:
            raise BleakError("BumbleBleakClient needs air=BumbleAir(...) passed to BleakClient")
        self.address = self.address.upper()
        self._air = air
        self._device_name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._service_filter = frozenset(services) if services else None
        self._pairing_delegate = pairing_delegate
        self._mtu_request = mtu
        self._state: CentralState | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._pair_on_demand = False
        self._security_retry_used = False
        self._lost_reason: int | None = None
        self._closing = False
        self._notify: dict[int, Callable[[bytes], None]] = {}

    # -- properties -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._device_name:
            return self._device_name
        seen = self._state.seen(self.address) if self._state else None
        if seen is not None and seen.name:
            return seen.name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        if self._peer is None:
            return att.ATT_DEFAULT_MTU
        return int(self._peer.gatt_client.mtu)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # -- connection -----------------------------------------------------------------------------
    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            raise BleakError("Client is already connected")
        timeout = float(self._timeout)
        if kwargs.get("timeout") is not None:
            timeout = min(timeout, float(kwargs["timeout"]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = await central_state(self._air)
        self._state = state

        seen = await state.find(self.address, deadline - loop.time())
        if seen is None:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found."
            )
        connection = await self._create_connection(state, seen.address, deadline, timeout)
        self._attach(connection)
        try:
            async with asyncio.timeout_at(deadline):
                if pair and await self._has_bond(connection):
                    await self._secure(connection, during="pair")
                self._pair_on_demand = pair
                await self._exchange_mtu()
                self.services = await self._discover()
        except BaseException:
            await self._abandon(connection)
            raise
        _LOGGER.debug(
            "%s: connected (encrypted=%s, mtu=%d, %d services)",
            self.address,
            connection.is_encrypted,
            self.mtu_size,
            len(self.services.services),
        )

    async def _create_connection(
        self, state: CentralState, peer_address: hci.Address, deadline: float, budget_s: float
    ) -> Connection:
        loop = asyncio.get_running_loop()
        async with state.connect_lock:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{self.address}: no connection within {budget_s:.1f} s")
            try:
                # bumble cancels the attempt itself at `remaining`; the outer guard only catches a
                # controller that never confirms the cancel (bumble's virtual one does not).
                async with asyncio.timeout(remaining + CANCEL_GRACE_S):
                    return await state.device.connect(peer_address, timeout=remaining)
            except (core.TimeoutError, TimeoutError) as exc:
                raise TimeoutError(
                    f"{self.address}: no connection within {budget_s:.1f} s"
                ) from exc
            except core.ConnectionError as exc:
                raise BumbleConnectionError(self.address, exc.error_code) from exc
            except core.ProtocolError as exc:  # HCI_Error / HCI_StatusError from the controller
                raise BumbleConnectionError(self.address, exc.error_code) from exc

    def _attach(self, connection: Connection) -> None:
        self._connection = connection
        self._peer = Peer(connection)
        self._lost_reason = None
        self._closing = False
        self._security_retry_used = False
        self._notify.clear()
        if self._pairing_delegate is not None and self._state is not None:
            self._state.set_pairing_delegate(connection, self._pairing_delegate)

        def on_disconnection(reason: int) -> None:
            if self._connection is not connection:
                return
            self._detach()
            if not self._closing:
                self._lost_reason = reason
            _LOGGER.debug("%s: disconnected (HCI reason 0x%02x)", self.address, reason)
            if self._disconnected_callback is not None:
                try:
                    self._disconnected_callback()
                except Exception:
                    _LOGGER.exception("%s: disconnected callback failed", self.address)

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)

    def _detach(self) -> None:
        self._connection = None
        self._peer = None
        self.services = None
        self._notify.clear()

    async def _abandon(self, connection: Connection) -> None:
        """Tear down a half-made connection quietly (the caller sees the connect error)."""
        self._detach()
        self._closing = True
        with contextlib.suppress(core.BaseBumbleError, asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(CANCEL_GRACE_S):
                await connection.disconnect()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        try:
            async with asyncio.timeout(CANCEL_GRACE_S * 2):
                await connection.disconnect()
        except (core.BaseBumbleError, TimeoutError):
            _LOGGER.debug("%s: disconnect did not complete cleanly", self.address, exc_info=True)
        if self._connection is connection:  # no disconnection event came: forget it anyway
            self._detach()

    # -- security -------------------------------------------------------------------------------
    async def pair(self, *args: Any, **kwargs: Any) -> None:
        connection = self._require_connection()
        await self._secure(connection, during="pair")

    async def unpair(self) -> None:
        state = self._state or await central_state(self._air)
        keystore = state.device.keystore
        if keystore is not None:
            for name in (self.address, f"{self.address}/P"):
                with contextlib.suppress(KeyError):
                    await keystore.delete(name)
        await self.disconnect()

    @staticmethod
    async def _has_bond(connection: Connection) -> bool:
        keystore = connection.device.keystore
        keys = await keystore.get(str(connection.peer_address)) if keystore else None
        return keys is not None and (keys.ltk or keys.ltk_central) is not None

    async def _secure(self, connection: Connection, *, during: str) -> None:
        """Encrypt with the stored bond, else pair and bond. No-op on an encrypted link (bumble's
        SMP does not re-pair an encrypted link, and the same IO capabilities would give the same
        key strength anyway)."""
        if connection.is_encrypted:
            return
        use_bond = await self._has_bond(connection)
        try:
            if use_bond:
                await connection.encrypt()
            else:
                await connection.pair()
        except hci.HCI_Error as exc:
            raise BumblePairingError(
                self.address, f"encryption failed ({exc})", hci_status=exc.error_code
            ) from exc
        except core.ProtocolError as exc:  # SMP Pairing Failed
            raise BumblePairingError(
                self.address, f"SMP failure ({exc})", smp_reason=exc.error_code
            ) from exc
        except asyncio.CancelledError as exc:
            if _really_cancelled():
                raise
            raise BumbleLinkLostError(self.address, self._lost_reason, during=during) from exc
        _LOGGER.debug(
            "%s: %s (authenticated=%s)",
            self.address,
            "encrypted with stored bond" if use_bond else "paired and bonded",
            connection.authenticated,
        )

    # -- discovery ------------------------------------------------------------------------------
    async def _exchange_mtu(self) -> None:
        peer = self._require_peer()
        try:
            with self._errors("mtu"):
                await peer.request_mtu(self._mtu_request)
        except BleakGATTProtocolError:
            _LOGGER.debug("%s: MTU exchange refused, staying at 23", self.address)

    async def _discover(self) -> BleakGATTServiceCollection:
        peer = self._require_peer()
        wanted = [UUID(u) for u in sorted(self._service_filter)] if self._service_filter else []
        collection = BleakGATTServiceCollection()
        with self._errors("discover"):
            services = await peer.discover_services(wanted)
            for service in services:
                await peer.discover_characteristics(service=service)
                for characteristic in service.characteristics:
                    await peer.discover_descriptors(characteristic=characteristic)
        for service in services:
            bleak_service = BleakGATTService(service, service.handle, uuid_text(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                bleak_char = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    uuid_text(characteristic.uuid),
                    property_names(characteristic.properties),
                    self._max_write_without_response_size,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, uuid_text(descriptor.type), bleak_char
                        )
                    )
        return collection

    def _max_write_without_response_size(self) -> int:
        return self.mtu_size - 3

    # -- GATT I/O -------------------------------------------------------------------------------
    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        if use_cached:
            cached = self._require_peer().gatt_client.cached_values.get(proxy.handle)
            if cached is not None:
                return bytearray(cached[1])
        return bytearray(await self._gatt("read", proxy.read_value))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: DescriptorProxy = descriptor.obj
        if use_cached:
            cached = self._require_peer().gatt_client.cached_values.get(proxy.handle)
            if cached is not None:
                return bytearray(cached[1])
        return bytearray(await self._gatt("read", proxy.read_value))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        value = bytes(data)
        if not response and len(value) > self._max_write_without_response_size():
            raise BleakError(
                f"{len(value)} bytes exceed max_write_without_response_size "
                f"{self._max_write_without_response_size()}"
            )
        await self._gatt("write", lambda: proxy.write_value(value, with_response=response))

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        proxy: DescriptorProxy = descriptor.obj
        value = bytes(data)
        await self._gatt("write", lambda: proxy.write_value(value, with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        """Notifications when the characteristic has them, else indications (``force_indicate=True``
        picks indications when it has both, like bleak's WinRT option)."""
        properties = characteristic.properties
        if "notify" not in properties and "indicate" not in properties:
            raise BleakError(f"{characteristic.uuid} supports neither notify nor indicate")
        cccd = characteristic.get_descriptor(
            uuid_text(GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR)
        )
        if cccd is None:
            raise BleakError(f"{characteristic.uuid} has no CCCD (0x2902)")
        if characteristic.handle in self._notify:
            raise BleakError(f"notifications already started on {characteristic.uuid}")
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        prefer_notify = not kwargs.get("force_indicate", False)
        address = self.address

        def on_value(value: bytes) -> None:
            try:
                callback(bytearray(value))
            except Exception:
                _LOGGER.exception("%s: notification callback for %s failed", address, proxy.uuid)

        await self._gatt(
            "subscribe", lambda: proxy.subscribe(on_value, prefer_notify=prefer_notify)
        )
        self._notify[characteristic.handle] = on_value

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        on_value = self._notify.pop(characteristic.handle, None)
        if on_value is None:
            return
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._gatt("unsubscribe", lambda: proxy.unsubscribe(on_value))

    async def _gatt(self, operation: str, action: Callable[[], Awaitable[_T]]) -> _T:
        """Run one GATT procedure; on a security ATT error over an unencrypted link, pair once and
        retry once when ``pair=True`` was asked for."""
        connection = self._require_connection()
        with self._errors(operation):
            try:
                return await action()
            except att.ATT_Error as exc:
                if (
                    exc.error_code not in SECURITY_ATT_ERRORS
                    or not self._pair_on_demand
                    or self._security_retry_used
                    or connection.is_encrypted
                ):
                    raise
                _LOGGER.debug(
                    "%s: %s needs security (ATT 0x%02x): pairing and retrying once",
                    self.address,
                    operation,
                    exc.error_code,
                )
            self._security_retry_used = True
            await self._secure(connection, during="pair")
            return await action()

    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate bumble's exceptions into bleak's for the duration of one operation."""
        try:
            yield
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except core.TimeoutError as exc:
            raise TimeoutError(f"{self.address}: {operation} timed out") from exc
        except asyncio.CancelledError as exc:
            # bumble aborts in-flight requests with CancelledError when the link drops.
            if _really_cancelled():
                raise
            raise BumbleLinkLostError(self.address, self._lost_reason, during=operation) from exc

    def _require_connection(self) -> Connection:
        if self._connection is None:
            if self._lost_reason is not None:
                raise BumbleLinkLostError(self.address, self._lost_reason, during="io")
            raise BleakError("Not connected")
        return self._connection

    def _require_peer(self) -> Peer:
        self._require_connection()
        assert self._peer is not None
        return self._peer
