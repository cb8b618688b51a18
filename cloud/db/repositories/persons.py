"""Persons (household members). Rows hold ciphertexts; decryption is the service's job."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.models import PersonRow
from cloud.db.repositories._base import add_and_flush

__all__ = ["PersonRepository"]


class PersonRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: PersonRow) -> PersonRow:
        add_and_flush(self._session, row, "person", "a person with this ID number exists")
        return row

    def get(self, person_id: uuid.UUID) -> PersonRow | None:
        return self._session.get(PersonRow, person_id)

    def list_by_household(self, household_id: uuid.UUID) -> Sequence[PersonRow]:
        stmt = (
            select(PersonRow)
            .where(PersonRow.household_id == household_id)
            .order_by(PersonRow.created_at, PersonRow.id)
        )
        return self._session.scalars(stmt).all()

    def by_blind_index(self, bidx: str) -> PersonRow | None:
        return self._session.scalars(
            select(PersonRow).where(PersonRow.id_number_bidx == bidx)
        ).first()

    def not_under_key(self, key_id: str, limit: int) -> Sequence[PersonRow]:
        """Rows encrypted under another key than ``key_id`` (the next batch of a rotation)."""
        stmt = (
            select(PersonRow)
            .where(PersonRow.pii_key_id != key_id)
            .order_by(PersonRow.id)
            .limit(limit)
            .with_for_update()
        )
        return self._session.scalars(stmt).all()

    def flush(self) -> None:
        self._session.flush()
