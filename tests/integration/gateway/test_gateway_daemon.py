"""The gateway daemon in-process (``run_gateway``) against real brokers and simulated devices.

Simulated meter and cuff are real bumble GATT peripherals on an in-process air shared with the
gateway's central (docs/simulator.md); the broker is Mosquitto spawned on a free port (or amqtt);
the cloud is :class:`StandInCloud`, which stores readings deduplicated on ``reading_id`` and acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from device_drivers.bumble_air import BumbleAir
from firmware_sim.device_state import SimBpMonitor, SimGlucoseMeter
from firmware_sim.faults import Faults
from firmware_sim.peripheral import SimCuff, SimMeter
from firmware_sim.scenarios import GlucoseSample
from gateway import contract as c
from gateway.config_sync import ConfigStore
from gateway.demo_household import (
    CUFF_ADDRESS,
    METER_ADDRESS,
    HouseholdSims,
    measure_now,
    start_household,
)
from gateway.settings import DeviceSettings
from tests.brokers import Amqtt, Mosquitto, free_port
from tests.integration.cloud_standin import StandInCloud
from tests.integration.gateway.harness import (
    GW,
    eventually,
    gateway_settings,
    running_gateway,
    until,
)

pytestmark = [pytest.mark.broker, pytest.mark.sim]

METER = DeviceSettings(kind="glucose_meter", address=METER_ADDRESS, person="p-mum", label="GM")
CUFF = DeviceSettings(
    kind="blood_pressure_monitor", address=CUFF_ADDRESS, slots={1: "p-dad", 2: "p-mum"}
)
ABSENT_ADDRESS = "F0:5A:4A:00:00:09"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def air() -> AsyncIterator[BumbleAir]:
    shared = BumbleAir()
    yield shared
    await shared.close()


@pytest.fixture
async def household(air: BumbleAir) -> AsyncIterator[HouseholdSims]:
    sims = await start_household(
        air, glucose_scenario="well_controlled", bp_scenario="well_controlled", seed=3, records=30
    )
    yield sims
    await sims.stop()


@pytest.fixture
def cloud(mosquitto: Mosquitto) -> Iterator[StandInCloud]:
    standin = StandInCloud("127.0.0.1", mosquitto.port).start()
    yield standin
    standin.stop()


def expected_count(sims: HouseholdSims) -> int:
    return len(sims.meter.state.records) + len(sims.cuff.state.pending)


def publish_retained(port: int, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(c.topic(GW, c.Channel.CONFIG), payload, qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


async def test_readings_of_meter_and_cuff_reach_the_cloud_attributed_with_diagnostics(
    tmp_path: Path,
    air: BumbleAir,
    household: HouseholdSims,
    mosquitto: Mosquitto,
    cloud: StandInCloud,
) -> None:
    fresh = measure_now(household, systolic=186, diastolic=112, user_id=1)  # B3: re-measure
    expected = expected_count(household)
    meter_seqs = [r.sequence_number for r in household.meter.state.records]
    settings = gateway_settings(tmp_path, mosquitto.port, [METER, CUFF])
    async with running_gateway(settings, air) as gw:
        assert await until(cloud, lambda s: len(s.stored) >= expected, 20), len(cloud.stored)
        assert await gw.gateway.publisher.wait_idle(10)  # every reading acked: outbox empty
        stored = list(cloud.stored.values())
        assert len(stored) == expected
        glucose = [r for r in stored if r.kind == "glucose_meter"]
        assert sorted(r.sequence_number for r in glucose) == sorted(meter_seqs)
        assert {r.person_ref for r in glucose} == {"p-mum"}
        owners = {1: "p-dad", 2: "p-mum"}
        for reading in (r for r in stored if r.kind == "blood_pressure_monitor"):
            assert reading.person_ref == owners.get(reading.user_id or -1)  # guest: unassigned
        # the fresh crisis reading is urgent, carries its alert, and raised an event
        urgent = [r for r in stored if r.urgent]
        assert [(r.systolic_mmhg, r.diastolic_mmhg) for r in urgent] == [(186.0, 112.0)]
        assert urgent[0].local_alert is not None
        assert urgent[0].local_alert.rule_id == "B3"
        assert await until(cloud, lambda s: any(e.rule_id == "B3" for e in s.events), 5)
        event = next(e for e in cloud.events if e.type == "urgent_reading")
        assert event.reading_id == urgent[0].reading_id
        assert event.person_ref == "p-dad"
        assert "120" in event.message_zh
        assert [a.rule.value for a in gw.alerts] == ["B3"]
        assert fresh.systolic_mmhg == 186
        # watermark committed after the outbox; diagnostics on the retained status

        def synced(s: StandInCloud) -> bool:
            last = s.statuses[-1] if s.statuses else None
            return (
                last is not None
                and last.state == "online"
                and len(last.devices) == 2
                and all(d.last_sync_ok for d in last.devices)
            )

        assert await until(cloud, synced, 5)
        status = cloud.statuses[-1]
        assert status.outbox is not None
        devices = {d.kind: d for d in status.devices}
        meter = devices["glucose_meter"]
        assert meter.last_sequence_number == max(meter_seqs)
        assert meter.battery_pct is not None
        assert meter.clock_skew_s is not None
        assert meter.label == "GM"
        assert meter.last_seen is not None
        assert meter.readings_synced >= len(meter_seqs)
        assert meter.device_key.startswith(("sysid:", "sn:"))
        mark = gw.gateway.watermarks.get(METER_ADDRESS)
        assert mark is not None
        assert mark.glucose_seq == max(meter_seqs)
        cuff_mark = gw.gateway.watermarks.get(CUFF_ADDRESS)
        assert cuff_mark is not None
        assert cuff_mark.bp_last_measured_at is not None
    assert cloud.duplicate_deliveries == 0
    # a clean stop: retained "offline" with outbox stats (the last will has none)
    assert await until(cloud, lambda s: s.statuses[-1].state == "offline", 5)
    assert cloud.statuses[-1].outbox is not None
