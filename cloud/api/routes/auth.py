"""``POST /auth/token`` (OAuth2 password flow) and ``GET /me``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from cloud.api.deps import CurrentUser, RuntimeDep, SessionDep
from cloud.api.schemas import Token, UserPublic
from cloud.audit import Actor, AuditLog
from cloud.auth import authenticate
from cloud.domain import AuditAction
from cloud.errors import AuthenticationError

router = APIRouter(tags=["auth"])
_LOGGER = logging.getLogger(__name__)


@router.post("/auth/token", response_model=Token)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    runtime: RuntimeDep,
    request: Request,
) -> Token:
    try:
        principal = authenticate(session, runtime.passwords, form.username, form.password)
    except AuthenticationError:
        _LOGGER.warning("failed login (request %s)", getattr(request.state, "request_id", "-"))
        raise
    actor = Actor(principal, getattr(request.state, "request_id", None))
    AuditLog(session, runtime.clock).record(actor, AuditAction.LOGIN, "session", principal.role)
    session.commit()
    issued = runtime.tokens.issue(principal)
    return Token(access_token=issued.access_token, expires_in=issued.expires_in, role=issued.role)


@router.get("/me", response_model=UserPublic)
def me(principal: CurrentUser) -> UserPublic:
    return UserPublic(
        id=principal.subject_id,
        username=principal.username,
        role=principal.role,
        clinic_id=principal.clinic_id,
        doctor_id=principal.doctor_id,
        household_id=principal.household_id,
    )
