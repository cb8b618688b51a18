"""Gateway events are durable while offline: an urgent event raised without a broker survives a
restart (still without a broker) and arrives exactly once when the broker is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from device_drivers.bumble_air import BumbleAir
from gateway.demo_household import CUFF_ADDRESS, HouseholdSims, measure_now, start_household
from gateway.event_queue import EventQueue
from gateway.settings import DeviceSettings
from tests.brokers import Mosquitto
from tests.integration.cloud_standin import StandInCloud
from tests.integration.gateway.harness import eventually, gateway_settings, running_gateway, until

pytestmark = [pytest.mark.broker, pytest.mark.sim]

CUFF = DeviceSettings(
    kind="blood_pressure_monitor", address=CUFF_ADDRESS, slots={1: "p-dad", 2: "p-mum"}
)


@pytest.fixture
async def household() -> AsyncIterator[tuple[BumbleAir, HouseholdSims]]:
    air = BumbleAir()
    sims = await start_household(
        air, glucose_scenario="well_controlled", bp_scenario="well_controlled", seed=5, records=5
    )
    yield air, sims
    await sims.stop()
    await air.close()


async def test_an_urgent_event_raised_offline_survives_a_restart_and_arrives_once(
    tmp_path: Path, household: tuple[BumbleAir, HouseholdSims], mosquitto: Mosquitto
) -> None:
    air, sims = household
    cloud = StandInCloud("127.0.0.1", mosquitto.port).start()
    measure_now(sims, systolic=192, diastolic=118, user_id=1)
    settings = gateway_settings(tmp_path, mosquitto.port, [CUFF], min_sync_gap_s=60)
    try:
        mosquitto.stop()
        async with running_gateway(settings, air) as gw:
            assert await eventually(lambda: [a.rule.value for a in gw.alerts] == ["B3"], 15)
            queue = gw.gateway.publisher.events
            assert queue is not None
            assert await eventually(lambda: queue.count() == 1, 5)
        # the first process is gone (offline the whole time); the event is on disk
        with_event = EventQueue(settings.outbox.path)
        try:
            assert [e.type for e in with_event.pending()] == ["urgent_reading"]
        finally:
            with_event.close()
        async with running_gateway(settings, air) as gw:
            assert not gw.alerts  # nothing raised again: the cuff had forgotten its readings
            await asyncio.sleep(0.5)
            mosquitto.start()
            assert await until(cloud, lambda s: any(e.rule_id == "B3" for e in s.events), 15)
            queue = gw.gateway.publisher.events
            assert queue is not None
            assert await eventually(lambda: queue.count() == 0, 5)  # deleted on its PUBACK
            await asyncio.sleep(1.5)  # nothing more comes
        urgent = [e for e in cloud.events if e.type == "urgent_reading"]
        assert [e.rule_id for e in urgent] == ["B3"]
        assert urgent[0].person_ref == "p-dad"
    finally:
        cloud.stop()
