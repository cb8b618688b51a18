"""The FHIR API's unit of work: load the rows, check access, audit, map (docs/fhir.md).

Access (``cloud/access.py``, through :class:`~cloud.services.guard.Guard`): a caller reads a
Patient, its Observations and its Devices when they may read the person's household's health
data. Machine roles (gateway, booking backend) are refused outright (403). Otherwise a person,
reading or device out of the caller's reach answers 404, exactly as one that does not exist, so
the API never confirms that an id exists to someone who may not see it (the refusal is still
audited); an operator without a stated purpose gets 403 ``purpose-required``.

Audit (``cloud/audit.py``): every answered read appends one row in the same transaction, with
the person's id: ``patient``, ``observation`` (a search: the person; a read: the Observation
id), ``device``, ``patient-everything``. Refusals are committed on their own.

Efficiency: a page of Observations costs one query per reading kind (keyset on the
``(person_id, kind, effective_at)`` index, see :mod:`cloud.db.repositories.fhir`) plus the
person, scope and audit statements: a constant number per request, whatever the page size or
the depth of the page. The mapping needs nothing else (references are built from ids).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from cloud.access import HouseholdScope
from cloud.audit import Actor, AuditLog
from cloud.crypto import PiiCipher
from cloud.db.models import DeviceRow, GatewayRow, PersonRow, ReadingRow
from cloud.db.repositories import HouseholdRepository
from cloud.db.repositories.fhir import FhirRepository
from cloud.domain import AuditAction, AuditOutcome, Role
from cloud.errors import AccessDeniedError, NotFoundError, PurposeRequiredError
from cloud.fhir.codes import GLS_SAMPLE_TYPE, Loinc, Mdc
from cloud.fhir.identifiers import ObservationPart, parse_device_id, parse_observation_id
from cloud.fhir.model import (
    BLOOD_PRESSURE,
    GLUCOSE,
    DeviceFacts,
    GatewayFacts,
    Json,
    PersonFacts,
    ReadingFacts,
)
from cloud.fhir.observation import observations
from cloud.fhir.resources import disclosure_for, patient, phd_device, phg_device
from cloud.fhir.search import CodeToken, Cursor, Interval, codes_match, parse_dates
from cloud.services.guard import Guard
from cloud.services.persons import _context as pii_context

__all__ = ["FhirService", "ObservationPage", "ObservationQuery", "reading_facts"]

_LOGGER = logging.getLogger(__name__)

_MACHINES = frozenset({Role.GATEWAY, Role.BOOKING_BACKEND})
_PART_INDEX = {p: i for i, p in enumerate(ObservationPart)}
_MIN_BATCH = 200


@dataclass(frozen=True, slots=True)
class ObservationQuery:
    person_id: str
    codes: tuple[tuple[CodeToken, ...], ...] = ()
    dates: Sequence[str] = ()  # raw values: parsed in the household's time zone
    count: int = 50
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class ObservationPage:
    resources: list[Json]
    next_cursor: Cursor | None


def reading_facts(row: ReadingRow) -> ReadingFacts:
    assert row.person_id is not None
    return ReadingFacts(
        row_id=row.id,
        reading_id=row.reading_id,
        kind=row.kind,
        person_id=row.person_id,
        household_id=row.household_id,
        device_id=row.device_id,
        gateway_id=row.gateway_id,
        device_key=row.device_key,
        effective_at=row.effective_at,
        received_at=row.received_at,
        measured_at=row.measured_at,
        device_time=row.device_time,
        clock_skew_s=row.clock_skew_s,
        sequence_number=row.sequence_number,
        user_slot=row.user_slot,
        glucose_mmol_l=row.glucose_mmol_l,
        systolic_mmhg=row.systolic_mmhg,
        diastolic_mmhg=row.diastolic_mmhg,
        mean_arterial_mmhg=row.mean_arterial_mmhg,
        pulse_bpm=row.pulse_bpm,
        original_value=row.original_value,
        original_unit=row.original_unit,
        sample_type=row.sample_type,
        sample_location=row.sample_location,
        meal=row.meal,
        status_bits=row.status_bits,
        flags=frozenset(row.flags or ()),
    )


def _device_facts(row: DeviceRow) -> DeviceFacts:
    return DeviceFacts(
        id=row.id,
        household_id=row.household_id,
        kind=row.kind,
        device_key=row.device_key,
        system_id=row.system_id,
        serial_number=row.serial_number,
        address=row.address,
        model_number=row.model_number,
        manufacturer=row.manufacturer,
        label=row.label,
        owner_person_id=row.owner_person_id,
    )


def _gateway_facts(row: GatewayRow) -> GatewayFacts:
    return GatewayFacts(
        id=row.id,
        uid=row.uid,
        household_id=row.household_id,
        label=row.label,
        revoked=row.revoked_at is not None,
    )


_BP_CODINGS = [
    c.coding()
    for c in (Mdc.BP_PANEL, Loinc.BP_PANEL, Mdc.PULSE_NON_INV, Loinc.HEART_RATE, Mdc.BPM_STATUS)
]
_GLUCOSE_CODINGS = [s.mdc.coding() for s in GLS_SAMPLE_TYPE.values()] + [
    s.loinc.coding() for s in GLS_SAMPLE_TYPE.values() if s.loinc is not None
]


def _kinds_for(codes: tuple[tuple[CodeToken, ...], ...]) -> list[str]:
    """The reading kinds whose Observations can match the code query (a search for one kind's
    codes queries that kind only)."""
    if not codes:
        return [BLOOD_PRESSURE, GLUCOSE]
    return [
        kind
        for kind, codings in ((BLOOD_PRESSURE, _BP_CODINGS), (GLUCOSE, _GLUCOSE_CODINGS))
        if codes_match(codes, codings)
    ]


class FhirService:
    __slots__ = ("_audit", "_cipher", "_clock", "_guard", "_repo", "_session")

    def __init__(self, session: Session, cipher: PiiCipher, clock: Callable[[], datetime]) -> None:
        self._session = session
        self._cipher = cipher
        self._clock = clock
        self._audit = AuditLog(session, clock)
        self._guard = Guard(session, self._audit, clock)
        self._repo = FhirRepository(session)

    # --- access ----------------------------------------------------------------------------
    def _require_reader(self, actor: Actor, resource: str) -> None:
        if actor.principal.role in _MACHINES:
            raise AccessDeniedError("read", resource)

    def _not_found(self, actor: Actor, resource_type: str, resource_id: str) -> NotFoundError:
        self._audit.record_refusal(
            actor, AuditAction.READ, resource_type, resource_id, outcome=AuditOutcome.NOT_FOUND
        )
        return NotFoundError(resource_type, resource_id)

    def _in_reach(
        self,
        actor: Actor,
        household_id: uuid.UUID,
        resource_type: str,
        resource_id: str,
        person_id: uuid.UUID | None,
    ) -> HouseholdScope:
        """The household's scope if ``actor`` may read its health data; else 404 (403 for an
        operator without a purpose). The guard audits the refusal."""
        scope = self._guard.household_scope(household_id)
        try:
            self._guard.require_health_read(
                actor, scope, AuditAction.READ, resource_type, resource_id, person_id
            )
        except PurposeRequiredError:
            raise
        except AccessDeniedError as exc:
            raise NotFoundError(resource_type, resource_id) from exc
        return scope

    def _person(self, actor: Actor, person_ref: str, resource_type: str) -> PersonRow:
        try:
            person_id = uuid.UUID(person_ref)
        except ValueError:
            raise self._not_found(actor, resource_type, person_ref) from None
        row = self._repo.person(person_id)
        if row is None:
            raise self._not_found(actor, resource_type, person_ref)
        self._in_reach(actor, row.household_id, resource_type, person_ref, row.id)
        return row

    def _record(
        self, actor: Actor, resource_type: str, resource_id: str, person: PersonRow
    ) -> None:
        self._audit.record(
            actor,
            AuditAction.READ,
            resource_type,
            resource_id,
            person_id=person.id,
            household_id=person.household_id,
        )

    # --- mapping helpers -------------------------------------------------------------------
    def _patient(self, actor: Actor, row: PersonRow) -> Json:
        disclosure = disclosure_for(actor.principal.role, actor.purpose)
        name = phone = None
        if disclosure.name:
            name = self._cipher.decrypt(row.name_enc, pii_context("name", row.id))
        if disclosure.telecom and row.phone_enc is not None:
            phone = self._cipher.decrypt(row.phone_enc, pii_context("phone", row.id))
        facts = PersonFacts(
            id=row.id,
            household_id=row.household_id,
            sex=row.sex.value,
            birth_year=row.birth_year,
            name=name,
            phone=phone,
        )
        return patient(facts, disclosure)

    def _devices(self, person: PersonRow) -> list[Json]:
        devices = [
            phd_device(_device_facts(d))
            for d in self._repo.devices_of(person.id, person.household_id)
        ]
        gateways = [
            phg_device(_gateway_facts(g)) for g in self._repo.gateways_of(person.household_id)
        ]
        return devices + gateways

    def _page(
        self, person: PersonRow, query: ObservationQuery, interval: Interval
    ) -> ObservationPage:
        """Collect up to ``query.count`` Observations from the cursor on, and where the next
        page starts (None when there is nothing more)."""
        out: list[Json] = []
        if interval.empty:
            return ObservationPage(out, None)
        kinds = _kinds_for(query.codes)
        cursor = query.cursor
        start = None if cursor is None else (cursor.effective_at, cursor.row_id)
        inclusive = True
        batch = max(query.count + 1, _MIN_BATCH) if query.codes else query.count + 1
        while kinds:
            rows = self._repo.readings_page(
                person.id,
                kinds,
                since=interval.since,
                until=interval.until,
                start=start,
                inclusive=inclusive,
                limit=batch,
            )
            for row in rows:
                for part, resource in observations(reading_facts(row)):
                    if (
                        cursor is not None
                        and row.id == cursor.row_id
                        and _PART_INDEX[part] < cursor.part_index
                    ):
                        continue
                    if query.codes and not codes_match(query.codes, resource["code"]["coding"]):
                        continue
                    if len(out) == query.count:
                        return ObservationPage(out, Cursor.at(row.effective_at, row.id, part))
                    out.append(resource)
            if len(rows) < batch:
                break
            start, inclusive = (rows[-1].effective_at, rows[-1].id), False
        return ObservationPage(out, None)

    # --- reads -----------------------------------------------------------------------------
    def read_patient(self, actor: Actor, person_ref: str) -> Json:
        self._require_reader(actor, "patient")
        row = self._person(actor, person_ref, "patient")
        resource = self._patient(actor, row)
        self._record(actor, "patient", person_ref, row)
        self._session.commit()
        return resource

    def search_observations(self, actor: Actor, query: ObservationQuery) -> ObservationPage:
        self._require_reader(actor, "observation")
        row = self._person(actor, query.person_id, "observation")
        # the household row is in the session's identity map since the access check
        household = HouseholdRepository(self._session).get(row.household_id)
        zone = ZoneInfo("Asia/Shanghai" if household is None else household.timezone)
        page = self._page(row, query, parse_dates(query.dates, zone))
        self._record(actor, "observation", query.person_id, row)
        self._session.commit()
        return page

    def read_observation(self, actor: Actor, resource_id: str) -> Json:
        self._require_reader(actor, "observation")
        parsed = parse_observation_id(resource_id)
        reading = None if parsed is None else self._repo.reading(parsed[0])
        if parsed is None or reading is None or reading.person_id is None:
            raise self._not_found(actor, "observation", resource_id)
        assert reading.household_id is not None
        self._in_reach(actor, reading.household_id, "observation", resource_id, reading.person_id)
        found = [res for part, res in observations(reading_facts(reading)) if part is parsed[1]]
        if not found:
            raise self._not_found(actor, "observation", resource_id)
        self._audit.record(
            actor,
            AuditAction.READ,
            "observation",
            resource_id,
            person_id=reading.person_id,
            household_id=reading.household_id,
        )
        self._session.commit()
        return found[0]

    def search_devices(self, actor: Actor, person_ref: str) -> list[Json]:
        self._require_reader(actor, "device")
        row = self._person(actor, person_ref, "device")
        resources = self._devices(row)
        self._record(actor, "device", person_ref, row)
        self._session.commit()
        return resources

    def read_device(self, actor: Actor, resource_id: str) -> Json:
        self._require_reader(actor, "device")
        parsed = parse_device_id(resource_id)
        if parsed is None:
            raise self._not_found(actor, "device", resource_id)
        kind, row_id = parsed
        if kind == "phd":
            device = self._repo.device(row_id)
            if device is None:
                raise self._not_found(actor, "device", resource_id)
            self._in_reach(actor, device.household_id, "device", resource_id, None)
            resource = phd_device(_device_facts(device))
            household_id = device.household_id
        else:
            gateway = self._repo.gateway(row_id)
            if gateway is None:
                raise self._not_found(actor, "device", resource_id)
            self._in_reach(actor, gateway.household_id, "device", resource_id, None)
            resource = phg_device(_gateway_facts(gateway))
            household_id = gateway.household_id
        self._audit.record(
            actor, AuditAction.READ, "device", resource_id, household_id=household_id
        )
        self._session.commit()
        return resource

    def everything(
        self, actor: Actor, person_ref: str, count: int, cursor: Cursor | None
    ) -> tuple[Json | None, list[Json], ObservationPage]:
        """The Patient and its Devices (first page only) and a page of its Observations."""
        self._require_reader(actor, "patient-everything")
        row = self._person(actor, person_ref, "patient-everything")
        first = cursor is None
        resource = self._patient(actor, row) if first else None
        devices = self._devices(row) if first else []
        page = self._page(row, ObservationQuery(person_ref, count=count, cursor=cursor), Interval())
        self._record(actor, "patient-everything", person_ref, row)
        self._session.commit()
        _LOGGER.debug("patient %s: $everything page of %d", row.id, len(page.resources))
        return resource, devices, page
