"""A small provisioned world, built through the REST API (so building it tests provisioning).

Clinic A has doctors d1 and d2 and households h1 (signed with d1) and h2 (signed with d2);
clinic B has doctor d3 and household h3 (not signed). Each household has one person; h1 and h2
have a resident account; h1 has a gateway. Logins for every role are in ``headers``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from cloud.domain import Role
from cloud.services.directory import DirectoryService

PASSWORD = "correct horse battery"

# GB 11643-1999 check: weights and check characters written out (not imported from the code).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def resident_id(area: str, birth: str, seq: str) -> str:
    """A valid synthetic resident ID number: 6-digit area, YYYYMMDD, 3-digit sequence."""
    first17 = area + birth + seq
    assert len(first17) == 17
    return first17 + _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


@dataclass
class World:
    client: TestClient
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    gateway_password: str = ""
    gateway_uid: str = ""
    id_numbers: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self._h(who, kwargs), **kwargs)

    def post(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.post(path, headers=self._h(who, kwargs), **kwargs)

    def put(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.put(path, headers=self._h(who, kwargs), **kwargs)

    def delete(self, path: str, who: str, **kwargs: Any) -> Any:
        return self.client.delete(path, headers=self._h(who, kwargs), **kwargs)

    def _h(self, who: str, kwargs: dict[str, Any]) -> dict[str, str]:
        return {**self.headers.get(who, {}), **kwargs.pop("headers", {})}


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create_operator(client: TestClient, username: str = "op") -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.session_factory() as session:
        DirectoryService(session, runtime.passwords, runtime.clock).create_machine_user(
            None, username, PASSWORD, Role.OPERATOR
        )


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def build_world(client: TestClient) -> World:
    w = World(client)
    create_operator(client)
    w.headers["operator"] = login(client, "op")
    op = "operator"

    for clinic in ("a", "b"):
        body = _ok(w.post("/clinics", op, json={"code": f"c-{clinic}", "name": f"社区{clinic}"}))
        w.ids[f"clinic_{clinic}"] = uuid.UUID(body["id"])
        _ok(
            w.post(
                f"/clinics/{body['id']}/admins",
                op,
                json={"username": f"admin_{clinic}", "password": PASSWORD},
            )
        )
        w.headers[f"admin_{clinic}"] = login(client, f"admin_{clinic}")

    for name, clinic in (("d1", "a"), ("d2", "a"), ("d3", "b")):
        body = _ok(
            w.post(
                f"/clinics/{w.ids[f'clinic_{clinic}']}/doctors",
                f"admin_{clinic}",
                json={
                    "name": f"医生{name}",
                    "title": "主治医师",
                    "username": name,
                    "password": PASSWORD,
                },
            )
        )
        w.ids[name] = uuid.UUID(body["id"])
        w.headers[name] = login(client, name)

    for name, clinic in (("h1", "a"), ("h2", "a"), ("h3", "b")):
        body = _ok(
            w.post(
                f"/clinics/{w.ids[f'clinic_{clinic}']}/households",
                f"admin_{clinic}",
                json={"code": f"HH-{name}"},
            )
        )
        w.ids[name] = uuid.UUID(body["id"])

    people = {
        "p1": ("h1", "a", "张三", resident_id("110105", "19580314", "021")),
        "p2": ("h2", "a", "李四", resident_id("310104", "19621102", "047")),
        "p3": ("h3", "b", "王五", resident_id("440305", "19700101", "013")),
    }
    for name, (household, clinic, person_name, id_number) in people.items():
        body = _ok(
            w.post(
                f"/households/{w.ids[household]}/persons",
                f"admin_{clinic}",
                json={
                    "name": person_name,
                    "id_type": "cn_resident",
                    "id_number": id_number,
                    "phone": "13800138000",
                    "address": "北京市朝阳区幸福路 1 号",
                    "birth_year": int(id_number[6:10]),
                    "sex": "female",
                },
            )
        )
        w.ids[name] = uuid.UUID(body["id"])
        w.id_numbers[name] = id_number

    for household, doctor in (("h1", "d1"), ("h2", "d2")):
        body = _ok(
            w.post(
                f"/households/{w.ids[household]}/contracts",
                "admin_a",
                json={"doctor_id": str(w.ids[doctor]), "starts_on": "2026-01-01"},
            )
        )
        w.ids[f"contract_{household}"] = uuid.UUID(body["id"])

    for resident, household in (("r1", "h1"), ("r2", "h2")):
        _ok(
            w.post(
                f"/households/{w.ids[household]}/residents",
                "admin_a",
                json={"username": resident, "password": PASSWORD},
            )
        )
        w.headers[resident] = login(client, resident)

    body = _ok(w.post(f"/households/{w.ids['h1']}/gateways", "admin_a", json={"label": "客厅"}))
    w.ids["g1"] = uuid.UUID(body["gateway"]["id"])
    w.gateway_uid = body["mqtt_username"]
    w.gateway_password = body["mqtt_password"]
    w.headers["gateway"] = login(client, w.gateway_uid, w.gateway_password)

    _ok(
        w.post(
            "/users",
            op,
            json={"username": "booking", "password": PASSWORD, "role": "booking_backend"},
        )
    )
    w.headers["booking"] = login(client, "booking")
    return w
