"""What the FHIR mapping is given: plain facts copied from the stored rows, and the caller's
disclosure (which decrypted identifiers a Patient may carry).

The mapping never sees an ORM row or a ciphertext: the service copies the columns it needs into
these frozen values (and decrypts a name or phone only when :class:`Disclosure` allows it), so the
mapping stays pure and testable with literal values.

Pure: standard library only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = [
    "ANJIA_EXT",
    "ANJIA_SID",
    "BLOOD_PRESSURE",
    "GLUCOSE",
    "DeviceFacts",
    "Disclosure",
    "GatewayFacts",
    "Json",
    "PersonFacts",
    "ReadingFacts",
]

Json = dict[str, Any]
"""A FHIR resource (or element) as a JSON object."""

GLUCOSE: Final = "glucose_meter"
BLOOD_PRESSURE: Final = "blood_pressure_monitor"

ANJIA_SID: Final = "urn:anjia:sid:"
"""Prefix of our identifier systems (``urn:anjia:sid:person``, ``...:reading``...)."""
ANJIA_EXT: Final = "urn:anjia:fhir:ext:"
"""Prefix of our extension URLs (``urn:anjia:fhir:ext:device-time``...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingFacts:
    """One ``readings`` row of a person (unassigned readings are never mapped)."""

    row_id: int
    reading_id: str
    kind: str
    person_id: uuid.UUID
    household_id: uuid.UUID | None
    device_id: uuid.UUID | None
    gateway_id: uuid.UUID | None
    device_key: str
    effective_at: datetime  # aware UTC: corrected measured time, or received time
    received_at: datetime
    measured_at: datetime | None = None
    device_time: str | None = None  # naive ISO, as the device said
    clock_skew_s: float | None = None
    sequence_number: int | None = None
    user_slot: int | None = None
    glucose_mmol_l: float | None = None
    systolic_mmhg: float | None = None
    diastolic_mmhg: float | None = None
    mean_arterial_mmhg: float | None = None
    pulse_bpm: float | None = None
    original_value: float | None = None
    original_unit: str | None = None
    sample_type: int | None = None
    sample_location: int | None = None
    meal: int | None = None
    status_bits: int = 0
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonFacts:
    """A person. ``name`` and ``phone`` are set only when the caller's disclosure allows them
    (the service does not even decrypt them otherwise)."""

    id: uuid.UUID
    household_id: uuid.UUID
    sex: str  # "female" | "male" | "unknown"
    birth_year: int | None = None
    name: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceFacts:
    """A meter or cuff (``devices`` row); ``persons`` are the owner and the cuff slots' persons."""

    id: uuid.UUID
    household_id: uuid.UUID
    kind: str
    device_key: str
    system_id: str | None = None
    serial_number: str | None = None
    address: str | None = None
    model_number: str | None = None
    manufacturer: str | None = None
    label: str = ""
    owner_person_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayFacts:
    """A household gateway (``gateways`` row): the PHG of the PHD IG."""

    id: uuid.UUID
    uid: str
    household_id: uuid.UUID
    label: str = ""
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Disclosure:
    """Which personal identifiers a Patient resource carries for this caller.

    Least privilege: the resident ID number is never in a FHIR resource (not even masked; use
    ``POST /persons/lookup``), nor is the address. Name and phone go only to callers who need
    them to care for the person (see :func:`cloud.fhir.patient.disclosure_for`).
    """

    name: bool = False
    telecom: bool = False
