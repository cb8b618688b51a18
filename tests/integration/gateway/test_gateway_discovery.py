"""Devices enrolled by serial number only are discovered by their identity and synced; a foreign
meter advertising nearby is probed once and then ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from device_drivers.bumble_air import BumbleAir
from firmware_sim.device_base import DeviceInformation
from firmware_sim.device_state import SimGlucoseMeter
from firmware_sim.peripheral import SimMeter
from firmware_sim.scenarios import GlucoseSample
from gateway.demo_household import CUFF_ADDRESS, METER_ADDRESS, HouseholdSims
from gateway.discovery import DiscoveredAddresses
from gateway.settings import DeviceSettings
from tests.brokers import Mosquitto
from tests.integration.cloud_standin import StandInCloud
from tests.integration.gateway.harness import eventually, gateway_settings, running_gateway, until

pytestmark = [pytest.mark.broker, pytest.mark.sim]

FOREIGN_ADDRESS = "F0:5A:4A:00:00:07"
DEVICES = [
    DeviceSettings(kind="glucose_meter", serial_number="AJG0000001", person="p-mum"),
    DeviceSettings(kind="blood_pressure_monitor", serial_number="AJB0000001", slots={1: "p-dad"}),
    # enrolled but never on the air: keeps discovery of glucose meters going
    DeviceSettings(kind="glucose_meter", serial_number="AJG0000555", person="p-gran"),
]


@pytest.fixture
async def neighbour(air: BumbleAir, household: HouseholdSims) -> AsyncIterator[SimMeter]:
    state = SimGlucoseMeter(
        household.clock,
        samples=[GlucoseSample(household.clock(), 5.5)],
        info=DeviceInformation.glucose_meter("AJG0000999"),
    )
    meter = await SimMeter(air, state, address=FOREIGN_ADDRESS).start()
    yield meter
    await meter.stop()


async def test_devices_enrolled_by_serial_are_discovered_synced_and_remembered(
    tmp_path: Path,
    air: BumbleAir,
    household: HouseholdSims,
    neighbour: SimMeter,
    mosquitto: Mosquitto,
) -> None:
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    expected = len(household.meter.state.records) + len(household.cuff.state.pending)
    settings = gateway_settings(tmp_path, mosquitto.port, DEVICES, min_sync_gap_s=60)
    try:
        async with running_gateway(settings, air) as gw:
            discovery = gw.gateway.discovery
            assert await until(cloud, lambda s: len(s.stored) == expected, 25), len(cloud.stored)
            assert set(gw.gateway.pool.supervisors) == {METER_ADDRESS, CUFF_ADDRESS}
            assert await eventually(lambda: discovery.outcomes["not_ours"] == 1, 10)
            await asyncio.sleep(2.0)  # the neighbour keeps advertising every 20 ms
            assert discovery.probes[FOREIGN_ADDRESS] == 1
            assert discovery.outcomes["ours"] == 2
            assert neighbour.connections == 1
            assert not neighbour.racp_writes  # never synced
        stored = list(cloud.stored.values())
        assert {r.person_ref for r in stored if r.kind == "glucose_meter"} == {"p-mum"}
        assert {r.device.serial_number for r in stored} == {"AJG0000001", "AJB0000001"}
        found = DiscoveredAddresses(settings.outbox.path)
        try:
            assert {(i.address, i.serial_number) for i in found.all()} == {
                (METER_ADDRESS, "AJG0000001"),
                (CUFF_ADDRESS, "AJB0000001"),
            }
        finally:
            found.close()
        # a restart knows the addresses: supervisors at once, no probe of our devices
        async with running_gateway(settings, air) as gw:
            assert set(gw.gateway.pool.supervisors) == {METER_ADDRESS, CUFF_ADDRESS}
            assert gw.gateway.discovery.outcomes["ours"] == 0
    finally:
        cloud.stop()
