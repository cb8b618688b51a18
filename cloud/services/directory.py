"""Provisioning of clinics, doctors, households, user accounts and signing contracts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from cloud.audit import Actor, AuditLog
from cloud.db.models import ClinicRow, ContractRow, DoctorRow, HouseholdRow, UserRow
from cloud.db.repositories import (
    ClinicRepository,
    ContractRepository,
    DoctorRepository,
    HouseholdRepository,
    UserRepository,
)
from cloud.domain import AuditAction, ContractStatus, Role
from cloud.errors import AccessDeniedError, ConflictError, InvalidRequestError, NotFoundError
from cloud.passwords import UserPasswords
from cloud.services.guard import Guard, local_date

__all__ = ["ContractView", "DirectoryService", "DoctorView"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DoctorView:
    doctor: DoctorRow
    username: str | None


@dataclass(frozen=True, slots=True)
class ContractView:
    contract: ContractRow
    in_force: bool


class DirectoryService:
    __slots__ = ("_audit", "_clock", "_guard", "_passwords", "_session")

    def __init__(
        self,
        session: Session,
        passwords: UserPasswords,
        clock: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._passwords = passwords
        self._clock = clock
        self._audit = AuditLog(session, clock)
        self._guard = Guard(session, self._audit, clock)

    # --- clinics ---------------------------------------------------------------------------
    def create_clinic(self, actor: Actor, code: str, name: str, timezone: str) -> ClinicRow:
        self._guard.require_role(actor, Role.OPERATOR, resource="clinic")
        row = ClinicRepository(self._session).add(
            ClinicRow(code=code, name=name, timezone=timezone, created_at=self._clock())
        )
        self._audit.record(actor, AuditAction.CREATE, "clinic", row.id)
        self._session.commit()
        return row

    def list_clinics(self, actor: Actor) -> Sequence[ClinicRow]:
        who = actor.principal
        repo = ClinicRepository(self._session)
        if who.role is Role.OPERATOR:
            return repo.list()
        if who.role in (Role.CLINIC_ADMIN, Role.DOCTOR) and who.clinic_id is not None:
            return repo.list(who.clinic_id)
        raise AccessDeniedError("list", "clinic")

    def _clinic(self, clinic_id: uuid.UUID) -> ClinicRow:
        clinic = ClinicRepository(self._session).get(clinic_id)
        if clinic is None:
            raise NotFoundError("clinic", clinic_id)
        return clinic

    # --- users -----------------------------------------------------------------------------
    def _add_user(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        clinic_id: uuid.UUID | None = None,
        doctor_id: uuid.UUID | None = None,
        household_id: uuid.UUID | None = None,
    ) -> UserRow:
        return UserRepository(self._session).add(
            UserRow(
                username=username,
                password_hash=self._passwords.hash(password),
                role=role,
                clinic_id=clinic_id,
                doctor_id=doctor_id,
                household_id=household_id,
                created_at=self._clock(),
            )
        )

    def create_clinic_admin(
        self, actor: Actor, clinic_id: uuid.UUID, username: str, password: str
    ) -> UserRow:
        self._guard.require_role(actor, Role.OPERATOR, resource="clinic admin")
        self._clinic(clinic_id)
        user = self._add_user(username, password, Role.CLINIC_ADMIN, clinic_id=clinic_id)
        self._audit.record(actor, AuditAction.CREATE, "user", user.id)
        self._session.commit()
        return user

    def create_machine_user(
        self, actor: Actor | None, username: str, password: str, role: Role
    ) -> UserRow:
        """An operator or booking-backend account (``actor`` None: the CLI bootstrapping)."""
        if role not in (Role.OPERATOR, Role.BOOKING_BACKEND):
            raise InvalidRequestError("role", "only operator and booking_backend accounts here")
        if actor is not None:
            self._guard.require_role(actor, Role.OPERATOR, resource="user")
        user = self._add_user(username, password, role)
        self._audit.record(actor, AuditAction.CREATE, "user", user.id)
        self._session.commit()
        return user

    # --- doctors ---------------------------------------------------------------------------
    def create_doctor(
        self,
        actor: Actor,
        clinic_id: uuid.UUID,
        *,
        name: str,
        title: str,
        username: str,
        password: str,
    ) -> DoctorView:
        self._guard.require_manage_clinic(actor, clinic_id, "doctor")
        self._clinic(clinic_id)
        doctor = DoctorRepository(self._session).add(
            DoctorRow(clinic_id=clinic_id, name=name, title=title, created_at=self._clock())
        )
        user = self._add_user(
            username, password, Role.DOCTOR, clinic_id=clinic_id, doctor_id=doctor.id
        )
        self._audit.record(actor, AuditAction.CREATE, "doctor", doctor.id)
        self._session.commit()
        return DoctorView(doctor, user.username)

    def list_doctors(self, actor: Actor, clinic_id: uuid.UUID) -> list[DoctorView]:
        who = actor.principal
        if not (who.role is Role.OPERATOR or who.clinic_id == clinic_id):
            raise AccessDeniedError("list", "doctor")
        users = UserRepository(self._session)
        return [
            DoctorView(d, u.username if (u := users.by_doctor(d.id)) else None)
            for d in DoctorRepository(self._session).list_by_clinic(clinic_id)
        ]

    # --- households ------------------------------------------------------------------------
    def create_household(
        self, actor: Actor, clinic_id: uuid.UUID, code: str, timezone: str
    ) -> HouseholdRow:
        self._guard.require_manage_clinic(actor, clinic_id, "household")
        self._clinic(clinic_id)
        row = HouseholdRepository(self._session).add(
            HouseholdRow(
                clinic_id=clinic_id, code=code, timezone=timezone, created_at=self._clock()
            )
        )
        self._audit.record(actor, AuditAction.CREATE, "household", row.id, household_id=row.id)
        self._session.commit()
        return row

    def get_household(self, actor: Actor, household_id: uuid.UUID) -> HouseholdRow:
        scope = self._guard.household_scope(household_id)
        self._guard.require_health_read(actor, scope, AuditAction.READ, "household", household_id)
        household = HouseholdRepository(self._session).get(household_id)
        assert household is not None
        return household

    def list_households(self, actor: Actor, clinic_id: uuid.UUID) -> Sequence[HouseholdRow]:
        self._guard.require_manage_clinic(actor, clinic_id, "household")
        return HouseholdRepository(self._session).list_by_clinic(clinic_id)

    def my_households(self, actor: Actor) -> Sequence[HouseholdRow]:
        """A doctor's signed households (contracts in force today)."""
        who = actor.principal
        if who.role is not Role.DOCTOR or who.doctor_id is None:
            raise AccessDeniedError("list", "signed households")
        clinic = self._clinic(who.clinic_id) if who.clinic_id else None
        today = local_date(self._clock(), clinic.timezone if clinic else "Asia/Shanghai")
        return HouseholdRepository(self._session).signed_with(who.doctor_id, today)

    def create_resident(
        self, actor: Actor, household_id: uuid.UUID, username: str, password: str
    ) -> UserRow:
        scope = self._guard.household_scope(household_id)
        self._guard.require_manage_household(actor, scope, "user")
        user = self._add_user(username, password, Role.RESIDENT, household_id=household_id)
        self._audit.record(actor, AuditAction.CREATE, "user", user.id, household_id=household_id)
        self._session.commit()
        return user

    # --- signing contracts (家庭医生签约) ---------------------------------------------------
    def sign(
        self,
        actor: Actor,
        household_id: uuid.UUID,
        doctor_id: uuid.UUID,
        starts_on: date,
        ends_on: date | None,
    ) -> ContractView:
        scope = self._guard.household_scope(household_id)
        self._guard.require_manage_household(actor, scope, "contract")
        doctor = DoctorRepository(self._session).get(doctor_id)
        if doctor is None:
            raise NotFoundError("doctor", doctor_id)
        if doctor.clinic_id != scope.clinic_id:
            raise InvalidRequestError("doctor_id", "the doctor works at another clinic")
        if not doctor.active:
            raise InvalidRequestError("doctor_id", "the doctor is not active")
        if ends_on is not None and ends_on <= starts_on:
            raise InvalidRequestError("ends_on", "must be after starts_on")
        contracts = ContractRepository(self._session)
        current = contracts.active_for(household_id)
        if current is not None:
            raise ConflictError(
                "contract", f"the household has an active contract ({current.id}); end it first"
            )
        row = contracts.add(
            ContractRow(
                household_id=household_id,
                doctor_id=doctor_id,
                status=ContractStatus.ACTIVE,
                starts_on=starts_on,
                ends_on=ends_on,
                created_at=self._clock(),
            )
        )
        self._audit.record(actor, AuditAction.CREATE, "contract", row.id, household_id=household_id)
        self._session.commit()
        return self._view(row, household_id)

    def end_contract(self, actor: Actor, contract_id: uuid.UUID) -> ContractView:
        contracts = ContractRepository(self._session)
        row = contracts.get(contract_id)
        if row is None:
            raise NotFoundError("contract", contract_id)
        scope = self._guard.household_scope(row.household_id)
        self._guard.require_manage_household(actor, scope, "contract")
        if row.status is ContractStatus.ENDED:
            raise ConflictError("contract", "already ended")
        row.status = ContractStatus.ENDED
        row.ended_at = self._clock()
        self._session.flush()
        self._audit.record(
            actor, AuditAction.UPDATE, "contract", row.id, household_id=row.household_id
        )
        self._session.commit()
        return self._view(row, row.household_id)

    def list_contracts(self, actor: Actor, household_id: uuid.UUID) -> list[ContractView]:
        scope = self._guard.household_scope(household_id)
        self._guard.require_health_read(actor, scope, AuditAction.READ, "contract")
        rows = ContractRepository(self._session).list_for(household_id)
        return [self._view(row, household_id) for row in rows]

    def _view(self, row: ContractRow, household_id: uuid.UUID) -> ContractView:
        household = HouseholdRepository(self._session).get(household_id)
        today = local_date(self._clock(), household.timezone if household else "Asia/Shanghai")
        in_force = (
            row.status is ContractStatus.ACTIVE
            and row.starts_on <= today
            and (row.ends_on is None or today < row.ends_on)
        )
        return ContractView(row, in_force)
