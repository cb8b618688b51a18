"""The access rules as pure functions: every role against own, signed, same-clinic and other
households."""

from __future__ import annotations

import uuid

import pytest

from cloud.access import (
    HouseholdScope,
    Principal,
    can_manage_clinic,
    can_manage_household,
    can_map_devices,
    can_read_health,
)
from cloud.domain import Purpose, Role

CLINIC, OTHER_CLINIC = uuid.uuid4(), uuid.uuid4()
HOUSEHOLD, OTHER_HOUSEHOLD = uuid.uuid4(), uuid.uuid4()
SIGNED_DOCTOR, OTHER_DOCTOR = uuid.uuid4(), uuid.uuid4()
SCOPE = HouseholdScope(HOUSEHOLD, CLINIC, frozenset({SIGNED_DOCTOR}))


def who(role: Role, **scope: uuid.UUID) -> Principal:
    return Principal(uuid.uuid4(), role, role.value, **scope)


@pytest.mark.parametrize(
    ("principal", "purpose", "expected"),
    [
        (who(Role.RESIDENT, household_id=HOUSEHOLD), None, True),
        (who(Role.RESIDENT, household_id=OTHER_HOUSEHOLD), None, False),
        (who(Role.DOCTOR, doctor_id=SIGNED_DOCTOR, clinic_id=CLINIC), None, True),
        (who(Role.DOCTOR, doctor_id=OTHER_DOCTOR, clinic_id=CLINIC), None, False),
        (who(Role.DOCTOR, clinic_id=CLINIC), None, False),
        (who(Role.CLINIC_ADMIN, clinic_id=CLINIC), None, True),
        (who(Role.CLINIC_ADMIN, clinic_id=OTHER_CLINIC), None, False),
        (who(Role.OPERATOR), None, False),
        (who(Role.OPERATOR), Purpose.SUPPORT, True),
        (who(Role.GATEWAY, household_id=HOUSEHOLD), None, False),
        (who(Role.GATEWAY, household_id=HOUSEHOLD), Purpose.SUPPORT, False),
        (who(Role.BOOKING_BACKEND), Purpose.SUPPORT, False),
    ],
)
def test_read_health(principal: Principal, purpose: Purpose | None, expected: bool) -> None:
    assert can_read_health(principal, SCOPE, purpose) is expected


def test_an_unsigned_household_is_closed_to_every_doctor() -> None:
    unsigned = HouseholdScope(HOUSEHOLD, CLINIC, frozenset())
    doctor = who(Role.DOCTOR, doctor_id=SIGNED_DOCTOR, clinic_id=CLINIC)
    assert not can_read_health(doctor, unsigned, None)


@pytest.mark.parametrize(
    ("principal", "manage", "map_devices"),
    [
        (who(Role.OPERATOR), True, True),
        (who(Role.CLINIC_ADMIN, clinic_id=CLINIC), True, True),
        (who(Role.CLINIC_ADMIN, clinic_id=OTHER_CLINIC), False, False),
        (who(Role.RESIDENT, household_id=HOUSEHOLD), False, True),
        (who(Role.RESIDENT, household_id=OTHER_HOUSEHOLD), False, False),
        (who(Role.DOCTOR, doctor_id=SIGNED_DOCTOR, clinic_id=CLINIC), False, False),
        (who(Role.GATEWAY, household_id=HOUSEHOLD), False, False),
        (who(Role.BOOKING_BACKEND), False, False),
    ],
)
def test_provisioning(principal: Principal, manage: bool, map_devices: bool) -> None:
    assert can_manage_household(principal, SCOPE) is manage
    assert can_manage_clinic(principal, CLINIC) is manage
    assert can_map_devices(principal, SCOPE) is map_devices
