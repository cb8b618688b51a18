"""Clinics, doctors, households, users and signing contracts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from cloud.db.models import ClinicRow, ContractRow, DoctorRow, HouseholdRow, UserRow
from cloud.db.repositories._base import add_and_flush
from cloud.domain import ContractStatus

__all__ = [
    "ClinicRepository",
    "ContractRepository",
    "DoctorRepository",
    "HouseholdRepository",
    "UserRepository",
]


class ClinicRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: ClinicRow) -> ClinicRow:
        add_and_flush(self._session, row, "clinic", "a clinic with this code exists")
        return row

    def get(self, clinic_id: uuid.UUID) -> ClinicRow | None:
        return self._session.get(ClinicRow, clinic_id)

    def list(self, clinic_id: uuid.UUID | None = None) -> Sequence[ClinicRow]:
        stmt = select(ClinicRow).order_by(ClinicRow.code)
        if clinic_id is not None:
            stmt = stmt.where(ClinicRow.id == clinic_id)
        return self._session.scalars(stmt).all()


class DoctorRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: DoctorRow) -> DoctorRow:
        add_and_flush(self._session, row, "doctor", "duplicate doctor")
        return row

    def get(self, doctor_id: uuid.UUID) -> DoctorRow | None:
        return self._session.get(DoctorRow, doctor_id)

    def list_by_clinic(self, clinic_id: uuid.UUID) -> Sequence[DoctorRow]:
        stmt = select(DoctorRow).where(DoctorRow.clinic_id == clinic_id).order_by(DoctorRow.name)
        return self._session.scalars(stmt).all()


class HouseholdRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: HouseholdRow) -> HouseholdRow:
        add_and_flush(self._session, row, "household", "a household with this code exists")
        return row

    def get(self, household_id: uuid.UUID) -> HouseholdRow | None:
        return self._session.get(HouseholdRow, household_id)

    def list_by_clinic(self, clinic_id: uuid.UUID) -> Sequence[HouseholdRow]:
        stmt = (
            select(HouseholdRow)
            .where(HouseholdRow.clinic_id == clinic_id)
            .order_by(HouseholdRow.code)
        )
        return self._session.scalars(stmt).all()

    def signed_with(self, doctor_id: uuid.UUID, on: date) -> Sequence[HouseholdRow]:
        """Households whose contract with ``doctor_id`` is in force on ``on``."""
        stmt = (
            select(HouseholdRow)
            .join(ContractRow, ContractRow.household_id == HouseholdRow.id)
            .where(ContractRow.doctor_id == doctor_id, *_in_force(on))
            .order_by(HouseholdRow.code)
        )
        return self._session.scalars(stmt).all()


class UserRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: UserRow) -> UserRow:
        add_and_flush(self._session, row, "user", "this username is taken")
        return row

    def get(self, user_id: uuid.UUID) -> UserRow | None:
        return self._session.get(UserRow, user_id)

    def by_username(self, username: str) -> UserRow | None:
        return self._session.scalars(select(UserRow).where(UserRow.username == username)).first()

    def by_doctor(self, doctor_id: uuid.UUID) -> UserRow | None:
        return self._session.scalars(select(UserRow).where(UserRow.doctor_id == doctor_id)).first()

    def residents_of(self, household_id: uuid.UUID) -> Sequence[UserRow]:
        stmt = select(UserRow).where(UserRow.household_id == household_id)
        return self._session.scalars(stmt.order_by(UserRow.username)).all()


def _in_force(on: date) -> tuple[ColumnElement[bool], ...]:
    return (
        ContractRow.status == ContractStatus.ACTIVE,
        ContractRow.starts_on <= on,
        or_(ContractRow.ends_on.is_(None), ContractRow.ends_on > on),
    )


class ContractRepository:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: ContractRow) -> ContractRow:
        add_and_flush(
            self._session, row, "contract", "the household already has an active contract"
        )
        return row

    def get(self, contract_id: uuid.UUID) -> ContractRow | None:
        return self._session.get(ContractRow, contract_id)

    def active_for(self, household_id: uuid.UUID) -> ContractRow | None:
        """The household's active contract (in force now, or starting later), if any."""
        stmt = select(ContractRow).where(
            ContractRow.household_id == household_id,
            ContractRow.status == ContractStatus.ACTIVE,
        )
        return self._session.scalars(stmt).first()

    def list_for(self, household_id: uuid.UUID) -> Sequence[ContractRow]:
        stmt = (
            select(ContractRow)
            .where(ContractRow.household_id == household_id)
            .order_by(ContractRow.starts_on.desc(), ContractRow.created_at.desc())
        )
        return self._session.scalars(stmt).all()

    def doctors_in_force(self, household_id: uuid.UUID, on: date) -> frozenset[uuid.UUID]:
        """Doctors whose contract with the household is in force on ``on``."""
        stmt = select(ContractRow.doctor_id).where(
            ContractRow.household_id == household_id, *_in_force(on)
        )
        return frozenset(self._session.scalars(stmt).all())
