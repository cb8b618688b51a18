"""The ingest's batch store on a real database (SQLite and PostgreSQL), without a broker:
idempotent inserts, duplicates and out-of-order readings, attribution from the database, hostile
payloads dead-lettered, acks built after the commit, statuses, events, poison isolation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.engine import make_engine, make_session_factory
from cloud.db.models import (
    CuffSlotRow,
    DeadLetterRow,
    GatewayEventRow,
    GatewayStatusRow,
    ReadingRow,
    TsdbPendingRow,
)
from cloud.ingest.records import MAX_IDS_PER_ACK, ids_of
from cloud.ingest.store import BatchStore, Inbound, StoreUnavailableError
from cloud.settings import DatabaseSettings
from device_drivers.model import ReadingFlag
from gateway import contract as c
from tests.integration.cloud.conftest import FakeClock
from tests.integration.cloud.ingest_world import (
    GW,
    GW_OTHER,
    GW_REVOKED,
    STRAY_METER,
    UNOWNED_METER,
    WIRE,
    IngestWorld,
    bp,
    envelope,
    glucose,
    readings_topic,
    seed,
)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(DatabaseSettings(url=db_url, sqlite_busy_timeout_ms=200))
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(factory: sessionmaker[Session]) -> IngestWorld:
    return seed(factory)


@pytest.fixture
def store(factory: sessionmaker[Session], clock: FakeClock) -> BatchStore:
    return BatchStore(factory, clock, mirror=True)


def inbound(payload: bytes, topic: str | None = None, mid: int = 1) -> Inbound:
    return Inbound(topic or readings_topic(), payload, time.time(), mid)


def stored(factory: sessionmaker[Session]) -> dict[str, ReadingRow]:
    with factory() as session:
        return {r.reading_id: r for r in session.scalars(select(ReadingRow)).all()}


def dead_letters(factory: sessionmaker[Session]) -> list[DeadLetterRow]:
    with factory() as session:
        return list(session.scalars(select(DeadLetterRow).order_by(DeadLetterRow.id)).all())


def test_golden_envelopes_are_stored_with_attribution_from_the_database(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld, clock: FakeClock
) -> None:
    items = [
        inbound((WIRE / "reading_v1_glucose.json").read_bytes(), mid=1),
        inbound((WIRE / "reading_v1_bp.json").read_bytes(), mid=2),
    ]
    outcome = store.process(items)
    assert outcome.accepted == 4
    assert outcome.duplicates == outcome.rejected == outcome.dead_letters == 0
    rows = stored(factory)
    by_kind = sorted((r.kind, r.attribution, r.person_id, r.user_slot) for r in rows.values())
    assert by_kind == sorted(
        [
            ("glucose_meter", "enrolled", world.ids["mum"], None),
            ("glucose_meter", "enrolled", world.ids["mum"], None),
            ("blood_pressure_monitor", "slot", world.ids["dad"], 1),
            ("blood_pressure_monitor", "unmapped_slot", None, 255),
        ]
    )
    urgent = rows["c3cc155fdfe1f5e42744b0ff7be5c343"]
    assert urgent.urgent is True
    assert urgent.glucose_mmol_l == 2.7
    assert urgent.effective_at == datetime(2026, 3, 1, 7, 29, 42, tzinfo=UTC)
    assert urgent.device_time == "2026-03-01T15:29:40"
    assert urgent.stored_at == clock.now
    assert urgent.gateway_id == world.ids[GW]
    assert urgent.household_id == world.ids["h1"]
    assert urgent.device_id == world.ids["meter"]
    first = rows["72894112dfbd83d54296cf7cb61fa645"]
    assert first.meal == 1
    assert first.context == {"meal": 1, "tester": 1, "health": 5}
    flagged = rows["75cdc38be9e2de9b7a820b0cf4a13b86"]
    assert flagged.flags == ["clock_uncorrected", "irregular_pulse"]
    assert flagged.status_bits == 4
    # one ack for the gateway, covering both envelopes, the newest envelope's id
    assert len(outcome.acks) == 1
    topic, ack = outcome.acks[0]
    assert topic == c.topic(GW, c.Channel.ACKS)
    assert ack.message_id == "m-20260301T073000Z-0002"
    assert set(ack.accepted) == set(rows)
    assert ack.acked_at == clock.now
    c.decode_ack(c.encode(ack), gateway_id=GW)  # within the contract's limits
    assert {r.reading_id for r in outcome.stored} == set(rows)
    with factory() as session:  # queued for the time-series mirror in the same transaction
        pending = set(session.scalars(select(TsdbPendingRow.reading_id)).all())
    assert pending == set(rows)


def test_duplicates_are_acked_as_duplicates_and_stored_once(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    a, b = glucose(1, 5.5), glucose(2, 6.5, minutes=10)
    first = store.process([inbound(envelope([a, b], "m-1"))])
    assert first.accepted == 2
    # a redelivery of the same envelope, the same reading inside one batch twice, and a replay
    # of one reading through another gateway of another household
    again = store.process(
        [
            inbound(envelope([a, b], "m-1")),
            inbound(envelope([b, glucose(3, 7.0, minutes=20)], "m-2")),
            inbound(envelope([a], "m-9", GW_OTHER), topic=readings_topic(GW_OTHER)),
        ]
    )
    assert again.accepted == 1
    assert again.duplicates == 4
    assert len(stored(factory)) == 3
    acks = dict(again.acks)
    mine = acks[c.topic(GW, c.Channel.ACKS)]
    assert set(mine.duplicates) == {a.reading_id, b.reading_id}
    assert mine.accepted == (glucose(3, 7.0, minutes=20).reading_id,)
    other = acks[c.topic(GW_OTHER, c.Channel.ACKS)]
    assert other.duplicates == (a.reading_id,)
    assert [r.reading_id for r in again.stored] == [glucose(3, 7.0, minutes=20).reading_id]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(TsdbPendingRow)) == 3


def test_out_of_order_readings_keep_their_own_times(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    late = [glucose(seq, 5.0 + seq / 10, minutes=seq * 30) for seq in (5, 3, 4, 1, 2)]
    for message in late:
        store.process([inbound(envelope([message], f"m-{message.sequence_number}"))])
    with factory() as session:
        rows = session.scalars(select(ReadingRow).order_by(ReadingRow.effective_at)).all()
    assert [r.sequence_number for r in rows] == [1, 2, 3, 4, 5]
    assert [r.glucose_mmol_l for r in rows] == [5.1, 5.2, 5.3, 5.4, 5.5]


def test_attribution_comes_from_the_database_not_the_gateway(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    messages = [
        # the gateway claims p2 (stale config): the cloud's slot 2 says mum
        msgspec.structs.replace(bp(2, minutes=1), person_ref=str(world.ids["p2"])),
        bp(7, minutes=2),  # unmapped slot
        glucose(1, device=STRAY_METER),  # not registered in this household
        glucose(2, device=UNOWNED_METER),  # registered, no owner
    ]
    store.process([inbound(envelope(messages))])
    rows = stored(factory)
    got = {rid: (r.attribution, r.person_id, r.device_id) for rid, r in rows.items()}
    assert got == {
        messages[0].reading_id: ("slot", world.ids["mum"], world.ids["cuff"]),
        messages[1].reading_id: ("unmapped_slot", None, world.ids["cuff"]),
        messages[2].reading_id: ("unknown_device", None, None),
        messages[3].reading_id: ("no_owner", None, world.ids["unowned"]),
    }
    assert {r.household_id for r in rows.values()} == {world.ids["h1"]}


def test_a_device_of_another_household_is_never_attributed_across(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    """gw-other (household h2) relays mum's meter: stored for h2, unassigned."""
    message = glucose(11)
    store.process([inbound(envelope([message], gateway_id=GW_OTHER), readings_topic(GW_OTHER))])
    row = stored(factory)[message.reading_id]
    assert (row.household_id, row.person_id, row.attribution) == (
        world.ids["h2"],
        None,
        "unknown_device",
    )


def test_a_slot_change_is_seen_by_the_next_batch(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    store.process([inbound(envelope([bp(7, minutes=1)], "m-1"))])
    with factory() as session:  # what the device service does: map the slot, bump the config
        session.add(CuffSlotRow(device_id=world.ids["cuff"], user_id=7, person_id=world.ids["dad"]))
        session.execute(text("UPDATE gateways SET config_version = config_version + 1"))
        session.commit()
    second = bp(7, minutes=2)
    store.process([inbound(envelope([second], "m-2"))])
    assert stored(factory)[second.reading_id].person_id == world.ids["dad"]


HOSTILE = [
    pytest.param(b"{not json", readings_topic(), "malformed", True, id="bad-json"),
    pytest.param(
        envelope([glucose(1)]).replace(b'"schema_version":1', b'"schema_version":2'),
        readings_topic(),
        "unsupported_version",
        True,
        id="wrong-version",
    ),
    pytest.param(b"[" * 600_000, readings_topic(), "too_large", True, id="oversized"),
    pytest.param(
        envelope([glucose(1)], gateway_id=GW_OTHER),
        readings_topic(GW),
        "gateway_mismatch",
        True,
        id="wrong-gateway",
    ),
    pytest.param(
        envelope([glucose(1)], gateway_id="gw-nobody"),
        readings_topic("gw-nobody"),
        "unknown_gateway",
        True,
        id="unknown-gateway",
    ),
    pytest.param(
        envelope([glucose(1)], gateway_id=GW_REVOKED),
        readings_topic(GW_REVOKED),
        "revoked_gateway",
        True,
        id="revoked-gateway",
    ),
    pytest.param(b"{}", "anjia/v1/gw/#/up/readings", "bad_topic", False, id="bad-topic"),
    pytest.param(b'{"a":1}', c.topic(GW, c.Channel.STATUS), "missing_version", False, id="status"),
]


@pytest.mark.parametrize(("payload", "topic", "reason", "acked"), HOSTILE)
def test_hostile_messages_are_dead_lettered_and_the_rest_of_the_batch_is_stored(
    store: BatchStore,
    factory: sessionmaker[Session],
    world: IngestWorld,
    payload: bytes,
    topic: str,
    reason: str,
    acked: bool,
) -> None:
    good = glucose(42)
    outcome = store.process(
        [inbound(envelope([good], "m-good"), mid=1), inbound(payload, topic, mid=2)]
    )
    assert set(stored(factory)) == {good.reading_id}
    letters = dead_letters(factory)
    assert [(d.reason, d.topic, d.payload_size) for d in letters] == [(reason, topic, len(payload))]
    assert letters[0].payload == payload[:65536]
    errors = [ack for _, ack in outcome.acks if ack.envelope_error]
    assert [e.envelope_error for e in errors] == ([reason] if acked else [])
    assert good.reading_id in ids_of(outcome.acks)


def test_unknown_kind_is_rejected_and_the_envelope_is_stored(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    alien = msgspec.structs.replace(glucose(5), kind="thermometer", reading_id="r-alien")
    good = glucose(6)
    outcome = store.process([inbound(envelope([alien, good]))])
    assert set(stored(factory)) == {good.reading_id}
    ((_, ack),) = outcome.acks
    assert ack.accepted == (good.reading_id,)
    assert [(r.reading_id, r.reason, r.retryable) for r in ack.rejected] == [
        ("r-alien", "unsupported_kind", False)
    ]
    (letter,) = dead_letters(factory)
    assert letter.reason == "unsupported_kind"
    assert c.decode_reading(letter.payload).reading_id == "r-alien"


def test_statuses_keep_the_latest_received_and_events_are_stored_once(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    status = c.decode_status((WIRE / "status_v1.json").read_bytes())
    status_topic = c.topic(GW, c.Channel.STATUS)
    now = time.time()
    online = Inbound(status_topic, c.encode(status), now)
    will = msgspec.structs.replace(status, state="offline", outbox=None, devices=())
    offline = Inbound(status_topic, c.encode(will), now + 1)
    stale = Inbound(status_topic, c.encode(status), now - 10)  # delivered late by another worker
    store.process([online])
    store.process([offline])
    store.process([stale])
    with factory() as session:
        row = session.get(GatewayStatusRow, world.ids[GW])
        assert row is not None
        assert row.state == "offline"
        assert row.offline_since == datetime.fromtimestamp(now + 1, UTC)
        assert row.received_at == datetime.fromtimestamp(now + 1, UTC)
    store.process([Inbound(status_topic, c.encode(status), now + 2)])
    with factory() as session:
        row = session.get(GatewayStatusRow, world.ids[GW])
        assert row is not None
        assert (row.state, row.offline_since) == ("online", None)
        assert row.software_version == status.software_version
        assert row.devices == list(msgspec.to_builtins(status.devices))
        assert row.outbox == msgspec.to_builtins(status.outbox)

    event_bytes = (WIRE / "event_v1.json").read_bytes()
    event_topic = c.topic(GW, c.Channel.EVENTS)
    mine = msgspec.structs.replace(c.decode_event(event_bytes), person_ref=str(world.ids["mum"]))
    foreign = msgspec.structs.replace(mine, event_id="e-foreign", person_ref=str(world.ids["p2"]))
    outcome = store.process(
        [
            Inbound(event_topic, c.encode(mine), now),
            Inbound(event_topic, c.encode(mine), now),  # a redelivery
            Inbound(event_topic, c.encode(foreign), now),
        ]
    )
    assert outcome.events == 2
    assert outcome.acks == []  # events and statuses are not acked at the application level
    with factory() as session:
        events = session.scalars(select(GatewayEventRow).order_by(GatewayEventRow.id)).all()
    assert [(e.event_id, e.person_id, e.type, e.severity) for e in events] == [
        (mine.event_id, world.ids["mum"], "urgent_reading", "critical"),
        ("e-foreign", None, "urgent_reading", "critical"),  # p2 is not in this household
    ]
    assert events[0].detail == {"glucose_mmol_l": 2.7, "threshold_mmol_l": 3.0, "offline": False}
    assert events[0].reading_id == mine.reading_id
    assert events[0].handled_at is None


def test_large_batches_split_their_acks_within_the_contract_limit(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    items = [
        inbound(envelope([glucose(n * 500 + k, minutes=n * 500 + k) for k in range(500)], f"m-{n}"))
        for n in range(3)
    ]
    outcome = store.process(items)
    assert outcome.accepted == 1500
    assert [len(ack.accepted) for _, ack in outcome.acks] == [MAX_IDS_PER_ACK, 500]
    for _, ack in outcome.acks:
        c.decode_ack(c.encode(ack), gateway_id=GW)


def test_a_locked_database_raises_unavailable_and_stores_nothing(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's write lock; PostgreSQL rows lock per row")
    import sqlite3

    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            store.process([inbound(envelope([glucose(1)]))])
        assert info.value.cause == "OperationalError"
    finally:
        holder.rollback()
        holder.close()
    assert stored(factory) == {}
    assert store.process([inbound(envelope([glucose(1)]))]).accepted == 1


def test_a_poison_message_is_isolated_and_rejected_as_retryable(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    """A database constraint refuses one reading: the rest of the batch is stored."""
    with factory() as session:
        session.execute(
            text(
                "CREATE TRIGGER poison BEFORE INSERT ON readings FOR EACH ROW "
                "WHEN NEW.glucose_mmol_l = 66.6 BEGIN SELECT RAISE(ABORT, 'poison'); END"
            )
            if session.get_bind().dialect.name == "sqlite"
            else text(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.glucose_mmol_l = 66.6 THEN RAISE check_violation USING MESSAGE = 'poison'; "
                "END IF; RETURN NEW; END $$; CREATE TRIGGER poison BEFORE INSERT ON readings "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )
        )
        session.commit()
    good, bad = glucose(1, 5.0), glucose(2, 66.6, minutes=5)
    outcome = store.process(
        [inbound(envelope([good], "m-1"), mid=1), inbound(envelope([bad], "m-2"), mid=2)]
    )
    assert set(stored(factory)) == {good.reading_id}
    (letter,) = dead_letters(factory)
    assert letter.reason == "store_failed"
    assert b"66.6" in letter.payload
    rejected = [r for _, ack in outcome.acks for r in ack.rejected]
    assert [(r.reading_id, r.reason, r.retryable) for r in rejected] == [
        (bad.reading_id, "store_failed", True)
    ]
    assert good.reading_id in ids_of(outcome.acks)


def test_flags_and_missing_values_are_kept_as_sent(
    store: BatchStore, factory: sessionmaker[Session], world: IngestWorld
) -> None:
    hi = glucose(
        1, None, flags=frozenset({ReadingFlag.HIGH_OUT_OF_RANGE, ReadingFlag.VALUE_MISSING})
    )
    store.process([inbound(envelope([hi]))])
    row = stored(factory)[hi.reading_id]
    assert row.glucose_mmol_l is None
    assert row.flags == ["high_out_of_range", "value_missing"]
    assert row.effective_at == hi.measured_at
    assert row.received_at == hi.measured_at + timedelta(minutes=5)
