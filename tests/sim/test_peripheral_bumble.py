"""The simulated meter and cuff as real bumble GATT peripherals, driven by bumble's *own* GATT
client (not our bleak backend), so the servers are checked against an independent central:
discovery, Just Works pairing with bonding, CCCDs, RACP pacing (specs/ble.md §1.4-§1.5), cuff
indications until confirmed (§2.4-§2.5), Current Time (§3), and a central in the same process
reaching the simulated air over a TCP HCI transport (``BumbleAir.expose``).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bumble import att
from bumble.core import UUID, ProtocolError
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.pairing import PairingConfig, PairingDelegate

from device_drivers.bumble_air import BumbleAir
from device_drivers.codec.blood_pressure import BloodPressureMeasurement, IntermediateCuffPressure
from device_drivers.codec.glucose import GlucoseMeasurement, GlucoseMeasurementContext
from device_drivers.codec.racp import RacpMessage
from device_drivers.codec.time_service import CurrentTime
from firmware_sim.device_state import SimBpMonitor, SimGlucoseMeter
from firmware_sim.faults import Faults
from firmware_sim.peripheral import SimCuff, SimMeter
from firmware_sim.scenarios import BpSample, GlucoseSample, generate

pytestmark = pytest.mark.sim

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GM, CTX, FEATURE, RACP = 0x2A18, 0x2A34, 0x2A51, 0x2A52
BPM, ICP, BP_FEATURE = 0x2A35, 0x2A36, 0x2A49
CTS, BATTERY, SYSTEM_ID, MODEL = 0x2A2B, 0x2A19, 0x2A23, 0x2A24
STEP_S = 3.0


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def clock() -> datetime:
    return NOW


def glucose_samples(count: int) -> list[GlucoseSample]:
    start = NOW - timedelta(days=count)
    return [
        GlucoseSample(start + timedelta(hours=6 * i), 5.0 + (i % 30) / 10, meal=1 + i % 5)
        if i % 3
        else GlucoseSample(start + timedelta(hours=6 * i), 6.1)  # every third: no context
        for i in range(count)
    ]


@dataclass
class Collector:
    """A bumble central with a GATT client, for one peripheral."""

    device: Device
    connection: Connection | None = None
    peer: Peer | None = None
    values: list[tuple[int, bytes]] = field(default_factory=list)
    racp: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    async def connect(self, address: Any, timeout_s: float = STEP_S) -> None:
        self.connection = await self.device.connect(address, timeout=timeout_s)
        self.peer = Peer(self.connection)
        await self.peer.discover_services()
        await self.peer.discover_characteristics()

    def char(self, uuid16: int) -> Any:
        assert self.peer is not None
        found = self.peer.get_characteristics_by_uuid(UUID.from_16_bits(uuid16))
        assert found, f"0x{uuid16:04X} not offered"
        return found[0]

    async def pair(self) -> None:
        assert self.connection is not None
        await self.connection.pair()

    def recorder(self, uuid16: int) -> Callable[[bytes], None]:
        def record(value: bytes) -> None:
            self.values.append((uuid16, bytes(value)))

        return record

    async def subscribe_glucose(self) -> None:
        await self.char(GM).subscribe(self.recorder(GM))
        await self.char(CTX).subscribe(self.recorder(CTX))
        await self.char(RACP).subscribe(self.racp.put_nowait, prefer_notify=False)

    async def racp_request(self, data: bytes) -> bytes:
        await self.char(RACP).write_value(data, with_response=True)
        async with asyncio.timeout(STEP_S):
            return await self.racp.get()

    def of(self, uuid16: int) -> list[bytes]:
        return [v for u, v in self.values if u == uuid16]

    async def wait_disconnected(self, timeout_s: float = STEP_S) -> None:
        assert self.connection is not None
        connection = self.connection
        done = asyncio.get_running_loop().create_future()
        if connection.handle not in self.device.connections:
            return
        connection.on(connection.EVENT_DISCONNECTION, lambda _reason: done.set_result(None))
        async with asyncio.timeout(timeout_s):
            await done


async def make_collector(air: BumbleAir, name: str = "collector") -> Collector:
    device = await air.create_device(name)
    device.pairing_config_factory = lambda _c: PairingConfig(
        sc=True, mitm=False, bonding=True, delegate=PairingDelegate()
    )
    await device.power_on()
    return Collector(device)


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    the_air = BumbleAir()
    yield the_air
    await the_air.close()


@pytest.fixture
async def collector(air: BumbleAir) -> AsyncIterator[Collector]:
    central = await make_collector(air)
    yield central
    if central.connection is not None and central.connection.handle in central.device.connections:
        await central.connection.disconnect()
    await central.device.power_off()


async def start_meter(air: BumbleAir, count: int, **kwargs: Any) -> SimMeter:
    state = SimGlucoseMeter(clock, samples=glucose_samples(count), **kwargs)
    return await SimMeter(air, state).start()


# -- glucose meter ---------------------------------------------------------------------------
async def test_500_records_in_one_report(air: BumbleAir, collector: Collector) -> None:
    meter = await start_meter(air, 500)
    try:
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        assert await collector.racp_request(h("04 01")) == h("05 00 f4 01")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await collector.racp_request(h("01 01")) == h("06 00 01 01")
        elapsed = loop.time() - started
        measurements = [GlucoseMeasurement.from_bytes(v) for v in collector.of(GM)]
        contexts = [GlucoseMeasurementContext.from_bytes(v) for v in collector.of(CTX)]
        assert [m.sequence_number for m in measurements] == list(range(1, 501))
        with_context = [m.sequence_number for m in measurements if m.context_information_follows]
        assert [c.sequence_number for c in contexts] == with_context
        assert len(contexts) == 333
        # every context comes right after its measurement (spec §1.2)
        order = [
            (u, GlucoseMeasurement.from_bytes(v).sequence_number if u == GM else None)
            for u, v in collector.values
        ]
        for index, (uuid16, _seq) in enumerate(order):
            if uuid16 == CTX:
                assert order[index - 1][0] == GM
        expected = [r.measurement for r in meter.state.records]
        assert measurements == expected
        assert elapsed < 2.0
    finally:
        await meter.stop()


async def test_resume_after_mid_transfer_disconnect(air: BumbleAir, collector: Collector) -> None:
    faults = Faults(disconnect_after_records=40, on_connections=frozenset({1}))
    meter = await start_meter(air, 100, faults=faults)
    try:
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        await collector.char(RACP).write_value(h("01 01"), with_response=True)
        await collector.wait_disconnected()
        assert collector.racp.empty()  # no final indication: the link dropped
        first = [GlucoseMeasurement.from_bytes(v).sequence_number for v in collector.of(GM)]
        assert first == list(range(1, 41))
        collector.values.clear()
        await collector.connect(meter.device.random_address)  # bonded: encrypt, no new pairing
        await collector.connection.encrypt()  # type: ignore[union-attr]
        await collector.subscribe_glucose()
        assert await collector.racp_request(h("01 03 01 29 00")) == h("06 00 01 01")
        rest = [GlucoseMeasurement.from_bytes(v).sequence_number for v in collector.of(GM)]
        assert rest == list(range(41, 101))
        assert meter.pairings == 1
        assert meter.connections == 2
    finally:
        await meter.stop()


async def test_racp_before_enabling_cccds_is_att_error_0x81(
    air: BumbleAir, collector: Collector
) -> None:
    meter = await start_meter(air, 3)
    try:
        await collector.connect(meter.device.random_address)
        await collector.pair()
        with pytest.raises(ProtocolError) as info:
            await collector.char(RACP).write_value(h("01 01"), with_response=True)
        assert info.value.error_code == 0x81
        await collector.char(GM).subscribe(collector.recorder(GM))  # RACP indications still off
        with pytest.raises(ProtocolError) as info:
            await collector.char(RACP).write_value(h("01 01"), with_response=True)
        assert info.value.error_code == 0x81
        await collector.subscribe_glucose()
        assert await collector.racp_request(h("04 01")) == h("05 00 03 00")
    finally:
        await meter.stop()


async def test_second_request_while_a_report_hangs_is_att_error_0x80(
    air: BumbleAir, collector: Collector
) -> None:
    meter = await start_meter(air, 3, faults=Faults(silent_racp=True))
    try:
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        await collector.char(RACP).write_value(h("01 01"), with_response=True)
        with pytest.raises(ProtocolError) as info:
            await collector.char(RACP).write_value(h("01 01"), with_response=True)
        assert info.value.error_code == 0x80
        await asyncio.sleep(0.1)
        assert collector.racp.empty()
        assert collector.values == []
    finally:
        await meter.stop()


async def test_unpaired_access_is_refused(air: BumbleAir, collector: Collector) -> None:
    meter = await start_meter(air, 3)
    try:
        await collector.connect(meter.device.random_address)
        for action in (
            collector.char(GM).subscribe(collector.recorder(GM)),
            collector.char(RACP).subscribe(collector.racp.put_nowait, prefer_notify=False),
            collector.char(FEATURE).read_value(),
            collector.char(RACP).write_value(h("01 01"), with_response=True),
            collector.char(CTS).write_value(h("ea 07 0b 18 07 1e 00 02 00 01"), with_response=True),
        ):
            with pytest.raises(ProtocolError) as info:
                await action
            assert info.value.error_code == att.ErrorCode.INSUFFICIENT_ENCRYPTION
        assert meter.racp_writes == []
        # identity, battery and the clock can be read before bonding
        assert await collector.char(MODEL).read_value() == b"AJ-G100"
        assert len(await collector.char(SYSTEM_ID).read_value()) == 8
        assert await collector.char(BATTERY).read_value() == bytes([86])
        await collector.pair()
        assert await collector.char(FEATURE).read_value() == h("ff 02")
    finally:
        await meter.stop()


async def test_current_time_write_sets_the_meter_clock(
    air: BumbleAir, collector: Collector
) -> None:
    # a meter left on UTC in a UTC+8 household, 90 s fast
    meter = await start_meter(air, 0, faults=Faults(clock_zone_offset_minutes=0, clock_skew_s=90))
    try:
        await collector.connect(meter.device.random_address)
        before = CurrentTime.from_bytes(await collector.char(CTS).read_value())
        assert before.to_datetime() == datetime(2026, 11, 24, 12, 1, 30)
        await collector.pair()
        household = NOW.astimezone(UTC) + timedelta(hours=8)
        written = CurrentTime.from_datetime(household.replace(tzinfo=None), adjust_reason=0x02)
        await collector.char(CTS).write_value(bytes(written), with_response=True)
        after = CurrentTime.from_bytes(await collector.char(CTS).read_value())
        assert after.to_datetime() == datetime(2026, 11, 24, 20, 0)
        assert after.adjust_reason == 0x02
        assert meter.state.clock.adjustments[0].written == written
        with pytest.raises(ProtocolError) as info:
            await collector.char(CTS).write_value(h("ea 07 0d 01"), with_response=True)
        assert info.value.error_code == 0xFF
    finally:
        await meter.stop()


async def test_advertising_data_and_a_new_measurement(air: BumbleAir, collector: Collector) -> None:
    meter = await start_meter(air, 2)
    seen: asyncio.Queue[Advertisement] = asyncio.Queue()
    collector.device.on("advertisement", seen.put_nowait)
    await collector.device.start_scanning(filter_duplicates=False)
    try:
        async with asyncio.timeout(STEP_S):
            while (advertisement := await seen.get()).address != meter.device.random_address:
                pass
        data = advertisement.data
        assert data.get(data.Type.COMPLETE_LOCAL_NAME) == "Anjia-GM"
        assert UUID.from_16_bits(0x1808) in data.get(
            data.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS
        )
        assert data.get(data.Type.APPEARANCE, raw=True) == h("00 04")
        assert advertisement.is_connectable
        await collector.device.stop_scanning()
        await meter.add_measurement(GlucoseSample(NOW, 7.7, meal=2))
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        assert await collector.racp_request(h("01 06")) == h("06 00 01 01")
        newest = GlucoseMeasurement.from_bytes(collector.of(GM)[-1])
        assert newest.sequence_number == 3
        assert newest.glucose_mmol_l == pytest.approx(7.7, abs=0.05)
    finally:
        await meter.stop()


async def test_unconnectable_meter_never_serves_a_connection(
    air: BumbleAir, collector: Collector
) -> None:
    meter = await start_meter(air, 2, faults=Faults(unconnectable=True))
    try:
        collector.connection = await collector.device.connect(
            meter.device.random_address, timeout=STEP_S
        )
        await collector.wait_disconnected(timeout_s=1.0)  # hung up before any ATT exchange
        assert meter.connection is None
        assert meter.state.connection_number == 0
        assert meter.racp_writes == []
    finally:
        await meter.stop()


# -- blood pressure cuff -----------------------------------------------------------------------
def bp_samples() -> list[BpSample]:
    start = NOW - timedelta(hours=5)
    return [
        BpSample(start + timedelta(minutes=7 * i), 118 + i, 76 + i % 4, 66 + i, user)
        for i, user in enumerate((1, 2, 1, 2, 1, 0xFF))
    ]


async def collect_cuff(collector: Collector, cuff: SimCuff) -> list[BloodPressureMeasurement]:
    await collector.connect(cuff.device.random_address)
    await collector.pair()
    collector.values.clear()
    await collector.char(ICP).subscribe(collector.recorder(ICP))
    await collector.char(BPM).subscribe(collector.recorder(BPM), prefer_notify=False)
    await collector.wait_disconnected()  # the cuff hangs up after its idle period
    return [BloodPressureMeasurement.from_bytes(v) for v in collector.of(BPM)]


async def test_cuff_indicates_stored_readings_for_two_users_then_hangs_up(
    air: BumbleAir, collector: Collector
) -> None:
    state = SimBpMonitor(clock, samples=bp_samples())
    cuff = await SimCuff(air, state, idle_disconnect_s=0.2).start()
    try:
        readings = await collect_cuff(collector, cuff)
        assert [r.user_id for r in readings] == [1, 2, 1, 2, 1, 0xFF]
        assert [r.systolic.value for r in readings] == [118, 119, 120, 121, 122, 123]
        assert all(r.timestamp is not None for r in readings)
        assert state.pending == ()
        assert len(state.delivered) == 6
        assert await collect_cuff(collector, cuff) == []  # nothing is sent twice once confirmed
    finally:
        await cuff.stop()


async def test_cuff_resends_what_was_not_confirmed(air: BumbleAir, collector: Collector) -> None:
    faults = Faults(disconnect_after_records=2, on_connections=frozenset({1}))
    state = SimBpMonitor(clock, samples=bp_samples(), faults=faults)
    cuff = await SimCuff(air, state, idle_disconnect_s=0.2).start()
    try:
        first = await collect_cuff(collector, cuff)
        assert len(first) == 2
        assert len(state.pending) == 4
        second = await collect_cuff(collector, cuff)
        assert [r.user_id for r in second] == [1, 2, 1, 0xFF]
        assert state.pending == ()
    finally:
        await cuff.stop()


async def test_live_measurement_sends_cuff_pressures_then_the_reading(
    air: BumbleAir, collector: Collector
) -> None:
    state = SimBpMonitor(clock, unit="kPa")
    cuff = await SimCuff(air, state, idle_disconnect_s=0.3).start()
    try:
        await collector.connect(cuff.device.random_address)
        await collector.pair()
        await collector.char(ICP).subscribe(collector.recorder(ICP))
        await collector.char(BPM).subscribe(collector.recorder(BPM), prefer_notify=False)
        await asyncio.sleep(0.05)
        await cuff.add_measurement(BpSample(NOW, 142, 91, 77, 2))
        await collector.wait_disconnected()
        pressures = [IntermediateCuffPressure.from_bytes(v) for v in collector.of(ICP)]
        assert len(pressures) > 10
        peak = max(p.cuff_pressure.value or 0 for p in pressures)
        assert peak == pytest.approx(172 / 7.50062, abs=0.06)  # 30 mmHg above systolic, in kPa
        (reading,) = [BloodPressureMeasurement.from_bytes(v) for v in collector.of(BPM)]
        assert reading.unit == "kPa"
        assert reading.user_id == 2
        assert collector.values[-1][0] == BPM  # the reading comes after the cuff pressures
    finally:
        await cuff.stop()


# -- across an HCI transport -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_exposed_air_serves_a_central_over_tcp(air: BumbleAir) -> None:
    meter = await start_meter(air, 25)
    port = free_port()
    await air.expose(f"tcp-server:127.0.0.1:{port}")
    remote = BumbleAir.from_moniker(f"tcp-client:127.0.0.1:{port}")
    try:
        device = await remote.central_device()
        device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=False, bonding=True, delegate=PairingDelegate()
        )
        collector = Collector(device)
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        assert await collector.racp_request(bytes(RacpMessage.report_all())) == h("06 00 01 01")
        assert len(collector.of(GM)) == 25
        await collector.connection.disconnect()  # type: ignore[union-attr]
    finally:
        await remote.close()
        await meter.stop()


async def test_scenario_meter_round_trip_in_mol_per_litre(
    air: BumbleAir, collector: Collector
) -> None:
    data = generate("nocturnal_level2_hypoglycaemia", seed=3, end=NOW, days=5)
    state = SimGlucoseMeter(clock, samples=data.glucose, unit="mol/L")
    meter = await SimMeter(air, state).start()
    try:
        await collector.connect(meter.device.random_address)
        await collector.pair()
        await collector.subscribe_glucose()
        assert await collector.racp_request(h("01 01")) == h("06 00 01 01")
        got = [GlucoseMeasurement.from_bytes(v).glucose_mmol_l for v in collector.of(GM)]
        assert got == pytest.approx([s.glucose_mmol_l for s in data.glucose])
        assert min(got) < 3.0  # type: ignore[type-var]
    finally:
        await meter.stop()


async def test_advertising_window_then_sleep_until_the_next_measurement(
    air: BumbleAir, collector: Collector
) -> None:
    state = SimGlucoseMeter(clock, samples=glucose_samples(2))
    meter = await SimMeter(air, state, advertising_window_s=0.1).start()
    heard: list[float] = []
    loop = asyncio.get_running_loop()

    def on_advertisement(advertisement: Advertisement) -> None:
        if advertisement.address == meter.device.random_address:
            heard.append(loop.time())

    collector.device.on("advertisement", on_advertisement)
    await collector.device.start_scanning(filter_duplicates=False)
    try:
        await asyncio.sleep(0.3)
        assert heard  # advertised at first...
        quiet_since = loop.time()
        await asyncio.sleep(0.2)
        assert not [t for t in heard if t > quiet_since]  # ...then went to sleep
        await meter.add_measurement(GlucoseSample(NOW, 6.6))
        await asyncio.sleep(0.08)
        assert [t for t in heard if t > quiet_since]  # a new test wakes it up
    finally:
        await collector.device.stop_scanning()
        await meter.stop()
