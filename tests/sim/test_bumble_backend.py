"""The bleak backends over bumble, exercised only through bleak's public API.

Each test sets up a small bumble GATT server inline (a peripheral on the same BumbleAir) and talks
to it with ``BleakClient(..., backend=BumbleBleakClient, air=air)`` /
``BleakScanner(backend=BumbleBleakScanner, air=air)``; the last tests do the same across a real HCI
transport (TCP) between two airs, and through device_drivers.bleak_link.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection
from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from device_drivers.bumble_air import BumbleAir
from device_drivers.bumble_backend import (
    BumbleBleakClient,
    BumbleBleakScanner,
    BumbleLinkLostError,
    BumblePairingError,
)

pytestmark = pytest.mark.sim

BASE = "-0000-1000-8000-00805f9b34fb"
BP_SERVICE = f"00001810{BASE}"
BATTERY_LEVEL = f"00002a19{BASE}"
BP_MEASUREMENT = f"00002a35{BASE}"  # indicate only
CUFF_PRESSURE = f"00002a36{BASE}"  # notify only
CURRENT_TIME = f"00002a2b{BASE}"  # read + notify + indicate
BP_FEATURE = f"00002a49{BASE}"  # read requires encryption
CCCD = f"00002902{BASE}"
TEST_SERVICE = "a0b40001-926d-4d61-98df-8c5c62ee53b3"
TEST_WRITE = "a0b40002-926d-4d61-98df-8c5c62ee53b3"
TEST_SLOW = "a0b40003-926d-4d61-98df-8c5c62ee53b3"
TEST_PICKY = "a0b40004-926d-4d61-98df-8c5c62ee53b3"
COMPANY_ID = 0x0ABC
SHORT_TIMEOUT_S = 2.0


@dataclass
class Peripheral:
    """A small GATT server: readable, notify-only, indicate-only, both, writable, encrypted."""

    device: Device
    name: str
    writes: list[bytes] = field(default_factory=list)
    subscriptions: list[tuple[str, bool, bool]] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    pairings: int = 0
    slow_read: asyncio.Future[bytes] | None = None

    def __post_init__(self) -> None:
        props = Characteristic.Properties
        self.battery = Characteristic("2A19", props.READ, Characteristic.READABLE, b"\x55")
        self.cuff = Characteristic("2A36", props.NOTIFY, Characteristic.READABLE, b"")
        self.measurement = Characteristic("2A35", props.INDICATE, Characteristic.READABLE, b"")
        self.time = Characteristic(
            "2A2B", props.READ | props.NOTIFY | props.INDICATE, Characteristic.READABLE, b"\x00"
        )
        self.feature = Characteristic(
            "2A49", props.READ, Characteristic.READ_REQUIRES_ENCRYPTION, b"\x03\x00"
        )
        self.write = Characteristic(
            TEST_WRITE,
            props.WRITE | props.WRITE_WITHOUT_RESPONSE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_write),
        )
        self.slow = Characteristic(
            TEST_SLOW, props.READ, Characteristic.READABLE, CharacteristicValue(read=self._slow)
        )
        self.picky = Characteristic(
            TEST_PICKY, props.READ, Characteristic.READABLE, CharacteristicValue(read=self._picky)
        )
        self.device.add_services(
            [
                Service(
                    "1810",
                    [self.battery, self.cuff, self.measurement, self.time, self.feature],
                ),
                Service(TEST_SERVICE, [self.write, self.slow, self.picky]),
            ]
        )
        self.device.on("characteristic_subscription", self._on_subscription)
        self.device.on("connection", self._on_connection)

    def _on_write(self, _connection: Connection, value: bytes) -> None:
        if value == b"\x80":  # like a RACP write while a procedure runs (spec ble.md §1.4)
            raise att.ATT_Error(0x80)
        self.writes.append(bytes(value))

    async def _slow(self, _connection: Connection) -> bytes:
        self.slow_read = asyncio.get_running_loop().create_future()
        return await self.slow_read

    def _picky(self, _connection: Connection) -> bytes:
        # A server that wants more than any key we can get (say, a MITM key for a RACP write).
        raise att.ATT_Error(att.ErrorCode.INSUFFICIENT_AUTHENTICATION)

    def _on_subscription(
        self, _connection: Connection, characteristic: Characteristic, notify: bool, indicate: bool
    ) -> None:
        self.subscriptions.append((str(characteristic.uuid), notify, indicate))

    def _on_connection(self, connection: Connection) -> None:
        self.connections.append(connection)

        def on_pairing(_keys: object) -> None:
            self.pairings += 1

        connection.on("pairing", on_pairing)

    @property
    def address(self) -> str:
        return str(self.device.random_address)

    async def start(self) -> None:
        await self.device.power_on()
        self.device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID("1810")),
                    ),
                    (AdvertisingData.MANUFACTURER_SPECIFIC_DATA, b"\xbc\x0a\x01\x02"),
                    (AdvertisingData.SERVICE_DATA_16_BIT_UUID, b"\x10\x18\x07"),
                    (AdvertisingData.TX_POWER_LEVEL, b"\xf8"),
                ]
            )
        )
        await self.device.start_advertising(
            advertising_interval_min=20, advertising_interval_max=20, auto_restart=True
        )

    async def drop_link(self) -> None:
        await self.connections[-1].disconnect()


async def make_peripheral(air: BumbleAir, name: str) -> Peripheral:
    peripheral = Peripheral(await air.create_device(name), name)
    await peripheral.start()
    return peripheral


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    the_air = BumbleAir()
    yield the_air
    await the_air.close()


@pytest.fixture
async def cuff(air: BumbleAir) -> AsyncIterator[Peripheral]:
    peripheral = await make_peripheral(air, "anjia-cuff")
    yield peripheral
    await peripheral.device.power_off()


def client_for(target: str | BLEDevice, air: BumbleAir, **kwargs: object) -> BleakClient:
    kwargs.setdefault("timeout", SHORT_TIMEOUT_S)
    return BleakClient(target, backend=BumbleBleakClient, air=air, **kwargs)  # type: ignore[arg-type]


async def wait_for(predicate: Callable[[], object], timeout_s: float = SHORT_TIMEOUT_S) -> None:
    """Poll a condition set by bumble callbacks we do not own (no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


# -- discovery ----------------------------------------------------------------------------------
async def test_discovery_gives_full_lowercase_uuids_properties_and_descriptors(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air) as client:
        assert client.is_connected
        assert client.backend_id == "BumbleBleakClient"
        service = client.services.get_service(BP_SERVICE)
        assert service is not None
        chars = {c.uuid: c for c in service.characteristics}
        assert set(chars) == {
            BATTERY_LEVEL,
            CUFF_PRESSURE,
            BP_MEASUREMENT,
            CURRENT_TIME,
            BP_FEATURE,
        }
        assert chars[BATTERY_LEVEL].properties == ["read"]
        assert chars[CUFF_PRESSURE].properties == ["notify"]
        assert chars[BP_MEASUREMENT].properties == ["indicate"]
        assert chars[CURRENT_TIME].properties == ["read", "notify", "indicate"]
        assert [d.uuid for d in chars[BP_MEASUREMENT].descriptors] == [CCCD]
        assert chars[BATTERY_LEVEL].descriptors == []
        custom = client.services.get_service(TEST_SERVICE)
        assert custom is not None
        write = custom.get_characteristic(TEST_WRITE)
        assert write is not None
        assert write.properties == ["write-without-response", "write"]
        assert write.service_uuid == TEST_SERVICE
        # the negotiated MTU sizes writes without response
        assert client.mtu_size == 247
        assert write.max_write_without_response_size == 244
        assert client.name == "anjia-cuff"


async def test_services_filter_discovers_only_the_requested_service(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air, services=["1810"]) as client:
        assert [s.uuid for s in client.services] == [BP_SERVICE]


# -- read / write ------------------------------------------------------------------------------
async def test_read_write_with_and_without_response(air: BumbleAir, cuff: Peripheral) -> None:
    async with client_for(cuff.address, air) as client:
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x55")
        cuff.battery.value = b"\x20"
        assert await client.read_gatt_char("2a19") == bytearray(b"\x20")
        assert await client.read_gatt_char("2a19", use_cached=True) == bytearray(b"\x20")

        await client.write_gatt_char(TEST_WRITE, b"\x01\x01", response=True)
        assert cuff.writes == [b"\x01\x01"]  # the response means the server has it already
        await client.write_gatt_char(TEST_WRITE, bytearray(b"\x03\x00"), response=False)
        await wait_for(lambda: len(cuff.writes) == 2)
        assert cuff.writes[1] == b"\x03\x00"


async def test_att_errors_surface_as_gatt_protocol_errors_with_the_code(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air) as client:
        with pytest.raises(BleakGATTProtocolError) as info:
            await client.write_gatt_char(TEST_WRITE, b"\x80", response=True)
        assert info.value.code == 0x80
        assert cuff.writes == []
        assert client.is_connected


# -- notify / indicate ------------------------------------------------------------------------
async def test_notify_only_characteristic_delivers_notifications(
    air: BumbleAir, cuff: Peripheral
) -> None:
    received: asyncio.Queue[tuple[str, bytearray]] = asyncio.Queue()
    async with client_for(cuff.address, air) as client:

        def on_value(sender: BleakGATTCharacteristic, data: bytearray) -> None:
            received.put_nowait((sender.uuid, data))

        await client.start_notify(CUFF_PRESSURE, on_value)
        assert cuff.subscriptions[-1][1:] == (True, False)
        cccd = client.services.get_characteristic(CUFF_PRESSURE).get_descriptor(CCCD)  # type: ignore[union-attr]
        assert await client.read_gatt_descriptor(cccd.handle) == bytearray(b"\x01\x00")  # type: ignore[union-attr]

        for value in (b"\x01", b"\x02\x03"):
            await cuff.device.notify_subscribers(cuff.cuff, value)
        async with asyncio.timeout(SHORT_TIMEOUT_S):
            first = await received.get()
            second = await received.get()
        assert first == (CUFF_PRESSURE, bytearray(b"\x01"))
        assert second == (CUFF_PRESSURE, bytearray(b"\x02\x03"))
        assert isinstance(first[1], bytearray)

        await client.stop_notify(CUFF_PRESSURE)
        assert cuff.subscriptions[-1][1:] == (False, False)


async def test_indicate_only_characteristic_is_subscribed_with_indications(
    air: BumbleAir, cuff: Peripheral
) -> None:
    received: asyncio.Queue[bytearray] = asyncio.Queue()
    async with client_for(cuff.address, air) as client:
        await client.start_notify(BP_MEASUREMENT, lambda _c, data: received.put_nowait(data))
        assert cuff.subscriptions[-1] == (str(cuff.measurement.uuid), False, True)
        # indicate_subscribers waits for the client's ATT confirmation
        async with asyncio.timeout(SHORT_TIMEOUT_S):
            await cuff.device.indicate_subscribers(cuff.measurement, b"\x00\x72\x00")
            assert await received.get() == bytearray(b"\x00\x72\x00")


async def test_both_notify_and_indicate_prefers_notify_unless_forced(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air) as client:
        await client.start_notify(CURRENT_TIME, lambda _c, _d: None)
        assert cuff.subscriptions[-1][1:] == (True, False)
        await client.stop_notify(CURRENT_TIME)
        await client.start_notify(CURRENT_TIME, lambda _c, _d: None, force_indicate=True)
        assert cuff.subscriptions[-1][1:] == (False, True)


async def test_async_callback_and_a_failing_callback_do_not_break_the_link(
    air: BumbleAir, cuff: Peripheral
) -> None:
    got: asyncio.Queue[bytearray] = asyncio.Queue()

    async def on_value(_c: BleakGATTCharacteristic, data: bytearray) -> None:
        await got.put(data)

    def broken(_c: BleakGATTCharacteristic, _d: bytearray) -> None:
        raise RuntimeError("bug in the caller's callback")

    async with client_for(cuff.address, air) as client:
        await client.start_notify(CUFF_PRESSURE, broken)
        await client.start_notify(BP_MEASUREMENT, on_value)
        await cuff.device.notify_subscribers(cuff.cuff, b"\x09")
        async with asyncio.timeout(SHORT_TIMEOUT_S):
            await cuff.device.indicate_subscribers(cuff.measurement, b"\x0a")
            assert await got.get() == bytearray(b"\x0a")
        assert client.is_connected


async def test_start_notify_on_a_plain_readable_characteristic_is_refused(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air) as client:
        with pytest.raises(BleakError):
            await client.start_notify(BATTERY_LEVEL, lambda _c, _d: None)


# -- security ---------------------------------------------------------------------------------
async def test_encrypted_characteristic_needs_pairing_then_reads(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air, pair=False) as client:
        with pytest.raises(BleakGATTProtocolError) as info:
            await client.read_gatt_char(BP_FEATURE)
        assert info.value.code == att.ErrorCode.INSUFFICIENT_ENCRYPTION
        assert cuff.pairings == 0

        await client.pair()
        assert cuff.pairings == 1
        assert await client.read_gatt_char(BP_FEATURE) == bytearray(b"\x03\x00")
        await client.pair()  # already paired and encrypted: nothing happens
        assert cuff.pairings == 1


async def test_pair_true_pairs_on_the_first_security_error_and_reuses_the_bond(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air, pair=True) as client:
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x55")
        assert cuff.pairings == 0  # nothing asked for security yet
        assert await client.read_gatt_char(BP_FEATURE) == bytearray(b"\x03\x00")
        assert cuff.pairings == 1
    # The bond lives in the air's key store: a new client encrypts while connecting, no pairing.
    async with client_for(cuff.address, air, pair=True) as client:
        assert cuff.connections[-1].is_encrypted
        assert await client.read_gatt_char(BP_FEATURE) == bytearray(b"\x03\x00")
    assert cuff.pairings == 1


async def test_security_error_is_retried_once_only(air: BumbleAir, cuff: Peripheral) -> None:
    async with client_for(cuff.address, air, pair=True) as client:
        with pytest.raises(BleakGATTProtocolError) as info:
            await client.read_gatt_char(TEST_PICKY)
        assert info.value.code == att.ErrorCode.INSUFFICIENT_AUTHENTICATION
        assert cuff.pairings == 1  # paired once, retried once, then reported: no loop
        with pytest.raises(BleakGATTProtocolError):
            await client.read_gatt_char(TEST_PICKY)
        assert cuff.pairings == 1
        assert client.is_connected


async def test_without_pair_a_security_error_is_not_retried(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air, pair=False) as client:
        with pytest.raises(BleakGATTProtocolError):
            await client.read_gatt_char(TEST_PICKY)
    assert cuff.pairings == 0


async def test_bond_lost_on_the_peripheral_is_a_pairing_error(
    air: BumbleAir, cuff: Peripheral
) -> None:
    async with client_for(cuff.address, air) as client:
        await client.pair()
    await cuff.device.keystore.delete_all()  # the meter forgot us (battery change, reset)
    with pytest.raises(BumblePairingError) as info:
        await client_for(cuff.address, air, pair=True).connect()
    assert info.value.hci_status == 0x06  # PIN or Key Missing


async def test_unpair_forgets_the_bond(air: BumbleAir, cuff: Peripheral) -> None:
    client = client_for(cuff.address, air, pair=True)
    await client.connect()
    await client.read_gatt_char(BP_FEATURE)  # pairs and bonds
    await client.unpair()
    assert not client.is_connected
    async with client_for(cuff.address, air, pair=False) as again:
        with pytest.raises(BleakGATTProtocolError):
            await again.read_gatt_char(BP_FEATURE)


# -- link loss --------------------------------------------------------------------------------
async def test_peripheral_dropping_the_link_calls_the_disconnected_callback_once(
    air: BumbleAir, cuff: Peripheral
) -> None:
    calls: list[BleakClient] = []
    client = client_for(cuff.address, air, disconnected_callback=calls.append)
    await client.connect()
    await cuff.drop_link()
    await wait_for(lambda: calls)
    assert calls == [client]
    assert not client.is_connected
    with pytest.raises(BleakError):  # as with BlueZ, the services go with the connection
        await client.read_gatt_char(BATTERY_LEVEL)
    await client.disconnect()  # harmless after a drop
    assert calls == [client]


async def test_link_lost_during_a_read_raises_link_lost(air: BumbleAir, cuff: Peripheral) -> None:
    async with client_for(cuff.address, air) as client:
        read = asyncio.create_task(client.read_gatt_char(TEST_SLOW))
        await wait_for(lambda: cuff.slow_read is not None)
        await cuff.drop_link()
        with pytest.raises(BumbleLinkLostError) as info:
            await read
        assert info.value.during == "read"
        assert info.value.hci_reason == 0x13  # Remote User Terminated Connection


async def test_local_disconnect_calls_the_callback_and_allows_reconnecting(
    air: BumbleAir, cuff: Peripheral
) -> None:
    calls: list[BleakClient] = []
    client = client_for(cuff.address, air, disconnected_callback=calls.append)
    await client.connect()
    await client.disconnect()
    assert calls == [client]
    assert not client.is_connected
    await client.connect()
    assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x55")
    await client.disconnect()


# -- not found ----------------------------------------------------------------------------------
async def test_unknown_address_is_device_not_found_quickly(
    air: BumbleAir, cuff: Peripheral
) -> None:
    started = time.perf_counter()
    with pytest.raises(BleakDeviceNotFoundError) as info:
        await client_for("C0:11:22:33:44:55", air, timeout=0.3).connect()
    elapsed = time.perf_counter() - started
    assert info.value.identifier == "C0:11:22:33:44:55"
    assert 0.25 < elapsed < 1.5
    # the central is still fine: the next connection works
    async with client_for(cuff.address, air) as client:
        assert client.is_connected


# -- scanning ----------------------------------------------------------------------------------
async def test_scanner_maps_advertisement_data(air: BumbleAir, cuff: Peripheral) -> None:
    seen: dict[str, tuple[BLEDevice, AdvertisementData]] = await BleakScanner.discover(
        0.2, return_adv=True, backend=BumbleBleakScanner, air=air
    )
    assert cuff.address in seen
    device, adv = seen[cuff.address]
    assert device.name == "anjia-cuff"
    assert adv.local_name == "anjia-cuff"
    assert adv.service_uuids == [BP_SERVICE]
    assert adv.manufacturer_data == {COMPANY_ID: b"\x01\x02"}
    assert adv.service_data == {BP_SERVICE: b"\x07"}
    assert adv.tx_power == -8
    assert isinstance(adv.rssi, int)


async def test_scanner_filters_on_service_uuids(air: BumbleAir, cuff: Peripheral) -> None:
    other = Peripheral(await air.create_device("other"), "other")
    other.device.advertising_data = bytes(
        AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"other")])
    )
    await other.device.power_on()
    await other.device.start_advertising(advertising_interval_min=20, advertising_interval_max=20)
    try:
        everything = await BleakScanner.discover(0.2, backend=BumbleBleakScanner, air=air)
        assert {d.address for d in everything} == {cuff.address, other.address}
        filtered = await BleakScanner.discover(
            0.2, service_uuids=[BP_SERVICE], backend=BumbleBleakScanner, air=air
        )
        assert [d.address for d in filtered] == [cuff.address]
        by_name = await BleakScanner.find_device_by_name(
            "anjia-cuff", timeout=SHORT_TIMEOUT_S, backend=BumbleBleakScanner, air=air
        )
        assert by_name is not None
        assert by_name.address == cuff.address
    finally:
        await other.device.power_off()


async def test_scan_then_connect_on_one_air(air: BumbleAir, cuff: Peripheral) -> None:
    found: asyncio.Queue[BLEDevice] = asyncio.Queue()
    scanner = BleakScanner(
        lambda device, _adv: found.put_nowait(device),
        service_uuids=[BP_SERVICE],
        backend=BumbleBleakScanner,
        air=air,
    )
    await scanner.start()
    try:
        async with asyncio.timeout(SHORT_TIMEOUT_S):
            device = await found.get()
        # connect while the scanner keeps scanning on the same central, then after it stopped
        async with client_for(device, air) as client:
            assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x55")
    finally:
        await scanner.stop()
    async with client_for(device, air) as client:
        assert client.is_connected


async def test_two_peripherals_connected_at_once_on_one_central(
    air: BumbleAir, cuff: Peripheral
) -> None:
    meter = await make_peripheral(air, "anjia-meter")
    try:
        meter.battery.value = b"\x11"
        first, second = client_for(cuff.address, air), client_for(meter.address, air)
        await asyncio.gather(first.connect(), second.connect())
        values = await asyncio.gather(
            first.read_gatt_char(BATTERY_LEVEL), second.read_gatt_char(BATTERY_LEVEL)
        )
        assert values == [bytearray(b"\x55"), bytearray(b"\x11")]
        await asyncio.gather(first.disconnect(), second.disconnect())
    finally:
        await meter.device.power_off()


async def test_bleak_retry_connector_establish_connection_accepts_the_backend(
    air: BumbleAir, cuff: Peripheral
) -> None:
    device = await BleakScanner.find_device_by_address(
        cuff.address, timeout=SHORT_TIMEOUT_S, backend=BumbleBleakScanner, air=air
    )
    assert device is not None
    client = await establish_connection(
        BleakClient,
        device,
        "cuff",
        max_attempts=1,
        backend=BumbleBleakClient,
        air=air,
        timeout=SHORT_TIMEOUT_S,
    )
    try:
        assert await client.read_gatt_char(BATTERY_LEVEL) == bytearray(b"\x55")
    finally:
        await client.disconnect()


# -- over an HCI transport -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_scan_connect_and_notify_over_a_tcp_hci_transport(
    air: BumbleAir, cuff: Peripheral
) -> None:
    port = free_port()
    await air.expose(f"tcp-server:127.0.0.1:{port}")
    gateway_air = BumbleAir.from_moniker(f"tcp-client:127.0.0.1:{port}")
    try:
        seen = await BleakScanner.discover(
            0.3,
            return_adv=True,
            service_uuids=[BP_SERVICE],
            backend=BumbleBleakScanner,
            air=gateway_air,
        )
        assert list(seen) == [cuff.address]
        device, adv = seen[cuff.address]
        assert adv.local_name == "anjia-cuff"
        received: asyncio.Queue[bytearray] = asyncio.Queue()
        async with client_for(device, gateway_air, pair=True) as client:
            assert await client.read_gatt_char(BP_FEATURE) == bytearray(b"\x03\x00")
            await client.start_notify(BP_MEASUREMENT, lambda _c, d: received.put_nowait(d))
            async with asyncio.timeout(SHORT_TIMEOUT_S):
                await cuff.device.indicate_subscribers(cuff.measurement, b"\x42")
                assert await received.get() == bytearray(b"\x42")
    finally:
        await gateway_air.close()
