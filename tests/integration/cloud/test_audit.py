"""The audit log on SQLite and PostgreSQL: a row for every read or change of personal health
data (allowed or refused), opaque ids only, and a table the database itself keeps append-only."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cloud.db.models import AuditRow
from cloud.domain import AuditAction, AuditOutcome, Purpose
from tests.integration.cloud.world import World, resident_id


def _rows(session: Session, after: int) -> list[AuditRow]:
    session.expire_all()
    return list(session.scalars(select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id)))


def _last_id(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(AuditRow.id), 0))) or 0


def test_a_doctor_reading_members_leaves_one_row_per_person(world: World, session: Session) -> None:
    mark = _last_id(session)
    extra = world.post(f"/households/{world.ids['h1']}/persons", "admin_a", json={"name": "老张"})
    r = world.get(
        f"/households/{world.ids['h1']}/persons", "d1", headers={"X-Request-ID": "req-42"}
    )
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-42"
    rows = _rows(session, mark)
    created, *reads = rows
    assert created.action is AuditAction.CREATE
    assert created.person_id == uuid.UUID(extra.json()["id"])
    assert {row.person_id for row in reads} == {world.ids["p1"], uuid.UUID(extra.json()["id"])}
    for row in reads:
        assert row.action is AuditAction.READ
        assert row.outcome is AuditOutcome.OK
        assert row.actor_id is not None
        assert row.actor_role == "doctor"
        assert row.resource_type == "person"
        assert row.household_id == world.ids["h1"]
        assert row.request_id == "req-42"
        assert row.purpose is None
        assert row.at.tzinfo is not None


def test_reading_readings_is_audited(world: World, session: Session) -> None:
    mark = _last_id(session)
    assert world.get(f"/persons/{world.ids['p1']}/readings", "r1").status_code == 200
    (row,) = _rows(session, mark)
    assert (row.action, row.resource_type, row.person_id, row.actor_role) == (
        AuditAction.READ,
        "reading",
        world.ids["p1"],
        "resident",
    )


def test_refusals_are_audited_and_committed(world: World, session: Session) -> None:
    mark = _last_id(session)
    assert world.get(f"/persons/{world.ids['p1']}", "d2").status_code == 403
    assert world.get(f"/households/{world.ids['h1']}/persons", "operator").status_code == 403
    rows = _rows(session, mark)
    assert [(r.actor_role, r.outcome, r.person_id) for r in rows] == [
        ("doctor", AuditOutcome.DENIED, world.ids["p1"]),
        ("operator", AuditOutcome.DENIED, None),
    ]
    assert all(r.household_id == world.ids["h1"] for r in rows)


def test_operator_purpose_is_recorded(world: World, session: Session) -> None:
    mark = _last_id(session)
    r = world.get(
        f"/persons/{world.ids['p3']}", "operator", headers={"X-Anjia-Purpose": "incident"}
    )
    assert r.status_code == 200
    (row,) = _rows(session, mark)
    assert row.purpose is Purpose.INCIDENT
    assert row.actor_role == "operator"


def test_lookups_are_audited_found_or_not(world: World, session: Session) -> None:
    mark = _last_id(session)
    body = {"id_type": "cn_resident", "id_number": world.id_numbers["p2"]}
    assert world.post("/persons/lookup", "d2", json=body).status_code == 200
    assert world.post("/persons/lookup", "d1", json=body).status_code == 404
    body["id_number"] = resident_id("110105", "19900101", "555")  # valid, but nobody has it
    assert world.post("/persons/lookup", "d1", json=body).status_code == 404
    rows = _rows(session, mark)
    assert [(r.action, r.outcome) for r in rows] == [
        (AuditAction.LOOKUP, AuditOutcome.OK),
        (AuditAction.LOOKUP, AuditOutcome.DENIED),
        (AuditAction.LOOKUP, AuditOutcome.NOT_FOUND),
    ]
    assert rows[0].person_id == world.ids["p2"]


def test_audit_rows_hold_no_personal_identifiers(world: World, session: Session) -> None:
    world.get(f"/households/{world.ids['h1']}/persons", "d1")
    world.post(
        "/persons/lookup",
        "d1",
        json={"id_type": "cn_resident", "id_number": world.id_numbers["p1"]},
    )
    dump = " ".join(
        " ".join(
            str(v)
            for v in (
                r.actor_role,
                r.action,
                r.resource_type,
                r.resource_id,
                r.person_id,
                r.household_id,
                r.request_id,
            )
        )
        for r in session.scalars(select(AuditRow))
    )
    assert str(world.ids["p1"]) in dump  # the search is not vacuous
    for secret in ("张三", world.id_numbers["p1"], world.id_numbers["p1"][-8:], "13800138000"):
        assert secret not in dump


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'denied'",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET actor_role = 'x' WHERE id = (SELECT max(id) FROM audit_log)",
    ],
)
def test_the_database_refuses_to_rewrite_the_audit_log(
    world: World, session: Session, statement: str
) -> None:
    before = session.scalar(select(func.count()).select_from(AuditRow))
    assert before
    with pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(AuditRow)) == before
    assert session.scalar(select(func.count()).where(AuditRow.outcome == "denied")) == 0
