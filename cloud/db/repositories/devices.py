"""Gateways, devices and cuff user slots."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud.db.models import CuffSlotRow, DeviceRow, GatewayRow
from cloud.db.repositories._base import add_and_flush

__all__ = ["DeviceRepository", "GatewayRepository"]


class GatewayRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: GatewayRow) -> GatewayRow:
        add_and_flush(self._session, row, "gateway", "a gateway with this id exists")
        return row

    def get(self, gateway_id: uuid.UUID) -> GatewayRow | None:
        return self._session.get(GatewayRow, gateway_id)

    def by_uid(self, uid: str) -> GatewayRow | None:
        return self._session.scalars(select(GatewayRow).where(GatewayRow.uid == uid)).first()

    def list_by_household(self, household_id: uuid.UUID) -> Sequence[GatewayRow]:
        stmt = (
            select(GatewayRow)
            .where(GatewayRow.household_id == household_id)
            .order_by(GatewayRow.enrolled_at)
        )
        return self._session.scalars(stmt).all()

    def active(self) -> Sequence[GatewayRow]:
        """Every gateway that is not revoked (for the broker's password and ACL files)."""
        stmt = select(GatewayRow).where(GatewayRow.revoked_at.is_(None)).order_by(GatewayRow.uid)
        return self._session.scalars(stmt).all()

    def bump_config_version(self, household_id: uuid.UUID) -> None:
        """A household's enrollment changed: every one of its gateways needs a new config."""
        for gateway in self.list_by_household(household_id):
            gateway.config_version += 1
        self._session.flush()


class DeviceRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: DeviceRow) -> DeviceRow:
        add_and_flush(self._session, row, "device", "this device is already registered")
        return row

    def get(self, device_id: uuid.UUID) -> DeviceRow | None:
        return self._session.get(DeviceRow, device_id)

    def by_key(self, device_key: str) -> DeviceRow | None:
        stmt = select(DeviceRow).where(DeviceRow.device_key == device_key)
        return self._session.scalars(stmt).first()

    def list_by_household(self, household_id: uuid.UUID) -> Sequence[DeviceRow]:
        stmt = (
            select(DeviceRow)
            .where(DeviceRow.household_id == household_id)
            .order_by(DeviceRow.created_at, DeviceRow.id)
        )
        return self._session.scalars(stmt).all()

    def slots_of(self, device_ids: Sequence[uuid.UUID]) -> Sequence[CuffSlotRow]:
        if not device_ids:
            return ()
        stmt = (
            select(CuffSlotRow)
            .where(CuffSlotRow.device_id.in_(device_ids))
            .order_by(CuffSlotRow.device_id, CuffSlotRow.user_id)
        )
        return self._session.scalars(stmt).all()

    def set_slot(self, device_id: uuid.UUID, user_id: int, person_id: uuid.UUID) -> CuffSlotRow:
        stmt = select(CuffSlotRow).where(
            CuffSlotRow.device_id == device_id, CuffSlotRow.user_id == user_id
        )
        row = self._session.scalars(stmt).first()
        if row is None:
            row = CuffSlotRow(device_id=device_id, user_id=user_id, person_id=person_id)
            add_and_flush(self._session, row, "cuff slot", "this slot is already mapped")
        else:
            row.person_id = person_id
            self._session.flush()
        return row

    def clear_slot(self, device_id: uuid.UUID, user_id: int) -> bool:
        result = self._session.execute(
            delete(CuffSlotRow).where(
                CuffSlotRow.device_id == device_id, CuffSlotRow.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))
