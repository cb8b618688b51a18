"""Clinics, doctors, households, user accounts and signing contracts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from cloud.api.deps import ActorDep, DirectoryServiceDep
from cloud.api.schemas import (
    ClinicAdminCreate,
    ClinicCreate,
    ClinicPublic,
    ContractCreate,
    ContractPublic,
    DoctorCreate,
    DoctorPublic,
    HouseholdCreate,
    HouseholdPublic,
    MachineUserCreate,
    ResidentCreate,
    UserPublic,
)
from cloud.services.directory import ContractView, DoctorView

router = APIRouter(tags=["directory"])
_CREATED = status.HTTP_201_CREATED


def _doctor(view: DoctorView) -> DoctorPublic:
    d = view.doctor
    return DoctorPublic(
        id=d.id,
        clinic_id=d.clinic_id,
        name=d.name,
        title=d.title,
        active=d.active,
        username=view.username,
    )


def _contract(view: ContractView) -> ContractPublic:
    c = view.contract
    return ContractPublic(
        id=c.id,
        household_id=c.household_id,
        doctor_id=c.doctor_id,
        status=c.status,
        starts_on=c.starts_on,
        ends_on=c.ends_on,
        in_force=view.in_force,
    )


@router.post("/clinics", response_model=ClinicPublic, status_code=_CREATED)
def create_clinic(body: ClinicCreate, actor: ActorDep, svc: DirectoryServiceDep) -> ClinicPublic:
    row = svc.create_clinic(actor, body.code, body.name, body.timezone)
    return ClinicPublic.model_validate(row)


@router.get("/clinics", response_model=list[ClinicPublic])
def list_clinics(actor: ActorDep, svc: DirectoryServiceDep) -> list[ClinicPublic]:
    return [ClinicPublic.model_validate(row) for row in svc.list_clinics(actor)]


@router.post("/clinics/{clinic_id}/admins", response_model=UserPublic, status_code=_CREATED)
def create_clinic_admin(
    clinic_id: uuid.UUID, body: ClinicAdminCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> UserPublic:
    return UserPublic.model_validate(
        svc.create_clinic_admin(actor, clinic_id, body.username, body.password)
    )


@router.post("/users", response_model=UserPublic, status_code=_CREATED)
def create_machine_user(
    body: MachineUserCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> UserPublic:
    return UserPublic.model_validate(
        svc.create_machine_user(actor, body.username, body.password, body.role)
    )


@router.post("/clinics/{clinic_id}/doctors", response_model=DoctorPublic, status_code=_CREATED)
def create_doctor(
    clinic_id: uuid.UUID, body: DoctorCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> DoctorPublic:
    view = svc.create_doctor(
        actor,
        clinic_id,
        name=body.name,
        title=body.title,
        username=body.username,
        password=body.password,
    )
    return _doctor(view)


@router.get("/clinics/{clinic_id}/doctors", response_model=list[DoctorPublic])
def list_doctors(
    clinic_id: uuid.UUID, actor: ActorDep, svc: DirectoryServiceDep
) -> list[DoctorPublic]:
    return [_doctor(view) for view in svc.list_doctors(actor, clinic_id)]


@router.post(
    "/clinics/{clinic_id}/households", response_model=HouseholdPublic, status_code=_CREATED
)
def create_household(
    clinic_id: uuid.UUID, body: HouseholdCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> HouseholdPublic:
    row = svc.create_household(actor, clinic_id, body.code, body.timezone)
    return HouseholdPublic.model_validate(row)


@router.get("/clinics/{clinic_id}/households", response_model=list[HouseholdPublic])
def list_households(
    clinic_id: uuid.UUID, actor: ActorDep, svc: DirectoryServiceDep
) -> list[HouseholdPublic]:
    return [HouseholdPublic.model_validate(r) for r in svc.list_households(actor, clinic_id)]


@router.get("/doctors/me/households", response_model=list[HouseholdPublic])
def my_households(actor: ActorDep, svc: DirectoryServiceDep) -> list[HouseholdPublic]:
    return [HouseholdPublic.model_validate(r) for r in svc.my_households(actor)]


@router.get("/households/{household_id}", response_model=HouseholdPublic)
def get_household(
    household_id: uuid.UUID, actor: ActorDep, svc: DirectoryServiceDep
) -> HouseholdPublic:
    return HouseholdPublic.model_validate(svc.get_household(actor, household_id))


@router.post(
    "/households/{household_id}/residents", response_model=UserPublic, status_code=_CREATED
)
def create_resident(
    household_id: uuid.UUID, body: ResidentCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> UserPublic:
    return UserPublic.model_validate(
        svc.create_resident(actor, household_id, body.username, body.password)
    )


@router.post(
    "/households/{household_id}/contracts", response_model=ContractPublic, status_code=_CREATED
)
def sign_contract(
    household_id: uuid.UUID, body: ContractCreate, actor: ActorDep, svc: DirectoryServiceDep
) -> ContractPublic:
    view = svc.sign(actor, household_id, body.doctor_id, body.starts_on, body.ends_on)
    return _contract(view)


@router.get("/households/{household_id}/contracts", response_model=list[ContractPublic])
def list_contracts(
    household_id: uuid.UUID, actor: ActorDep, svc: DirectoryServiceDep
) -> list[ContractPublic]:
    return [_contract(view) for view in svc.list_contracts(actor, household_id)]


@router.post("/contracts/{contract_id}/end", response_model=ContractPublic)
def end_contract(
    contract_id: uuid.UUID, actor: ActorDep, svc: DirectoryServiceDep
) -> ContractPublic:
    return _contract(svc.end_contract(actor, contract_id))
