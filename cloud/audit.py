"""The audit trail of personal health data: who read or changed what, when, why, and the outcome.

Every read or change of a person's identifiers or health records appends one row per person
concerned, in the same transaction as the read or change, so data is never returned or changed
without its audit row being committed. Refusals are committed on their own (the request's other
work is rolled back first) before the error is raised. Rows carry opaque ids only.

The table is append-only: the repository can only insert, and the database refuses UPDATE and
DELETE (triggers in the initial migration).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from cloud.access import Principal
from cloud.db.models import AuditRow
from cloud.db.repositories.audit import AuditRepository
from cloud.domain import AuditAction, AuditOutcome, Purpose

__all__ = ["Actor", "AuditLog"]


@dataclass(frozen=True, slots=True)
class Actor:
    """A principal acting within one request: the request id and, for operators, the purpose."""

    principal: Principal
    request_id: str | None = None
    purpose: Purpose | None = None


class AuditLog:
    __slots__ = ("_clock", "_repo", "_session")

    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._repo = AuditRepository(session)
        self._clock = clock

    def record(
        self,
        actor: Actor | None,
        action: AuditAction,
        resource_type: str,
        resource_id: object | None = None,
        *,
        person_id: uuid.UUID | None = None,
        household_id: uuid.UUID | None = None,
        outcome: AuditOutcome = AuditOutcome.OK,
    ) -> None:
        """Append a row in the current transaction (committed with the caller's work)."""
        principal = actor.principal if actor is not None else None
        self._repo.append(
            AuditRow(
                at=self._clock(),
                actor_id=principal.subject_id if principal else None,
                actor_role=principal.role.value if principal else "system",
                action=action,
                resource_type=resource_type,
                resource_id=None if resource_id is None else str(resource_id)[:64],
                person_id=person_id,
                household_id=household_id,
                purpose=actor.purpose if actor is not None else None,
                outcome=outcome,
                request_id=actor.request_id if actor is not None else None,
            )
        )

    def record_refusal(
        self,
        actor: Actor | None,
        action: AuditAction,
        resource_type: str,
        resource_id: object | None = None,
        *,
        person_id: uuid.UUID | None = None,
        household_id: uuid.UUID | None = None,
        outcome: AuditOutcome = AuditOutcome.DENIED,
    ) -> None:
        """Roll back the request's work, then append and commit a refusal row on its own."""
        self._session.rollback()
        self.record(
            actor,
            action,
            resource_type,
            resource_id,
            person_id=person_id,
            household_id=household_id,
            outcome=outcome,
        )
        self._session.commit()
