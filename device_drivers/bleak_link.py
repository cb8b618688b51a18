"""The GATT link over bleak: the only module (with :mod:`.bumble_backend`) that imports bleak.

* :class:`BleakGattLink` implements :class:`~device_drivers.link.GattLink` over a connected
  :class:`bleak.BleakClient`. Characteristics are named by 16-bit SIG number; bleak failures become
  typed :mod:`device_drivers.errors` (``GattError`` with the ATT code, ``LinkLostError``,
  ``PairingError``), never bleak exceptions.
* :func:`connect_gatt_link` connects (pairing and discovery included) with retries. With
  ``air=None`` it uses bleak's OS backend (BlueZ on the gateway); with a
  :class:`~device_drivers.bumble_air.BumbleAir` it uses the bumble backends, so the same code drives
  simulated meters or a bumble-hosted USB dongle.
* :func:`scan` returns typed :class:`ScanResult` s.
* :func:`classify` is pure: exception -> (stage, retryable, backoff_s). It uses only types and
  structured attributes (BlueZ D-Bus error *names*, ATT/HCI/SMP codes), never message text.

Why not bleak-retry-connector's ``establish_connection``: it works with a custom client class
(our bumble backend accepts its extra ``connect`` arguments, see tests/sim), but its policy does
not fit a medical gateway: a device that is not found counts as "transient" and is retried up to
9 times with 4 s backoffs whatever ``max_attempts`` says, each attempt gets a fixed 20 s timeout,
pairing failures are retried, and the final error is classified by message substrings. Our loop
retries only connection-stage failures, honours one timeout per attempt, and raises typed errors
whose ``retryable``/``backoff_s`` the gateway supervisor uses for its own, longer backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)
from bleak.uuids import normalize_uuid_str

from device_drivers.bumble_backend.errors import (
    BumbleConnectionError,
    BumbleLinkLostError,
    BumblePairingError,
)
from device_drivers.errors import (
    ConnectStage,
    DeviceNotFoundError,
    DeviceUnavailableError,
    GattError,
    LinkLostError,
    PairingError,
)
from device_drivers.link import ValueCallback
from device_drivers.uuids import full_uuid, short_uuid

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = [
    "CONNECT_TIMEOUT_S",
    "MIN_ADAPTER_CONNECT_TIMEOUT_S",
    "BleakGattLink",
    "Classification",
    "ScanResult",
    "classify",
    "connect_gatt_link",
    "scan",
    "to_driver_error",
    "watch_advertisements",
]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

CONNECT_TIMEOUT_S: Final = 20.0
MIN_ADAPTER_CONNECT_TIMEOUT_S: Final = 10.0
"""Home Assistant's Bluetooth docs: give BlueZ at least 10 s to connect (and resolve a device)."""

# Backoffs (seconds) after one failure, before the next attempt. Short ones follow
# bleak-retry-connector's measured values for BlueZ clean-up; the gateway backs off longer itself.
BACKOFF_TRANSIENT_S: Final = 0.25
"""Timeouts, aborted connection attempts, a link that dropped while connecting."""
BACKOFF_BUSY_S: Final = 1.0
"""Adapter or controller busy (BlueZ InProgress, HCI Command Disallowed)."""
BACKOFF_OUT_OF_SLOTS_S: Final = 4.0
"""No free connection slot, or the device fell out of the adapter's cache."""
BACKOFF_PAIRING_RETRY_S: Final = 5.0
"""Pairing timed out or was cancelled (nobody typed the PIN in time)."""
BACKOFF_NO_ADAPTER_S: Final = 30.0
"""Bluetooth is off or missing."""
BACKOFF_GENERIC_S: Final = 0.5

_SECURITY_ATT_CODES: Final = frozenset({0x05, 0x0C, 0x0F})
_BLUEZ_PAIRING_FATAL: Final = frozenset(
    {"org.bluez.Error.AuthenticationFailed", "org.bluez.Error.AuthenticationRejected"}
)
_BLUEZ_PAIRING_RETRY: Final = frozenset(
    {"org.bluez.Error.AuthenticationCanceled", "org.bluez.Error.AuthenticationTimeout"}
)
_BLUEZ_DEVICE_MISSING: Final = frozenset(
    {"org.freedesktop.DBus.Error.UnknownObject", "org.bluez.Error.DoesNotExist"}
)
_BLUEZ_BUSY: Final = frozenset({"org.bluez.Error.InProgress", "org.bluez.Error.NotReady"})
_HCI_BACKOFF_S: Final[dict[int, float]] = {
    0x09: BACKOFF_OUT_OF_SLOTS_S,  # Connection Limit Exceeded
    0x0C: BACKOFF_BUSY_S,  # Command Disallowed (a connection attempt is still pending)
    0x0D: BACKOFF_OUT_OF_SLOTS_S,  # Connection Rejected due to Limited Resources
    0x3E: BACKOFF_TRANSIENT_S,  # Connection Failed to be Established
}
_DURING_STAGE: Final[dict[str, ConnectStage]] = {
    "pair": ConnectStage.PAIR,
    "mtu": ConnectStage.DISCOVER,
    "discover": ConnectStage.DISCOVER,
    "subscribe": ConnectStage.SUBSCRIBE,
    "unsubscribe": ConnectStage.SUBSCRIBE,
}


class Classification(NamedTuple):
    stage: ConnectStage
    retryable: bool
    backoff_s: float


def _cause_chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def _classify_one(exc: BaseException) -> Classification | None:
    """The classification of one exception, or None when its type says nothing specific."""
    if isinstance(exc, DeviceUnavailableError):
        return Classification(exc.stage, exc.retryable, exc.backoff_s)
    if isinstance(exc, BleakDeviceNotFoundError):
        return Classification(ConnectStage.SCAN, True, BACKOFF_OUT_OF_SLOTS_S)
    if isinstance(exc, BumblePairingError):
        return Classification(ConnectStage.PAIR, False, 0.0)
    if isinstance(exc, BumbleLinkLostError):
        stage = _DURING_STAGE.get(exc.during, ConnectStage.TRANSFER)
        return Classification(stage, True, BACKOFF_TRANSIENT_S)
    if isinstance(exc, BumbleConnectionError):
        backoff = _HCI_BACKOFF_S.get(exc.hci_status or -1, BACKOFF_GENERIC_S)
        return Classification(ConnectStage.CONNECT, True, backoff)
    if isinstance(exc, BleakGATTProtocolError):
        if int(exc.code) in _SECURITY_ATT_CODES:
            return Classification(ConnectStage.PAIR, False, 0.0)
        return Classification(ConnectStage.DISCOVER, True, BACKOFF_GENERIC_S)
    if isinstance(exc, BleakCharacteristicNotFoundError):
        return Classification(ConnectStage.DISCOVER, False, 0.0)
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return Classification(ConnectStage.SCAN, True, BACKOFF_NO_ADAPTER_S)
    if isinstance(exc, BleakDBusError):
        return _classify_dbus(exc.dbus_error)
    if isinstance(exc, TimeoutError | EOFError | BrokenPipeError):
        # bleak's connect timeout; EOF/BrokenPipe: the D-Bus socket died under BlueZ.
        return Classification(ConnectStage.CONNECT, True, BACKOFF_TRANSIENT_S)
    if isinstance(exc, OSError):
        # The Bluetooth stack is out of reach: no D-Bus system bus socket (BlueZ not running),
        # or a bumble transport that refuses (no controller process, dongle unplugged).
        return Classification(ConnectStage.SCAN, True, BACKOFF_NO_ADAPTER_S)
    return None


def _classify_dbus(name: str) -> Classification:
    if name in _BLUEZ_PAIRING_FATAL:
        return Classification(ConnectStage.PAIR, False, 0.0)
    if name in _BLUEZ_PAIRING_RETRY:
        return Classification(ConnectStage.PAIR, True, BACKOFF_PAIRING_RETRY_S)
    if name in _BLUEZ_DEVICE_MISSING:
        return Classification(ConnectStage.SCAN, True, BACKOFF_OUT_OF_SLOTS_S)
    if name in _BLUEZ_BUSY:
        return Classification(ConnectStage.CONNECT, True, BACKOFF_BUSY_S)
    # org.bluez.Error.Failed (le-connection-abort-by-local, ...), NotConnected, ...
    return Classification(ConnectStage.CONNECT, True, BACKOFF_TRANSIENT_S)


def classify(exc: BaseException) -> Classification:
    """Where a connection failed, whether trying again can help, and how long to wait first.

    Pure. Looks at ``exc`` and then its ``__cause__`` chain for the first exception whose type (and
    structured attributes) is specific; a generic ``BleakError`` is a retryable connect failure,
    anything else (a programming error) is not retryable."""
    for item in _cause_chain(exc):
        found = _classify_one(item)
        if found is not None:
            return found
    if isinstance(exc, BleakError):
        return Classification(ConnectStage.CONNECT, True, BACKOFF_GENERIC_S)
    return Classification(ConnectStage.CONNECT, False, 0.0)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def to_driver_error(
    exc: BaseException, address: str, *, stage: ConnectStage | None = None
) -> DeviceUnavailableError:
    """The typed device-layer error for a bleak (or bumble backend) failure. Pure.

    ``stage`` overrides the classified stage (used for failures after connecting), except that a
    pairing failure always reports :attr:`ConnectStage.PAIR`."""
    if isinstance(exc, DeviceUnavailableError):
        return exc
    found = classify(exc)
    where = found.stage if stage is None or found.stage is ConnectStage.PAIR else stage
    reason = _describe(exc)
    error: DeviceUnavailableError
    if found.stage is ConnectStage.SCAN and any(
        isinstance(e, BleakDeviceNotFoundError) for e in _cause_chain(exc)
    ):
        error = DeviceNotFoundError(address, reason)
    elif found.stage is ConnectStage.PAIR and not found.retryable:
        error = PairingError(address, reason)
    elif isinstance(exc, BumbleLinkLostError):
        error = LinkLostError(address, where, reason)
    else:
        error = DeviceUnavailableError(address, where, reason, retryable=found.retryable)
    error.backoff_s = found.backoff_s
    return error


def _retry_in_place(error: DeviceUnavailableError) -> bool:
    """Worth another attempt right now inside one connect call? Not-found already waited the whole
    timeout and pairing failures need the user; those go back to the caller at once."""
    return error.retryable and error.stage in (
        ConnectStage.CONNECT,
        ConnectStage.DISCOVER,
        ConnectStage.SUBSCRIBE,
    )


class BleakGattLink:
    """:class:`~device_drivers.link.GattLink` over a connected :class:`bleak.BleakClient`."""

    def __init__(self, client: BleakClient) -> None:
        self._client = client
        self._subscribed: set[int] = set()

    @property
    def client(self) -> BleakClient:
        return self._client

    @property
    def address(self) -> str:
        return self._client.address

    @property
    def is_connected(self) -> bool:
        return self._client.is_connected

    @property
    def mtu_size(self) -> int:
        return self._client.mtu_size

    def has_characteristic(self, uuid16: int) -> bool:
        return self._characteristic(uuid16) is not None

    def service_uuid16s(self) -> tuple[int, ...]:
        """The SIG 16-bit numbers of the discovered services (empty when disconnected)."""
        try:
            services = self._client.services
        except BleakError:
            return ()
        return tuple(u for s in services if (u := short_uuid(s.uuid)) is not None)

    def _characteristic(self, uuid16: int) -> BleakGATTCharacteristic | None:
        try:
            services = self._client.services
        except BleakError:  # not connected / not discovered
            return None
        return services.get_characteristic(full_uuid(uuid16))

    def _require(self, uuid16: int, stage: ConnectStage) -> BleakGATTCharacteristic:
        characteristic = self._characteristic(uuid16)
        if characteristic is not None:
            return characteristic
        if not self._client.is_connected:
            raise LinkLostError(self.address, stage, "not connected")
        raise DeviceUnavailableError(
            self.address,
            stage,
            f"characteristic 0x{uuid16:04x} is not offered by the device",
            retryable=False,
        )

    async def _op(
        self, uuid16: int, operation: str, stage: ConnectStage, action: Awaitable[_T]
    ) -> _T:
        try:
            return await action
        except BleakGATTProtocolError as exc:
            raise GattError(uuid16, int(exc.code), operation) from exc
        except BleakError as exc:
            if isinstance(exc, BumbleLinkLostError) or not self._client.is_connected:
                raise LinkLostError(self.address, stage, _describe(exc)) from exc
            raise to_driver_error(exc, self.address, stage=stage) from exc

    async def read(self, uuid16: int) -> bytes:
        characteristic = self._require(uuid16, ConnectStage.TRANSFER)
        value = await self._op(
            uuid16, "read", ConnectStage.TRANSFER, self._client.read_gatt_char(characteristic)
        )
        return bytes(value)

    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None:
        characteristic = self._require(uuid16, ConnectStage.TRANSFER)
        await self._op(
            uuid16,
            "write",
            ConnectStage.TRANSFER,
            self._client.write_gatt_char(characteristic, data, response=response),
        )

    async def subscribe(self, uuid16: int, callback: ValueCallback) -> None:
        """Enable notifications/indications; subscribing again replaces the callback."""
        characteristic = self._require(uuid16, ConnectStage.SUBSCRIBE)
        if uuid16 in self._subscribed:
            await self.unsubscribe(uuid16)

        def on_value(_: BleakGATTCharacteristic, data: bytearray) -> None:
            callback(uuid16, bytes(data))

        await self._op(
            uuid16,
            "subscribe",
            ConnectStage.SUBSCRIBE,
            self._client.start_notify(characteristic, on_value),
        )
        self._subscribed.add(uuid16)

    async def unsubscribe(self, uuid16: int) -> None:
        if uuid16 not in self._subscribed:
            return
        self._subscribed.discard(uuid16)
        if not self._client.is_connected:
            return
        characteristic = self._require(uuid16, ConnectStage.SUBSCRIBE)
        await self._op(
            uuid16, "unsubscribe", ConnectStage.SUBSCRIBE, self._client.stop_notify(characteristic)
        )

    async def disconnect(self) -> None:
        """Idempotent; a failure to disconnect cleanly is logged, not raised."""
        self._subscribed.clear()
        try:
            await self._client.disconnect()
        except (BleakError, TimeoutError, EOFError, BrokenPipeError):
            _LOGGER.debug("%s: disconnect failed", self.address, exc_info=True)


_CONNECT_ERRORS: Final = (BleakError, EOFError, OSError)  # OSError: also timeouts, broken pipes


def _bumble_client_backend() -> type[BaseBleakClient]:
    from device_drivers.bumble_backend.client import BumbleBleakClient

    return BumbleBleakClient


def _bumble_scanner_backend() -> type[BaseBleakScanner]:
    from device_drivers.bumble_backend.scanner import BumbleBleakScanner

    return BumbleBleakScanner


async def connect_gatt_link(
    address: str,
    *,
    air: BumbleAir | None = None,
    backend: type[BaseBleakClient] | None = None,
    pair: bool = True,
    timeout_s: float = CONNECT_TIMEOUT_S,
    attempts: int = 3,
    disconnected_callback: Callable[[BleakGattLink], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> BleakGattLink:
    """Connect, pair/bond (``pair=True``, spec ble.md §1.5) and discover; retry connection-stage
    failures up to ``attempts`` times with the classified backoff.

    ``air=None`` uses bleak's OS backend (BlueZ); ``air`` uses the bumble backends on that air;
    ``backend`` overrides the client backend class. Raises a :class:`DeviceUnavailableError`
    subclass (:class:`DeviceNotFoundError`, :class:`PairingError`, :class:`LinkLostError`) whose
    ``stage``, ``retryable`` and ``backoff_s`` tell the caller what to do next.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    if air is None and backend is None and timeout_s < MIN_ADAPTER_CONNECT_TIMEOUT_S:
        raise ValueError(
            f"timeout_s={timeout_s} is too short for a real adapter "
            f"(at least {MIN_ADAPTER_CONNECT_TIMEOUT_S:.0f} s)"
        )
    extra: dict[str, Any] = {}
    if air is not None:
        backend = backend or _bumble_client_backend()
        extra["air"] = air
    holder: list[BleakGattLink] = []

    def on_disconnect(_: BleakClient) -> None:
        if holder and disconnected_callback is not None:
            disconnected_callback(holder[0])

    for attempt in range(1, attempts + 1):
        client = BleakClient(
            address,
            on_disconnect,
            timeout=timeout_s,
            pair=pair,
            backend=backend,
            **extra,
        )
        try:
            await client.connect()
        except _CONNECT_ERRORS as exc:
            error = to_driver_error(exc, address)
            _LOGGER.debug(
                "%s: connect attempt %d/%d failed at %s (retryable=%s, backoff %.2f s): %s",
                address,
                attempt,
                attempts,
                error.stage.value,
                error.retryable,
                error.backoff_s,
                error.reason,
            )
            if attempt == attempts or not _retry_in_place(error):
                raise error from exc
            await sleep(error.backoff_s)
            continue
        link = BleakGattLink(client)
        holder.append(link)
        _LOGGER.debug("%s: connected on attempt %d", address, attempt)
        return link
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One advertising device as seen by :func:`scan` (latest advertisement)."""

    address: str
    name: str | None
    rssi: int
    service_uuids: tuple[str, ...]
    manufacturer_data: Mapping[int, bytes]
    service_data: Mapping[str, bytes]
    tx_power: int | None

    @property
    def service_uuid16s(self) -> tuple[int, ...]:
        """The advertised services that are on the SIG base, as 16-bit numbers."""
        return tuple(u for u in map(short_uuid, self.service_uuids) if u is not None)

    @classmethod
    def from_bleak(cls, address: str, name: str | None, adv: AdvertisementData) -> ScanResult:
        return cls(
            address=address,
            name=adv.local_name or name,
            rssi=adv.rssi,
            service_uuids=tuple(adv.service_uuids),
            manufacturer_data=dict(adv.manufacturer_data),
            service_data=dict(adv.service_data),
            tx_power=adv.tx_power,
        )


async def scan(
    service_uuids: Iterable[int | str] = (),
    *,
    air: BumbleAir | None = None,
    backend: type[BaseBleakScanner] | None = None,
    duration_s: float = 5.0,
) -> list[ScanResult]:
    """Scan for ``duration_s`` and return the devices advertising any of ``service_uuids`` (all
    devices when empty), strongest signal first. ``air`` and ``backend`` as in
    :func:`connect_gatt_link`."""
    wanted = [full_uuid(u) if isinstance(u, int) else normalize_uuid_str(u) for u in service_uuids]
    extra: dict[str, Any] = {}
    if air is not None:
        backend = backend or _bumble_scanner_backend()
        extra["air"] = air
    scanner = BleakScanner(service_uuids=wanted or None, backend=backend, **extra)
    try:
        async with scanner:
            await asyncio.sleep(duration_s)
    except _CONNECT_ERRORS as exc:
        raise to_driver_error(exc, "(adapter)", stage=ConnectStage.SCAN) from exc
    found = scanner.discovered_devices_and_advertisement_data
    results = [ScanResult.from_bleak(d.address, d.name, adv) for d, adv in found.values()]
    results.sort(key=lambda r: r.rssi, reverse=True)
    return results


@contextlib.asynccontextmanager
async def watch_advertisements(
    on_advertisement: Callable[[ScanResult], None],
    service_uuids: Iterable[int | str] = (),
    *,
    air: BumbleAir | None = None,
    backend: type[BaseBleakScanner] | None = None,
) -> AsyncIterator[None]:
    """Scan continuously while the context is open, calling ``on_advertisement`` for every
    advertisement heard (of ``service_uuids``, or all when empty). The gateway's scanner uses it
    to notice enrolled devices the moment they advertise. Starting raises a scan-stage
    :class:`DeviceUnavailableError` when the Bluetooth stack is out of reach."""
    wanted = [full_uuid(u) if isinstance(u, int) else normalize_uuid_str(u) for u in service_uuids]
    extra: dict[str, Any] = {}
    if air is not None:
        backend = backend or _bumble_scanner_backend()
        extra["air"] = air

    def detected(device: BLEDevice, adv: AdvertisementData) -> None:
        on_advertisement(ScanResult.from_bleak(device.address, device.name, adv))

    scanner = BleakScanner(detected, service_uuids=wanted or None, backend=backend, **extra)
    try:
        await scanner.start()
    except _CONNECT_ERRORS as exc:
        raise to_driver_error(exc, "(adapter)", stage=ConnectStage.SCAN) from exc
    try:
        yield
    finally:
        try:
            await scanner.stop()
        except _CONNECT_ERRORS:
            _LOGGER.debug("stopping the scan failed", exc_info=True)
