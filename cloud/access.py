"""Who may see and change what: the access rules as pure functions.

========== ================================================= ==================================
role       health data (persons, readings)                   provisioning
========== ================================================= ==================================
resident   own household                                     device owners and cuff slots of
                                                             the own household
doctor     households signed with them (contract in force)   none
clinic     households of their clinic                        their clinic: doctors, households,
admin                                                        persons, contracts, gateways
operator   any, with a stated purpose (break-glass, audited) everything
gateway    none (only its own config)                        none
booking    none (appointments come with the booking issue)   none
========== ================================================= ==================================

Every decision about health data is written to the audit log by the caller, allowed or not.
Pure: no I/O; the facts (a household's clinic, the doctors signed with it today) are passed in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from cloud.domain import Purpose, Role

__all__ = [
    "HouseholdScope",
    "Principal",
    "can_manage_clinic",
    "can_manage_household",
    "can_map_devices",
    "can_read_health",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. For a gateway, ``subject_id`` is the gateway's row id."""

    subject_id: uuid.UUID
    role: Role
    username: str
    clinic_id: uuid.UUID | None = None
    doctor_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None
    gateway_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class HouseholdScope:
    """The facts the rules need about one household."""

    household_id: uuid.UUID
    clinic_id: uuid.UUID
    signed_doctor_ids: frozenset[uuid.UUID]  # contracts in force today


def can_read_health(who: Principal, scope: HouseholdScope, purpose: Purpose | None) -> bool:
    """May ``who`` read the personal and health data of the household's members?"""
    match who.role:
        case Role.RESIDENT:
            return who.household_id == scope.household_id
        case Role.DOCTOR:
            return who.doctor_id is not None and who.doctor_id in scope.signed_doctor_ids
        case Role.CLINIC_ADMIN:
            return who.clinic_id == scope.clinic_id
        case Role.OPERATOR:
            return purpose is not None
        case _:
            return False


def can_manage_clinic(who: Principal, clinic_id: uuid.UUID) -> bool:
    """Create doctors, households and contracts in the clinic."""
    if who.role is Role.OPERATOR:
        return True
    return who.role is Role.CLINIC_ADMIN and who.clinic_id == clinic_id


def can_manage_household(who: Principal, scope: HouseholdScope) -> bool:
    """Create persons, residents, gateways and devices of the household."""
    return can_manage_clinic(who, scope.clinic_id)


def can_map_devices(who: Principal, scope: HouseholdScope) -> bool:
    """Say which person a device or a cuff user slot belongs to."""
    if who.role is Role.RESIDENT:
        return who.household_id == scope.household_id
    return can_manage_household(who, scope)
