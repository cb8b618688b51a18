"""Gateways (enrollment, credentials shown once, revocation, own config) and devices."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from cloud.api.deps import ActorDep, DeviceServiceDep
from cloud.api.schemas import (
    CuffSlotPublic,
    CuffSlotSet,
    DeviceCreate,
    DeviceOwnerSet,
    DevicePublic,
    GatewayCredentialsPublic,
    GatewayEnroll,
    GatewayPublic,
)
from cloud.services.devices import DeviceView, GatewayCredentials, NewDevice
from gateway.contract import TOPIC_ROOT, encode

router = APIRouter(tags=["devices"])
UserId = Annotated[int, Path(ge=0, le=255, description="cuff user slot")]


def _device(view: DeviceView) -> DevicePublic:
    d = view.device
    return DevicePublic(
        id=d.id,
        household_id=d.household_id,
        device_key=d.device_key,
        kind=d.kind,
        system_id=d.system_id,
        serial_number=d.serial_number,
        address=d.address,
        model_number=d.model_number,
        manufacturer=d.manufacturer,
        label=d.label,
        owner_person_id=d.owner_person_id,
        slots=[CuffSlotPublic(user_id=s.user_id, person_id=s.person_id) for s in view.slots],
    )


def _credentials(creds: GatewayCredentials) -> GatewayCredentialsPublic:
    return GatewayCredentialsPublic(
        gateway=GatewayPublic.model_validate(creds.gateway),
        mqtt_username=creds.mqtt_username,
        mqtt_password=creds.mqtt_password,
        topic_prefix=f"{TOPIC_ROOT}/{creds.mqtt_username}",
    )


@router.post(
    "/households/{household_id}/gateways",
    response_model=GatewayCredentialsPublic,
    status_code=status.HTTP_201_CREATED,
)
def enroll_gateway(
    household_id: uuid.UUID,
    body: GatewayEnroll,
    actor: ActorDep,
    svc: DeviceServiceDep,
    response: Response,
) -> GatewayCredentialsPublic:
    response.headers["Cache-Control"] = "no-store"
    creds = svc.enroll_gateway(actor, household_id, body.label, body.uid)
    return _credentials(creds)


@router.get("/households/{household_id}/gateways", response_model=list[GatewayPublic])
def list_gateways(
    household_id: uuid.UUID, actor: ActorDep, svc: DeviceServiceDep
) -> list[GatewayPublic]:
    return [GatewayPublic.model_validate(row) for row in svc.list_gateways(actor, household_id)]


@router.post("/gateways/{gateway_id}/credentials", response_model=GatewayCredentialsPublic)
def reset_gateway_password(
    gateway_id: uuid.UUID,
    actor: ActorDep,
    svc: DeviceServiceDep,
    response: Response,
) -> GatewayCredentialsPublic:
    response.headers["Cache-Control"] = "no-store"
    return _credentials(svc.reset_gateway_password(actor, gateway_id))


@router.post("/gateways/{gateway_id}/revoke", response_model=GatewayPublic)
def revoke_gateway(gateway_id: uuid.UUID, actor: ActorDep, svc: DeviceServiceDep) -> GatewayPublic:
    return GatewayPublic.model_validate(svc.revoke_gateway(actor, gateway_id))


@router.get("/gateways/me/config")
def gateway_config(actor: ActorDep, svc: DeviceServiceDep) -> Response:
    """The calling gateway's enrollment as the MQTT contract's ConfigMessage (JSON)."""
    return Response(encode(svc.gateway_config(actor)), media_type="application/json")


@router.post(
    "/households/{household_id}/devices",
    response_model=DevicePublic,
    status_code=status.HTTP_201_CREATED,
)
def register_device(
    household_id: uuid.UUID, body: DeviceCreate, actor: ActorDep, svc: DeviceServiceDep
) -> DevicePublic:
    new = NewDevice(
        kind=body.kind,
        system_id=body.system_id,
        serial_number=body.serial_number,
        address=body.address,
        model_number=body.model_number,
        manufacturer=body.manufacturer,
        label=body.label,
        owner_person_id=body.owner_person_id,
    )
    return _device(svc.register_device(actor, household_id, new))


@router.get("/households/{household_id}/devices", response_model=list[DevicePublic])
def list_devices(
    household_id: uuid.UUID, actor: ActorDep, svc: DeviceServiceDep
) -> list[DevicePublic]:
    return [_device(view) for view in svc.list_devices(actor, household_id)]


@router.put("/devices/{device_id}/owner", response_model=DevicePublic)
def set_device_owner(
    device_id: uuid.UUID, body: DeviceOwnerSet, actor: ActorDep, svc: DeviceServiceDep
) -> DevicePublic:
    return _device(svc.set_owner(actor, device_id, body.person_id))


@router.put("/devices/{device_id}/slots/{user_id}", response_model=DevicePublic)
def set_cuff_slot(
    device_id: uuid.UUID,
    user_id: UserId,
    body: CuffSlotSet,
    actor: ActorDep,
    svc: DeviceServiceDep,
) -> DevicePublic:
    return _device(svc.set_slot(actor, device_id, user_id, body.person_id))


@router.delete("/devices/{device_id}/slots/{user_id}", response_model=DevicePublic)
def clear_cuff_slot(
    device_id: uuid.UUID, user_id: UserId, actor: ActorDep, svc: DeviceServiceDep
) -> DevicePublic:
    return _device(svc.clear_slot(actor, device_id, user_id))
