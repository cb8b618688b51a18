"""Persons: create, list, read, find by ID number, readings. Every read is audited."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from cloud.api.deps import ActorDep, PersonServiceDep
from cloud.api.schemas import PersonCreate, PersonLookup, PersonPublic, ReadingPublic
from cloud.db.repositories import ReadingQuery
from cloud.services.persons import NewPerson, PersonView

router = APIRouter(tags=["persons"])


def _public(view: PersonView) -> PersonPublic:
    return PersonPublic(
        id=view.id,
        household_id=view.household_id,
        name=view.name,
        id_type=view.id_type,
        id_number_masked=view.id_number_masked,
        phone=view.phone,
        address=view.address,
        birth_year=view.birth_year,
        sex=view.sex,
        care_flags=list(view.care_flags),
        created_at=view.created_at,
    )


@router.post(
    "/households/{household_id}/persons",
    response_model=PersonPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_person(
    household_id: uuid.UUID, body: PersonCreate, actor: ActorDep, svc: PersonServiceDep
) -> PersonPublic:
    new = NewPerson(
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        phone=body.phone,
        address=body.address,
        birth_year=body.birth_year,
        sex=body.sex,
        care_flags=frozenset(body.care_flags),
    )
    return _public(svc.create(actor, household_id, new))


@router.get("/households/{household_id}/persons", response_model=list[PersonPublic])
def list_persons(
    household_id: uuid.UUID, actor: ActorDep, svc: PersonServiceDep
) -> list[PersonPublic]:
    return [_public(view) for view in svc.list_household(actor, household_id)]


@router.post("/persons/lookup", response_model=PersonPublic)
def lookup_person(body: PersonLookup, actor: ActorDep, svc: PersonServiceDep) -> PersonPublic:
    """Find a person by ID number (in the body, never in the URL)."""
    return _public(svc.lookup(actor, body.id_type, body.id_number))


@router.get("/persons/{person_id}", response_model=PersonPublic)
def get_person(person_id: uuid.UUID, actor: ActorDep, svc: PersonServiceDep) -> PersonPublic:
    return _public(svc.get(actor, person_id))


@router.get("/persons/{person_id}/readings", response_model=list[ReadingPublic])
def person_readings(
    person_id: uuid.UUID,
    actor: ActorDep,
    svc: PersonServiceDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[ReadingPublic]:
    query = ReadingQuery(person_id=person_id, kind=kind, since=since, until=until, limit=limit)
    return [ReadingPublic.model_validate(row) for row in svc.readings(actor, query)]
