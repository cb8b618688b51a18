"""Authentication: OAuth2 password flow, short-lived HS256 JWT access tokens (RFC 6749 4.3,
RFC 7519, bearer use per RFC 6750).

A token carries ``sub`` (the user's or gateway's id), ``role``, the scope ids (``clinic``,
``doctor``, ``household``, ``gateway``) for clients to read, ``iss``, ``aud``, ``iat``, ``exp`` and
``jti``. The server does not trust the scope claims: every request reloads the account, so a
disabled user or a revoked gateway is refused at once, and a doctor's households come from the
contracts in force, not from the token. Expiry is checked against the injected clock.

Gateways log in with their MQTT username and password (the same Mosquitto ``$7$`` hash).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from sqlalchemy.orm import Session

from cloud.access import Principal
from cloud.db.models import GatewayRow, UserRow
from cloud.db.repositories import GatewayRepository, UserRepository
from cloud.domain import Role
from cloud.errors import AuthenticationError
from cloud.passwords import UserPasswords, verify_mosquitto_hash
from cloud.settings import AuthSettings

__all__ = [
    "IssuedToken",
    "TokenClaims",
    "TokenService",
    "authenticate",
    "load_principal",
    "principal_of_gateway",
    "principal_of_user",
]

_ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int  # seconds
    role: Role


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject_id: uuid.UUID
    role: Role
    token_id: str


class TokenService:
    __slots__ = ("_cfg", "_clock", "_secret")

    def __init__(self, cfg: AuthSettings, clock: Callable[[], datetime]) -> None:
        self._cfg = cfg
        self._secret = cfg.jwt_secret.get_secret_value()
        self._clock = clock

    def issue(self, principal: Principal) -> IssuedToken:
        now = self._clock()
        lifetime = timedelta(minutes=self._cfg.access_token_minutes)
        claims: dict[str, object] = {
            "sub": str(principal.subject_id),
            "role": principal.role.value,
            "iss": self._cfg.issuer,
            "aud": self._cfg.audience,
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        for name, value in (
            ("clinic", principal.clinic_id),
            ("doctor", principal.doctor_id),
            ("household", principal.household_id),
            ("gateway", principal.gateway_id),
        ):
            if value is not None:
                claims[name] = str(value)
        token = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return IssuedToken(token, int(lifetime.total_seconds()), principal.role)

    def decode(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=self._cfg.audience,
                issuer=self._cfg.issuer,
                options={"require": ["exp", "iat", "sub", "role"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("invalid token") from exc
        if int(claims["exp"]) <= self._clock().timestamp():
            raise AuthenticationError("token expired")
        try:
            return TokenClaims(
                uuid.UUID(str(claims["sub"])), Role(claims["role"]), str(claims.get("jti", ""))
            )
        except ValueError as exc:
            raise AuthenticationError("invalid token claims") from exc


def principal_of_user(user: UserRow) -> Principal:
    return Principal(
        subject_id=user.id,
        role=user.role,
        username=user.username,
        clinic_id=user.clinic_id,
        doctor_id=user.doctor_id,
        household_id=user.household_id,
    )


def principal_of_gateway(gateway: GatewayRow) -> Principal:
    return Principal(
        subject_id=gateway.id,
        role=Role.GATEWAY,
        username=gateway.uid,
        household_id=gateway.household_id,
        gateway_id=gateway.id,
    )


def authenticate(
    session: Session, passwords: UserPasswords, username: str, password: str
) -> Principal:
    """The principal for a username and password; AuthenticationError otherwise (one reason for
    every failure, so a caller cannot tell a wrong password from an unknown name)."""
    user = UserRepository(session).by_username(username)
    if user is not None:
        if passwords.verify(user.password_hash, password) and not user.disabled:
            return principal_of_user(user)
        raise AuthenticationError("wrong username or password")
    gateway = GatewayRepository(session).by_uid(username)
    if gateway is not None:
        if verify_mosquitto_hash(gateway.mqtt_password_hash, password) and (
            gateway.revoked_at is None
        ):
            return principal_of_gateway(gateway)
        raise AuthenticationError("wrong username or password")
    passwords.verify(None, password)  # same work as for a known user
    raise AuthenticationError("wrong username or password")


def load_principal(session: Session, claims: TokenClaims) -> Principal:
    """The current principal behind a valid token (refused if disabled, revoked or changed)."""
    if claims.role is Role.GATEWAY:
        gateway = GatewayRepository(session).get(claims.subject_id)
        if gateway is None or gateway.revoked_at is not None:
            raise AuthenticationError("gateway unknown or revoked")
        return principal_of_gateway(gateway)
    user = UserRepository(session).get(claims.subject_id)
    if user is None or user.disabled or user.role is not claims.role:
        raise AuthenticationError("account unknown, disabled or changed")
    return principal_of_user(user)
