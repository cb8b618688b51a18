"""Storage on SQLite and PostgreSQL: idempotent reading inserts (also from two sessions at once),
per-person time queries, bounded dead letters, identifiers encrypted at rest (the raw SQLite
file holds none in clear), key rotation, the blind index, and migrations matching the models."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.crypto import PiiCipher
from cloud.db.base import Base
from cloud.db.engine import make_engine, make_session_factory
from cloud.db.migrate import alembic_config, current_revision, head_revision, upgrade
from cloud.db.models import (
    DEAD_LETTER_MAX_PAYLOAD,
    AuditRow,
    ClinicRow,
    HouseholdRow,
    PersonRow,
    ReadingRow,
)
from cloud.db.repositories import DeadLetterRepository, ReadingQuery, ReadingRepository
from cloud.db.repositories.readings import NewReading
from cloud.domain import AuditAction
from cloud.errors import CryptoError
from cloud.main import create_app
from cloud.runtime import Runtime
from cloud.services.persons import PersonService
from cloud.settings import (
    DEV_BLIND_INDEX_KEY_B64,
    DEV_KEYRING_B64,
    CloudSettings,
    CryptoSettings,
    DatabaseSettings,
)
from tests.integration.cloud.conftest import FakeClock, make_settings
from tests.integration.cloud.world import World, build_world

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def _household(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    clinic = ClinicRow(code="c", name="c", timezone="Asia/Shanghai", created_at=T0)
    session.add(clinic)
    session.flush()
    household = HouseholdRow(clinic_id=clinic.id, code="h", timezone="Asia/Shanghai", created_at=T0)
    session.add(household)
    session.flush()
    person = PersonRow(
        household_id=household.id, name_enc=b"\x01", pii_key_id="x", created_at=T0, updated_at=T0
    )
    session.add(person)
    session.commit()
    return household.id, person.id


def _reading(
    n: int, person_id: uuid.UUID | None, household_id: uuid.UUID, **kw: object
) -> NewReading:
    at = T0 + timedelta(hours=n)
    values: dict[str, object] = {
        "reading_id": f"{n:032x}",
        "kind": "glucose_meter",
        "device_key": "sysid:0011223344556677",
        "received_at": at + timedelta(minutes=5),
        "effective_at": at,
        "measured_at": at,
        "stored_at": at + timedelta(minutes=6),
        "household_id": household_id,
        "person_id": person_id,
        "sequence_number": n,
        "glucose_mmol_l": 5.0 + n / 10,
        "flags": ("clock_uncorrected",),
    }
    values.update(kw)
    return NewReading(**values)


def test_reading_insert_is_idempotent_on_reading_id(raw_session: Session) -> None:
    household, person = _household(raw_session)
    repo = ReadingRepository(raw_session)
    first = [_reading(n, person, household) for n in (1, 2, 3)]
    assert repo.insert_many(first) == {r.reading_id for r in first}
    raw_session.commit()
    # a redelivery of 2 and 3 (with different values: the first stored copy wins) plus one new
    again = [
        _reading(2, person, household, glucose_mmol_l=9.9),
        _reading(3, person, household),
        _reading(4, person, household),
    ]
    assert repo.insert_many(again) == {f"{4:032x}"}
    raw_session.commit()
    assert raw_session.scalar(select(func.count()).select_from(ReadingRow)) == 4
    stored = repo.get(f"{2:032x}")
    assert stored is not None
    assert stored.glucose_mmol_l == pytest.approx(5.2)
    assert stored.flags == ["clock_uncorrected"]
    assert stored.effective_at == T0 + timedelta(hours=2)
    assert repo.insert_many([]) == set()


def test_two_sessions_inserting_the_same_readings_store_each_once(db_url: str) -> None:
    engine = make_engine(DatabaseSettings(url=db_url))
    factory = make_session_factory(engine)
    with factory() as setup:
        household, person = _household(setup)
    results: dict[str, set[str]] = {}

    def second_worker() -> None:
        with factory() as session:
            batch = [_reading(n, person, household) for n in (2, 3)]
            results["b"] = ReadingRepository(session).insert_many(batch)
            session.commit()

    with factory() as first:
        results["a"] = ReadingRepository(first).insert_many(
            [_reading(n, person, household) for n in (1, 2)]
        )
        worker = threading.Thread(target=second_worker)
        worker.start()
        time.sleep(0.3)  # the second worker is now waiting on our uncommitted rows
        first.commit()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert results["a"] == {f"{1:032x}", f"{2:032x}"}
    assert results["b"] == {f"{3:032x}"}
    with factory() as check:
        assert check.scalar(select(func.count()).select_from(ReadingRow)) == 3
    engine.dispose()


def test_person_time_queries(raw_session: Session) -> None:
    household, person = _household(raw_session)
    repo = ReadingRepository(raw_session)
    repo.insert_many(
        [_reading(n, person, household) for n in range(10)]
        + [_reading(20, person, household, kind="blood_pressure_monitor", systolic_mmhg=150.0)]
        + [_reading(30, None, household)]
    )
    raw_session.commit()
    newest = repo.for_person(ReadingQuery(person_id=person, kind="glucose_meter", limit=3))
    assert [r.sequence_number for r in newest] == [9, 8, 7]
    window = repo.for_person(
        ReadingQuery(person_id=person, since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=5))
    )
    assert [r.sequence_number for r in window] == [4, 3, 2]
    everything = repo.for_person(ReadingQuery(person_id=person))
    assert len(everything) == 11
    assert everything[0].kind == "blood_pressure_monitor"
    assert [r.sequence_number for r in repo.unassigned(household)] == [30]


def test_dead_letters_keep_a_bounded_payload(raw_session: Session) -> None:
    repo = DeadLetterRepository(raw_session)
    big = os.urandom(DEAD_LETTER_MAX_PAYLOAD + 1000)
    row = repo.add(
        topic="anjia/v1/gw/x/up/readings",
        reason="too_large",
        payload=big,
        received_at=T0,
        gateway_uid="x",
        detail="d" * 900,
    )
    raw_session.commit()
    (stored,) = repo.recent()
    assert stored.id == row.id
    assert stored.payload_size == len(big)
    assert stored.payload == big[:DEAD_LETTER_MAX_PAYLOAD]
    assert len(stored.detail) == 500


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_raw_sqlite_file_holds_no_identifier_in_clear(db_url: str, clock: FakeClock) -> None:
    app = create_app(make_settings(db_url), clock=clock)
    with TestClient(app) as client:
        world = build_world(client)
        phone = "13912345678"
        extra = world.post(
            f"/households/{world.ids['h1']}/persons",
            "admin_a",
            json={
                "name": "欧阳娜娜",
                "id_type": "passport",
                "id_number": "E12345678",
                "phone": phone,
                "address": "上海市浦东新区世纪大道 100 号",
            },
        )
        assert extra.status_code == 201
    # the app is shut down: its engine is disposed and the WAL checkpointed into the file
    path = Path(db_url.removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    assert b"HH-h1" in raw  # not vacuous: clear text that is not personal is found
    assert "社区a".encode() in raw
    secrets = [
        "张三",
        "李四",
        "王五",
        "欧阳娜娜",
        "E12345678",
        phone,
        "13800138000",
        "北京市朝阳区幸福路",
        "上海市浦东新区世纪大道",
        *world.id_numbers.values(),
    ]
    for secret in secrets:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in raw, secret


def _rotation_settings(db_url: str, keys: dict[str, bytes | str], current: str) -> CloudSettings:
    return make_settings(
        db_url,
        crypto=CryptoSettings(
            keys={
                k: v if isinstance(v, str) else base64.b64encode(v).decode()
                for k, v in keys.items()
            },
            current_key_id=current,
            blind_index_key=DEV_BLIND_INDEX_KEY_B64,
        ),
    )


def test_key_rotation_reencrypts_and_old_key_can_be_retired(
    world: World, db_url: str, clock: FakeClock
) -> None:
    new_key = os.urandom(32)
    both = _rotation_settings(db_url, {"dev1": DEV_KEYRING_B64["dev1"], "k2": new_key}, "k2")
    runtime = Runtime.build(both, clock)
    try:
        with runtime.session_factory() as session:
            service = PersonService(session, runtime.cipher, runtime.blind_index, clock)
            assert service.rotate_keys(batch_size=2) == 3
            assert service.rotate_keys() == 0  # nothing left: safe to run again
            rows = session.scalars(select(PersonRow)).all()
            assert {r.pii_key_id for r in rows} == {"k2"}
            assert all(runtime.cipher.key_id_of(r.name_enc) == "k2" for r in rows)
            rotations = session.scalar(
                select(func.count()).where(AuditRow.action == AuditAction.ROTATE)
            )
            assert rotations == 3
    finally:
        runtime.close()
    # the old key is gone from the keyring: everything still reads
    only_new = _rotation_settings(db_url, {"k2": new_key}, "k2")
    with TestClient(create_app(only_new, clock=clock)) as client:
        token = client.post(
            "/auth/token", data={"username": "d1", "password": "correct horse battery"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        persons = client.get(f"/households/{world.ids['h1']}/persons", headers=headers)
        assert persons.status_code == 200
        assert [p["name"] for p in persons.json()] == ["张三"]
        lookup = client.post(
            "/persons/lookup", headers=headers, json={"id_number": world.id_numbers["p1"]}
        )
        assert lookup.status_code == 200


def test_a_wrong_key_never_yields_plausible_data(
    world: World, db_url: str, clock: FakeClock
) -> None:
    wrong = _rotation_settings(db_url, {"dev1": os.urandom(32)}, "dev1")
    with TestClient(create_app(wrong, clock=clock), raise_server_exceptions=False) as client:
        token = client.post(
            "/auth/token", data={"username": "d1", "password": "correct horse battery"}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        r = client.get(f"/households/{world.ids['h1']}/persons", headers=headers)
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        assert "张三" not in r.text


def test_ciphertexts_are_bound_to_their_row_and_column(world: World, session: Session) -> None:
    p1 = session.get(PersonRow, world.ids["p1"])
    p2 = session.get(PersonRow, world.ids["p2"])
    assert p1 is not None
    assert p2 is not None
    cipher = PiiCipher({"dev1": base64.b64decode(DEV_KEYRING_B64["dev1"])}, "dev1")
    assert cipher.decrypt(p1.name_enc, f"persons.name:{p1.id}") == "张三"
    with pytest.raises(CryptoError):
        cipher.decrypt(p1.name_enc, f"persons.name:{p2.id}")  # copied to another row
    with pytest.raises(CryptoError):
        cipher.decrypt(p1.name_enc, f"persons.phone:{p1.id}")  # copied to another column


def test_blind_index_finds_a_person_by_any_spelling_of_the_number(world: World) -> None:
    number = world.id_numbers["p1"]
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in number)
    spaced = f"{number[:6]} {number[6:14]}-{number[14:]}".lower()
    for spelling in (number, full_width, spaced):
        r = world.post("/persons/lookup", "admin_a", json={"id_number": spelling})
        assert r.status_code == 200, (spelling, r.text)
        assert r.json()["id"] == str(world.ids["p1"])
    other_type = world.post(
        "/persons/lookup", "admin_a", json={"id_type": "passport", "id_number": number}
    )
    assert other_type.status_code == 404


def test_migrations_match_the_models_and_downgrade_cleanly(db_url: str) -> None:
    engine = make_engine(DatabaseSettings(url=db_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
