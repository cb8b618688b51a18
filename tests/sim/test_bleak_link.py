"""device_drivers.bleak_link over the bumble backends: the GattLink drivers use, typed errors,
connection retries with classified backoff, and scanning."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from bumble import att
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from device_drivers.bleak_link import BleakGattLink, connect_gatt_link, scan
from device_drivers.bumble_air import BumbleAir
from device_drivers.bumble_backend import BumbleBleakClient
from device_drivers.errors import (
    ConnectStage,
    DeviceNotFoundError,
    DeviceUnavailableError,
    GattError,
    LinkLostError,
    PairingError,
)
from device_drivers.link import GattLink
from device_drivers.uuids import (
    BATTERY_LEVEL,
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    GLUCOSE_MEASUREMENT,
    INTERMEDIATE_CUFF_PRESSURE,
    RECORD_ACCESS_CONTROL_POINT,
)

pytestmark = pytest.mark.sim

TIMEOUT_S = 2.0


class Cuff:
    """A blood-pressure-like peripheral: battery (read), BP feature (encrypted read), measurement
    (indicate), cuff pressure (notify), and a RACP-like control point that refuses 0xFF."""

    def __init__(self, device: Device) -> None:
        props = Characteristic.Properties
        self.device = device
        self.writes: list[bytes] = []
        self.connections: list[Connection] = []
        self.battery = Characteristic("2A19", props.READ, Characteristic.READABLE, b"\x64")
        self.feature = Characteristic(
            "2A49", props.READ, Characteristic.READ_REQUIRES_ENCRYPTION, b"\x01\x00"
        )
        self.measurement = Characteristic("2A35", props.INDICATE, Characteristic.READABLE, b"")
        self.cuff = Characteristic("2A36", props.NOTIFY, Characteristic.READABLE, b"")
        self.racp = Characteristic(
            "2A52",
            props.WRITE | props.INDICATE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_racp),
        )
        device.add_services(
            [Service("1810", [self.battery, self.feature, self.measurement, self.cuff, self.racp])]
        )
        device.on("connection", self.connections.append)

    def _on_racp(self, _connection: Connection, value: bytes) -> None:
        if value == b"\xff":
            raise att.ATT_Error(0x81)  # CCCD improperly configured (spec ble.md §1.4)
        self.writes.append(bytes(value))

    @property
    def address(self) -> str:
        return str(self.device.random_address)

    async def start(self) -> None:
        await self.device.power_on()
        self.device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.COMPLETE_LOCAL_NAME, b"cuff"),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                        bytes(UUID("1810")),
                    ),
                ]
            )
        )
        await self.device.start_advertising(
            advertising_interval_min=20, advertising_interval_max=20, auto_restart=True
        )


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    the_air = BumbleAir()
    yield the_air
    await the_air.close()


@pytest.fixture
async def cuff(air: BumbleAir) -> AsyncIterator[Cuff]:
    peripheral = Cuff(await air.create_device("cuff"))
    await peripheral.start()
    yield peripheral
    await peripheral.device.power_off()


@pytest.fixture
async def link(air: BumbleAir, cuff: Cuff) -> AsyncIterator[BleakGattLink]:
    the_link = await connect_gatt_link(cuff.address, air=air, timeout_s=TIMEOUT_S)
    yield the_link
    await the_link.disconnect()


async def test_link_satisfies_the_gatt_link_protocol(link: BleakGattLink, cuff: Cuff) -> None:
    as_protocol: GattLink = link
    assert as_protocol.address == cuff.address
    assert link.is_connected
    assert link.has_characteristic(BATTERY_LEVEL)
    assert not link.has_characteristic(GLUCOSE_MEASUREMENT)
    assert BLOOD_PRESSURE_SERVICE in link.service_uuid16s()


async def test_read_write_and_pair_on_demand(link: BleakGattLink, cuff: Cuff) -> None:
    assert await link.read(BATTERY_LEVEL) == b"\x64"
    # encrypted characteristic: pair=True (the default) pairs and retries transparently
    assert await link.read(BLOOD_PRESSURE_FEATURE) == b"\x01\x00"
    assert cuff.connections[-1].is_encrypted
    await link.write(RECORD_ACCESS_CONTROL_POINT, b"\x01\x01")
    assert cuff.writes == [b"\x01\x01"]


async def test_att_error_is_a_gatt_error_with_code_and_uuid(link: BleakGattLink) -> None:
    with pytest.raises(GattError) as info:
        await link.write(RECORD_ACCESS_CONTROL_POINT, b"\xff")
    assert (info.value.uuid16, info.value.code, info.value.operation) == (
        RECORD_ACCESS_CONTROL_POINT,
        0x81,
        "write",
    )
    assert link.is_connected


async def test_missing_characteristic_is_a_non_retryable_unavailable_error(
    link: BleakGattLink,
) -> None:
    with pytest.raises(DeviceUnavailableError) as info:
        await link.subscribe(GLUCOSE_MEASUREMENT, lambda _u, _d: None)
    assert (info.value.stage, info.value.retryable) == (ConnectStage.SUBSCRIBE, False)


async def test_subscribe_indications_and_notifications_by_uuid16(
    link: BleakGattLink, cuff: Cuff
) -> None:
    received: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    await link.subscribe(BLOOD_PRESSURE_MEASUREMENT, lambda u, d: received.put_nowait((u, d)))
    await link.subscribe(INTERMEDIATE_CUFF_PRESSURE, lambda u, d: received.put_nowait((u, d)))
    await cuff.device.notify_subscribers(cuff.cuff, b"\x00\x50\x00")
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.device.indicate_subscribers(cuff.measurement, b"\x00\x72\x00")
        got = [await received.get(), await received.get()]
    assert got == [
        (INTERMEDIATE_CUFF_PRESSURE, b"\x00\x50\x00"),
        (BLOOD_PRESSURE_MEASUREMENT, b"\x00\x72\x00"),
    ]
    assert all(type(value) is bytes for _, value in got)
    await link.unsubscribe(INTERMEDIATE_CUFF_PRESSURE)
    await link.unsubscribe(INTERMEDIATE_CUFF_PRESSURE)  # idempotent

    # subscribing again replaces the callback
    again: asyncio.Queue[bytes] = asyncio.Queue()
    await link.subscribe(BLOOD_PRESSURE_MEASUREMENT, lambda _u, d: again.put_nowait(d))
    async with asyncio.timeout(TIMEOUT_S):
        await cuff.device.indicate_subscribers(cuff.measurement, b"\x01")
        assert await again.get() == b"\x01"
    assert received.empty()


async def test_link_loss_is_typed_and_reported(air: BumbleAir, cuff: Cuff) -> None:
    lost: list[BleakGattLink] = []
    link = await connect_gatt_link(
        cuff.address, air=air, timeout_s=TIMEOUT_S, disconnected_callback=lost.append
    )
    await cuff.connections[-1].disconnect()
    async with asyncio.timeout(TIMEOUT_S):
        while link.is_connected:  # noqa: ASYNC110 - the callback is what we test
            await asyncio.sleep(0.005)
    assert lost == [link]
    with pytest.raises(LinkLostError) as info:
        await link.read(BATTERY_LEVEL)
    assert (info.value.stage, info.value.retryable) == (ConnectStage.TRANSFER, True)
    await link.disconnect()  # idempotent after a loss


async def test_unknown_address_is_device_not_found_without_retrying(air: BumbleAir) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    started = time.perf_counter()
    with pytest.raises(DeviceNotFoundError) as info:
        await connect_gatt_link(
            "C0:11:22:33:44:55", air=air, timeout_s=0.3, attempts=3, sleep=sleep
        )
    assert time.perf_counter() - started < 1.5  # one search, not three
    assert slept == []
    assert (info.value.stage, info.value.retryable, info.value.backoff_s) == (
        ConnectStage.SCAN,
        True,
        4.0,
    )


class FlakyClient(BumbleBleakClient):
    """The real backend, except that the first ``failures`` connects time out."""

    failures: ClassVar[int] = 0
    calls: ClassVar[int] = 0

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        type(self).calls += 1
        if type(self).calls <= type(self).failures:
            raise TimeoutError("simulated: the peer did not answer")
        await super().connect(pair, **kwargs)


@pytest.mark.parametrize(("failures", "attempts", "connects"), [(2, 3, True), (3, 3, False)])
async def test_connection_failures_are_retried_with_the_classified_backoff(
    air: BumbleAir, cuff: Cuff, failures: int, attempts: int, connects: bool
) -> None:
    FlakyClient.failures, FlakyClient.calls = failures, 0
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    if connects:
        link = await connect_gatt_link(
            cuff.address, air=air, backend=FlakyClient, attempts=attempts, sleep=sleep
        )
        assert link.is_connected
        await link.disconnect()
        assert slept == [0.25, 0.25]
    else:
        with pytest.raises(DeviceUnavailableError) as info:
            await connect_gatt_link(
                cuff.address, air=air, backend=FlakyClient, attempts=attempts, sleep=sleep
            )
        assert (info.value.stage, info.value.retryable) == (ConnectStage.CONNECT, True)
        assert slept == [0.25, 0.25]  # no sleep after the last attempt
    assert FlakyClient.calls == attempts


async def test_lost_bond_is_a_pairing_error_and_not_retried(air: BumbleAir, cuff: Cuff) -> None:
    first = await connect_gatt_link(cuff.address, air=air, timeout_s=TIMEOUT_S)
    await first.read(BLOOD_PRESSURE_FEATURE)  # pairs and bonds
    await first.disconnect()
    await cuff.device.keystore.delete_all()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with pytest.raises(PairingError) as info:
        await connect_gatt_link(cuff.address, air=air, timeout_s=TIMEOUT_S, sleep=sleep)
    assert (info.value.stage, info.value.retryable) == (ConnectStage.PAIR, False)
    assert slept == []


async def test_scan_returns_typed_results_filtered_by_uuid16(air: BumbleAir, cuff: Cuff) -> None:
    results = await scan([BLOOD_PRESSURE_SERVICE], air=air, duration_s=0.2)
    assert [r.address for r in results] == [cuff.address]
    assert results[0].name == "cuff"
    assert results[0].service_uuid16s == (BLOOD_PRESSURE_SERVICE,)
    assert await scan([0x1808], air=air, duration_s=0.1) == []


def test_short_timeouts_are_refused_for_real_adapters() -> None:
    with pytest.raises(ValueError, match="too short"):
        asyncio.run(connect_gatt_link("AA:BB:CC:DD:EE:FF", timeout_s=5.0))
