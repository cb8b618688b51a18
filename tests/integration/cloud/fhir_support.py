"""Helpers of the FHIR API tests: validation with ``fhir.resources`` (R4B models, which match
R4 for every resource we serve), a household with devices and readings stored through the real
ingest path, and a statement counter."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from sqlalchemy import event

from cloud.ingest.store import BatchStore, Inbound
from device_drivers.model import BloodPressureReading, ReadingFlag
from gateway import contract as c
from tests.integration.cloud.ingest_world import CUFF, METER, envelope, glucose, readings_topic
from tests.integration.cloud.world import World

_MODELS: dict[str, Any] = {
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "Device": Device,
    "Observation": Observation,
    "OperationOutcome": OperationOutcome,
    "Patient": Patient,
}


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate a resource (and every resource inside a Bundle) against the R4B models."""
    model = _MODELS[resource["resourceType"]]
    model.model_validate(resource)
    for entry in resource.get("entry", ()):
        validate(entry["resource"])
    return resource


def fhir_json(response: Any, status: int = 200) -> dict[str, Any]:
    """The response's FHIR body, after checking status, content type and validity."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/fhir+json")
    return validate(response.json())


def bp_reading(
    user_id: int,
    systolic: float,
    diastolic: float,
    *,
    minutes: float,
    unit: str = "mmHg",
    pulse: float | None = 70.0,
    flags: frozenset[ReadingFlag] = frozenset(),
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
        unit,
        user_id=user_id,
        clock_skew_s=-12.5,
        flags=flags,
    )
    return c.from_reading(reading, None)


@dataclass
class FhirWorld:
    world: World
    store: BatchStore
    ids: dict[str, str] = field(default_factory=dict)
    mid: int = 0

    def ingest(self, readings: list[c.ReadingMessage]) -> None:
        """Store readings as the ingest workers do: an envelope on the gateway's topic through
        the batch store (attribution from the database, idempotent insert, commit)."""
        uid = self.world.gateway_uid
        for start in range(0, len(readings), c.MAX_READINGS_PER_ENVELOPE):
            self.mid += 1
            chunk = readings[start : start + c.MAX_READINGS_PER_ENVELOPE]
            payload = envelope(chunk, message_id=f"m-{self.mid}", gateway_id=uid)
            outcome = self.store.process(
                [Inbound(readings_topic(uid), payload, time.time(), self.mid)]
            )
            assert outcome.dead_letters == 0


def build_fhir_world(world: World, client: TestClient) -> FhirWorld:
    """h1 gets the meter (owned by p1) and the cuff (user 1 -> p1) registered over the API."""
    h1 = world.ids["h1"]
    meter = world.post(
        f"/households/{h1}/devices",
        "admin_a",
        json={
            "kind": "glucose_meter",
            "system_id": METER.system_id,
            "serial_number": METER.serial_number,
            "model_number": METER.model_number,
            "manufacturer": METER.manufacturer,
            "label": "血糖仪",
            "owner_person_id": str(world.ids["p1"]),
        },
    )
    assert meter.status_code == 201, meter.text
    cuff = world.post(
        f"/households/{h1}/devices",
        "admin_a",
        json={
            "kind": "blood_pressure_monitor",
            "serial_number": CUFF.serial_number,
            "model_number": CUFF.model_number,
            "manufacturer": CUFF.manufacturer,
            "address": CUFF.address,
        },
    )
    assert cuff.status_code == 201, cuff.text
    slot = world.put(
        f"/devices/{cuff.json()['id']}/slots/1", "r1", json={"person_id": str(world.ids["p1"])}
    )
    assert slot.status_code == 200, slot.text
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    fw = FhirWorld(world, BatchStore(runtime.session_factory, runtime.clock))
    fw.ids.update(meter=meter.json()["id"], cuff=cuff.json()["id"])
    return fw


def glucose_series(n: int, *, start_seq: int = 1) -> list[c.ReadingMessage]:
    return [glucose(start_seq + i, 5.0 + (i % 40) / 10, minutes=30.0 * i) for i in range(n)]


@dataclass
class StatementCounter:
    count: int = 0
    statements: list[tuple[str, Any]] = field(default_factory=list)


@contextmanager
def count_statements(client: TestClient) -> Iterator[StatementCounter]:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    counter = StatementCounter()

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        counter.count += 1
        counter.statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(client: TestClient, statement: str, parameters: Any) -> str:
    """The database's plan of a captured statement (EXPLAIN QUERY PLAN / EXPLAIN)."""
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            cursor.execute("ANALYZE readings")
            cursor.execute("EXPLAIN " + statement, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(row) for row in cursor.fetchall())
    finally:
        raw.close()


def random_id() -> str:
    return str(uuid.uuid4())
