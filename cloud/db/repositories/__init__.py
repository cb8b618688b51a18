"""Every query of the cloud lives here (none in routes or services).

Repositories wrap one :class:`~sqlalchemy.orm.Session`; they add, flush and query, and never
commit: the service that owns the unit of work commits. A unique-key violation surfaces as
:class:`cloud.errors.ConflictError`.
"""

from __future__ import annotations

from cloud.db.repositories.audit import AuditRepository
from cloud.db.repositories.devices import DeviceRepository, GatewayRepository
from cloud.db.repositories.directory import (
    ClinicRepository,
    ContractRepository,
    DoctorRepository,
    HouseholdRepository,
    UserRepository,
)
from cloud.db.repositories.persons import PersonRepository
from cloud.db.repositories.readings import (
    DeadLetterRepository,
    ReadingQuery,
    ReadingRepository,
)

__all__ = [
    "AuditRepository",
    "ClinicRepository",
    "ContractRepository",
    "DeadLetterRepository",
    "DeviceRepository",
    "DoctorRepository",
    "GatewayRepository",
    "HouseholdRepository",
    "PersonRepository",
    "ReadingQuery",
    "ReadingRepository",
    "UserRepository",
]
