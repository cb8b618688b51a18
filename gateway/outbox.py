"""The durable outbox: readings wait here until the cloud says it stored them (docs/mqtt.md).

A reading is *pending* until :meth:`SqliteOutbox.next_batch` hands it out under a message id
(*in flight*), and is removed only by the cloud's application-level ack
(:class:`gateway.contract.AckMessage`), never by the MQTT PUBACK; in-flight readings that no ack
covers go back to pending (after a reconnect, or after the ack timeout) and are sent again. The
cloud dedupes on ``reading_id``, so a replay is harmless.

Only the readings are on disk. Which reading is in flight under which message, when it was sent
and whether the broker PUBACKed it lives in memory: after a restart every row of the table is
pending and is sent again (the cloud acks the duplicates). Acked readings leave the table lazily,
in bulk: their rows are deleted in one transaction once ``flush_rows`` are acked, when the oldest
ack is ``flush_age_s`` old (:meth:`SqliteOutbox.flush_due`), when the outbox has drained, and on
:meth:`~SqliteOutbox.close`. Until then they count as gone (:meth:`~SqliteOutbox.depth`) and are
never handed out again; a crash before the delete replays them (duplicates for the cloud).

Durability (docs/mqtt.md "Outbox"). SQLite in WAL mode. A reading enters with
``synchronous=FULL``: the commit is on disk before :meth:`SqliteOutbox.add` returns, and only then
may the caller advance the meter's watermark (RACP "records after N") — a reading the meter has
handed over must survive kill -9 and power loss. Deletes (acks, rejections) commit with
``synchronous=NORMAL``: WAL is still safe against kill -9, and what a power loss can undo is a
delete, which only causes a harmless replay. The next FULL commit syncs everything before it.

Order: first in, first out per device (and globally); urgent readings jump the queue and travel
alone. Bounded: ``capacity`` readings. When full, new non-urgent readings are *refused*, never
dropped: :meth:`add` returns them in ``refused`` and the caller must not advance the meter's
watermark, so they stay on the meter and are fetched again later. Urgent readings are accepted
up to ``capacity + urgent_reserve``. Crossing 80 % and 95 % returns a :class:`FillWarning` (edge
triggered, re-armed 5 % below) for the caller to send as an event; refusing logs a WARNING.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, TypeVar

import msgspec

from gateway.contract import (
    SCHEMA_VERSION,
    EventMessage,
    EventType,
    ReadingMessage,
    decode_readings,
    encode_reading,
)
from gateway.private_files import private_sqlite_file

__all__ = [
    "FILL_LEVELS",
    "AddResult",
    "Batch",
    "FillWarning",
    "OutboxError",
    "OutboxStats",
    "RejectedReading",
    "SqliteOutbox",
    "rows_on_disk",
]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

FILL_LEVELS: Final = (0.80, 0.95)
_REARM_MARGIN: Final = 0.05
_SCHEMA_VERSION: Final = 2
_CHUNK: Final = 500  # ids per IN (...) statement, below SQLite's variable limit
SEGMENT_ROWS: Final = 20_000
"""Readings per segment table: a segment whose readings are all acked is dropped (or emptied)
whole, which frees its pages without rewriting them (a row-by-row delete wrote ~1.7 KB and
took ~14 µs per reading, measured; a whole segment ~0.9 µs and a few bytes)."""
FLUSH_AGE_S: Final = 30.0
"""Acked readings of a segment that does not drain are deleted row by row after this long."""
_SCAN: Final = 256  # rows read per step when skipping in-flight and acked ones
_SEGMENT: Final = "readings_"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS rejected (
    reading_id TEXT PRIMARY KEY,
    device_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    rejected_at REAL NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_SEGMENT_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS {name} (
    seq INTEGER PRIMARY KEY,                -- arrival order, across segments
    reading_id TEXT NOT NULL UNIQUE,
    device_key TEXT NOT NULL,
    urgent INTEGER NOT NULL,
    added_at REAL NOT NULL,
    payload BLOB NOT NULL                   -- the reading as gateway.contract.encode_reading gives
);
CREATE INDEX IF NOT EXISTS {name}_urgent ON {name} (seq) WHERE urgent = 1;
"""

_MIGRATE_V1: Final = """
DROP INDEX IF EXISTS readings_pending;
DROP INDEX IF EXISTS readings_in_flight;
DROP INDEX IF EXISTS readings_message;
ALTER TABLE readings RENAME TO readings_0;
"""
"""Schema 1 had one ``readings`` table with the in-flight state in its rows (state, message_id,
sent_at, puback_at, attempts): it becomes segment 0; those columns stay (with their defaults) and
are no longer read, so every reading is pending."""


class OutboxError(Exception):
    """The outbox file cannot be used (``path``, ``reason``). The file is never recreated."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"outbox {path}: {reason}")


@dataclass(frozen=True, slots=True)
class FillWarning:
    level: float  # 0.80 or 0.95; 1.0 when readings were refused
    depth: int
    capacity: int

    @property
    def full(self) -> bool:
        return self.level >= 1.0

    def to_event(self, gateway_id: str, occurred_at: datetime, event_id: str) -> EventMessage:
        """The loud event for the cloud (docs/mqtt.md "Outbox": nothing is dropped silently)."""
        pct = round(self.level * 100)
        if self.full:
            zh = "网关缓存已满：新读数暂留在设备中，联网后自动补传。"
            en = "Gateway buffer full: new readings stay on the meters until the link is back."
        else:
            zh = f"网关缓存已用 {pct}%：请检查网络连接。"
            en = f"Gateway buffer {pct}% full: check the internet connection."
        return EventMessage(
            schema_version=SCHEMA_VERSION,
            gateway_id=gateway_id,
            event_id=event_id,
            occurred_at=occurred_at,
            type=(EventType.OUTBOX_FULL if self.full else EventType.OUTBOX_FILLING).value,
            severity="critical" if self.level >= FILL_LEVELS[-1] else "warning",
            message_zh=zh,
            message_en=en,
            detail={"depth": self.depth, "capacity": self.capacity, "level": self.level},
        )


@dataclass(frozen=True, slots=True)
class AddResult:
    added: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()  # already in the outbox: nothing to do
    refused: tuple[str, ...] = ()  # outbox full: leave these on the meter
    warnings: tuple[FillWarning, ...] = ()

    @property
    def stored(self) -> frozenset[str]:
        """Reading ids now safely in the outbox (the meter watermark may pass them)."""
        return frozenset(self.added) | frozenset(self.duplicates)


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings handed out under one message id. ``body``: their stored encodings joined by
    ``,`` (what :func:`gateway.contract.encode_envelope_body` wraps), in ``reading_ids`` order."""

    message_id: str
    reading_ids: tuple[str, ...]
    body: bytes
    urgent: bool

    def readings(self) -> tuple[ReadingMessage, ...]:
        """The readings, decoded (for tests and tools; the publisher sends ``body`` as is)."""
        return decode_readings(b"[" + self.body + b"]")


@dataclass(frozen=True, slots=True)
class RejectedReading:
    reading_id: str
    reason: str
    detail: str = ""
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    in_flight: int
    urgent_pending: int
    capacity: int
    rejected: int
    refused_total: int
    oldest_pending_added_at: float | None

    @property
    def depth(self) -> int:
        return self.pending + self.in_flight


@dataclass(slots=True, eq=False)
class _Segment:
    """One ``readings_<number>`` table (rows, last seq, acked rows: memory)."""

    number: int
    rows: int = 0  # on disk, acked ones included
    last_seq: int = 0
    acked: set[int] = field(default_factory=set)  # acked seqs still on disk
    acked_since: float | None = None  # monotonic time of the oldest of them

    @property
    def name(self) -> str:
        return f"{_SEGMENT}{self.number}"


@dataclass(slots=True, eq=False)
class _Sent:
    """A message in flight (memory only): its readings, where they are, when it left, whether
    PUBACKed, and which of them are no longer in flight (acked, rejected or requeued)."""

    message_id: str
    reading_ids: tuple[str, ...]
    spans: tuple[tuple[_Segment, Sequence[int]], ...]  # where they are: segment, seqs
    sent_at: float
    pubacked: bool = False
    closed: set[str] = field(default_factory=set)

    @property
    def open(self) -> int:
        return len(self.reading_ids) - len(self.closed)

    def located(self) -> Iterator[tuple[str, int, _Segment]]:
        """(reading id, seq, segment) of every reading of the message, in order."""
        ids = iter(self.reading_ids)
        for segment, seqs in self.spans:
            for seq in seqs:
                yield next(ids), seq, segment


@dataclass(frozen=True, slots=True)
class _Part:
    """Consecutive pending rows read from one segment (``body``: payloads joined by ``,``)."""

    segment: _Segment
    seqs: Sequence[int]
    reading_ids: list[str]
    body: bytes


def _rows_part(seg: _Segment, rows: Sequence[tuple[int, str, bytes]]) -> _Part:
    return _Part(
        seg, [row[0] for row in rows], [row[1] for row in rows], b",".join(row[2] for row in rows)
    )


def _message_ids() -> Callable[[], str]:
    """Message ids unique without a uuid4 each: 64 random bits per outbox instance, a count."""
    prefix = f"m-{uuid.uuid4().hex[:16]}-"
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def _chunks(items: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def rows_on_disk(path: Path | str) -> int:
    """Readings in the segment tables of an outbox file, acked ones awaiting their delete
    included, read through a connection of its own (for tests and tools)."""
    with contextlib.closing(sqlite3.connect(Path(path), timeout=5)) as db:
        names = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?",
                (f"{_SEGMENT}[0-9]*",),
            )
        ]
        return sum(int(db.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names)  # noqa: S608


class SqliteOutbox:
    """A SQLite outbox file owned by one gateway process. Thread-safe (one lock)."""

    def __init__(
        self,
        path: Path | str,
        *,
        capacity: int = 500_000,
        urgent_reserve: int = 1_000,
        synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL",
        clock: Callable[[], float] = time.time,
        new_message_id: Callable[[], str] | None = None,
        segment_rows: int = SEGMENT_ROWS,
        flush_age_s: float = FLUSH_AGE_S,
    ) -> None:
        if capacity < 1 or urgent_reserve < 0 or segment_rows < 1:
            raise ValueError("capacity, segment_rows must be positive; urgent_reserve not negative")
        self.path = Path(path)
        self.capacity = capacity
        self.urgent_reserve = urgent_reserve
        self.segment_rows = segment_rows
        self.flush_age_s = flush_age_s
        self._sync_add = synchronous
        self._clock = clock
        self._new_message_id = new_message_id or _message_ids()
        self._lock = threading.Lock()
        self._db = self._open()
        self._segments: list[_Segment] = []  # oldest first; the last one takes new readings
        self._urgent: dict[int, _Segment] = {}  # seq -> segment, every urgent reading on disk
        self._load_segments()
        self._next_seq = max((seg.last_seq for seg in self._segments), default=0) + 1
        # memory only (module docstring): lost on a restart, which then replays
        self._cursor = 0  # bulk readings are handed out in seq order from here
        self._taken: set[int] = set()  # seqs in flight or acked: never handed out again
        self._frontier = 0  # no non-urgent seq above this is taken (the fast scan's condition)
        self._sent: dict[str, _Sent] = {}  # message_id -> its readings (in flight)
        self._index: dict[str, _Sent] = {}  # reading_id -> its message, while in flight
        self._armed = {level: self._live_depth < level * capacity for level in FILL_LEVELS}

    # --- lifecycle --------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            tightened = private_sqlite_file(self.path)
        except OSError as exc:
            raise OutboxError(self.path, f"cannot create or protect the file: {exc}") from exc
        if tightened:
            _LOGGER.warning(
                "%s was readable by other users: now 0600 (%d files)", self.path, len(tightened)
            )
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                db.close()
                raise OutboxError(self.path, f"written by a newer gateway (schema {version})")
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                db.close()
                raise OutboxError(self.path, f"cannot use WAL (journal mode {mode})")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=67108864")
            # checkpoint every 16 MB of WAL instead of 4 MB: fewer fsyncs
            db.execute("PRAGMA wal_autocheckpoint=4096")
            # deleted rows are zeroed in the pages a delete writes anyway, but freed pages are
            # not written again (Debian's SQLite defaults to ON: twice the delete cost, measured)
            db.execute("PRAGMA secure_delete=FAST")
            if version == 1:
                db.execute("BEGIN IMMEDIATE")
                for statement in _MIGRATE_V1.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("COMMIT")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            integrity = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise OutboxError(self.path, f"unusable database: {exc}") from exc
        if integrity != "ok":
            db.close()
            raise OutboxError(self.path, f"integrity check failed: {integrity}")
        return db

    def _load_segments(self) -> None:
        numbers = sorted(
            int(name[len(_SEGMENT) :])
            for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?",
                (f"{_SEGMENT}[0-9]*",),
            )
            if name[len(_SEGMENT) :].isdigit()
        )
        for number in numbers:
            seg = _Segment(number)
            self._create_segment(seg)  # for v1's table: its urgent index
            rows, last = self._db.execute(f"SELECT COUNT(*), MAX(seq) FROM {seg.name}").fetchone()  # noqa: S608
            seg.rows, seg.last_seq = int(rows), int(last or 0)
            for (seq,) in self._db.execute(f"SELECT seq FROM {seg.name} WHERE urgent = 1"):  # noqa: S608
                self._urgent[seq] = seg
            self._segments.append(seg)
        for seg in self._segments[:-1]:
            if seg.rows == 0:
                self._drop(seg)

    def close(self) -> None:
        """Delete what was acked, then close the file."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # not deleted: replayed, harmless
                self._flush(0.0)
            self._db.close()

    def __enter__(self) -> SqliteOutbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers ----------------------------------------------------------------------------
    @property
    def _live_depth(self) -> int:
        return sum(seg.rows - len(seg.acked) for seg in self._segments)

    def _scalar(self, sql: str, params: Sequence[object] = ()) -> int:
        row = self._db.execute(sql, params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _bump(self, name: str, amount: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, amount),
        )

    def _fill_warnings(self) -> list[FillWarning]:
        warnings = []
        depth = self._live_depth
        for level in FILL_LEVELS:
            threshold = level * self.capacity
            if self._armed[level] and depth >= threshold:
                self._armed[level] = False
                warnings.append(FillWarning(level, depth, self.capacity))
                _LOGGER.warning(
                    "outbox %.0f%% full: %d of %d readings", level * 100, depth, self.capacity
                )
            elif not self._armed[level] and depth < threshold - _REARM_MARGIN * self.capacity:
                self._armed[level] = True
        return warnings

    def _find(self, reading_ids: Sequence[str]) -> dict[str, tuple[_Segment, int, bool]]:
        """Where these readings are on disk: id -> (segment, seq, urgent)."""
        found: dict[str, tuple[_Segment, int, bool]] = {}
        for seg in self._segments:
            if not seg.rows:
                continue
            for chunk in _chunks(reading_ids):
                marks = ",".join("?" * len(chunk))
                for seq, reading_id, urgent in self._db.execute(
                    f"SELECT seq, reading_id, urgent FROM {seg.name} "  # noqa: S608
                    f"WHERE reading_id IN ({marks})",
                    chunk,
                ):
                    found[reading_id] = (seg, seq, bool(urgent))
        return found

    def _scan_bulk(self, limit: int) -> list[_Part]:
        """Up to ``limit`` pending non-urgent rows from the cursor on, in seq order, skipping
        the taken ones (in flight or acked), by segment."""
        taken = self._taken
        out: list[_Part] = []
        want = limit
        start = self._cursor
        for seg in self._segments:
            if seg.last_seq <= start or seg.rows == len(seg.acked):
                continue
            if start >= self._frontier:  # nothing ahead is taken: whole seq windows
                while want > 0 and start < seg.last_seq:
                    until = min(start + want, seg.last_seq)
                    part = self._scan_window(seg, start, until)
                    start = until
                    if part is not None:
                        out.append(part)
                        want -= len(part.seqs)
                if want <= 0:
                    break
                continue
            sql = (
                f"SELECT seq, reading_id, payload FROM {seg.name} "  # noqa: S608
                "WHERE seq > ? AND urgent = 0 ORDER BY seq LIMIT ?"
            )
            step = want
            while want > 0:
                rows = self._db.execute(sql, (start, step)).fetchall()
                if not rows:
                    break
                got = [row for row in rows if row[0] not in taken][:want] if taken else rows
                if got:
                    out.append(_rows_part(seg, got))
                    want -= len(got)
                if len(rows) < step:
                    break
                start = rows[-1][0]
                step = want + _SCAN  # past in-flight rows (after a requeue): wider steps
            if want <= 0:
                break
        return out

    def _scan_window(self, seg: _Segment, after: int, until: int) -> _Part | None:
        """The non-urgent rows of ``seg`` with ``after < seq <= until`` (none of them taken),
        aggregated by SQLite into one row, ids and payloads joined in the scan's seq order:
        the replay's hot path, ~1 µs a reading less than row by row. A window with gaps
        (urgent or rejected rows inside) is read row by row, for its seqs."""
        where = f"FROM {seg.name} WHERE seq > ? AND seq <= ? AND urgent = 0"
        count, first, last, ids, body = self._db.execute(
            "SELECT count(*), min(seq), max(seq), group_concat(reading_id, ' '), "
            f"CAST(group_concat(payload, ',') AS BLOB) {where}",
            (after, until),
        ).fetchone()
        if not count:
            return None
        reading_ids = ids.split(" ")
        if last - first + 1 == count == len(reading_ids):
            return _Part(seg, range(first, last + 1), reading_ids, body)
        rows = self._db.execute(
            f"SELECT seq, reading_id, payload {where} ORDER BY seq", (after, until)
        )
        return _rows_part(seg, rows.fetchall())

    def _scan_urgent(self, limit: int) -> list[_Part]:
        seqs = sorted(seq for seq in self._urgent if seq not in self._taken)[:limit]
        out: list[_Part] = []
        for seq in seqs:
            seg = self._urgent[seq]
            row = self._db.execute(
                f"SELECT seq, reading_id, payload FROM {seg.name} WHERE seq = ?",  # noqa: S608
                (seq,),
            ).fetchone()
            if row is not None:
                out.append(_rows_part(seg, [row]))
        return out

    def _create_segment(self, seg: _Segment) -> None:
        for statement in _SEGMENT_SCHEMA.format(name=seg.name).split(";"):  # in a transaction
            if statement.strip():
                self._db.execute(statement)

    def _mark_acked(self, seg: _Segment, seq: int, now: float) -> bool:
        if seq in seg.acked:
            return False
        seg.acked.add(seq)
        self._taken.add(seq)
        if seq not in self._urgent:
            self._frontier = max(self._frontier, seq)
        if seg.acked_since is None:
            seg.acked_since = now
        return True

    def _forget(self, seg: _Segment, seqs: Iterable[int]) -> None:
        gone = seqs if isinstance(seqs, set) else set(seqs)
        self._taken.difference_update(gone)
        if self._urgent:
            for seq in [seq for seq in self._urgent if seq in gone]:
                del self._urgent[seq]

    def _drop(self, seg: _Segment) -> None:
        """Every row of ``seg`` is acked: free it whole (the newest segment is emptied, an older
        one dropped). One NORMAL commit; its pages go to the free list unwritten."""
        if seg is self._segments[-1]:
            self._db.execute(f"DELETE FROM {seg.name}")  # noqa: S608 (truncate: no WHERE)
        else:
            self._db.execute(f"DROP TABLE {seg.name}")
            self._segments.remove(seg)
        self._forget(seg, seg.acked)
        seg.rows = 0
        seg.acked = set()
        seg.acked_since = None

    def _flush(self, max_age_s: float) -> int:
        """Drop the segments whose every row is acked; delete row by row the acked rows of
        segments that waited ``max_age_s`` to drain. How many rows went one by one."""
        now = time.monotonic()
        deleted = 0
        for seg in list(self._segments):
            if seg.acked_since is None:
                continue
            if len(seg.acked) >= seg.rows:  # every row acked: free it whole, whatever its age
                self._drop(seg)
                continue
            if now - seg.acked_since < max_age_s:
                continue
            seqs = sorted(seg.acked)
            self._db.execute("BEGIN")
            try:
                cur = self._db.executemany(
                    f"DELETE FROM {seg.name} WHERE seq = ?",  # noqa: S608
                    [(s,) for s in seqs],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            seg.rows -= cur.rowcount
            self._forget(seg, seqs)
            seg.acked = set()
            seg.acked_since = None
            deleted += len(seqs)
        return deleted

    def _locate(self, reading_ids: Iterable[str]) -> dict[str, tuple[_Sent, int, _Segment]]:
        """Which in-flight message holds each of these readings, and where it is on disk."""
        found: dict[str, tuple[_Sent, int, _Segment]] = {}
        maps: dict[str, dict[str, tuple[int, _Segment]]] = {}
        for reading_id in reading_ids:
            sent = self._index.get(reading_id)
            if sent is None:
                continue
            where = maps.get(sent.message_id)
            if where is None:
                where = maps[sent.message_id] = {
                    rid: (seq, seg) for rid, seq, seg in sent.located()
                }
            seq, seg = where[reading_id]
            found[reading_id] = (sent, seq, seg)
        return found

    def _close(self, sent: _Sent, reading_id: str) -> None:
        """``reading_id`` no longer waits under its message (acked, rejected or requeued)."""
        sent.closed.add(reading_id)
        if self._index.get(reading_id) is sent:
            del self._index[reading_id]
        if not sent.open:
            del self._sent[sent.message_id]

    # --- API --------------------------------------------------------------------------------
    def add(self, readings: Iterable[ReadingMessage], *, urgent: bool = False) -> AddResult:
        """Store readings durably (fsync before returning). Idempotent on ``reading_id``.
        A reading is urgent if ``urgent`` is set or its message says so. Raises ContractError
        (before storing anything) if a reading cannot go on the wire."""
        rows = [
            (
                r.reading_id,
                r.device.key,
                urgent or r.urgent,
                encode_reading(msgspec.structs.replace(r, urgent=True) if urgent else r),
            )
            for r in readings
        ]
        added: list[str] = []
        duplicates: list[str] = []
        refused: list[str] = []
        now = self._clock()
        with self._lock:
            known = self._find([row[0] for row in rows]) if self._segments else {}
            inserted: list[tuple[_Segment, int, bool]] = []
            upgraded: list[tuple[_Segment, int]] = []
            new_segments: list[_Segment] = []
            active = self._segments[-1] if self._segments else None
            active_rows = active.rows if active else 0
            next_seq = self._next_seq
            self._db.execute(f"PRAGMA synchronous={self._sync_add}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    depth = self._live_depth
                    seen: set[str] = set()
                    for reading_id, device_key, is_urgent, payload in rows:
                        where = known.get(reading_id)
                        if where is not None or reading_id in seen:
                            duplicates.append(reading_id)
                            if is_urgent and where is not None and not where[2]:
                                seg, seq, _ = where  # known, now urgent: let it jump the queue
                                self._db.execute(
                                    f"UPDATE {seg.name} SET urgent = 1 WHERE seq = ?",  # noqa: S608
                                    (seq,),
                                )
                                upgraded.append((seg, seq))
                            continue
                        limit = self.capacity + (self.urgent_reserve if is_urgent else 0)
                        if depth >= limit:
                            refused.append(reading_id)
                            continue
                        if active is None or active_rows >= self.segment_rows:
                            number = active.number + 1 if active else 1
                            active = _Segment(number)
                            active_rows = 0
                            self._create_segment(active)
                            new_segments.append(active)
                        self._db.execute(
                            f"INSERT INTO {active.name} "  # noqa: S608
                            "(seq, reading_id, device_key, urgent, added_at, payload) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (next_seq, reading_id, device_key, int(is_urgent), now, payload),
                        )
                        inserted.append((active, next_seq, is_urgent))
                        seen.add(reading_id)
                        added.append(reading_id)
                        next_seq += 1
                        active_rows += 1
                        depth += 1
                    if refused:
                        self._bump("refused_total", len(refused))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._next_seq = next_seq
            self._segments.extend(new_segments)
            for seg, seq, is_urgent in inserted:
                seg.rows += 1
                seg.last_seq = seq
                if is_urgent:
                    self._urgent[seq] = seg
            for seg, seq in upgraded:
                self._urgent[seq] = seg
            warnings = self._fill_warnings()
            if refused:
                warnings.append(FillWarning(1.0, depth, self.capacity))
                _LOGGER.warning(
                    "outbox full (%d of %d): refused %d readings; they stay on the meter",
                    depth,
                    self.capacity,
                    len(refused),
                )
        return AddResult(tuple(added), tuple(duplicates), tuple(refused), tuple(warnings))

    def next_batch(
        self, max_n: int, *, urgent_only: bool = False, max_urgent: int | None = None
    ) -> Batch | None:
        """Hand out up to ``max_n`` pending readings under a new message id (in flight, in
        memory). Urgent readings come first (at most ``max_urgent`` of them, default ``max_n``)
        and never share a batch with non-urgent ones; ``urgent_only`` returns None when none is
        pending. Reads only: nothing is written."""
        if max_n < 1 or (max_urgent is not None and max_urgent < 1):
            raise ValueError("max_n and max_urgent must be positive")
        with self._lock:
            urgent = True
            parts = self._scan_urgent(min(max_n, max_urgent or max_n)) if self._urgent else []
            if not parts and not urgent_only:
                urgent = False
                parts = self._scan_bulk(max_n)
                if parts:
                    self._cursor = parts[-1].seqs[-1]
                    self._frontier = max(self._frontier, self._cursor)
            if not parts:
                return None
            message_id = self._new_message_id()
            for part in parts:
                self._taken.update(part.seqs)
            if len(parts) == 1:
                ids, body = tuple(parts[0].reading_ids), parts[0].body
            else:
                ids = tuple(rid for part in parts for rid in part.reading_ids)
                body = b",".join(part.body for part in parts)
            spans = tuple((part.segment, part.seqs) for part in parts)  # not the bodies
            sent = self._sent[message_id] = _Sent(message_id, ids, spans, self._clock())
            self._index.update(zip(ids, itertools.repeat(sent)))
        return Batch(message_id, ids, body, urgent)

    def mark_published(self, message_ids: Iterable[str]) -> int:
        """Note the broker's PUBACK for these messages (nothing is removed); how many of their
        readings are still in flight."""
        count = 0
        with self._lock:
            for message_id in message_ids:
                sent = self._sent.get(message_id)
                if sent is not None:
                    sent.pubacked = True
                    count += sent.open
        return count

    def ack(self, reading_ids: Iterable[str]) -> int:
        """The cloud stored these (accepted or duplicate): remove them (at once from
        :meth:`depth`; from the file with their whole segment). Unknown ids are ignored (a late
        or repeated ack). Returns how many were removed."""
        removed = 0
        now = time.monotonic()
        with self._lock:
            ids = list(reading_ids)
            # the hot path, in C: take each id out of the index, count them per message
            holders = list(map(self._index.pop, ids, itertools.repeat(None)))
            unknown = (
                [rid for rid, sent in zip(ids, holders, strict=True) if sent is None]
                if None in holders
                else []
            )
            for sent, count in Counter(holders).items():
                if sent is None:
                    continue
                if not sent.closed and count == len(sent.reading_ids):
                    del self._sent[sent.message_id]  # the whole message: by its seq ranges
                    for segment, seqs in sent.spans:
                        acked = segment.acked
                        before = len(acked)
                        acked.update(seqs)
                        if len(acked) > before:
                            removed += len(acked) - before
                            if segment.acked_since is None:
                                segment.acked_since = now
                    continue
                where = {rid: (seq, seg) for rid, seq, seg in sent.located()}
                for reading_id in (r for r, h in zip(ids, holders, strict=True) if h is sent):
                    seq, seg = where[reading_id]
                    if self._mark_acked(seg, seq, now):
                        removed += 1
                    sent.closed.add(reading_id)
                if not sent.open:
                    del self._sent[sent.message_id]
            # not in flight: sent by a previous process, requeued meanwhile, or named twice
            for seg, seq, _ in self._find(unknown).values() if unknown else ():
                if self._mark_acked(seg, seq, now):
                    removed += 1
            # segments all acked are dropped by flush_due (the publisher's tick), not here:
            # ~7 ms each, off the path between an ack and the next envelope
            self._fill_warnings()
        return removed

    def flush_due(self) -> int:
        """Delete row by row the acked readings of segments that waited ``flush_age_s`` without
        draining (a reading the cloud keeps not acking holds its segment); how many."""
        with self._lock:
            return self._flush(self.flush_age_s)

    def reject(self, rejections: Iterable[RejectedReading]) -> int:
        """The cloud refused these. Retryable ones go back to pending; the others move to the
        ``rejected`` table (kept for diagnostics, counted in the status, never silently lost)."""
        items = list(rejections)
        if not items:
            return 0
        now = self._clock()
        moved = 0
        with self._lock:
            where: dict[str, tuple[_Segment, int]] = {}
            located = self._locate(item.reading_id for item in items)
            for item in items:
                if item.reading_id in located:
                    holder, seq, seg = located.pop(item.reading_id)
                    self._close(holder, item.reading_id)
                    where[item.reading_id] = (seg, seq)
                    if item.retryable:
                        self._taken.discard(seq)
                        self._cursor = min(self._cursor, seq - 1)
            lost = [i.reading_id for i in items if not i.retryable and i.reading_id not in where]
            for reading_id, (seg, seq, _) in self._find(lost).items() if lost else ():
                if seq not in seg.acked:  # acked is final: a later rejection changes nothing
                    where[reading_id] = (seg, seq)
            touched: set[_Segment] = set()
            self._db.execute("BEGIN")
            try:
                for item in items:
                    if item.retryable or item.reading_id not in where:
                        continue
                    seg, seq = where[item.reading_id]
                    self._db.execute(
                        "INSERT OR REPLACE INTO rejected "  # noqa: S608 (table names: numbers)
                        "(reading_id, device_key, reason, detail, rejected_at, payload) "
                        f"SELECT reading_id, device_key, ?, ?, ?, payload FROM {seg.name} "
                        "WHERE seq = ?",
                        (item.reason, item.detail, now, seq),
                    )
                    if self._db.execute(f"DELETE FROM {seg.name} WHERE seq = ?", (seq,)).rowcount:  # noqa: S608
                        seg.rows -= 1
                        seg.acked.discard(seq)
                        self._forget(seg, (seq,))
                        touched.add(seg)
                        moved += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for seg in touched:
                if seg.rows <= len(seg.acked) and seg in self._segments:
                    self._drop(seg)
            self._fill_warnings()
        if moved:
            _LOGGER.warning("the cloud rejected %d readings; kept in the rejected table", moved)
        return moved

    def requeue_unacked(
        self, older_than: float | None = None, *, published_only: bool = False
    ) -> int:
        """Return in-flight readings to pending: those sent before ``older_than`` (all when
        None), and with ``published_only`` only those the broker had PUBACKed. They go out
        again in their original order."""
        count = 0
        with self._lock:
            for message_id, sent in list(self._sent.items()):
                if older_than is not None and sent.sent_at >= older_than:
                    continue
                if published_only and not sent.pubacked:
                    continue
                del self._sent[message_id]
                for reading_id, seq, _ in sent.located():
                    if reading_id not in sent.closed:
                        if self._index.get(reading_id) is sent:
                            del self._index[reading_id]
                        self._taken.discard(seq)
                        self._cursor = min(self._cursor, seq - 1)
                        count += 1
        if count:
            _LOGGER.info("requeued %d unacknowledged readings", count)
        return count

    def depth(self) -> int:
        """Readings in the outbox (pending and in flight; acked ones are gone)."""
        with self._lock:
            return self._live_depth

    def stats(self) -> OutboxStats:
        with self._lock:
            taken = self._taken
            oldest = None
            for seg in self._segments:
                for seq, added_at in self._db.execute(
                    f"SELECT seq, added_at FROM {seg.name} ORDER BY seq"  # noqa: S608
                ):
                    if seq not in taken:
                        oldest = added_at
                        break
                if oldest is not None:
                    break
            in_flight = len(self._index)
            return OutboxStats(
                pending=self._live_depth - in_flight,
                in_flight=in_flight,
                urgent_pending=sum(1 for seq in self._urgent if seq not in taken),
                capacity=self.capacity,
                rejected=self._scalar("SELECT COUNT(*) FROM rejected"),
                refused_total=self._scalar(
                    "SELECT value FROM counters WHERE name = 'refused_total'"
                ),
                oldest_pending_added_at=oldest,
            )

    def rejected_readings(self) -> list[RejectedReading]:
        with self._lock:
            return [
                RejectedReading(rid, reason, detail)
                for rid, reason, detail in self._db.execute(
                    "SELECT reading_id, reason, detail FROM rejected ORDER BY rejected_at"
                )
            ]

    def in_flight_ids(self, message_id: str) -> tuple[str, ...]:
        """The readings of ``message_id`` still in flight under it (this process only)."""
        with self._lock:
            sent = self._sent.get(message_id)
            if sent is None:
                return ()
            return tuple(rid for rid in sent.reading_ids if rid not in sent.closed)
