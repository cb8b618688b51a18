"""The audit log table: insert only (the database refuses UPDATE and DELETE anyway)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import AuditRow

__all__ = ["AuditRepository"]


class AuditRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def append(self, row: AuditRow) -> None:
        self._session.add(row)
        self._session.flush()

    def for_person(self, person_id: uuid.UUID, limit: int = 100) -> Sequence[AuditRow]:
        stmt = (
            select(AuditRow)
            .where(AuditRow.person_id == person_id)
            .order_by(AuditRow.id.desc())
            .limit(limit)
        )
        return self._session.scalars(stmt).all()

    def since(self, at: datetime, limit: int = 1000) -> Sequence[AuditRow]:
        stmt = select(AuditRow).where(AuditRow.at >= at).order_by(AuditRow.id).limit(limit)
        return self._session.scalars(stmt).all()
