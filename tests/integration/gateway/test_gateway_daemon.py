"""The gateway daemon in-process (``run_gateway``) against real brokers and simulated devices.

Simulated meter and cuff are real bumble GATT peripherals on an in-process air shared with the
gateway's central (docs/simulator.md); the broker is Mosquitto spawned on a free port (or amqtt);
the cloud is :class:`StandInCloud`, which stores readings deduplicated on ``reading_id`` and acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from device_drivers.bumble_air import BumbleAir
from firmware_sim.device_state import SimGlucoseMeter
from firmware_sim.faults import Faults
from firmware_sim.peripheral import SimMeter
from firmware_sim.scenarios import GlucoseSample
from gateway import contract as c
from gateway.demo_household import (
    CUFF_ADDRESS,
    METER_ADDRESS,
    HouseholdSims,
    measure_now,
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


def config_message(version: int, person: str, **extra: object) -> c.ConfigMessage:
    return c.ConfigMessage(
        schema_version=c.SCHEMA_VERSION,
        gateway_id=GW,
        version=version,
        issued_at=now(),
        devices=(c.DeviceConfig(kind="glucose_meter", address=METER_ADDRESS, person_ref=person),),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_pushed_config_changes_attribution_and_survives_a_restart_offline(
    tmp_path: Path,
    air: BumbleAir,
    household: HouseholdSims,
    mosquitto: Mosquitto,
    cloud: StandInCloud,
) -> None:
    settings = gateway_settings(tmp_path, mosquitto.port, [METER], min_sync_gap_s=0.5)
    first = len(household.meter.state.records)
    async with running_gateway(settings, air) as gw:
        assert await until(cloud, lambda s: len(s.stored) == first, 15)
        assert {r.person_ref for r in cloud.stored.values()} == {"p-mum"}
        publish_retained(mosquitto.port, c.encode(config_message(5, "p-gran")))
        assert await eventually(lambda: gw.gateway.config.current.version == 5, 5)
        # a new test on the meter: it advertises, the gateway syncs, the new owner gets it
        await household.meter.add_measurement(GlucoseSample(now() - timedelta(seconds=5), 6.1))
        assert await until(cloud, lambda s: len(s.stored) == first + 1, 15)
        newest = max(cloud.stored.values(), key=lambda r: r.sequence_number or 0)
        assert (newest.person_ref, newest.attribution) == ("p-gran", "enrolled")
        # an unusable config is rejected whole, reported, and changes nothing
        bad = config_message(
            6, "p-x", persons=(c.PersonConfig(person_ref="p-x", systolic_urgent_mmhg=20.0),)
        )
        publish_retained(mosquitto.port, c.encode(bad))
        assert await until(cloud, lambda s: any(e.type == "config_rejected" for e in s.events), 5)
        publish_retained(mosquitto.port, b'{"schema_version": 1, "gateway_id": "x", ')
        assert await until(
            cloud, lambda s: sum(e.type == "config_rejected" for e in s.events) == 2, 5
        )
        rejected = [e for e in cloud.events if e.type == "config_rejected"]
        assert rejected[0].detail["version"] == 6
        assert "systolic_crisis_mmhg" in str(rejected[0].detail["reason"])
        assert "undecodable" in str(rejected[1].detail["reason"])
        assert gw.gateway.config.current.version == 5
        assert await until(
            cloud, lambda s: bool(s.statuses) and s.statuses[-1].config_version == 5, 5
        )
    # restart with the broker gone: the stored config (version 5) is used
    mosquitto.stop()
    async with running_gateway(settings, air) as gw:
        assert gw.gateway.config.current.version == 5
        enrolled = gw.gateway.config.current.enrollment.devices
        assert [d.person_ref for d in enrolled] == ["p-gran"]


async def test_a_device_that_never_answers_does_not_delay_another(
    tmp_path: Path, air: BumbleAir, household: HouseholdSims
) -> None:
    """Two of three enrolled devices never answer: the meter advertises but cannot be connected
    (fault knob 'unconnectable'), and nothing at all answers at a third address. The cuff is
    still synced long before their connect timeout runs out."""
    await household.meter.stop()
    meter_state = SimGlucoseMeter(now, samples=(), faults=Faults(unconnectable=True))
    stuck = await SimMeter(air, meter_state, address=METER_ADDRESS).start()
    absent = DeviceSettings(kind="glucose_meter", address=ABSENT_ADDRESS, person="p-dad")
    connect_timeout_s = 5.0
    settings = gateway_settings(
        tmp_path,
        free_port(),  # no broker: the daemon works offline
        [METER, absent, CUFF],
        connect_timeout_s=connect_timeout_s,
        max_concurrent_connections=2,
    )
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with running_gateway(settings, air) as gw:
            supervisors = gw.gateway.pool.supervisors
            cuff = supervisors[CUFF_ADDRESS]
            assert await eventually(lambda: cuff.diagnostics().last_sync_ok is True, 10)
            cuff_done = loop.time() - started
            assert cuff_done < connect_timeout_s / 2, cuff_done
            assert gw.gateway.outbox.depth() == len(household.cuff.state.delivered)
            # the others fail with their stage, and back off
            assert await eventually(
                lambda: (
                    supervisors[ABSENT_ADDRESS].diagnostics().last_sync_ok is False
                    and supervisors[METER_ADDRESS].diagnostics().last_sync_ok is False
                ),
                connect_timeout_s + 5,
            )
            gone = supervisors[ABSENT_ADDRESS].diagnostics()
            assert (gone.failure_stage, gone.failure_reason) == ("scan", "not heard advertising")
            refused = supervisors[METER_ADDRESS].diagnostics()
            # not found (it advertises non-connectably) or dropped at once after connecting
            assert refused.failure_stage in ("scan", "connect", "discover")
            assert refused.last_seen is not None  # it advertises, but cannot be connected
            assert refused.consecutive_failures >= 1
    finally:
        await stuck.stop()


async def test_broker_down_then_back_and_a_lost_ack_lose_and_duplicate_nothing(
    tmp_path: Path,
    air: BumbleAir,
    household: HouseholdSims,
    mosquitto: Mosquitto,
) -> None:
    cloud = StandInCloud("127.0.0.1", mosquitto.port, drop_acks=1).start()
    measure_now(household, systolic=190, diastolic=115, user_id=2)
    expected = expected_count(household)
    settings = gateway_settings(tmp_path, mosquitto.port, [METER, CUFF], min_sync_gap_s=60)
    try:
        mosquitto.stop()
        async with running_gateway(settings, air) as gw:
            # offline: everything lands in the outbox, the local alert is raised at once
            assert await eventually(lambda: gw.gateway.outbox.depth() == expected, 15)
            # raised right after the outbox commit, a loop turn or two after depth() sees it
            assert await eventually(lambda: [a.rule.value for a in gw.alerts] == ["B3"], 5)
            await asyncio.sleep(1.0)  # a while without a broker
            mosquitto.start()
            assert await until(cloud, lambda s: len(s.stored) == expected, 20), len(cloud.stored)
            assert await gw.gateway.publisher.wait_idle(15)
            # the event queued while offline arrives once the link is back
            assert await until(cloud, lambda s: any(e.rule_id == "B3" for e in s.events), 10)
            assert cloud.acks_dropped == 1  # one ack was lost: those readings came again
            assert cloud.duplicate_deliveries >= 1
            deliveries = sum(cloud.deliveries.values())
            await asyncio.sleep(settings.mqtt.ack_timeout_s + 1.0)
            assert sum(cloud.deliveries.values()) == deliveries  # nothing more after the acks
            assert gw.gateway.outbox.depth() == 0
        identities = {
            (r.device.key, r.sequence_number, r.user_id, r.measured_at)
            for r in cloud.stored.values()
        }
        assert len(identities) == len(cloud.stored) == expected
    finally:
        cloud.stop()


async def test_amqtt_as_the_broker_for_the_demo(
    tmp_path: Path, air: BumbleAir, household: HouseholdSims, amqtt_broker: Amqtt
) -> None:
    cloud = StandInCloud("127.0.0.1", amqtt_broker.port, protocol=MQTTProtocolVersion.MQTTv311)
    await asyncio.to_thread(cloud.start)
    expected = expected_count(household)
    settings = gateway_settings(
        tmp_path, amqtt_broker.port, [METER, CUFF], mqtt={"protocol": "mqtt311"}
    )
    try:
        async with running_gateway(settings, air) as gw:
            assert await until(cloud, lambda s: len(s.stored) == expected, 20), len(cloud.stored)
            assert await gw.gateway.publisher.wait_idle(10)
            assert await until(cloud, lambda s: any(st.devices for st in s.statuses), 5)
    finally:
        await asyncio.to_thread(cloud.stop)
