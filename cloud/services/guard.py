"""Access checks with their audit rows: the one place the access rules meet the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cloud.access import (
    HouseholdScope,
    can_manage_clinic,
    can_manage_household,
    can_map_devices,
    can_read_health,
)
from cloud.audit import Actor, AuditLog
from cloud.db.repositories import ContractRepository, HouseholdRepository
from cloud.domain import AuditAction, AuditOutcome, Role
from cloud.errors import AccessDeniedError, NotFoundError, PurposeRequiredError

__all__ = ["Guard", "local_date"]


def local_date(now: datetime, timezone: str) -> date:
    """The calendar date at ``now`` in ``timezone`` (contracts run on local dates)."""
    return now.astimezone(ZoneInfo(timezone)).date()


class Guard:
    __slots__ = ("_audit", "_clock", "_session")

    def __init__(self, session: Session, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._audit = audit
        self._clock = clock

    def household_scope(self, household_id: uuid.UUID) -> HouseholdScope:
        household = HouseholdRepository(self._session).get(household_id)
        if household is None:
            raise NotFoundError("household", household_id)
        today = local_date(self._clock(), household.timezone)
        signed = ContractRepository(self._session).doctors_in_force(household_id, today)
        return HouseholdScope(household.id, household.clinic_id, signed)

    def require_health_read(
        self,
        actor: Actor,
        scope: HouseholdScope,
        action: AuditAction,
        resource_type: str,
        resource_id: object | None = None,
        person_id: uuid.UUID | None = None,
    ) -> None:
        """Refuse (and audit the refusal) unless ``actor`` may read the household's health data."""
        who = actor.principal
        if who.role is Role.OPERATOR and actor.purpose is None:
            self._refuse(actor, action, resource_type, resource_id, person_id, scope)
            raise PurposeRequiredError(resource_type)
        if not can_read_health(who, scope, actor.purpose):
            self._refuse(actor, action, resource_type, resource_id, person_id, scope)
            raise AccessDeniedError(action.value, resource_type)

    def require_manage_clinic(self, actor: Actor, clinic_id: uuid.UUID, resource: str) -> None:
        if not can_manage_clinic(actor.principal, clinic_id):
            raise AccessDeniedError("manage", resource)

    def require_manage_household(
        self, actor: Actor, scope: HouseholdScope, resource_type: str
    ) -> None:
        if not can_manage_household(actor.principal, scope):
            self._refuse(actor, AuditAction.CREATE, resource_type, None, None, scope)
            raise AccessDeniedError("manage", resource_type)

    def require_map_devices(self, actor: Actor, scope: HouseholdScope) -> None:
        if not can_map_devices(actor.principal, scope):
            self._refuse(actor, AuditAction.UPDATE, "device", None, None, scope)
            raise AccessDeniedError("map", "device")

    def require_role(self, actor: Actor, *roles: Role, resource: str) -> None:
        if actor.principal.role not in roles:
            raise AccessDeniedError("use", resource)

    def _refuse(
        self,
        actor: Actor,
        action: AuditAction,
        resource_type: str,
        resource_id: object | None,
        person_id: uuid.UUID | None,
        scope: HouseholdScope,
    ) -> None:
        self._audit.record_refusal(
            actor,
            action,
            resource_type,
            resource_id,
            person_id=person_id,
            household_id=scope.household_id,
            outcome=AuditOutcome.DENIED,
        )
