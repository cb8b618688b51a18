"""The ingest's readings insert (values in the database's own representation through the
driver, cloud/db/repositories/reading_rows.py) stores exactly what SQLAlchemy's column types
store, on SQLite and PostgreSQL: the raw stored values and the rows read back through the ORM
are compared with the Core insert's, for a reading with every field and one with none."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from cloud.db.models import (
    ClinicRow,
    DeadLetterRow,
    DeviceRow,
    GatewayRow,
    HouseholdRow,
    PersonRow,
    ReadingRow,
)
from cloud.db.repositories import DeadLetterRepository, ReadingRepository
from cloud.db.repositories.reading_rows import COLUMNS, RowEncoder
from cloud.db.repositories.readings import NewReading

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))


@dataclasses.dataclass(frozen=True)
class Ids:
    household: uuid.UUID
    person: uuid.UUID
    gateway: uuid.UUID
    device: uuid.UUID


def _provision(session: Session) -> Ids:
    clinic = ClinicRow(code="c-rows", name="社区", created_at=T0)
    session.add(clinic)
    session.flush()
    household = HouseholdRow(clinic_id=clinic.id, code="HH-ROWS", created_at=T0)
    session.add(household)
    session.flush()
    person = PersonRow(
        household_id=household.id, name_enc=b"\x01", pii_key_id="x", created_at=T0, updated_at=T0
    )
    gateway = GatewayRow(
        uid="gw-rows", household_id=household.id, mqtt_password_hash="x", enrolled_at=T0
    )
    session.add_all([person, gateway])
    session.flush()
    device = DeviceRow(
        household_id=household.id,
        device_key="sysid:0011223344556677",
        kind="glucose_meter",
        system_id="0011223344556677",
        owner_person_id=person.id,
        created_at=T0,
    )
    session.add(device)
    session.commit()
    return Ids(household.id, person.id, gateway.id, device.id)


def _full(reading_id: str, ids: Ids) -> NewReading:
    """Every column set, with the awkward cases: a time in another zone, microseconds, a
    time with none, non-ASCII text in JSON, a float that is not exact in binary, big ints."""
    measured = datetime(2026, 3, 1, 9, 15, 30, 123456, tzinfo=SHANGHAI)  # 01:15:30 UTC
    return NewReading(
        reading_id=reading_id,
        kind="glucose_meter",
        device_key="sysid:0011223344556677",
        received_at=datetime(2026, 3, 1, 1, 16, tzinfo=UTC),
        effective_at=measured,
        stored_at=datetime(2026, 3, 1, 1, 16, 0, 999, tzinfo=UTC),
        household_id=ids.household,
        person_id=ids.person,
        gateway_id=ids.gateway,
        device_id=ids.device,
        attribution="enrolled",
        sequence_number=2**40 + 7,
        user_slot=2,
        device_time="2026-03-01T09:15:30",
        measured_at=measured,
        clock_skew_s=-12.25,
        glucose_mmol_l=5.1,
        systolic_mmhg=121.5,
        diastolic_mmhg=79.0,
        mean_arterial_mmhg=93.2,
        pulse_bpm=64.0,
        original_value=0.0041999999999999996,
        original_unit="mol/L",
        sample_type=1,
        sample_location=15,
        meal=2,
        context={"meal": 2, "tester": 1, "carbohydrate_g": 45.5, "note": "饭后"},
        status_bits=0x1FFFF,
        flags=("clock_uncorrected", "值"),
        urgent=True,
    )


def _bare(reading_id: str) -> NewReading:
    """Only what a row must have: the optional columns as None / defaults."""
    return NewReading(
        reading_id=reading_id,
        kind="blood_pressure_monitor",
        device_key="addr:C0:00:00:00:00:01",
        received_at=T0,
        effective_at=T0,
        stored_at=T0 + timedelta(seconds=1),
    )


def _stored(session: Session, reading_id: str) -> dict[str, Any]:
    """Every column as the database holds it: SQLite's value and storage class, PostgreSQL's
    text form of the value."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        exprs = ", ".join(f"{c}, typeof({c})" for c in COLUMNS)
    else:
        exprs = ", ".join(f"{c}::text" for c in COLUMNS)
    row = session.execute(
        text(f"SELECT {exprs} FROM readings WHERE reading_id = :r"),
        {"r": reading_id},
    ).one()
    values = tuple(row)
    step = 2 if dialect == "sqlite" else 1
    return {c: values[i * step : (i + 1) * step] for i, c in enumerate(COLUMNS)}


def _orm(session: Session, reading_id: str) -> dict[str, Any]:
    session.expire_all()
    row = session.scalars(select(ReadingRow).where(ReadingRow.reading_id == reading_id)).one()
    return {c: getattr(row, c) for c in COLUMNS}


@pytest.mark.parametrize("make", [_full, _bare], ids=["every-field", "no-optional-field"])
def test_driver_insert_stores_what_sqlalchemy_stores(raw_session: Session, make: Any) -> None:
    ids = _provision(raw_session)
    repo = ReadingRepository(raw_session)

    def build(reading_id: str) -> NewReading:
        return make(reading_id, ids) if make is _full else make(reading_id)

    assert repo.insert_many([build("a" * 32)]) == {"a" * 32}  # the driver path
    assert repo.insert_many_core([build("b" * 32)]) == {"b" * 32}  # SQLAlchemy's types
    raw_session.commit()

    fast, reference = _stored(raw_session, "a" * 32), _stored(raw_session, "b" * 32)
    assert fast.pop("reading_id") != reference.pop("reading_id")
    assert fast == reference
    fast_orm, reference_orm = _orm(raw_session, "a" * 32), _orm(raw_session, "b" * 32)
    fast_orm.pop("reading_id"), reference_orm.pop("reading_id")
    assert fast_orm == reference_orm
    expected = build("a" * 32).values()
    expected.pop("reading_id")
    assert fast_orm == expected  # and it is the reading that was given (times as UTC)
    if make is _full:
        assert fast_orm["measured_at"].tzinfo is UTC
        assert fast_orm["measured_at"] == datetime(2026, 3, 1, 1, 15, 30, 123456, tzinfo=UTC)


def test_columns_are_the_new_reading_fields() -> None:
    assert sorted(COLUMNS) == sorted(f.name for f in dataclasses.fields(NewReading))
    table_columns = [c.name for c in ReadingRow.__table__.columns if c.name != "id"]
    assert sorted(COLUMNS) == sorted(table_columns)


def test_duplicates_are_told_apart_without_undoing_the_transaction(raw_session: Session) -> None:
    """SQLite counts the rows stored; fewer than given rolls back only its savepoint and asks
    again with RETURNING. Work done earlier in the same transaction stays."""
    ids = _provision(raw_session)
    repo = ReadingRepository(raw_session)
    encoder = RowEncoder()
    assert repo.insert_many([_full("1" * 32, ids), _bare("2" * 32)], encoder=encoder) == {
        "1" * 32,
        "2" * 32,
    }
    raw_session.commit()
    DeadLetterRepository(raw_session).add(
        topic="t", reason="r", payload=b"x", received_at=T0, gateway_uid="gw-rows"
    )
    again = [_bare("2" * 32), _bare("3" * 32), _full("1" * 32, ids), _bare("4" * 32)]
    assert repo.insert_many(again, encoder=encoder) == {"3" * 32, "4" * 32}
    raw_session.commit()
    assert raw_session.scalar(select(func.count()).select_from(ReadingRow)) == 4
    assert raw_session.scalar(select(func.count()).select_from(DeadLetterRow)) == 1


def test_errors_are_sqlalchemy_errors(raw_session: Session) -> None:
    """The store tells transient from poison by SQLAlchemy's exception classes."""
    ids = _provision(raw_session)
    repo = ReadingRepository(raw_session)
    naive = dataclasses.replace(_bare("5" * 32), received_at=datetime(2026, 3, 1))
    with pytest.raises(StatementError, match="naive datetime"):
        repo.insert_many([naive])
    raw_session.rollback()
    orphan = dataclasses.replace(_full("6" * 32, ids), person_id=uuid.uuid4())
    with pytest.raises(IntegrityError):
        repo.insert_many([orphan])
    raw_session.rollback()
    assert raw_session.scalar(select(func.count()).select_from(ReadingRow)) == 0
