"""Request and response bodies of the provisioning API (``XCreate`` in, ``XPublic`` out).

Validation happens here, at the edge: lengths, patterns, ranges, enums. Personal identifiers are
accepted in request bodies only (never in URLs, which end up in access logs), and the API never
returns a full ID number (only masked) or any password except a gateway's, once, at enrollment.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cloud.domain import CareFlag, ContractStatus, Role, Sex
from cloud.identifiers import IdType
from device_drivers.model import DeviceKind

__all__ = [
    "ClinicAdminCreate",
    "ClinicCreate",
    "ClinicPublic",
    "ContractCreate",
    "ContractPublic",
    "CuffSlotPublic",
    "CuffSlotSet",
    "DeviceCreate",
    "DeviceOwnerSet",
    "DevicePublic",
    "DoctorCreate",
    "DoctorPublic",
    "GatewayCredentialsPublic",
    "GatewayEnroll",
    "GatewayPublic",
    "Health",
    "HouseholdCreate",
    "HouseholdPublic",
    "MachineUserCreate",
    "PersonCreate",
    "PersonLookup",
    "PersonPublic",
    "ReadingPublic",
    "ResidentCreate",
    "Token",
    "UserPublic",
]

Code = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Username = Annotated[
    str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
]
Password = Annotated[str, Field(min_length=10, max_length=256)]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone (e.g. Asia/Shanghai)") from exc
    return value


TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$"),
    AfterValidator(_known_zone),
]
Label = Annotated[str, Field(max_length=100)]
HardwareId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- auth ------------------------------------------------------------------------------------
class Token(_Out):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int
    role: Role


class UserPublic(_Out):
    id: uuid.UUID
    username: str
    role: Role
    clinic_id: uuid.UUID | None = None
    doctor_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None


class TsdbLag(_Out):
    """The time-series mirror's queue: entries not yet written, and how long the oldest waits."""

    pending: int
    oldest_pending_age_s: float | None


class Health(_Out):
    status: str
    database: str
    revision: str | None
    tsdb: TsdbLag | None = None  # only when the mirror is enabled


# --- clinics, doctors, users -----------------------------------------------------------------
class ClinicCreate(_In):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: TimeZone = "Asia/Shanghai"


class ClinicPublic(_Out):
    id: uuid.UUID
    code: str
    name: str
    timezone: str
    created_at: datetime


class DoctorCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    title: Label = ""
    username: Username
    password: Password


class DoctorPublic(_Out):
    id: uuid.UUID
    clinic_id: uuid.UUID
    name: str
    title: str
    active: bool
    username: str | None


class ClinicAdminCreate(_In):
    username: Username
    password: Password


class ResidentCreate(_In):
    username: Username
    password: Password


class MachineUserCreate(_In):
    username: Username
    password: Password
    role: Role = Field(description="operator or booking_backend")


# --- households, contracts -------------------------------------------------------------------
class HouseholdCreate(_In):
    code: Code = Field(description="household number (户号); never a name")
    timezone: TimeZone = "Asia/Shanghai"


class HouseholdPublic(_Out):
    id: uuid.UUID
    clinic_id: uuid.UUID
    code: str
    timezone: str
    created_at: datetime


class ContractCreate(_In):
    doctor_id: uuid.UUID
    starts_on: date
    ends_on: date | None = Field(default=None, description="exclusive; open-ended when absent")


class ContractPublic(_Out):
    id: uuid.UUID
    household_id: uuid.UUID
    doctor_id: uuid.UUID
    status: ContractStatus
    starts_on: date
    ends_on: date | None
    in_force: bool


# --- persons ---------------------------------------------------------------------------------
class PersonCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    id_type: IdType | None = None
    id_number: Annotated[str, Field(min_length=5, max_length=40)] | None = None
    phone: Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{4,19}$")] | None = None
    address: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    birth_year: Annotated[int, Field(ge=1880, le=2200)] | None = None
    sex: Sex = Sex.UNKNOWN
    care_flags: Annotated[list[CareFlag], Field(max_length=8)] = []


class PersonPublic(_Out):
    id: uuid.UUID
    household_id: uuid.UUID
    name: str
    id_type: IdType | None
    id_number_masked: str | None
    phone: str | None
    address: str | None
    birth_year: int | None
    sex: Sex
    care_flags: list[str]
    created_at: datetime


class PersonLookup(_In):
    id_type: IdType = IdType.CN_RESIDENT
    id_number: Annotated[str, Field(min_length=5, max_length=40)]


class ReadingPublic(_Out):
    reading_id: str
    kind: str
    person_id: uuid.UUID | None
    device_key: str
    attribution: str | None
    user_slot: int | None
    effective_at: datetime
    measured_at: datetime | None
    received_at: datetime
    glucose_mmol_l: float | None
    systolic_mmhg: float | None
    diastolic_mmhg: float | None
    mean_arterial_mmhg: float | None
    pulse_bpm: float | None
    meal: int | None
    flags: list[str]
    urgent: bool


# --- gateways, devices -----------------------------------------------------------------------
class GatewayEnroll(_In):
    label: Label = ""
    uid: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the gateway id in MQTT topics; generated when absent"
    )


class GatewayPublic(_Out):
    id: uuid.UUID
    uid: str
    household_id: uuid.UUID
    label: str
    config_version: int
    enrolled_at: datetime
    revoked_at: datetime | None


class GatewayCredentialsPublic(_Out):
    """Shown once: the password is stored hashed and can only be reset, never shown again."""

    gateway: GatewayPublic
    mqtt_username: str
    mqtt_password: str
    topic_prefix: str


class DeviceCreate(_In):
    kind: DeviceKind
    system_id: HardwareId | None = None
    serial_number: HardwareId | None = None
    address: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")] | None = None
    model_number: HardwareId | None = None
    manufacturer: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    label: Label = ""
    owner_person_id: uuid.UUID | None = None


class CuffSlotPublic(_Out):
    user_id: int
    person_id: uuid.UUID


class DevicePublic(_Out):
    id: uuid.UUID
    household_id: uuid.UUID
    device_key: str
    kind: str
    system_id: str | None
    serial_number: str | None
    address: str | None
    model_number: str | None
    manufacturer: str | None
    label: str
    owner_person_id: uuid.UUID | None
    slots: list[CuffSlotPublic]


class DeviceOwnerSet(_In):
    person_id: uuid.UUID | None


class CuffSlotSet(_In):
    person_id: uuid.UUID
