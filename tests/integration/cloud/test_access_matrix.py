"""The access matrix on SQLite and PostgreSQL: every role against households signed and not
signed, own and other, same clinic and other clinic. Each table is checked whole, and every
mismatch is reported at once."""

from __future__ import annotations

from typing import Any

from tests.integration.cloud.world import World

SUPPORT = {"X-Anjia-Purpose": "support"}


def _check(world: World, table: list[tuple[str, str, str, int]], **kwargs: Any) -> None:
    """Rows of (who, method, path template, expected status); paths use world ids."""
    mismatches = []
    for who, method, template, expected in table:
        path = template.format(**{k: str(v) for k, v in world.ids.items()})
        response = getattr(world, method)(path, who, **kwargs)
        if response.status_code != expected:
            mismatches.append(
                f"{who} {method.upper()} {template}: {response.status_code} "
                f"(expected {expected}) {response.text[:120]}"
            )
        elif expected >= 400:
            assert response.headers["content-type"] == "application/problem+json"
    assert not mismatches, "\n".join(mismatches)


def test_reading_household_members(world: World) -> None:
    persons = "/households/{%s}/persons"
    table = [
        # doctors: only households signed with them
        ("d1", "get", persons % "h1", 200),
        ("d1", "get", persons % "h2", 403),
        ("d1", "get", persons % "h3", 403),
        ("d2", "get", persons % "h2", 200),
        ("d2", "get", persons % "h1", 403),
        ("d3", "get", persons % "h3", 403),  # h3 signed with nobody
        # residents: only their own household
        ("r1", "get", persons % "h1", 200),
        ("r1", "get", persons % "h2", 403),
        ("r2", "get", persons % "h2", 200),
        ("r2", "get", persons % "h1", 403),
        # clinic admins: their clinic
        ("admin_a", "get", persons % "h1", 200),
        ("admin_a", "get", persons % "h2", 200),
        ("admin_a", "get", persons % "h3", 403),
        ("admin_b", "get", persons % "h3", 200),
        ("admin_b", "get", persons % "h1", 403),
        # machines: never
        ("gateway", "get", persons % "h1", 403),
        ("booking", "get", persons % "h1", 403),
        # nobody
        ("nobody", "get", persons % "h1", 401),
    ]
    _check(world, table)


def test_operator_reads_health_data_only_with_a_purpose(world: World) -> None:
    r = world.get(f"/households/{world.ids['h1']}/persons", "operator")
    assert r.status_code == 403
    assert r.json()["code"] == "purpose-required"
    _check(
        world,
        [
            ("operator", "get", "/households/{h1}/persons", 200),
            ("operator", "get", "/households/{h3}/persons", 200),
            ("operator", "get", "/persons/{p2}", 200),
            ("operator", "get", "/persons/{p2}/readings", 200),
        ],
        headers=SUPPORT,
    )
    r = world.get(f"/persons/{world.ids['p1']}", "operator", headers={"X-Anjia-Purpose": "fun"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["header", "X-Anjia-Purpose"]


def test_reading_one_person_and_their_readings(world: World) -> None:
    table = []
    for who, allowed in (
        ("d1", {"p1"}),
        ("d2", {"p2"}),
        ("d3", set()),
        ("r1", {"p1"}),
        ("r2", {"p2"}),
        ("admin_a", {"p1", "p2"}),
        ("admin_b", {"p3"}),
        ("gateway", set()),
        ("booking", set()),
    ):
        for person in ("p1", "p2", "p3"):
            status = 200 if person in allowed else 403
            table.append((who, "get", f"/persons/{{{person}}}", status))
            table.append((who, "get", f"/persons/{{{person}}}/readings", status))
    _check(world, table)


def test_lookup_by_id_number_hides_persons_out_of_reach(world: World) -> None:
    body = {"id_type": "cn_resident", "id_number": world.id_numbers["p1"]}
    for who, expected in (
        ("d1", 200),
        ("r1", 200),
        ("admin_a", 200),
        ("d2", 404),
        ("r2", 404),
        ("admin_b", 404),
        ("gateway", 404),
        ("booking", 404),
    ):
        r = world.post("/persons/lookup", who, json=body)
        assert r.status_code == expected, (who, r.text)
        if expected == 200:
            assert r.json()["id"] == str(world.ids["p1"])
    r = world.post("/persons/lookup", "operator", json=body)
    assert r.status_code == 403
    assert r.json()["code"] == "purpose-required"
    r = world.post("/persons/lookup", "operator", json=body, headers=SUPPORT)
    assert r.status_code == 200
    assert r.json()["name"] == "张三"


def test_provisioning_rights(world: World) -> None:
    clinic = {"code": "c-new", "name": "新社区"}
    table = [
        ("admin_a", "post", "/clinics", 403),
        ("d1", "post", "/clinics", 403),
        ("r1", "post", "/clinics", 403),
        ("gateway", "post", "/clinics", 403),
        ("booking", "post", "/clinics", 403),
    ]
    _check(world, table, json=clinic)
    _check(world, [("operator", "post", "/clinics", 201)], json=clinic)

    household = {"code": "HH-x"}
    table = [
        ("admin_b", "post", "/clinics/{clinic_a}/households", 403),
        ("d1", "post", "/clinics/{clinic_a}/households", 403),
        ("r1", "post", "/clinics/{clinic_a}/households", 403),
        ("gateway", "post", "/clinics/{clinic_a}/households", 403),
        ("admin_a", "post", "/clinics/{clinic_a}/households", 201),
    ]
    _check(world, table, json=household)

    person = {"name": "新成员"}
    table = [
        ("admin_b", "post", "/households/{h1}/persons", 403),
        ("d1", "post", "/households/{h1}/persons", 403),
        ("r1", "post", "/households/{h1}/persons", 403),
        ("gateway", "post", "/households/{h1}/persons", 403),
        ("booking", "post", "/households/{h1}/persons", 403),
        ("admin_a", "post", "/households/{h1}/persons", 201),
        ("operator", "post", "/households/{h3}/persons", 201),
    ]
    _check(world, table, json=person)

    table = [
        ("r1", "post", "/households/{h1}/gateways", 403),
        ("d1", "post", "/households/{h1}/gateways", 403),
        ("admin_b", "post", "/households/{h1}/gateways", 403),
        ("admin_b", "post", "/households/{h3}/gateways", 201),
    ]
    _check(world, table, json={"label": "卧室"})

    table = [
        ("admin_b", "post", "/clinics/{clinic_a}/doctors", 403),
        ("d1", "post", "/clinics/{clinic_a}/doctors", 403),
    ]
    _check(world, table, json={"name": "x", "username": "dx", "password": "long enough pw"})


def test_device_mapping_rights(world: World) -> None:
    cuff = world.post(
        f"/households/{world.ids['h1']}/devices",
        "admin_a",
        json={"kind": "blood_pressure_monitor", "serial_number": "CUFF-1"},
    ).json()
    world.ids["cuff"] = cuff["id"]
    slot = {"person_id": str(world.ids["p1"])}
    table = [
        ("r2", "put", "/devices/{cuff}/slots/1", 403),
        ("d1", "put", "/devices/{cuff}/slots/1", 403),
        ("admin_b", "put", "/devices/{cuff}/slots/1", 403),
        ("gateway", "put", "/devices/{cuff}/slots/1", 403),
        ("r1", "put", "/devices/{cuff}/slots/1", 200),
        ("admin_a", "put", "/devices/{cuff}/slots/2", 200),
    ]
    _check(world, table, json=slot)
    table = [
        ("r1", "get", "/households/{h1}/devices", 200),
        ("r2", "get", "/households/{h1}/devices", 403),
        ("d1", "get", "/households/{h1}/devices", 403),
    ]
    _check(world, table)


def test_gateway_sees_only_its_own_config(world: World) -> None:
    table = [
        ("gateway", "get", "/gateways/me/config", 200),
        ("r1", "get", "/gateways/me/config", 403),
        ("admin_a", "get", "/gateways/me/config", 403),
        ("operator", "get", "/gateways/me/config", 403),
        ("gateway", "get", "/households/{h1}", 403),
        ("gateway", "get", "/households/{h1}/devices", 403),
        ("gateway", "get", "/clinics", 403),
        ("booking", "get", "/clinics", 403),
    ]
    _check(world, table)
