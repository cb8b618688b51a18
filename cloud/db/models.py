"""ORM rows of the health record database (SQLAlchemy 2, typed ``Mapped[...]``).

Every personal identifier (a person's name, ID number, phone and address) is stored only as
AES-GCM ciphertext (``*_enc`` columns, see :mod:`cloud.crypto`); the ID number is also kept as an
HMAC blind index to find a person by it. Nothing else here is personal data in clear: persons are
referred to everywhere else by their random UUID.

Migrations live in ``cloud/migrations``; a change here needs a new revision there (a test compares
the two).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import BIGINT, Base, new_id
from cloud.domain import AuditAction, AuditOutcome, ContractStatus, Purpose, Role, Sex

__all__ = [
    "AuditRow",
    "ClinicRow",
    "ContractRow",
    "CuffSlotRow",
    "DeadLetterRow",
    "DeviceRow",
    "DoctorRow",
    "GatewayEventRow",
    "GatewayRow",
    "GatewayStatusRow",
    "HouseholdRow",
    "PersonRow",
    "ReadingRow",
    "TsdbPendingRow",
    "UserRow",
]

DEAD_LETTER_MAX_PAYLOAD = 64 * 1024
"""Bytes of a dead-lettered payload that are kept (the size column says how big it was)."""


def _enum(cls: type[Any], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, stored by value."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class ClinicRow(Base):
    """A community clinic (社区卫生服务中心 / 站)."""

    __tablename__ = "clinics"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime]


class DoctorRow(Base):
    """A family doctor (家庭医生) working at one clinic. Staff data, not patient data."""

    __tablename__ = "doctors"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(100), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class HouseholdRow(Base):
    """A household (家庭): the unit that signs with a family doctor and owns a gateway."""

    __tablename__ = "households"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    clinic_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # household number, not a name
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_at: Mapped[datetime]


class PersonRow(Base):
    """A member of a household (家庭成员): the subject of health records."""

    __tablename__ = "persons"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), index=True)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_type: Mapped[str | None] = mapped_column(String(16))
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    id_number_bidx: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    pii_key_id: Mapped[str] = mapped_column(String(16), index=True)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    sex: Mapped[Sex] = mapped_column(_enum(Sex, "sex"), default=Sex.UNKNOWN)
    care_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "birth_year IS NULL OR birth_year BETWEEN 1880 AND 2200", name="birth_year"
        ),
    )


class UserRow(Base):
    """A login. Its role decides which scope column must be set (checked by the database)."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    clinic_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clinics.id"), index=True)
    doctor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("doctors.id"), unique=True)
    household_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("households.id"), index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("role <> 'doctor' OR doctor_id IS NOT NULL", name="doctor_scope"),
        CheckConstraint("role <> 'resident' OR household_id IS NOT NULL", name="resident_scope"),
        CheckConstraint("role <> 'clinic_admin' OR clinic_id IS NOT NULL", name="admin_scope"),
    )


class ContractRow(Base):
    """A signing contract (家庭医生签约服务协议) between a household and a family doctor.

    At most one contract per household is ``active`` (a partial unique index); it is in force from
    ``starts_on`` until ``ends_on`` (exclusive; open-ended when None).
    """

    __tablename__ = "signing_contracts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), index=True)
    doctor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("doctors.id"), index=True)
    status: Mapped[ContractStatus] = mapped_column(
        _enum(ContractStatus, "contract_status"), default=ContractStatus.ACTIVE
    )
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_signing_contracts_active_household",
            "household_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        CheckConstraint("ends_on IS NULL OR ends_on > starts_on", name="period"),
    )


class GatewayRow(Base):
    """A household gateway. ``uid`` is its id in MQTT topics and its MQTT username; the password
    is shown once at enrollment and stored as a Mosquitto ``$7$`` hash."""

    __tablename__ = "gateways"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), index=True)
    mqtt_password_hash: Mapped[str] = mapped_column(String(255))
    label: Mapped[str] = mapped_column(String(100), default="")
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    enrolled_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class DeviceRow(Base):
    """A meter or cuff of a household. ``device_key`` is ``DeviceIdentity.key``."""

    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"), index=True)
    device_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    system_id: Mapped[str | None] = mapped_column(String(64))
    serial_number: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    model_number: Mapped[str | None] = mapped_column(String(64))
    manufacturer: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(100), default="")
    owner_person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("persons.id"))
    created_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "system_id IS NOT NULL OR serial_number IS NOT NULL OR address IS NOT NULL",
            name="identity",
        ),
    )


class CuffSlotRow(Base):
    """A blood-pressure cuff's user slot (user 1, 2, ...) mapped to a person."""

    __tablename__ = "cuff_slots"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    user_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("persons.id"), index=True)

    __table_args__ = (
        UniqueConstraint("device_id", "user_id"),
        CheckConstraint("user_id BETWEEN 0 AND 255", name="user_id"),
    )


class ReadingRow(Base):
    """One stored reading, in canonical units. ``reading_id`` is the contract's identity key
    (``gateway.contract.reading_id_for``): unique, so inserts are idempotent.

    ``person_id`` is None for unassigned readings (unknown device, unmapped cuff slot).
    ``effective_at`` is ``measured_at`` or, when the device gave no usable time, ``received_at``
    (then flagged): the time axis of every per-person query.
    """

    __tablename__ = "readings"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    reading_id: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    household_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("households.id"))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("persons.id"))
    gateway_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("gateways.id"))
    device_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("devices.id"))
    device_key: Mapped[str] = mapped_column(String(128))
    attribution: Mapped[str | None] = mapped_column(String(32))
    sequence_number: Mapped[int | None] = mapped_column(BIGINT)
    user_slot: Mapped[int | None] = mapped_column(Integer)
    device_time: Mapped[str | None] = mapped_column(String(32))  # naive ISO, as the device said
    measured_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    effective_at: Mapped[datetime]
    stored_at: Mapped[datetime]
    clock_skew_s: Mapped[float | None] = mapped_column(Float)
    glucose_mmol_l: Mapped[float | None] = mapped_column(Float)
    systolic_mmhg: Mapped[float | None] = mapped_column(Float)
    diastolic_mmhg: Mapped[float | None] = mapped_column(Float)
    mean_arterial_mmhg: Mapped[float | None] = mapped_column(Float)
    pulse_bpm: Mapped[float | None] = mapped_column(Float)
    original_value: Mapped[float | None] = mapped_column(Float)
    original_unit: Mapped[str | None] = mapped_column(String(16))
    sample_type: Mapped[int | None] = mapped_column(Integer)
    sample_location: Mapped[int | None] = mapped_column(Integer)
    meal: Mapped[int | None] = mapped_column(Integer)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status_bits: Mapped[int] = mapped_column(BIGINT, default=0)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_readings_person_time", "person_id", "kind", "effective_at"),
        Index("ix_readings_household_time", "household_id", "effective_at"),
        Index("ix_readings_device_time", "device_id", "effective_at"),
    )


class DeadLetterRow(Base):
    """A message the ingest could not use: kept (bounded) with the reason, never lost silently."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(512))
    gateway_uid: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")
    payload_size: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(index=True)


class AuditRow(Base):
    """Append-only audit log of reads and changes of personal health data.

    The database refuses UPDATE and DELETE on this table (triggers, see the migration). Rows hold
    opaque ids only: who (user id, role), what (action, resource type and id, person id), why (an
    operator's purpose), when, and how it ended.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_role: Mapped[str] = mapped_column(String(24))
    action: Mapped[AuditAction] = mapped_column(_enum(AuditAction, "audit_action"))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    person_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    household_id: Mapped[uuid.UUID | None]
    purpose: Mapped[Purpose | None] = mapped_column(_enum(Purpose, "audit_purpose"))
    outcome: Mapped[AuditOutcome] = mapped_column(_enum(AuditOutcome, "audit_outcome"))
    request_id: Mapped[str | None] = mapped_column(String(64))


# --- ingest (revision 0002): gateway status, gateway events, the time-series mirror's queue ---
class GatewayStatusRow(Base):
    """The latest ``up/status`` of a gateway (last seen, online/offline, outbox, diagnostics).

    One row per gateway, replaced by each status the ingest receives (in order of receipt:
    a last will carries its connect time as ``sent_at``, so ``received_at`` orders them)."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]  # when the ingest got it: "last seen"
    offline_since: Mapped[datetime | None]
    software_version: Mapped[str] = mapped_column(String(64), default="")
    config_version: Mapped[int | None] = mapped_column(Integer)
    outbox: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list)


class GatewayEventRow(Base):
    """An ``up/events`` message (urgent reading, outbox filling, device failing...): stored once
    per (gateway, event id), an alert candidate until ``handled_at`` is set by the alerts."""

    __tablename__ = "gateway_events"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id"))
    event_id: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("households.id"))
    person_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("persons.id"))
    type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    device_key: Mapped[str | None] = mapped_column(String(128))
    reading_id: Mapped[str | None] = mapped_column(String(128))
    rule_id: Mapped[str | None] = mapped_column(String(64))
    message_zh: Mapped[str] = mapped_column(String(2000), default="")
    message_en: Mapped[str] = mapped_column(String(2000), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    handled_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("gateway_id", "event_id"),
        Index("ix_gateway_events_household_time", "household_id", "occurred_at"),
    )


class TsdbPendingRow(Base):
    """Readings stored but not yet mirrored to the time-series database: written in the ingest's
    transaction, deleted by the mirror once the TSDB accepted them (a transactional outbox, so an
    outage of the TSDB never blocks or loses ingest, and concurrent workers leave no holes)."""

    __tablename__ = "tsdb_pending"

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True, autoincrement=True)
    reading_id: Mapped[str] = mapped_column(String(128))
