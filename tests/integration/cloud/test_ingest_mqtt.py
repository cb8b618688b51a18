"""Ingest workers on a real Mosquitto: acks reach the gateway after the commit, two workers
share one subscription (each reading stored exactly once), a locked database holds the flow at
the broker without losing anything, hostile messages never stop a worker, amqtt for the demo."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import DeadLetterRow, GatewayEventRow, GatewayStatusRow, ReadingRow
from cloud.db.repositories.readings import NewReading
from cloud.ingest import IngestWorker
from cloud.settings import DatabaseSettings, IngestMqttSettings
from gateway import contract as c
from tests.brokers import Amqtt, Mosquitto
from tests.integration.cloud.ingest_world import (
    GW,
    WIRE,
    IngestWorld,
    envelope,
    glucose,
    seed,
)
from tests.integration.cloud.mqtt_clients import GatewayStandIn, wait_until

pytestmark = pytest.mark.broker


class RecordingHook:
    """The test hook: remembers every committed batch."""

    def __init__(self) -> None:
        self.batches: list[list[NewReading]] = []
        self._lock = threading.Lock()

    def on_committed(self, readings: Sequence[NewReading]) -> None:
        with self._lock:
            self.batches.append(list(readings))

    @property
    def reading_ids(self) -> list[str]:
        with self._lock:
            return [r.reading_id for batch in self.batches for r in batch]


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(DatabaseSettings(url=db_url, sqlite_busy_timeout_ms=100))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(factory: sessionmaker[Session]) -> IngestWorld:
    return seed(factory)


def worker(
    port: int, factory: sessionmaker[Session], index: int = 0, **cfg: object
) -> IngestWorker:
    settings = IngestMqttSettings(
        host="127.0.0.1",
        port=port,
        **{"batch_size": 100, "batch_interval_ms": 20, **cfg},  # type: ignore[arg-type]
    )
    return IngestWorker(
        settings,
        factory,
        clock=lambda: datetime.now(UTC),
        index=index,
        client_id=f"ingest-test-{index}",
        hook=RecordingHook(),
    )


def count(factory: sessionmaker[Session], row: type[object] = ReadingRow) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(row)) or 0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_acks_reach_the_gateway_after_the_commit_and_hostile_messages_do_not_stop_the_worker(
    mosquitto: Mosquitto, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    w = worker(mosquitto.port, factory)
    w.start()
    gateway = GatewayStandIn(mosquitto.port, GW).start()
    try:
        assert w.wait_ready()
        golden = (WIRE / "reading_v1_glucose.json").read_bytes()
        gateway.publish(golden)
        gateway.publish(b"\xff\xfe not json")
        gateway.publish(golden)  # a replay after a lost ack
        gateway.publish((WIRE / "status_v1.json").read_bytes(), c.Channel.STATUS)
        gateway.publish((WIRE / "event_v1.json").read_bytes(), c.Channel.EVENTS)
        later = glucose(77, 5.5)
        gateway.publish(envelope([later], "m-later"))
        ids = {r.reading_id for r in c.decode_envelope(golden).readings} | {later.reading_id}
        assert wait_until(lambda: gateway.settled() >= ids)
        assert wait_until(lambda: w.stats.statuses == 1 and w.stats.events == 1)
        accepted = [r for ack in gateway.acks for r in ack.accepted]
        duplicates = [r for ack in gateway.acks for r in ack.duplicates]
        assert sorted(accepted) == sorted(ids)  # each accepted once...
        assert set(duplicates) == ids - {later.reading_id}  # ...the replay acked as duplicates
        assert gateway.envelope_errors() == ["malformed"]
        assert count(factory) == 3
        assert count(factory, DeadLetterRow) == 1
        assert count(factory, GatewayStatusRow) == 1
        assert count(factory, GatewayEventRow) == 1
        hook = w._hook
        assert isinstance(hook, RecordingHook)
        assert sorted(hook.reading_ids) == sorted(ids)  # new readings only, once
        assert w.stats.pubacks == w.stats.received == 6
    finally:
        gateway.stop()
        w.stop()


def test_two_workers_share_one_subscription_and_store_each_reading_once(
    mosquitto: Mosquitto, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    workers = [worker(mosquitto.port, factory, i) for i in range(2)]
    for w in workers:
        w.start()
    gateway = GatewayStandIn(mosquitto.port, GW).start()
    try:
        assert all(w.wait_ready() for w in workers)
        messages = [glucose(n, 4.0 + (n % 50) / 10, minutes=n) for n in range(1200)]
        infos = [
            gateway.publish(envelope([m], f"m-{m.sequence_number}"), wait=False) for m in messages
        ]
        for info in infos:
            info.wait_for_publish(20)
        ids = {m.reading_id for m in messages}
        assert wait_until(lambda: gateway.settled() >= ids, 60)
        assert count(factory) == len(messages)
        shares = [w.stats.messages for w in workers]
        assert all(share > 0 for share in shares), shares  # both took part
        # a worker publishes a batch's acks, then counts it and calls the hook: wait for both
        hooks = [w._hook for w in workers]

        def seen() -> list[str]:
            return [rid for h in hooks if isinstance(h, RecordingHook) for rid in h.reading_ids]

        assert wait_until(lambda: len(seen()) >= len(messages), 10)
        assert sum(w.stats.accepted for w in workers) == len(messages)
        assert sorted(seen()) == sorted(ids)
    finally:
        gateway.stop()
        for w in workers:
            w.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_locked_database_holds_the_flow_at_the_broker_and_loses_nothing(
    mosquitto: Mosquitto, factory: sessionmaker[Session], world: IngestWorld, db_url: str
) -> None:
    window = 40
    w = worker(mosquitto.port, factory, receive_maximum=window, batch_size=20, db_retry_max_s=0.2)
    w.start()
    gateway = GatewayStandIn(mosquitto.port, GW).start()
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), check_same_thread=False)
    try:
        assert w.wait_ready()
        holder.execute("BEGIN IMMEDIATE")  # another process holds SQLite's write lock
        messages = [glucose(n, 6.0, minutes=n) for n in range(600)]
        infos = [
            gateway.publish(envelope([m], f"m-{n}"), wait=False) for n, m in enumerate(messages)
        ]
        for info in infos:
            info.wait_for_publish(20)  # the broker took all of them
        assert wait_until(lambda: w.stats.db_retries >= 3)
        # flow control: the broker stops at the worker's Receive Maximum (no PUBACK meanwhile)
        assert w.stats.received <= window
        assert w.queued <= window
        assert w.stats.pubacks == 0
        assert gateway.acks == []
        holder.rollback()
        ids = {m.reading_id for m in messages}
        assert wait_until(lambda: gateway.settled() >= ids, 60)
        assert count(factory) == len(messages)
        assert count(factory, DeadLetterRow) == 0
        assert w.stats.accepted == len(messages)
    finally:
        holder.close()
        gateway.stop()
        w.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_stopped_with_unacked_messages_gets_them_again_on_restart(
    mosquitto: Mosquitto, factory: sessionmaker[Session], world: IngestWorld, db_url: str
) -> None:
    """The PUBACK waits for the commit: what a worker held when it gave up comes back from its
    persistent session, and is stored once."""
    w = worker(mosquitto.port, factory, receive_maximum=20, db_retry_max_s=0.1)
    w.start()
    gateway = GatewayStandIn(mosquitto.port, GW).start()
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), check_same_thread=False)
    try:
        assert w.wait_ready()
        holder.execute("BEGIN IMMEDIATE")
        messages = [glucose(n, 6.0, minutes=n) for n in range(50)]
        for n, m in enumerate(messages):
            gateway.publish(envelope([m], f"m-{n}"))
        assert wait_until(lambda: w.stats.received == 20 and w.stats.db_retries >= 1)
        w.stop(timeout_s=0.5)  # gives up: the database is still locked, nothing was acked
        assert w.stats.pubacks == 0
        holder.rollback()
        again = worker(mosquitto.port, factory)  # same client id: resumes the session
        again.start()
        try:
            ids = {m.reading_id for m in messages}
            assert wait_until(lambda: gateway.settled() >= ids, 30)
            assert count(factory) == len(messages)
            assert again.stats.accepted == len(messages)
        finally:
            again.stop()
    finally:
        holder.close()
        gateway.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_amqtt_for_the_demo_with_mqtt311_and_no_shared_group(
    amqtt_broker: Amqtt, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    import asyncio

    w = worker(amqtt_broker.port, factory, protocol="mqtt311")
    w.start()
    gateway = GatewayStandIn(amqtt_broker.port, GW, protocol=MQTTProtocolVersion.MQTTv311)
    try:
        assert await asyncio.to_thread(w.wait_ready)
        await asyncio.to_thread(gateway.start)
        messages = [glucose(n, 5.0, minutes=n) for n in range(20)]
        for n, m in enumerate(messages):
            await asyncio.to_thread(gateway.publish, envelope([m], f"m-{n}"))
        ids = {m.reading_id for m in messages}
        assert await asyncio.to_thread(wait_until, lambda: gateway.settled() >= ids)
        assert count(factory) == 20
    finally:
        await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(w.stop)
