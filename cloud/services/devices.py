"""Gateways (enrollment with MQTT credentials shown once), devices, device owners and cuff user
slots, and the config a gateway fetches (the contract's ConfigMessage)."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from cloud.audit import Actor, AuditLog
from cloud.db.models import CuffSlotRow, DeviceRow, GatewayRow
from cloud.db.repositories import DeviceRepository, GatewayRepository, PersonRepository
from cloud.domain import AuditAction, Role
from cloud.errors import AccessDeniedError, ConflictError, InvalidRequestError, NotFoundError
from cloud.passwords import generate_gateway_password, mosquitto_hash
from cloud.services.guard import Guard
from device_drivers.model import DeviceIdentity, DeviceKind
from gateway.contract import (
    SCHEMA_VERSION,
    ConfigMessage,
    ContractError,
    DeviceConfig,
    UserSlot,
    validate_id,
)

__all__ = ["DeviceService", "DeviceView", "GatewayCredentials", "NewDevice"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayCredentials:
    """What enrollment returns, once: the password is not stored and cannot be shown again."""

    gateway: GatewayRow
    mqtt_username: str
    mqtt_password: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDevice:
    kind: DeviceKind
    system_id: str | None = None
    serial_number: str | None = None
    address: str | None = None
    model_number: str | None = None
    manufacturer: str | None = None
    label: str = ""
    owner_person_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class DeviceView:
    device: DeviceRow
    slots: tuple[CuffSlotRow, ...]


def device_key(new: NewDevice) -> str:
    """The device's stable key, as the gateway computes it (``DeviceIdentity.key``)."""
    if not (new.system_id or new.serial_number or new.address):
        raise InvalidRequestError("device", "needs a system_id, serial_number or address")
    return DeviceIdentity(
        address=new.address or "",
        kind=new.kind,
        system_id=new.system_id,
        serial_number=new.serial_number,
        model_number=new.model_number,
        manufacturer=new.manufacturer,
    ).key


class DeviceService:
    __slots__ = ("_audit", "_clock", "_guard", "_iterations", "_session")

    def __init__(
        self, session: Session, clock: Callable[[], datetime], gateway_hash_iterations: int
    ) -> None:
        self._session = session
        self._clock = clock
        self._iterations = gateway_hash_iterations
        self._audit = AuditLog(session, clock)
        self._guard = Guard(session, self._audit, clock)

    # --- gateways --------------------------------------------------------------------------
    def enroll_gateway(
        self, actor: Actor, household_id: uuid.UUID, label: str, uid: str | None
    ) -> GatewayCredentials:
        scope = self._guard.household_scope(household_id)
        self._guard.require_manage_household(actor, scope, "gateway")
        if uid is None:
            uid = f"gw-{secrets.token_hex(8)}"
        else:
            try:
                validate_id(uid)
            except ContractError as exc:
                raise InvalidRequestError("uid", "letters, digits and . _ : - only") from exc
        password = generate_gateway_password()
        row = GatewayRepository(self._session).add(
            GatewayRow(
                uid=uid,
                household_id=household_id,
                mqtt_password_hash=mosquitto_hash(password, self._iterations),
                label=label,
                config_version=1,
                enrolled_at=self._clock(),
            )
        )
        self._audit.record(actor, AuditAction.CREATE, "gateway", row.id, household_id=household_id)
        self._session.commit()
        _LOGGER.info("gateway %s enrolled", uid)
        return GatewayCredentials(row, uid, password)

    def reset_gateway_password(self, actor: Actor, gateway_id: uuid.UUID) -> GatewayCredentials:
        row = self._gateway(gateway_id)
        scope = self._guard.household_scope(row.household_id)
        self._guard.require_manage_household(actor, scope, "gateway")
        if row.revoked_at is not None:
            raise ConflictError("gateway", "revoked")
        password = generate_gateway_password()
        row.mqtt_password_hash = mosquitto_hash(password, self._iterations)
        self._session.flush()
        self._audit.record(
            actor, AuditAction.UPDATE, "gateway", row.id, household_id=row.household_id
        )
        self._session.commit()
        return GatewayCredentials(row, row.uid, password)

    def revoke_gateway(self, actor: Actor, gateway_id: uuid.UUID) -> GatewayRow:
        row = self._gateway(gateway_id)
        scope = self._guard.household_scope(row.household_id)
        self._guard.require_manage_household(actor, scope, "gateway")
        if row.revoked_at is None:
            row.revoked_at = self._clock()
            self._session.flush()
            self._audit.record(
                actor, AuditAction.UPDATE, "gateway", row.id, household_id=row.household_id
            )
            self._session.commit()
        return row

    def list_gateways(self, actor: Actor, household_id: uuid.UUID) -> Sequence[GatewayRow]:
        scope = self._guard.household_scope(household_id)
        self._guard.require_map_devices(actor, scope)
        return GatewayRepository(self._session).list_by_household(household_id)

    def gateway_config(self, actor: Actor) -> ConfigMessage:
        """The calling gateway's enrollment: its household's devices and who owns each."""
        who = actor.principal
        if who.role is not Role.GATEWAY or who.gateway_id is None:
            raise AccessDeniedError("read", "gateway config")
        return gateway_config_message(self._session, self._gateway(who.gateway_id), self._clock())

    def _gateway(self, gateway_id: uuid.UUID) -> GatewayRow:
        row = GatewayRepository(self._session).get(gateway_id)
        if row is None:
            raise NotFoundError("gateway", gateway_id)
        return row

    # --- devices ---------------------------------------------------------------------------
    def register_device(self, actor: Actor, household_id: uuid.UUID, new: NewDevice) -> DeviceView:
        scope = self._guard.household_scope(household_id)
        self._guard.require_manage_household(actor, scope, "device")
        key = device_key(new)
        if new.owner_person_id is not None:
            self._require_member(household_id, new.owner_person_id, "owner_person_id")
        row = DeviceRepository(self._session).add(
            DeviceRow(
                household_id=household_id,
                device_key=key,
                kind=new.kind.value,
                system_id=new.system_id,
                serial_number=new.serial_number,
                address=new.address,
                model_number=new.model_number,
                manufacturer=new.manufacturer,
                label=new.label,
                owner_person_id=new.owner_person_id,
                created_at=self._clock(),
            )
        )
        GatewayRepository(self._session).bump_config_version(household_id)
        self._audit.record(actor, AuditAction.CREATE, "device", row.id, household_id=household_id)
        self._session.commit()
        return DeviceView(row, ())

    def list_devices(self, actor: Actor, household_id: uuid.UUID) -> list[DeviceView]:
        scope = self._guard.household_scope(household_id)
        self._guard.require_map_devices(actor, scope)
        return self._views(household_id)

    def set_owner(
        self, actor: Actor, device_id: uuid.UUID, person_id: uuid.UUID | None
    ) -> DeviceView:
        row = self._device(actor, device_id)
        if person_id is not None:
            self._require_member(row.household_id, person_id, "person_id")
        row.owner_person_id = person_id
        return self._changed(actor, row, person_id)

    def set_slot(
        self, actor: Actor, device_id: uuid.UUID, user_id: int, person_id: uuid.UUID
    ) -> DeviceView:
        row = self._device(actor, device_id)
        if row.kind != DeviceKind.BLOOD_PRESSURE_MONITOR.value:
            raise InvalidRequestError("device", "only blood-pressure cuffs have user slots")
        if not 0 <= user_id <= 255:
            raise InvalidRequestError("user_id", "a cuff user id is 0 to 255")
        self._require_member(row.household_id, person_id, "person_id")
        DeviceRepository(self._session).set_slot(row.id, user_id, person_id)
        return self._changed(actor, row, person_id)

    def clear_slot(self, actor: Actor, device_id: uuid.UUID, user_id: int) -> DeviceView:
        row = self._device(actor, device_id)
        if not DeviceRepository(self._session).clear_slot(row.id, user_id):
            raise NotFoundError("cuff slot", f"{device_id}/{user_id}")
        return self._changed(actor, row, None)

    def _device(self, actor: Actor, device_id: uuid.UUID) -> DeviceRow:
        row = DeviceRepository(self._session).get(device_id)
        if row is None:
            raise NotFoundError("device", device_id)
        self._guard.require_map_devices(actor, self._guard.household_scope(row.household_id))
        return row

    def _changed(self, actor: Actor, row: DeviceRow, person_id: uuid.UUID | None) -> DeviceView:
        self._session.flush()
        GatewayRepository(self._session).bump_config_version(row.household_id)
        self._audit.record(
            actor,
            AuditAction.UPDATE,
            "device",
            row.id,
            person_id=person_id,
            household_id=row.household_id,
        )
        self._session.commit()
        slots = DeviceRepository(self._session).slots_of([row.id])
        return DeviceView(row, tuple(slots))

    def _require_member(self, household_id: uuid.UUID, person_id: uuid.UUID, field: str) -> None:
        person = PersonRepository(self._session).get(person_id)
        if person is None or person.household_id != household_id:
            raise InvalidRequestError(field, "not a member of the device's household")

    def _views(self, household_id: uuid.UUID) -> list[DeviceView]:
        return household_devices(self._session, household_id)


def household_devices(session: Session, household_id: uuid.UUID) -> list[DeviceView]:
    repo = DeviceRepository(session)
    devices = repo.list_by_household(household_id)
    slots = repo.slots_of([d.id for d in devices])
    by_device: dict[uuid.UUID, list[CuffSlotRow]] = {}
    for slot in slots:
        by_device.setdefault(slot.device_id, []).append(slot)
    return [DeviceView(d, tuple(by_device.get(d.id, ()))) for d in devices]


def gateway_config_message(session: Session, gateway: GatewayRow, now: datetime) -> ConfigMessage:
    """The gateway's enrollment as the contract's ConfigMessage: its household's devices, the
    owner of each and the persons of a cuff's user slots (pseudonymous person ids, no names)."""
    return ConfigMessage(
        schema_version=SCHEMA_VERSION,
        gateway_id=gateway.uid,
        version=gateway.config_version,
        issued_at=now,
        devices=tuple(
            DeviceConfig(
                kind=view.device.kind,
                system_id=view.device.system_id,
                serial_number=view.device.serial_number,
                address=view.device.address,
                person_ref=_ref(view.device.owner_person_id),
                user_slots=tuple(
                    UserSlot(user_id=slot.user_id, person_ref=str(slot.person_id))
                    for slot in view.slots
                ),
                label=view.device.label,
            )
            for view in household_devices(session, gateway.household_id)
        ),
    )


def _ref(person_id: uuid.UUID | None) -> str | None:
    return None if person_id is None else str(person_id)
