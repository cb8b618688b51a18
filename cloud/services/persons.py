"""Persons: create with encrypted identifiers, read (audited), find by ID number (blind index),
their readings (audited), and re-encryption under the current key (key rotation)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from cloud.audit import Actor, AuditLog
from cloud.crypto import BlindIndex, PiiCipher
from cloud.db.models import PersonRow, ReadingRow
from cloud.db.repositories import PersonRepository, ReadingQuery, ReadingRepository
from cloud.domain import AuditAction, AuditOutcome, CareFlag, Role, Sex
from cloud.errors import (
    AccessDeniedError,
    InvalidRequestError,
    NotFoundError,
    PurposeRequiredError,
)
from cloud.identifiers import IdType, normalise_id_number
from cloud.services.guard import Guard

__all__ = ["NewPerson", "PersonService", "PersonView", "mask_id_number"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPerson:
    name: str
    id_type: IdType | None = None
    id_number: str | None = None
    phone: str | None = None
    address: str | None = None
    birth_year: int | None = None
    sex: Sex = Sex.UNKNOWN
    care_flags: frozenset[CareFlag] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonView:
    """A person with identifiers decrypted; the ID number only masked."""

    id: uuid.UUID
    household_id: uuid.UUID
    name: str
    id_type: IdType | None
    id_number_masked: str | None
    phone: str | None
    address: str | None
    birth_year: int | None
    sex: Sex
    care_flags: tuple[str, ...]
    created_at: datetime


def mask_id_number(number: str) -> str:
    """``110105**********2X``-style: the area prefix and last four kept, the rest starred."""
    if len(number) <= 8:
        return "*" * (len(number) - 2) + number[-2:]
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def _context(field: str, person_id: uuid.UUID) -> str:
    return f"persons.{field}:{person_id}"


class PersonService:
    __slots__ = ("_audit", "_blind", "_cipher", "_clock", "_guard", "_session")

    def __init__(
        self,
        session: Session,
        cipher: PiiCipher,
        blind: BlindIndex,
        clock: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._cipher = cipher
        self._blind = blind
        self._clock = clock
        self._audit = AuditLog(session, clock)
        self._guard = Guard(session, self._audit, clock)

    # --- create ----------------------------------------------------------------------------
    def create(self, actor: Actor, household_id: uuid.UUID, new: NewPerson) -> PersonView:
        scope = self._guard.household_scope(household_id)
        self._guard.require_manage_household(actor, scope, "person")
        person_id = uuid.uuid4()
        now = self._clock()
        id_number, bidx = self._id_number(new)
        row = PersonRow(
            id=person_id,
            household_id=household_id,
            name_enc=self._seal(new.name, "name", person_id),
            id_type=None if new.id_type is None else new.id_type.value,
            id_number_enc=self._seal(id_number, "id_number", person_id),
            id_number_bidx=bidx,
            phone_enc=self._seal(new.phone, "phone", person_id),
            address_enc=self._seal(new.address, "address", person_id),
            pii_key_id=self._cipher.current_key_id,
            birth_year=new.birth_year,
            sex=new.sex,
            care_flags=sorted(flag.value for flag in new.care_flags),
            created_at=now,
            updated_at=now,
        )
        PersonRepository(self._session).add(row)
        self._audit.record(
            actor,
            AuditAction.CREATE,
            "person",
            person_id,
            person_id=person_id,
            household_id=household_id,
        )
        self._session.commit()
        _LOGGER.debug("person %s created in household %s", person_id, household_id)
        return self._view(row)

    def _id_number(self, new: NewPerson) -> tuple[str | None, str | None]:
        if new.id_number is None:
            return None, None
        if new.id_type is None:
            raise InvalidRequestError("id_type", "required with id_number")
        try:
            normalised = normalise_id_number(new.id_type, new.id_number)
        except ValueError as exc:
            raise InvalidRequestError("id_number", str(exc)) from exc
        return normalised, self._blind.of(new.id_type, normalised)

    def _seal(self, value: str | None, field: str, person_id: uuid.UUID) -> bytes | None:
        if value is None:
            return None
        return self._cipher.encrypt(value, _context(field, person_id))

    def _open(self, blob: bytes | None, field: str, person_id: uuid.UUID) -> str | None:
        if blob is None:
            return None
        return self._cipher.decrypt(blob, _context(field, person_id))

    def _view(self, row: PersonRow) -> PersonView:
        id_number = self._open(row.id_number_enc, "id_number", row.id)
        return PersonView(
            id=row.id,
            household_id=row.household_id,
            name=self._open(row.name_enc, "name", row.id) or "",
            id_type=None if row.id_type is None else IdType(row.id_type),
            id_number_masked=None if id_number is None else mask_id_number(id_number),
            phone=self._open(row.phone_enc, "phone", row.id),
            address=self._open(row.address_enc, "address", row.id),
            birth_year=row.birth_year,
            sex=row.sex,
            care_flags=tuple(row.care_flags),
            created_at=row.created_at,
        )

    # --- read (audited) --------------------------------------------------------------------
    def list_household(self, actor: Actor, household_id: uuid.UUID) -> list[PersonView]:
        scope = self._guard.household_scope(household_id)
        self._guard.require_health_read(actor, scope, AuditAction.READ, "person")
        rows = PersonRepository(self._session).list_by_household(household_id)
        views = [self._view(row) for row in rows]
        for row in rows:
            self._audit.record(
                actor,
                AuditAction.READ,
                "person",
                row.id,
                person_id=row.id,
                household_id=household_id,
            )
        self._session.commit()
        return views

    def get(self, actor: Actor, person_id: uuid.UUID) -> PersonView:
        row = self._row(person_id)
        scope = self._guard.household_scope(row.household_id)
        self._guard.require_health_read(
            actor, scope, AuditAction.READ, "person", person_id, person_id
        )
        view = self._view(row)
        self._audit.record(
            actor,
            AuditAction.READ,
            "person",
            person_id,
            person_id=person_id,
            household_id=row.household_id,
        )
        self._session.commit()
        return view

    def lookup(self, actor: Actor, id_type: IdType, id_number: str) -> PersonView:
        """Find a person by ID number through the blind index. A person the caller may not see
        answers 404, as if absent (and the refusal is audited)."""
        if actor.principal.role is Role.OPERATOR and actor.purpose is None:
            self._audit.record_refusal(actor, AuditAction.LOOKUP, "person")
            raise PurposeRequiredError("person")
        try:
            bidx = self._blind.of(id_type, id_number)
        except ValueError as exc:
            raise InvalidRequestError("id_number", str(exc)) from exc
        row = PersonRepository(self._session).by_blind_index(bidx)
        if row is None:
            self._audit.record_refusal(
                actor, AuditAction.LOOKUP, "person", outcome=AuditOutcome.NOT_FOUND
            )
            raise NotFoundError("person", "(by ID number)")
        scope = self._guard.household_scope(row.household_id)
        try:
            self._guard.require_health_read(
                actor, scope, AuditAction.LOOKUP, "person", row.id, row.id
            )
        except AccessDeniedError as exc:
            raise NotFoundError("person", "(by ID number)") from exc
        view = self._view(row)
        self._audit.record(
            actor,
            AuditAction.LOOKUP,
            "person",
            row.id,
            person_id=row.id,
            household_id=row.household_id,
        )
        self._session.commit()
        return view

    def readings(self, actor: Actor, query: ReadingQuery) -> Sequence[ReadingRow]:
        row = self._row(query.person_id)
        scope = self._guard.household_scope(row.household_id)
        self._guard.require_health_read(
            actor, scope, AuditAction.READ, "reading", query.person_id, query.person_id
        )
        result = ReadingRepository(self._session).for_person(query)
        self._audit.record(
            actor,
            AuditAction.READ,
            "reading",
            query.person_id,
            person_id=query.person_id,
            household_id=row.household_id,
        )
        self._session.commit()
        return result

    def _row(self, person_id: uuid.UUID) -> PersonRow:
        row = PersonRepository(self._session).get(person_id)
        if row is None:
            raise NotFoundError("person", person_id)
        return row

    # --- key rotation ----------------------------------------------------------------------
    def rotate_keys(self, batch_size: int = 200) -> int:
        """Re-encrypt every person not under the current key, in committed batches. Returns the
        number of persons re-encrypted. Safe to interrupt and run again."""
        repo = PersonRepository(self._session)
        current = self._cipher.current_key_id
        total = 0
        while True:
            rows = repo.not_under_key(current, batch_size)
            if not rows:
                return total
            for row in rows:
                for field in ("name", "id_number", "phone", "address"):
                    blob = getattr(row, f"{field}_enc")
                    if blob is not None:
                        setattr(
                            row,
                            f"{field}_enc",
                            self._cipher.reencrypt(blob, _context(field, row.id)),
                        )
                row.pii_key_id = current
                row.updated_at = self._clock()
                self._audit.record(
                    None,
                    AuditAction.ROTATE,
                    "person",
                    row.id,
                    person_id=row.id,
                    household_id=row.household_id,
                )
            repo.flush()
            self._session.commit()
            total += len(rows)
            _LOGGER.info("re-encrypted %d persons under key %s", total, current)
