"""The queries of the FHIR API: a person's readings page by page (keyset, on the
``(person_id, kind, effective_at)`` index), one reading by id, a person's devices and gateways.

Paging is keyset ("seek") paging, newest first: each page continues strictly after the last
(``effective_at``, ``id``) pair, so a deep page costs the same as the first one (no OFFSET).
Each kind is queried on its own with ``LIMIT``: ``person_id = ? AND kind = ?`` is a prefix of
the index, so the database walks the index backwards from the cursor and stops after ``limit``
rows; the two kinds are merged here. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cloud.db.models import CuffSlotRow, DeviceRow, GatewayRow, PersonRow, ReadingRow

__all__ = ["FhirRepository"]


class FhirRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def person(self, person_id: uuid.UUID) -> PersonRow | None:
        return self._session.get(PersonRow, person_id)

    def reading(self, reading_id: str) -> ReadingRow | None:
        stmt = select(ReadingRow).where(ReadingRow.reading_id == reading_id)
        return self._session.scalars(stmt).first()

    def readings_page(
        self,
        person_id: uuid.UUID,
        kinds: Sequence[str],
        *,
        since: datetime | None,
        until: datetime | None,
        start: tuple[datetime, int] | None,
        inclusive: bool,
        limit: int,
    ) -> list[ReadingRow]:
        """Up to ``limit`` readings of the person, newest first, at or before ``start``
        (``inclusive``) or strictly before it, within ``since <= effective_at < until``."""
        rows: list[ReadingRow] = []
        for kind in kinds:
            stmt = select(ReadingRow).where(
                ReadingRow.person_id == person_id, ReadingRow.kind == kind
            )
            if since is not None:
                stmt = stmt.where(ReadingRow.effective_at >= since)
            if until is not None:
                stmt = stmt.where(ReadingRow.effective_at < until)
            if start is not None:
                at, row_id = start
                same = ReadingRow.id <= row_id if inclusive else ReadingRow.id < row_id
                stmt = stmt.where(
                    ReadingRow.effective_at <= at,
                    or_(ReadingRow.effective_at < at, and_(ReadingRow.effective_at == at, same)),
                )
            stmt = stmt.order_by(ReadingRow.effective_at.desc(), ReadingRow.id.desc()).limit(limit)
            rows.extend(self._session.scalars(stmt).all())
        rows.sort(key=lambda r: (r.effective_at, r.id), reverse=True)
        return rows[:limit]

    def devices_of(self, person_id: uuid.UUID, household_id: uuid.UUID) -> Sequence[DeviceRow]:
        """The household's devices the person owns or has a cuff user slot on."""
        slots = select(CuffSlotRow.device_id).where(CuffSlotRow.person_id == person_id)
        stmt = (
            select(DeviceRow)
            .where(
                DeviceRow.household_id == household_id,
                or_(DeviceRow.owner_person_id == person_id, DeviceRow.id.in_(slots)),
            )
            .order_by(DeviceRow.created_at, DeviceRow.id)
        )
        return self._session.scalars(stmt).all()

    def gateways_of(self, household_id: uuid.UUID) -> Sequence[GatewayRow]:
        stmt = (
            select(GatewayRow)
            .where(GatewayRow.household_id == household_id)
            .order_by(GatewayRow.enrolled_at, GatewayRow.id)
        )
        return self._session.scalars(stmt).all()

    def device(self, device_id: uuid.UUID) -> DeviceRow | None:
        return self._session.get(DeviceRow, device_id)

    def gateway(self, gateway_id: uuid.UUID) -> GatewayRow | None:
        return self._session.get(GatewayRow, gateway_id)
