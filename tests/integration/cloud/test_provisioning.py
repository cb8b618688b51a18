"""Provisioning through the REST API on SQLite and PostgreSQL: the whole flow, gateway
credentials shown once and stored hashed, device and cuff-slot mapping, bad requests."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.migrate import head_revision
from cloud.db.models import GatewayRow, UserRow
from cloud.passwords import verify_mosquitto_hash
from gateway.contract import decode_config
from tests.integration.cloud.world import PASSWORD, World, login, resident_id

PROBLEM = "application/problem+json"


def test_healthz_reports_database_and_revision(world: World) -> None:
    body = world.client.get("/healthz").json()
    assert body == {"status": "ok", "database": "ok", "revision": head_revision(), "tsdb": None}


def test_provisioned_world_is_visible_to_its_doctor(world: World) -> None:
    signed = world.get("/doctors/me/households", "d1").json()
    assert [h["id"] for h in signed] == [str(world.ids["h1"])]
    persons = world.get(f"/households/{world.ids['h1']}/persons", "d1").json()
    assert [p["name"] for p in persons] == ["张三"]
    assert (
        persons[0]["id_number_masked"]
        == world.id_numbers["p1"][:4] + "*" * 10 + (world.id_numbers["p1"][-4:])
    )
    assert persons[0]["address"] == "北京市朝阳区幸福路 1 号"
    me = world.get("/me", "d1").json()
    assert me["role"] == "doctor"
    assert me["doctor_id"] == str(world.ids["d1"])


def test_gateway_credentials_are_shown_once_and_stored_hashed(
    world: World, session: Session
) -> None:
    listed = world.get(f"/households/{world.ids['h1']}/gateways", "admin_a").json()
    assert listed
    assert all("mqtt_password" not in g and "password" not in str(g) for g in listed)
    row = session.scalars(select(GatewayRow).where(GatewayRow.id == world.ids["g1"])).one()
    assert world.gateway_password not in row.mqtt_password_hash
    assert row.mqtt_password_hash.startswith("$7$")
    assert verify_mosquitto_hash(row.mqtt_password_hash, world.gateway_password)
    assert not verify_mosquitto_hash(row.mqtt_password_hash, world.gateway_password + "x")


def test_gateway_password_reset_invalidates_the_old_one(world: World) -> None:
    body = world.post(f"/gateways/{world.ids['g1']}/credentials", "admin_a").json()
    assert body["mqtt_password"] != world.gateway_password
    old = world.client.post(
        "/auth/token", data={"username": world.gateway_uid, "password": world.gateway_password}
    )
    assert old.status_code == 401
    assert login(world.client, world.gateway_uid, body["mqtt_password"])


def test_revoked_gateway_cannot_log_in_nor_use_its_token(world: World) -> None:
    assert world.post(f"/gateways/{world.ids['g1']}/revoke", "admin_a").json()["revoked_at"]
    assert world.get("/gateways/me/config", "gateway").status_code == 401
    again = world.client.post(
        "/auth/token", data={"username": world.gateway_uid, "password": world.gateway_password}
    )
    assert again.status_code == 401


def test_device_and_cuff_slots_reach_the_gateway_config(world: World) -> None:
    h1 = world.ids["h1"]
    extra = world.post(f"/households/{h1}/persons", "admin_a", json={"name": "张小三"}).json()
    meter = world.post(
        f"/households/{h1}/devices",
        "admin_a",
        json={
            "kind": "glucose_meter",
            "system_id": "0123456789abcdef",
            "label": "血糖仪",
            "owner_person_id": str(world.ids["p1"]),
        },
    )
    assert meter.status_code == 201, meter.text
    assert meter.json()["device_key"] == "sysid:0123456789abcdef"
    cuff = world.post(
        f"/households/{h1}/devices",
        "admin_a",
        json={"kind": "blood_pressure_monitor", "serial_number": "SN42", "model_number": "BP-7"},
    ).json()
    # the resident maps the cuff's two user slots
    r = world.put(f"/devices/{cuff['id']}/slots/1", "r1", json={"person_id": str(world.ids["p1"])})
    assert r.status_code == 200, r.text
    r = world.put(f"/devices/{cuff['id']}/slots/2", "r1", json={"person_id": extra["id"]})
    assert [(s["user_id"], s["person_id"]) for s in r.json()["slots"]] == [
        (1, str(world.ids["p1"])),
        (2, extra["id"]),
    ]
    config = decode_config(world.get("/gateways/me/config", "gateway").content)
    assert config.gateway_id == world.gateway_uid
    assert config.version == 5  # enrolled at 1, +2 devices, +2 slot mappings
    by_kind = {d.kind: d for d in config.devices}
    assert by_kind["glucose_meter"].person_ref == str(world.ids["p1"])
    assert by_kind["glucose_meter"].system_id == "0123456789abcdef"
    slots = {s.user_id: s.person_ref for s in by_kind["blood_pressure_monitor"].user_slots}
    assert slots == {1: str(world.ids["p1"]), 2: extra["id"]}
    # unmapping slot 2 shows in the next config
    assert world.delete(f"/devices/{cuff['id']}/slots/2", "r1").status_code == 200
    config = decode_config(world.get("/gateways/me/config", "gateway").content)
    assert config.version == 6
    cuff_cfg = next(d for d in config.devices if d.kind == "blood_pressure_monitor")
    assert [s.user_id for s in cuff_cfg.user_slots] == [1]


def test_slot_refuses_a_person_of_another_household(world: World) -> None:
    cuff = world.post(
        f"/households/{world.ids['h1']}/devices",
        "admin_a",
        json={"kind": "blood_pressure_monitor", "address": "AA:BB:CC:DD:EE:FF"},
    ).json()
    r = world.put(f"/devices/{cuff['id']}/slots/1", "r1", json={"person_id": str(world.ids["p2"])})
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["loc"] == ["body", "person_id"]


def test_glucose_meter_has_no_user_slots(world: World) -> None:
    meter = world.post(
        f"/households/{world.ids['h1']}/devices",
        "admin_a",
        json={"kind": "glucose_meter", "serial_number": "G-1"},
    ).json()
    r = world.put(f"/devices/{meter['id']}/slots/1", "r1", json={"person_id": str(world.ids["p1"])})
    assert r.status_code == 422


def test_duplicates_are_conflicts(world: World) -> None:
    r = world.post("/clinics", "operator", json={"code": "c-a", "name": "again"})
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM
    r = world.post(
        f"/households/{world.ids['h3']}/persons",
        "admin_b",
        json={"name": "重复", "id_type": "cn_resident", "id_number": world.id_numbers["p1"]},
    )
    assert r.status_code == 409
    r = world.post(
        f"/clinics/{world.ids['clinic_a']}/doctors",
        "admin_a",
        json={"name": "x", "username": "d1", "password": PASSWORD},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"


def test_second_active_contract_is_refused_until_the_first_ends(world: World) -> None:
    h1 = world.ids["h1"]
    body = {"doctor_id": str(world.ids["d2"]), "starts_on": "2026-03-01"}
    assert world.post(f"/households/{h1}/contracts", "admin_a", json=body).status_code == 409
    ended = world.post(f"/contracts/{world.ids['contract_h1']}/end", "admin_a").json()
    assert ended["status"] == "ended"
    assert ended["in_force"] is False
    r = world.post(f"/households/{h1}/contracts", "admin_a", json=body)
    assert r.status_code == 201
    assert r.json()["in_force"] is True
    assert world.get("/doctors/me/households", "d1").json() == []
    assert [h["code"] for h in world.get("/doctors/me/households", "d2").json()] == [
        "HH-h1",
        "HH-h2",
    ]


def test_doctor_of_another_clinic_cannot_be_signed(world: World) -> None:
    world.post(f"/contracts/{world.ids['contract_h1']}/end", "admin_a")
    r = world.post(
        f"/households/{world.ids['h1']}/contracts",
        "operator",
        json={"doctor_id": str(world.ids["d3"]), "starts_on": "2026-03-01"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "doctor_id"]


def test_contract_in_the_future_is_not_in_force_yet(world: World) -> None:
    world.post(f"/contracts/{world.ids['contract_h1']}/end", "admin_a")
    r = world.post(
        f"/households/{world.ids['h1']}/contracts",
        "admin_a",
        json={
            "doctor_id": str(world.ids["d1"]),
            "starts_on": "2026-04-01",
            "ends_on": "2027-04-01",
        },
    )
    assert r.json()["in_force"] is False
    assert world.get(f"/households/{world.ids['h1']}/persons", "d1").status_code == 403


def test_bad_requests_are_clear_problems(world: World) -> None:
    h1 = world.ids["h1"]
    cases = [
        ({"name": ""}, "name"),
        ({"name": "x", "birth_year": 1700}, "birth_year"),
        ({"name": "x", "sex": "other"}, "sex"),
        ({"name": "x", "phone": "call me"}, "phone"),
        ({"name": "x", "unexpected": 1}, "unexpected"),
        ({"name": "x", "care_flags": ["vip"]}, "care_flags"),
    ]
    for body, field in cases:
        r = world.post(f"/households/{h1}/persons", "admin_a", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == PROBLEM
        problem = r.json()
        assert problem["status"] == 422
        assert problem["code"] == "validation"
        assert any(field in map(str, err["loc"]) for err in problem["errors"]), problem
    r = world.post(
        f"/households/{h1}/persons",
        "admin_a",
        content=b'{"name": ',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "malformed"
    r = world.get("/households/not-a-uuid/persons", "admin_a")
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["path", "household_id"]
    r = world.get(f"/households/{uuid.uuid4()}/persons", "admin_a")
    assert r.status_code == 404
    assert r.json()["code"] == "not-found"
    assert world.client.get("/no-such-route").status_code == 404


def test_invalid_id_numbers_are_refused_without_echoing_them(world: World) -> None:
    good = resident_id("110105", "19800101", "123")
    wrong_check = good[:17] + ("0" if good[17] != "0" else "1")
    impossible_date = resident_id("110105", "19801301", "123")
    for number in (wrong_check, impossible_date, "12345"):
        r = world.post(
            f"/households/{world.ids['h1']}/persons",
            "admin_a",
            json={"name": "x", "id_type": "cn_resident", "id_number": number},
        )
        assert r.status_code == 422, r.text
        assert number not in r.text
    r = world.post(
        f"/households/{world.ids['h1']}/persons",
        "admin_a",
        json={"name": "x", "id_number": good},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "id_type"]


def test_validation_errors_never_echo_passwords(world: World) -> None:
    secret = "tiny"  # too short: fails validation
    r = world.post(
        f"/clinics/{world.ids['clinic_a']}/doctors",
        "admin_a",
        json={"name": "x", "username": "dx", "password": secret},
    )
    assert r.status_code == 422
    assert '"tiny"' not in r.text
    assert "input" not in r.json()["errors"][0]


def test_user_passwords_are_stored_as_argon2id(world: World, session: Session) -> None:
    row = session.scalars(select(UserRow).where(UserRow.username == "d1")).one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


def test_settings_dependency_can_be_overridden(world: World, session: Session) -> None:
    """``get_settings`` is the documented override point: here, gateway hash rounds."""
    from cloud.api.deps import get_settings

    app = world.client.app
    base = app.state.runtime.settings  # type: ignore[attr-defined]
    cheap = base.model_copy(
        update={"auth": base.auth.model_copy(update={"gateway_pbkdf2_iterations": 7})}
    )
    app.dependency_overrides[get_settings] = lambda: cheap  # type: ignore[attr-defined]
    try:
        body = world.post(f"/households/{world.ids['h2']}/gateways", "admin_a", json={}).json()
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    row = session.get(GatewayRow, uuid.UUID(body["gateway"]["id"]))
    assert row is not None
    assert row.mqtt_password_hash.startswith("$7$7$")


def test_unknown_time_zones_and_naive_times_are_refused(world: World) -> None:
    r = world.post(
        "/clinics", "operator", json={"code": "c-z", "name": "z", "timezone": "Mars/Base"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "timezone"]
    r = world.post(
        f"/clinics/{world.ids['clinic_a']}/households",
        "admin_a",
        json={"code": "HH-z", "timezone": "Asia/Urumqi"},
    )
    assert r.status_code == 201
    readings = f"/persons/{world.ids['p1']}/readings"
    r = world.get(readings, "d1", params={"since": "2026-03-01T00:00:00"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["query", "since"]
    r = world.get(readings, "d1", params={"since": "2026-03-01T00:00:00+08:00"})
    assert r.status_code == 200
