"""Readings (idempotent batch insert, per-person time queries) and dead letters."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.db.models import DEAD_LETTER_MAX_PAYLOAD, DeadLetterRow, ReadingRow
from cloud.db.repositories._base import driver_errors
from cloud.db.repositories.reading_rows import ROW_BUILDERS, RowEncoder, insert_sql

__all__ = ["DeadLetterRepository", "NewReading", "ReadingQuery", "ReadingRepository"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReading:
    """The column values of one reading to store (see :class:`ReadingRow` for their meaning)."""

    reading_id: str
    kind: str
    device_key: str
    received_at: datetime
    effective_at: datetime
    stored_at: datetime
    household_id: uuid.UUID | None = None
    person_id: uuid.UUID | None = None
    gateway_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    attribution: str | None = None
    sequence_number: int | None = None
    user_slot: int | None = None
    device_time: str | None = None
    measured_at: datetime | None = None
    clock_skew_s: float | None = None
    glucose_mmol_l: float | None = None
    systolic_mmhg: float | None = None
    diastolic_mmhg: float | None = None
    mean_arterial_mmhg: float | None = None
    pulse_bpm: float | None = None
    original_value: float | None = None
    original_unit: str | None = None
    sample_type: int | None = None
    sample_location: int | None = None
    meal: int | None = None
    context: dict[str, Any] | None = None
    status_bits: int = 0
    flags: tuple[str, ...] = field(default_factory=tuple)
    urgent: bool = False

    def values(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _NEW_READING_FIELDS}
        out["flags"] = list(self.flags)
        return out


# Computed once: ``dataclasses.fields`` on every reading cost more than building the dict.
_NEW_READING_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(NewReading))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingQuery:
    person_id: uuid.UUID
    kind: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    limit: int = 500


class ReadingRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def insert_many(
        self, readings: Sequence[NewReading], *, encoder: RowEncoder | None = None
    ) -> set[str]:
        """Insert the readings not stored yet; return the ``reading_id``s inserted now.

        ``INSERT ... ON CONFLICT (reading_id) DO NOTHING`` on SQLite and PostgreSQL: a reading
        seen before (a QoS 1 redelivery, a replay after a crash, the same reading from a second
        gateway) is skipped by the database, atomically, even when several workers insert the
        same reading at once. Does not commit.

        The rows go to the driver in the database's own representation
        (:mod:`~cloud.db.repositories.reading_rows`, the same values SQLAlchemy's types would
        bind) through the driver's ``executemany``: on PostgreSQL with ``RETURNING`` (psycopg
        pipelines the rows), on SQLite without it inside a savepoint. When SQLite reports fewer
        rows than it was given (some were stored before), the savepoint is rolled back and the
        batch inserted again by :meth:`insert_many_core`, whose ``RETURNING`` tells which.
        Driver errors are raised as SQLAlchemy's (``OperationalError``, ``IntegrityError``...),
        parameters hidden. Pass one ``encoder`` per writer to keep its caches across batches.
        """
        if not readings:
            return set()
        connection = self._session.connection()
        dialect = connection.dialect.name
        build = ROW_BUILDERS.get(dialect)
        if build is None:
            return self.insert_many_core(readings)
        enc = encoder or RowEncoder()
        with driver_errors(connection, f"INSERT INTO readings ... ({len(readings)} rows)"):
            rows = [build(r, enc) for r in readings]
            cursor = connection.connection.cursor()
            try:
                if dialect == "postgresql":
                    return _insert_returning(cursor, insert_sql(dialect, returning=True), rows)
                driver = connection.connection.driver_connection
                if driver is not None and not driver.in_transaction:
                    cursor.execute("BEGIN")  # the savepoint must not be the transaction
                cursor.execute("SAVEPOINT anjia_readings")
                cursor.executemany(insert_sql(dialect, returning=False), rows)
                if cursor.rowcount == len(rows):
                    cursor.execute("RELEASE anjia_readings")
                    return {r.reading_id for r in readings}
                cursor.execute("ROLLBACK TO anjia_readings")
                cursor.execute("RELEASE anjia_readings")
            finally:
                cursor.close()
        return self.insert_many_core(readings)

    def insert_many_core(self, readings: Sequence[NewReading]) -> set[str]:
        """:meth:`insert_many` through SQLAlchemy Core (``INSERT ... ON CONFLICT DO NOTHING
        RETURNING reading_id`` with every value through its column type): the reference the
        driver path is tested against, and SQLite's way to tell duplicates apart."""
        if not readings:
            return set()
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = ReadingRow.__table__
        assert isinstance(table, Table)
        # A Core insert of the table, not the ORM entity: the ORM's bulk path costs about
        # 15 µs per row on top (bench/README.md "make bench-ingest"); the SQL is the same.
        stmt = (
            insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.reading_id])
            .returning(table.c.reading_id)
        )
        result = self._session.execute(stmt, [r.values() for r in readings])
        return set(result.scalars().all())

    def get(self, reading_id: str) -> ReadingRow | None:
        stmt = select(ReadingRow).where(ReadingRow.reading_id == reading_id)
        return self._session.scalars(stmt).first()

    def for_person(self, query: ReadingQuery) -> Sequence[ReadingRow]:
        """A person's readings, newest first, on the (person, kind, effective_at) index."""
        stmt = select(ReadingRow).where(ReadingRow.person_id == query.person_id)
        if query.kind is not None:
            stmt = stmt.where(ReadingRow.kind == query.kind)
        if query.since is not None:
            stmt = stmt.where(ReadingRow.effective_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(ReadingRow.effective_at < query.until)
        stmt = stmt.order_by(ReadingRow.effective_at.desc(), ReadingRow.id.desc())
        return self._session.scalars(stmt.limit(query.limit)).all()

    def unassigned(self, household_id: uuid.UUID, limit: int = 500) -> Sequence[ReadingRow]:
        stmt = (
            select(ReadingRow)
            .where(ReadingRow.household_id == household_id, ReadingRow.person_id.is_(None))
            .order_by(ReadingRow.effective_at.desc())
            .limit(limit)
        )
        return self._session.scalars(stmt).all()


def _insert_returning(cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> set[str]:
    """psycopg's ``executemany(..., returning=True)``: one result per row, empty if skipped."""
    cursor.executemany(sql, rows, returning=True)
    inserted: set[str] = set()
    while True:
        row = cursor.fetchone()
        if row is not None:
            inserted.add(row[0])
        if not cursor.nextset():
            return inserted


class DeadLetterRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(
        self,
        *,
        topic: str,
        reason: str,
        payload: bytes,
        received_at: datetime,
        gateway_uid: str | None = None,
        detail: str = "",
    ) -> DeadLetterRow:
        """Keep a refused message: at most ``DEAD_LETTER_MAX_PAYLOAD`` bytes of it, its size."""
        row = DeadLetterRow(
            topic=topic[:512],
            gateway_uid=None if gateway_uid is None else gateway_uid[:64],
            reason=reason[:64],
            detail=detail[:500],
            payload_size=len(payload),
            payload=bytes(payload[:DEAD_LETTER_MAX_PAYLOAD]),
            received_at=received_at,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def recent(self, limit: int = 100) -> Sequence[DeadLetterRow]:
        stmt = select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit)
        return self._session.scalars(stmt).all()
