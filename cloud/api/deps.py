"""FastAPI dependencies as ``Annotated`` aliases: settings, session, caller, services.

Everything comes from ``app.state.runtime`` (built by the lifespan); tests swap any of these
with ``app.dependency_overrides``. A session is one unit of work per request: services commit,
and the session is closed (rolling back anything uncommitted) when the request ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from cloud.access import Principal
from cloud.audit import Actor
from cloud.auth import load_principal
from cloud.domain import Purpose
from cloud.errors import AuthenticationError, InvalidRequestError
from cloud.runtime import Runtime
from cloud.services.devices import DeviceService
from cloud.services.directory import DirectoryService
from cloud.services.persons import PersonService
from cloud.settings import CloudSettings

__all__ = [
    "ActorDep",
    "CurrentUser",
    "DeviceServiceDep",
    "DirectoryServiceDep",
    "PersonServiceDep",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "get_runtime",
    "get_session",
    "get_settings",
]

_oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_settings(runtime: RuntimeDep) -> CloudSettings:
    return runtime.settings


SettingsDep = Annotated[CloudSettings, Depends(get_settings)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    token: Annotated[str | None, Depends(_oauth2)], session: SessionDep, runtime: RuntimeDep
) -> Principal:
    if not token:
        raise AuthenticationError("no bearer token")
    return load_principal(session, runtime.tokens.decode(token))


CurrentUser = Annotated[Principal, Depends(get_principal)]


def get_actor(
    request: Request,
    principal: CurrentUser,
    x_anjia_purpose: Annotated[str | None, Header()] = None,
) -> Actor:
    purpose = None
    if x_anjia_purpose is not None:
        try:
            purpose = Purpose(x_anjia_purpose)
        except ValueError as exc:
            allowed = ", ".join(p.value for p in Purpose)
            raise InvalidRequestError("X-Anjia-Purpose", f"one of {allowed}", "header") from exc
    return Actor(principal, getattr(request.state, "request_id", None), purpose)


ActorDep = Annotated[Actor, Depends(get_actor)]


def get_directory(session: SessionDep, runtime: RuntimeDep) -> DirectoryService:
    return DirectoryService(session, runtime.passwords, runtime.clock)


def get_persons(session: SessionDep, runtime: RuntimeDep) -> PersonService:
    return PersonService(session, runtime.cipher, runtime.blind_index, runtime.clock)


def get_devices(session: SessionDep, runtime: RuntimeDep, settings: SettingsDep) -> DeviceService:
    return DeviceService(session, runtime.clock, settings.auth.gateway_pbkdf2_iterations)


DirectoryServiceDep = Annotated[DirectoryService, Depends(get_directory)]
PersonServiceDep = Annotated[PersonService, Depends(get_persons)]
DeviceServiceDep = Annotated[DeviceService, Depends(get_devices)]
