"""The cloud keeps each gateway's retained config current on a real Mosquitto: a gateway that
connects later gets its enrollment at once, a changed cuff slot arrives as a new version, and a
gateway only ever sees its own config."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import CuffSlotRow
from cloud.db.repositories import GatewayRepository
from cloud.ingest.config_push import ConfigPusher
from cloud.settings import DatabaseSettings, IngestMqttSettings
from gateway import contract as c
from tests.brokers import Mosquitto
from tests.integration.cloud.ingest_world import GW, GW_OTHER, IngestWorld, seed
from tests.integration.cloud.mqtt_clients import wait_until

pytestmark = pytest.mark.broker


class ConfigListener:
    """A gateway's view: every config message on its own topic (retained ones first)."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.configs: list[c.ConfigMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cfg-{gateway_id}")
        self.client.on_connect = lambda client, *a: client.subscribe(
            c.topic(gateway_id, c.Channel.CONFIG), qos=1
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.gateway_id = gateway_id

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.configs.append(c.decode_config(msg.payload, gateway_id=self.gateway_id))

    def versions(self) -> list[int]:
        with self._lock:
            return [m.version for m in self.configs]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(DatabaseSettings(url=db_url))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retained_config_reaches_a_late_gateway_and_follows_changes(
    mosquitto: Mosquitto, factory: sessionmaker[Session]
) -> None:
    world: IngestWorld = seed(factory)
    pusher = ConfigPusher(
        IngestMqttSettings(port=mosquitto.port),
        factory,
        clock=lambda: datetime.now(UTC),
        interval_s=0.1,
        client_id="config-test",
    )
    pusher.start()
    try:
        with factory() as session:
            versions = {g.uid: g.config_version for g in GatewayRepository(session).active()}
        assert wait_until(lambda: pusher.published == versions)
        late = ConfigListener(mosquitto.port, GW)  # connects after the push: retained
        other = ConfigListener(mosquitto.port, GW_OTHER)
        try:
            assert wait_until(lambda: late.versions() == [versions[GW]])
            first = late.configs[0]
            cuff = next(d for d in first.devices if d.user_slots)
            assert {(s.user_id, s.person_ref) for s in cuff.user_slots} == {
                (1, str(world.ids["dad"])),
                (2, str(world.ids["mum"])),
            }
            # the household maps the cuff's guest slot to dad: a new version goes out
            with factory() as session:
                session.add(
                    CuffSlotRow(device_id=world.ids["cuff"], user_id=3, person_id=world.ids["dad"])
                )
                GatewayRepository(session).bump_config_version(world.ids["h1"])
                session.commit()
            assert wait_until(lambda: late.versions() == [versions[GW], versions[GW] + 1])
            newest = late.configs[-1]
            slots = next(d for d in newest.devices if d.user_slots).user_slots
            assert (3, str(world.ids["dad"])) in {(s.user_id, s.person_ref) for s in slots}
            # the other household's gateway saw only its own config, never h1's devices
            assert other.versions() == [versions[GW_OTHER]]
            assert all(m.gateway_id == GW_OTHER for m in other.configs)
            assert not {d.serial_number for d in other.configs[0].devices} & {
                d.serial_number for d in first.devices if d.serial_number
            }
        finally:
            late.stop()
            other.stop()
    finally:
        pusher.stop()
