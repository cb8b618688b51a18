"""Gateway events waiting for the broker, durable in the outbox file.

Events (``urgent_reading``, ``config_rejected``, ``device_failing``, ``outbox_filling``) have no
application-level ack: the broker's PUBACK is enough. Until it arrives an event is a row of the
``pending_events`` table, so a restart while offline does not drop it. The publisher
(:class:`gateway.mqtt.MqttPublisher`) publishes the rows when it is connected, once per process
(paho resends an unacknowledged QoS 1 message itself after a reconnect), and deletes a row on its
PUBACK. A crash after the PUBACK and before the delete sends that event again; event ids make the
replay recognisable.

Bounded: beyond ``capacity`` rows the oldest **non-critical** event is dropped first (critical:
``urgent_reading`` events and anything of severity ``critical``), then, if every row is critical,
the oldest; each drop is logged (type and event id only, never a person). IO (SQLite), thread-safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from gateway.contract import EventMessage, EventType, encode
from gateway.state_db import StateTable

__all__ = ["DEFAULT_EVENT_CAPACITY", "EventQueue", "PendingEvent", "is_critical"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_EVENT_CAPACITY: Final = 1000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS pending_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    critical INTEGER NOT NULL,
    added_at REAL NOT NULL,
    payload BLOB NOT NULL             -- the encoded EventMessage, as published
);
"""


def is_critical(event: EventMessage) -> bool:
    """Kept longest when the queue is full: urgent readings and critical events."""
    return event.type == EventType.URGENT_READING.value or event.severity == "critical"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    event_id: str
    type: str
    payload: bytes


class EventQueue(StateTable):
    """The ``pending_events`` table of the outbox file. Thread-safe (one lock)."""

    SCHEMA = _SCHEMA

    def __init__(
        self,
        path: Path | str,
        *,
        capacity: int = DEFAULT_EVENT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        super().__init__(path, clock=clock)
        self.capacity = capacity
        self.dropped = 0

    def add(self, event: EventMessage) -> list[str]:
        """Store ``event`` (committed before returning; the same event id twice is one row).
        Returns the ids of events dropped to stay within the capacity."""
        dropped: list[tuple[str, str]] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO pending_events "
                    "(event_id, type, critical, added_at, payload) VALUES (?, ?, ?, ?, ?)",
                    (
                        event.event_id,
                        event.type,
                        int(is_critical(event)),
                        self._clock(),
                        encode(event),
                    ),
                )
                excess = self._count() - self.capacity
                if excess > 0:
                    rows = self._db.execute(
                        "SELECT seq, event_id, type FROM pending_events "
                        "ORDER BY critical, seq LIMIT ?",
                        (excess,),
                    ).fetchall()
                    for seq, event_id, kind in rows:
                        self._db.execute("DELETE FROM pending_events WHERE seq = ?", (seq,))
                        dropped.append((event_id, kind))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for event_id, kind in dropped:
            self.dropped += 1
            _LOGGER.warning(
                "event queue full (%d): dropped the oldest %s event %s",
                self.capacity,
                kind,
                event_id,
            )
        return [event_id for event_id, _ in dropped]

    def _count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM pending_events").fetchone()[0])

    def pending(self, exclude: frozenset[str] | set[str] = frozenset()) -> list[PendingEvent]:
        """Events not yet PUBACKed, oldest first, minus ``exclude`` (already on their way)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, type, payload FROM pending_events ORDER BY seq"
            ).fetchall()
        return [
            PendingEvent(event_id, kind, bytes(payload))
            for event_id, kind, payload in rows
            if event_id not in exclude
        ]

    def remove(self, event_ids: list[str]) -> int:
        """The broker PUBACKed these."""
        removed = 0
        with self._lock:
            for event_id in event_ids:
                cur = self._db.execute("DELETE FROM pending_events WHERE event_id = ?", (event_id,))
                removed += cur.rowcount
        return removed

    def count(self) -> int:
        with self._lock:
            return self._count()
