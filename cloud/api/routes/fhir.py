"""The FHIR R4 API under ``/fhir`` (docs/fhir.md): ``application/fhir+json`` in, out and in errors.

=================================================== =============================================
``GET /fhir/Patient/{id}``                          the person (identifiers per disclosure)
``GET /fhir/Patient/{id}/$everything``              Patient, Devices, Observations (paged)
``GET /fhir/Observation?patient=&code=&date=``      searchset, newest first, ``_count``, ``next``
``GET /fhir/Observation/{id}``                      one Observation
``GET /fhir/Device?patient=``                       the person's meters, cuffs and gateways
``GET /fhir/Device/{id}``                           one PhdDevice (``phd-``) or PhgDevice (``phg-``)
``GET /fhir/metadata``                              the CapabilityStatement (no token needed)
=================================================== =============================================

Every error is an OperationOutcome (not the rest of the API's problem+json): the routes use
:class:`FhirRoute`, which catches what the dependencies (authentication) and the handlers raise.
400 for bad or unsupported parameters, 401 without a valid token, 403 for machine roles and for
an operator without a purpose, 404 for anything unknown *or out of the caller's reach*.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.api.deps import ActorDep, RuntimeDep, SessionDep
from cloud.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PurposeRequiredError,
)
from cloud.fhir.model import Json
from cloud.fhir.observation import fhir_instant
from cloud.fhir.resources import FHIR_JSON, capability_statement, operation_outcome, searchset
from cloud.fhir.search import (
    SearchParamError,
    parse_codes,
    parse_count,
    parse_cursor,
    parse_reference,
    reject_unknown,
    values_of,
)
from cloud.services.fhir import FhirService, ObservationPage, ObservationQuery

__all__ = ["FhirRoute", "router"]

_LOGGER = logging.getLogger(__name__)


def _fhir(resource: Json, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(resource), status, headers, media_type=FHIR_JSON)


def outcome_response(exc: Exception) -> Response:
    """The OperationOutcome and status for an error of the FHIR API."""
    if isinstance(exc, SearchParamError):
        return _fhir(operation_outcome(exc.code, str(exc)), 400)
    if isinstance(exc, InvalidRequestError):
        return _fhir(operation_outcome("invalid", str(exc)), 400)
    if isinstance(exc, RequestValidationError):
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        return _fhir(operation_outcome("invalid", f"invalid request: {fields}"), 400)
    if isinstance(exc, AuthenticationError):
        headers = {"WWW-Authenticate": "Bearer"}
        return _fhir(operation_outcome("login", "authentication required"), 401, headers)
    if isinstance(exc, PurposeRequiredError):
        return _fhir(operation_outcome("security", str(exc)), 403)
    if isinstance(exc, AccessDeniedError):
        return _fhir(operation_outcome("forbidden", str(exc)), 403)
    if isinstance(exc, NotFoundError):
        return _fhir(operation_outcome("not-found", f"{exc.resource} not found"), 404)
    if isinstance(exc, StarletteHTTPException):
        return _fhir(operation_outcome("processing", str(exc.detail)), exc.status_code)
    _LOGGER.error("FHIR request failed with %s", type(exc).__name__, exc_info=exc)
    return _fhir(operation_outcome("exception", "internal error; see the server log"), 500)


class FhirRoute(APIRoute):
    """An APIRoute whose errors, including those of its dependencies, are OperationOutcomes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 (every error becomes an OperationOutcome)
                return outcome_response(exc)

        return fhir_handler


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute)


def get_fhir(session: SessionDep, runtime: RuntimeDep) -> FhirService:
    return FhirService(session, runtime.cipher, runtime.clock)


FhirServiceDep = Annotated[FhirService, Depends(get_fhir)]


def _params(request: Request) -> list[tuple[str, str]]:
    return request.query_params.multi_items()


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _next_url(request: Request, params: list[tuple[str, str]], page: ObservationPage) -> str | None:
    if page.next_cursor is None:
        return None
    kept = [(k, v) for k, v in params if k != "_cursor"]
    kept.append(("_cursor", page.next_cursor.token()))
    return f"{_base(request)}{request.url.path.removeprefix('/fhir')}?{urlencode(kept)}"


def _one(params: list[tuple[str, str]], *names: str) -> str:
    values = [v for name in names for v in values_of(params, name)]
    if not values:
        raise SearchParamError(names[0], "is required")
    if len(values) > 1:
        raise SearchParamError(names[0], "given more than once")
    return values[0]


@router.get("/metadata")
def metadata(request: Request, runtime: RuntimeDep) -> Response:
    """The CapabilityStatement (public: it describes the server, not anyone's data)."""
    return _fhir(
        capability_statement(_base(request), request.app.version, fhir_instant(runtime.clock()))
    )


@router.get("/Patient/{person_id}")
def read_patient(person_id: str, actor: ActorDep, svc: FhirServiceDep) -> Response:
    return _fhir(svc.read_patient(actor, person_id))


@router.get("/Patient/{person_id}/$everything")
def patient_everything(
    person_id: str, request: Request, actor: ActorDep, svc: FhirServiceDep
) -> Response:
    params = _params(request)
    reject_unknown(params, ("_count", "_cursor", "_format"))
    count = parse_count(values_of(params, "_count"))
    cursor = parse_cursor(values_of(params, "_cursor"))
    patient, devices, page = svc.everything(actor, person_id, count, cursor)
    entries: list[tuple[Json, str]] = []
    if patient is not None:
        entries.append((patient, "match"))
    entries.extend((device, "include") for device in devices)
    entries.extend((obs, "match") for obs in page.resources)
    return _fhir(
        searchset(
            entries,
            base_url=_base(request),
            self_url=str(request.url),
            next_url=_next_url(request, params, page),
        )
    )


@router.get("/Observation")
def search_observations(request: Request, actor: ActorDep, svc: FhirServiceDep) -> Response:
    params = _params(request)
    reject_unknown(params, ("patient", "subject", "code", "date", "_count", "_cursor", "_format"))
    person = parse_reference(_one(params, "patient", "subject"), "Patient", "patient")
    query = ObservationQuery(
        person_id=person,
        codes=parse_codes(values_of(params, "code")),
        dates=values_of(params, "date"),
        count=parse_count(values_of(params, "_count")),
        cursor=parse_cursor(values_of(params, "_cursor")),
    )
    page = svc.search_observations(actor, query)
    return _fhir(
        searchset(
            [(obs, "match") for obs in page.resources],
            base_url=_base(request),
            self_url=str(request.url),
            next_url=_next_url(request, params, page),
        )
    )


@router.get("/Observation/{observation_id}")
def read_observation(observation_id: str, actor: ActorDep, svc: FhirServiceDep) -> Response:
    return _fhir(svc.read_observation(actor, observation_id))


@router.get("/Device")
def search_devices(request: Request, actor: ActorDep, svc: FhirServiceDep) -> Response:
    params = _params(request)
    reject_unknown(params, ("patient", "_format"))
    person = parse_reference(_one(params, "patient"), "Patient", "patient")
    devices = svc.search_devices(actor, person)
    return _fhir(
        searchset(
            [(device, "match") for device in devices],
            base_url=_base(request),
            self_url=str(request.url),
        )
    )


@router.get("/Device/{device_id}")
def read_device(device_id: str, actor: ActorDep, svc: FhirServiceDep) -> Response:
    return _fhir(svc.read_device(actor, device_id))


_SERVED = frozenset({"Patient", "Observation", "Device"})


@router.api_route(
    "/{rest:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def unsupported(rest: str) -> Response:
    """Any other FHIR interaction, as an OperationOutcome (not the API's problem+json): 405 for a
    write to a resource type served here (the FHIR API is read-only), 404 otherwise."""
    if rest.split("/", 1)[0] in _SERVED:
        return _fhir(operation_outcome("not-supported", "read-only: only GET is served"), 405)
    return _fhir(operation_outcome("not-supported", "no such FHIR interaction here"), 404)
