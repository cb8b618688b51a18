"""A small household for the ingest, FHIR and mirror tests, written straight into the database,
plus builders of contract messages.

Household ``h1`` (gateway ``gw-demo-0001``, the golden wire files' gateway) has persons ``mum``
and ``dad``, the golden files' glucose meter (System ID, owned by mum), the golden files' cuff
(serial number; user 1 -> dad, user 2 -> mum) and an unowned meter (address only). Household
``h2`` has gateway ``gw-other-0002`` and person ``p2``; ``gw-revoked-03`` is revoked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from cloud.db.models import (
    ClinicRow,
    CuffSlotRow,
    DeviceRow,
    GatewayRow,
    HouseholdRow,
    PersonRow,
)
from cloud.passwords import mosquitto_hash
from device_drivers.model import (
    BloodPressureReading,
    DeviceIdentity,
    DeviceKind,
    GlucoseContext,
    GlucoseReading,
    ReadingFlag,
)
from gateway import contract as c

WIRE = Path(__file__).parents[2] / "vectors" / "wire"
GW = "gw-demo-0001"
GW_OTHER = "gw-other-0002"
GW_REVOKED = "gw-revoked-03"
T0 = datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
METER = DeviceIdentity(
    "C0:11:22:33:44:01",
    DeviceKind.GLUCOSE_METER,
    system_id="0011223344556677",
    serial_number="GM20260001",
    model_number="GM-1",
    manufacturer="Anjia Sim",
)
CUFF = DeviceIdentity(
    "C0:11:22:33:44:02",
    DeviceKind.BLOOD_PRESSURE_MONITOR,
    serial_number="BP20260002",
    model_number="BP-2",
    manufacturer="Anjia Sim",
)
STRAY_METER = DeviceIdentity("C0:11:22:33:44:09", DeviceKind.GLUCOSE_METER)
UNOWNED_METER = DeviceIdentity("C0:11:22:33:44:07", DeviceKind.GLUCOSE_METER)


@dataclass
class IngestWorld:
    ids: dict[str, uuid.UUID] = field(default_factory=dict)
    gateway_passwords: dict[str, str] = field(default_factory=dict)


def seed(factory: sessionmaker[Session], *, hash_iterations: int = 10) -> IngestWorld:
    world = IngestWorld()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with factory() as session:
        clinic = ClinicRow(code="c-ingest", name="社区", created_at=now)
        session.add(clinic)
        session.flush()
        households = {}
        for name in ("h1", "h2"):
            household = HouseholdRow(clinic_id=clinic.id, code=f"HH-{name}", created_at=now)
            session.add(household)
            session.flush()
            households[name] = household
            world.ids[name] = household.id
        for name, household in (("mum", "h1"), ("dad", "h1"), ("p2", "h2")):
            person = PersonRow(
                household_id=households[household].id,
                name_enc=b"\x00",
                pii_key_id="dev1",
                created_at=now,
                updated_at=now,
            )
            session.add(person)
            session.flush()
            world.ids[name] = person.id
        for uid, household, revoked in (
            (GW, "h1", False),
            (GW_OTHER, "h2", False),
            (GW_REVOKED, "h2", True),
        ):
            password = f"pw-{uid}"
            gateway = GatewayRow(
                uid=uid,
                household_id=households[household].id,
                mqtt_password_hash=mosquitto_hash(password, hash_iterations),
                enrolled_at=now,
                revoked_at=now if revoked else None,
            )
            session.add(gateway)
            session.flush()
            world.ids[uid] = gateway.id
            world.gateway_passwords[uid] = password
        devices = (
            ("meter", METER, world.ids["mum"], "血糖仪"),
            ("cuff", CUFF, None, "血压计"),
            ("unowned", UNOWNED_METER, None, ""),
        )
        for name, identity, owner, label in devices:
            row = DeviceRow(
                household_id=households["h1"].id,
                device_key=identity.key,
                kind=identity.kind.value,
                system_id=identity.system_id,
                serial_number=identity.serial_number,
                address=identity.address if name == "unowned" else None,
                model_number=identity.model_number,
                manufacturer=identity.manufacturer,
                label=label,
                owner_person_id=owner,
                created_at=now,
            )
            session.add(row)
            session.flush()
            world.ids[name] = row.id
        for user_id, person in ((1, "dad"), (2, "mum")):
            session.add(
                CuffSlotRow(
                    device_id=world.ids["cuff"], user_id=user_id, person_id=world.ids[person]
                )
            )
        session.commit()
    return world


# --- messages ---------------------------------------------------------------------------------
def glucose(
    seq: int,
    value: float | None = 6.0,
    *,
    device: DeviceIdentity = METER,
    minutes: float = 0.0,
    meal: int | None = 1,
    flags: frozenset[ReadingFlag] = frozenset(),
) -> c.ReadingMessage:
    device_time = datetime(2026, 3, 1, 8, 0) + timedelta(minutes=minutes)
    measured = device_time.replace(tzinfo=UTC) - timedelta(hours=8)
    reading = GlucoseReading(
        device,
        seq,
        device_time,
        measured,
        measured + timedelta(minutes=5),
        value,
        None if value is None else value / 1000.0,
        "mol/L",
        sample_type=1,
        sample_location=1,
        context=None if meal is None else GlucoseContext(meal=meal),
        flags=flags,
    )
    return c.from_reading(reading, None)


def bp(
    user_id: int | None,
    systolic: float = 128.0,
    diastolic: float = 82.0,
    *,
    minutes: float = 0.0,
    pulse: float | None = 70.0,
    flags: frozenset[ReadingFlag] = frozenset(),
    status_bits: int = 0,
) -> c.ReadingMessage:
    device_time = datetime(2026, 3, 1, 9, 0) + timedelta(minutes=minutes)
    measured = device_time.replace(tzinfo=UTC) - timedelta(hours=8)
    reading = BloodPressureReading(
        CUFF,
        device_time,
        measured,
        measured + timedelta(minutes=1),
        systolic,
        diastolic,
        round((systolic + 2 * diastolic) / 3, 1),
        pulse,
        "mmHg",
        user_id=user_id,
        measurement_status=status_bits,
        flags=flags,
    )
    return c.from_reading(reading, None)


def envelope(
    readings: list[c.ReadingMessage], message_id: str = "m-1", gateway_id: str = GW
) -> bytes:
    return c.encode(
        c.ReadingEnvelope(
            schema_version=c.SCHEMA_VERSION,
            message_id=message_id,
            gateway_id=gateway_id,
            sent_at=T0,
            readings=tuple(readings),
        )
    )


def readings_topic(gateway_id: str = GW) -> str:
    return c.topic(gateway_id, c.Channel.READINGS)
