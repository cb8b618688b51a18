"""Vocabulary of the cloud's data model: roles, person attributes, audit actions.

Pure: standard library only. The ORM rows, the API schemas and the access policy share these.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AuditAction",
    "AuditOutcome",
    "CareFlag",
    "ContractStatus",
    "Purpose",
    "Role",
    "Sex",
]


class Role(StrEnum):
    RESIDENT = "resident"  # a member of one household (居民)
    DOCTOR = "doctor"  # a family doctor (家庭医生) of one clinic
    CLINIC_ADMIN = "clinic_admin"  # runs one community clinic (社区卫生服务中心)
    OPERATOR = "operator"  # runs the service; health data only with a stated purpose
    GATEWAY = "gateway"  # a household gateway (machine client)
    BOOKING_BACKEND = "booking_backend"  # the appointment system (machine client)


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class CareFlag(StrEnum):
    """Facts about a person that switch off default alert rules (the rules issue reads them)."""

    PREGNANT = "pregnant"  # gestational thresholds differ (no default adult BP/glucose rules)
    CHILD = "child"  # paediatric thresholds differ
    DIALYSIS = "dialysis"
    PALLIATIVE = "palliative"  # comfort care: no routine alerts


class ContractStatus(StrEnum):
    ACTIVE = "active"  # in force between starts_on and ends_on
    ENDED = "ended"  # terminated or superseded


class AuditAction(StrEnum):
    CREATE = "create"
    READ = "read"
    UPDATE = "update"
    DELETE = "delete"
    LOOKUP = "lookup"  # find by ID number (blind index)
    LOGIN = "login"
    ROTATE = "rotate"  # re-encryption under a new key


class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    NOT_FOUND = "not_found"
    FAILED = "failed"


class Purpose(StrEnum):
    """Why an operator reads health data (header ``X-Anjia-Purpose``), kept in the audit log."""

    SUPPORT = "support"  # the household or doctor asked for help
    INCIDENT = "incident"  # investigating a fault or breach
    LEGAL = "legal"  # a lawful request
    DATA_QUALITY = "data_quality"
