"""Authentication on SQLite and PostgreSQL: the OAuth2 password flow, short-lived JWTs checked
against the (fake) clock, forged and expired tokens, disabled accounts, one answer for every
failed login."""

from __future__ import annotations

import uuid
from dataclasses import replace

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.access import Principal
from cloud.db.models import AuditRow, UserRow
from cloud.domain import AuditAction, Role
from tests.integration.cloud.conftest import FakeClock
from tests.integration.cloud.world import PASSWORD, World


def _token(world: World, who: str) -> str:
    return world.headers[who]["Authorization"].removeprefix("Bearer ")


def test_token_is_short_lived_and_carries_role_and_scope(world: World) -> None:
    r = world.client.post("/auth/token", data={"username": "r1", "password": PASSWORD})
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["role"] == "resident"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "resident"
    assert claims["household"] == str(world.ids["h1"])
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["aud"] == "anjia-api"
    assert "password" not in str(claims)


def test_expired_token_is_refused(world: World, clock: FakeClock) -> None:
    assert world.get("/me", "d1").status_code == 200
    clock.advance(minutes=14, seconds=59)
    assert world.get("/me", "d1").status_code == 200
    clock.advance(seconds=1)
    r = world.get("/me", "d1")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["code"] == "unauthenticated"


def test_forged_and_malformed_tokens_are_refused(world: World) -> None:
    claims = jwt.decode(_token(world, "r1"), options={"verify_signature": False})
    claims["role"] = "operator"
    forged = jwt.encode(claims, "not the server secret at all, but long enough", algorithm="HS256")
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    for token in (forged, unsigned, "garbage", _token(world, "r1")[:-3] + "abc"):
        r = world.client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert world.client.get("/me").status_code == 401


def test_a_token_minted_for_another_role_does_not_escalate(world: World) -> None:
    """A valid signature with a role that does not match the account is refused."""
    runtime = world.client.app.state.runtime  # type: ignore[attr-defined]
    me = world.get("/me", "r1").json()
    principal = Principal(uuid.UUID(me["id"]), Role.RESIDENT, "r1")
    token = runtime.tokens.issue(replace(principal, role=Role.OPERATOR)).access_token
    r = world.client.get("/clinics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_disabled_account_is_refused_at_once(world: World, session: Session) -> None:
    assert world.get("/doctors/me/households", "d1").status_code == 200
    user = session.scalars(select(UserRow).where(UserRow.username == "d1")).one()
    user.disabled = True
    session.commit()
    assert world.get("/doctors/me/households", "d1").status_code == 401
    r = world.client.post("/auth/token", data={"username": "d1", "password": PASSWORD})
    assert r.status_code == 401


def test_every_failed_login_gets_the_same_answer(world: World) -> None:
    answers = set()
    for username, password in (
        ("d1", "wrong password"),
        ("nobody", PASSWORD),
        (world.gateway_uid, "wrong"),
        ("d1", ""),
    ):
        r = world.client.post("/auth/token", data={"username": username, "password": password})
        if password == "":
            assert r.status_code == 422
            continue
        assert r.status_code == 401
        answers.add((r.json()["detail"], r.json()["code"]))
    assert answers == {("wrong username or password", "unauthenticated")}


def test_logins_are_audited(world: World, session: Session) -> None:
    rows = session.scalars(select(AuditRow).where(AuditRow.action == AuditAction.LOGIN)).all()
    roles = sorted(r.actor_role for r in rows)
    assert roles.count("doctor") == 3
    assert "gateway" in roles
    assert "booking_backend" in roles
