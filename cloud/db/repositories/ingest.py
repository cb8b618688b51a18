"""Queries of the ingest workers and the time-series mirror: gateway and device lookups for
attribution, gateway status upserts, gateway events, and the mirror's queue (``tsdb_pending``).

Like every repository these add, flush and query, and never commit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.db.models import (
    CuffSlotRow,
    DeviceRow,
    GatewayEventRow,
    GatewayRow,
    GatewayStatusRow,
    PersonRow,
    ReadingRow,
    TsdbPendingRow,
)
from cloud.db.repositories._base import driver_errors

__all__ = [
    "AttributionRepository",
    "GatewayEventRepository",
    "GatewayStatusRepository",
    "TsdbPendingRepository",
]


def _insert(session: Session) -> Any:
    """The dialect's INSERT (both have ON CONFLICT: SQLite 3.24+ and PostgreSQL)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


class AttributionRepository:
    """What the ingest needs to attribute a reading: the gateway (its household) and the
    household's devices with their owners and cuff slots."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def gateways(self, uids: Collection[str]) -> list[tuple[uuid.UUID, str, uuid.UUID, int, bool]]:
        """(id, uid, household_id, config_version, revoked) of the gateways among ``uids``.

        Asked by every ingest batch, so on SQLite and PostgreSQL it is one statement on the
        driver's cursor (``uid IN json_each(?)`` / ``uid = ANY(%s)``: the same SQL for any
        number of uids) without the ORM's per-row work."""
        if not uids:
            return []
        connection = self._session.connection()
        dialect = connection.dialect.name
        sql = _GATEWAYS_SQL.get(dialect)
        if sql is None:
            stmt = select(
                GatewayRow.id,
                GatewayRow.uid,
                GatewayRow.household_id,
                GatewayRow.config_version,
                GatewayRow.revoked_at.is_not(None),
            ).where(GatewayRow.uid.in_(list(uids)))
            return [
                (gid, uid, hid, int(version), bool(revoked))
                for gid, uid, hid, version, revoked in self._session.execute(stmt).all()
            ]
        params = (list(uids),) if dialect == "postgresql" else (json.dumps(list(uids)),)
        with driver_errors(connection, sql):
            cursor = connection.connection.cursor()
            try:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        if dialect == "postgresql":  # psycopg returns uuid.UUID
            return [(gid, uid, hid, int(v), bool(r)) for gid, uid, hid, v, r in rows]
        # SQLite holds SQLAlchemy's Uuid as 32 hex digits
        return [
            (uuid.UUID(gid), uid, uuid.UUID(hid), int(v), bool(r)) for gid, uid, hid, v, r in rows
        ]

    def devices_of_households(
        self, household_ids: Collection[uuid.UUID]
    ) -> tuple[Sequence[DeviceRow], Sequence[CuffSlotRow]]:
        """The devices of these households and their cuff slots, in two queries (a worker's
        first batch names every gateway it serves)."""
        if not household_ids:
            return (), ()
        devices = self._session.scalars(
            select(DeviceRow).where(DeviceRow.household_id.in_(list(household_ids)))
        ).all()
        if not devices:
            return devices, ()
        slots = self._session.scalars(
            select(CuffSlotRow).where(CuffSlotRow.device_id.in_([d.id for d in devices]))
        ).all()
        return devices, slots

    def members(self, household_id: uuid.UUID, person_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """The subset of ``person_ids`` that are members of the household."""
        if not person_ids:
            return set()
        stmt = select(PersonRow.id).where(
            PersonRow.household_id == household_id, PersonRow.id.in_(list(person_ids))
        )
        return set(self._session.scalars(stmt).all())


_GATEWAYS_COLUMNS = "id, uid, household_id, config_version, revoked_at IS NOT NULL"
_GATEWAYS_SQL: dict[str, str] = {
    "sqlite": f"SELECT {_GATEWAYS_COLUMNS} FROM gateways "  # noqa: S608 (constants)
    "WHERE uid IN (SELECT value FROM json_each(?))",
    "postgresql": f"SELECT {_GATEWAYS_COLUMNS} FROM gateways WHERE uid = ANY(%s)",  # noqa: S608
}


class GatewayStatusRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def upsert(self, values: dict[str, Any]) -> None:
        """Insert or replace the gateway's status, unless a status received later is stored
        (two workers may commit out of order). ``offline_since`` survives later offline
        messages and is cleared by the next online one."""
        insert = _insert(self._session)
        stmt = insert(GatewayStatusRow).values(**values)
        excluded = stmt.excluded
        table = GatewayStatusRow.__table__
        stmt = stmt.on_conflict_do_update(
            index_elements=[GatewayStatusRow.gateway_id],
            set_={
                "state": excluded.state,
                "sent_at": excluded.sent_at,
                "received_at": excluded.received_at,
                "offline_since": excluded.offline_since
                if values["state"] == "online"
                else func.coalesce(table.c.offline_since, excluded.offline_since),
                "software_version": excluded.software_version,
                "config_version": excluded.config_version,
                "outbox": excluded.outbox,
                "devices": excluded.devices,
            },
            where=table.c.received_at <= excluded.received_at,
        )
        self._session.execute(stmt)

    def get(self, gateway_id: uuid.UUID) -> GatewayStatusRow | None:
        return self._session.get(GatewayStatusRow, gateway_id)


class GatewayEventRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store events not seen before (unique per gateway and event id); returns how many."""
        if not rows:
            return 0
        insert = _insert(self._session)
        stmt = (
            insert(GatewayEventRow)
            .on_conflict_do_nothing(index_elements=["gateway_id", "event_id"])
            .returning(GatewayEventRow.id)
        )
        return len(self._session.execute(stmt, list(rows)).all())

    def unhandled(self, limit: int = 100) -> Sequence[GatewayEventRow]:
        stmt = (
            select(GatewayEventRow)
            .where(GatewayEventRow.handled_at.is_(None))
            .order_by(GatewayEventRow.id)
            .limit(limit)
        )
        return self._session.scalars(stmt).all()


class TsdbPendingRepository:
    """The time-series mirror's queue: reading ids stored but not yet written to the TSDB."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, reading_ids: Collection[str]) -> None:
        if reading_ids:
            self._session.execute(insert(TsdbPendingRow), [{"reading_id": r} for r in reading_ids])

    def next_batch(
        self, limit: int, *, skip_locked: bool = False
    ) -> Sequence[tuple[int, ReadingRow]]:
        """The oldest pending entries joined to their readings: (pending id, reading).

        With ``skip_locked`` the entries are locked until the transaction ends and entries
        locked by another transaction are skipped (PostgreSQL ``FOR UPDATE OF tsdb_pending SKIP
        LOCKED``), so concurrent mirrors take disjoint batches; SQLite ignores it."""
        stmt = (
            select(TsdbPendingRow.id, ReadingRow)
            .join(ReadingRow, ReadingRow.reading_id == TsdbPendingRow.reading_id)
            .order_by(TsdbPendingRow.id)
            .limit(limit)
        )
        if skip_locked:
            stmt = stmt.with_for_update(skip_locked=True, of=TsdbPendingRow)
        return [(int(pid), row) for pid, row in self._session.execute(stmt).all()]

    def delete(self, pending_ids: Collection[int]) -> int:
        if not pending_ids:
            return 0
        result = self._session.execute(
            delete(TsdbPendingRow).where(TsdbPendingRow.id.in_(list(pending_ids)))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def count(self) -> int:
        return int(self._session.scalar(select(func.count()).select_from(TsdbPendingRow)) or 0)

    def lag(self) -> tuple[int, datetime | None]:
        """(pending entries, when the oldest pending reading was stored)."""
        count = self.count()
        if not count:
            return 0, None
        oldest = self._session.scalar(
            select(ReadingRow.stored_at)
            .join(TsdbPendingRow, ReadingRow.reading_id == TsdbPendingRow.reading_id)
            .order_by(TsdbPendingRow.id)
            .limit(1)
        )
        return count, oldest
