"""One batch of MQTT messages -> one database transaction -> the acks to send.

:meth:`BatchStore.process` decodes every message of a batch with the contract (the cloud's only
import from the gateway), refuses what it cannot use, attributes readings from the database,
inserts them idempotently (``ON CONFLICT (reading_id) DO NOTHING``), stores statuses and events,
records dead letters, queues new readings for the time-series mirror, and commits, all in one
transaction. Only then are the acks built (docs/ingest.md "Flow").

Failures:

* A message that breaks the contract (bad JSON, wrong version, oversized, a payload naming
  another gateway than its topic, ...) is dead-lettered with the fault as reason, and the
  gateway is told with an ``envelope_error`` ack. An unknown or revoked gateway likewise.
* A reading of a kind this cloud does not know is rejected (in the ack, and dead-lettered); the
  rest of its envelope is stored.
* The database unreachable or locked (``OperationalError``...) raises
  :class:`StoreUnavailableError`: nothing was committed, the caller retries the batch later
  (backpressure), nothing is acked meanwhile.
* Any other database error (a constraint, bad data) is isolated by storing the batch's messages
  one at a time; the one that fails alone is dead-lettered (``store_failed``) and its readings
  are rejected as retryable, so one poison message never wedges the worker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.repositories.ingest import (
    AttributionRepository,
    GatewayEventRepository,
    GatewayStatusRepository,
    TsdbPendingRepository,
)
from cloud.db.repositories.reading_rows import RowEncoder
from cloud.db.repositories.readings import DeadLetterRepository, NewReading, ReadingRepository
from cloud.errors import CloudError
from cloud.ingest.attribution import GatewayInfo, KnownDevice, attribute
from cloud.ingest.records import AckCollector, to_new_reading
from gateway.contract import (
    AckMessage,
    Channel,
    ContractError,
    EventMessage,
    ReadingEnvelope,
    Rejection,
    StatusMessage,
    decode_envelope,
    decode_event,
    decode_status,
    known_kind,
    parse_topic,
)

__all__ = [
    "BatchOutcome",
    "BatchStore",
    "DirectoryCache",
    "Inbound",
    "StoreUnavailableError",
]

_LOGGER = logging.getLogger(__name__)

_DECODERS: dict[Channel, Callable[..., Any]] = {
    Channel.READINGS: decode_envelope,
    Channel.STATUS: decode_status,
    Channel.EVENTS: decode_event,
}


_TOPIC_CACHE_MAX = 65536  # topics are per gateway and channel: a few per gateway


class StoreUnavailableError(CloudError):
    """The database could not take the batch now (unreachable, locked): retry later."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"database unavailable: {cause}")


class Inbound(NamedTuple):
    """One MQTT message as the receive thread hands it over (no parsing there). A named tuple:
    built once per message on paho's thread, ~3x cheaper than a frozen dataclass."""

    topic: str
    payload: bytes
    received_at: float  # time.time() at receipt
    mid: int = 0
    generation: int = 0  # the connection it arrived on (PUBACKs only go back on that one)


@dataclass(slots=True)
class BatchOutcome:
    acks: list[tuple[str, AckMessage]] = field(default_factory=list)
    stored: list[NewReading] = field(default_factory=list)  # inserted by this batch
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dead_letters: int = 0
    statuses: int = 0
    events: int = 0

    def merge(self, other: BatchOutcome) -> None:
        self.acks.extend(other.acks)
        self.stored.extend(other.stored)
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.dead_letters += other.dead_letters
        self.statuses += other.statuses
        self.events += other.events


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    item: Inbound
    reason: str
    detail: str = ""
    gateway_uid: str | None = None
    payload: bytes | None = None  # a part of the message (one reading) instead of all of it


class DirectoryCache:
    """Gateways with their household's devices, cached per worker. Each batch asks the database
    for the gateways it names (one query); a household's devices are reloaded only when the
    gateway's ``config_version`` moved (every device, owner or slot change bumps it)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, GatewayInfo] = {}

    def resolve(self, session: Session, uids: set[str]) -> dict[str, GatewayInfo]:
        repo = AttributionRepository(session)
        found: dict[str, GatewayInfo] = {}
        stale: list[tuple[uuid.UUID, str, uuid.UUID, int, bool]] = []
        for row in repo.gateways(uids):
            gid, uid, household_id, config_version, revoked = row
            cached = self._cache.get(uid)
            if (
                cached is None
                or cached.id != gid
                or cached.config_version != config_version
                or cached.household_id != household_id
            ):
                stale.append(row)
                continue
            info = cached
            if cached.revoked != revoked:
                info = GatewayInfo(gid, uid, household_id, config_version, revoked, info.devices)
                self._cache[uid] = info
            found[uid] = info
        if stale:  # the households' devices of every new or changed gateway, in two queries
            devices, slots = repo.devices_of_households({row[2] for row in stale})
            by_device: dict[uuid.UUID, dict[int, uuid.UUID]] = {}
            for slot in slots:
                by_device.setdefault(slot.device_id, {})[slot.user_id] = slot.person_id
            by_household: dict[uuid.UUID, list[KnownDevice]] = {}
            for d in devices:
                by_household.setdefault(d.household_id, []).append(
                    KnownDevice(
                        id=d.id,
                        kind=d.kind,
                        system_id=d.system_id,
                        serial_number=d.serial_number,
                        address=d.address,
                        owner_person_id=d.owner_person_id,
                        slots=by_device.get(d.id, {}),
                    )
                )
            for gid, uid, household_id, config_version, revoked in stale:
                info = GatewayInfo(
                    id=gid,
                    uid=uid,
                    household_id=household_id,
                    config_version=config_version,
                    revoked=revoked,
                    devices=tuple(by_household.get(household_id, ())),
                )
                self._cache[uid] = info
                found[uid] = info
        return found

    def clear(self) -> None:
        self._cache.clear()


def _transient(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class BatchStore:
    """Stores batches of inbound messages. Used by one writer thread (not thread-safe)."""

    __slots__ = ("_clock", "_directory", "_mirror", "_rows", "_session_factory", "_topics")

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        clock: Callable[[], datetime],
        *,
        mirror: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._mirror = mirror
        self._directory = DirectoryCache()
        self._rows = RowEncoder()
        self._topics: dict[str, tuple[str, Channel]] = {}  # parse_topic of valid topics

    def process(self, items: Sequence[Inbound]) -> BatchOutcome:
        """Store ``items`` in one transaction. Raises :class:`StoreUnavailableError` when the
        database cannot take it now (nothing stored); isolates poison messages otherwise."""
        try:
            return self._process(items)
        except SQLAlchemyError as exc:
            if _transient(exc):
                self._directory.clear()
                raise StoreUnavailableError(type(exc).__name__) from exc
            if len(items) == 1:
                return self._store_failed(items[0], exc)
            _LOGGER.warning(
                "batch of %d failed (%s): storing its messages one by one",
                len(items),
                type(exc).__name__,
            )
            outcome = BatchOutcome()
            for item in items:
                outcome.merge(self.process([item]))
            return outcome

    # --- one transaction -----------------------------------------------------------------------
    def _process(self, items: Sequence[Inbound]) -> BatchOutcome:
        now = self._clock()
        acks = AckCollector()
        outcome = BatchOutcome()
        dead: list[_DeadLetter] = []
        decoded: list[tuple[Inbound, str, Any]] = []
        topics = self._topics
        for item in items:
            parsed = topics.get(item.topic)
            if parsed is None:
                try:
                    parsed = parse_topic(item.topic)
                except ContractError as exc:
                    dead.append(_DeadLetter(item, exc.fault.value, exc.detail))
                    continue
                if len(topics) >= _TOPIC_CACHE_MAX:
                    topics.clear()
                topics[item.topic] = parsed
            gateway_uid, channel = parsed
            decoder = _DECODERS.get(channel)
            if decoder is None:  # a down/ topic: not ours to consume
                dead.append(_DeadLetter(item, "unexpected_channel", channel.value, gateway_uid))
                continue
            try:
                decoded.append((item, gateway_uid, decoder(item.payload, gateway_id=gateway_uid)))
            except ContractError as exc:
                _LOGGER.warning(
                    "gateway %s: refused %s message of %d bytes: %s",
                    gateway_uid,
                    channel.value,
                    len(item.payload),
                    exc.fault.value,
                )
                dead.append(_DeadLetter(item, exc.fault.value, exc.detail, gateway_uid))
                if channel is Channel.READINGS:
                    acks.envelope_error(gateway_uid, None, exc.fault.value)

        with self._session_factory() as session:
            gateways = self._directory.resolve(session, {uid for _, uid, _ in decoded})
            readings: list[NewReading] = []
            owners: list[tuple[str, str]] = []  # (gateway uid, message id) per reading
            statuses: dict[uuid.UUID, dict[str, Any]] = {}
            events: list[tuple[GatewayInfo, EventMessage, Inbound]] = []
            seen: set[str] = set()
            for item, uid, message in decoded:
                gateway = gateways.get(uid)
                if gateway is None or gateway.revoked:
                    reason = "unknown_gateway" if gateway is None else "revoked_gateway"
                    dead.append(_DeadLetter(item, reason, "", uid))
                    if isinstance(message, ReadingEnvelope):
                        acks.envelope_error(uid, message.message_id, reason)
                    continue
                if isinstance(message, ReadingEnvelope):
                    for reading in message.readings:
                        if known_kind(reading) is None:
                            acks.rejected(
                                uid,
                                message.message_id,
                                Rejection(
                                    reading_id=reading.reading_id,
                                    reason="unsupported_kind",
                                    detail=f"kind {reading.kind!r:.40} is not known here",
                                ),
                            )
                            dead.append(
                                _DeadLetter(
                                    item,
                                    "unsupported_kind",
                                    reading.reading_id,
                                    uid,
                                    msgspec.json.encode(reading),
                                )
                            )
                            outcome.rejected += 1
                            continue
                        if reading.reading_id in seen:  # twice in one batch (a redelivery)
                            acks.duplicate(uid, message.message_id, reading.reading_id)
                            outcome.duplicates += 1
                            continue
                        seen.add(reading.reading_id)
                        readings.append(
                            to_new_reading(reading, gateway, attribute(gateway, reading), now)
                        )
                        owners.append((uid, message.message_id))
                elif isinstance(message, StatusMessage):
                    statuses[gateway.id] = _status_values(gateway, message, item)
                else:
                    events.append((gateway, message, item))

            inserted = ReadingRepository(session).insert_many(readings, encoder=self._rows)
            for row, (uid, message_id) in zip(readings, owners, strict=True):
                if row.reading_id in inserted:
                    acks.accepted(uid, message_id, row.reading_id)
                    outcome.stored.append(row)
                else:
                    acks.duplicate(uid, message_id, row.reading_id)
                    outcome.duplicates += 1
            outcome.accepted += len(inserted)
            if self._mirror and inserted:
                TsdbPendingRepository(session).add(inserted)
            status_repo = GatewayStatusRepository(session)
            for values in statuses.values():
                status_repo.upsert(values)
            outcome.statuses += len(statuses)
            outcome.events += self._store_events(session, events)
            letters = DeadLetterRepository(session)
            for letter in dead:
                letters.add(
                    topic=letter.item.topic,
                    reason=letter.reason,
                    payload=letter.payload if letter.payload is not None else letter.item.payload,
                    received_at=datetime.fromtimestamp(letter.item.received_at, UTC),
                    gateway_uid=letter.gateway_uid,
                    detail=letter.detail,
                )
            outcome.dead_letters += len(dead)
            session.commit()
        outcome.acks = acks.build(now)
        return outcome

    def _store_events(
        self, session: Session, events: list[tuple[GatewayInfo, EventMessage, Inbound]]
    ) -> int:
        if not events:
            return 0
        repo = AttributionRepository(session)
        rows = []
        for gateway, event, item in events:
            person_id = _uuid(event.person_ref)
            if person_id is not None and not repo.members(gateway.household_id, {person_id}):
                person_id = None  # not a member of this household: never attribute across
            rows.append(
                {
                    "gateway_id": gateway.id,
                    "event_id": event.event_id,
                    "household_id": gateway.household_id,
                    "person_id": person_id,
                    "type": event.type,
                    "severity": event.severity,
                    "occurred_at": event.occurred_at,
                    "received_at": datetime.fromtimestamp(item.received_at, UTC),
                    "device_key": event.device_key,
                    "reading_id": event.reading_id,
                    "rule_id": event.rule_id,
                    "message_zh": event.message_zh,
                    "message_en": event.message_en,
                    "detail": dict(event.detail),
                    "handled_at": None,
                }
            )
        return GatewayEventRepository(session).insert_many(rows)

    def _store_failed(self, item: Inbound, exc: SQLAlchemyError) -> BatchOutcome:
        """A single message the database refused: dead-letter it on its own, reject its
        readings as retryable (the gateway keeps them and sends them again later)."""
        _LOGGER.error("message on %s could not be stored: %s", item.topic, type(exc).__name__)
        outcome = BatchOutcome(dead_letters=1)
        acks = AckCollector()
        uid: str | None = None
        try:
            uid, channel = parse_topic(item.topic)
            if channel is Channel.READINGS:
                envelope = decode_envelope(item.payload, gateway_id=uid)
                for reading in envelope.readings:
                    acks.rejected(
                        uid,
                        envelope.message_id,
                        Rejection(
                            reading_id=reading.reading_id,
                            reason="store_failed",
                            detail=type(exc).__name__,
                            retryable=True,
                        ),
                    )
                    outcome.rejected += 1
        except ContractError:
            pass
        with self._session_factory() as session:
            DeadLetterRepository(session).add(
                topic=item.topic,
                reason="store_failed",
                payload=item.payload,
                received_at=datetime.fromtimestamp(item.received_at, UTC),
                gateway_uid=uid,
                # the class and SQLSTATE only: a driver's message may quote the row's values
                detail=f"{type(exc).__name__} {getattr(exc.orig, 'sqlstate', '') or ''}".strip()
                if isinstance(exc, DBAPIError)
                else type(exc).__name__,
            )
            session.commit()
        outcome.acks = acks.build(self._clock())
        return outcome


def _status_values(gateway: GatewayInfo, message: StatusMessage, item: Inbound) -> dict[str, Any]:
    received = datetime.fromtimestamp(item.received_at, UTC)
    online = message.state == "online"
    return {
        "gateway_id": gateway.id,
        "state": message.state,
        "sent_at": message.sent_at,
        "received_at": received,
        "offline_since": None if online else received,
        "software_version": message.software_version,
        "config_version": message.config_version,
        "outbox": None if message.outbox is None else msgspec.to_builtins(message.outbox),
        "devices": msgspec.to_builtins(message.devices),
    }


def _uuid(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
