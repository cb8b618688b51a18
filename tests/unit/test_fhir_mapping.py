"""The pure FHIR mapping (cloud.fhir): codes, units, components, identifiers, kPa readings,
quality flags, devices, patients and search parameters. Codes are written out here as literals
(from specs/fhir_phd.md and the PHD IG), not imported from the code under test, so a wrong
constant fails. Every resource built is validated with fhir.resources (R4B models)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from cloud.domain import Purpose, Role
from cloud.fhir.identifiers import (
    ObservationPart,
    bluetooth_eui48,
    eui64_from_system_id,
    gateway_eui64,
    observation_id,
    parse_device_id,
    parse_observation_id,
)
from cloud.fhir.model import DeviceFacts, Disclosure, GatewayFacts, PersonFacts, ReadingFacts
from cloud.fhir.observation import fhir_instant, observations
from cloud.fhir.resources import (
    disclosure_for,
    operation_outcome,
    patient,
    phd_device,
    phg_device,
    searchset,
)
from cloud.fhir.search import (
    Cursor,
    SearchParamError,
    codes_match,
    parse_codes,
    parse_count,
    parse_cursor,
    parse_dates,
    parse_reference,
    reject_unknown,
)

MDC = "urn:iso:std:iso:11073:10101"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PERSON = uuid.UUID("6f1c1d2e-0000-4000-8000-000000000001")
DEVICE = uuid.UUID("6f1c1d2e-0000-4000-8000-0000000000d1")
GATEWAY = uuid.UUID("6f1c1d2e-0000-4000-8000-0000000000a1")
HOUSEHOLD = uuid.UUID("6f1c1d2e-0000-4000-8000-0000000000b1")
T = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
_MODELS: dict[str, Any] = {
    "Observation": Observation,
    "Device": Device,
    "Patient": Patient,
    "Bundle": Bundle,
    "OperationOutcome": OperationOutcome,
}


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    _MODELS[resource["resourceType"]].model_validate(resource)
    return resource


def reading(kind: str = "glucose_meter", **kw: Any) -> ReadingFacts:
    base: dict[str, Any] = {
        "row_id": 7,
        "reading_id": "0123456789abcdef0123456789abcdef",
        "kind": kind,
        "person_id": PERSON,
        "household_id": HOUSEHOLD,
        "device_id": DEVICE,
        "gateway_id": GATEWAY,
        "device_key": "sysid:0011223344556677",
        "effective_at": T,
        "received_at": T + timedelta(minutes=5),
        "measured_at": T,
        "device_time": "2026-03-01T08:00:00",
        "clock_skew_s": -3.0,
        "sequence_number": 12,
    }
    if kind == "glucose_meter":
        base.update(
            glucose_mmol_l=6.2,
            original_value=0.0062,
            original_unit="mol/L",
            sample_type=1,
            sample_location=1,
            meal=1,
        )
    else:
        base.update(
            device_key="sn:BP-2:BP20260002",
            systolic_mmhg=128.0,
            diastolic_mmhg=82.0,
            mean_arterial_mmhg=97.3,
            pulse_bpm=70.0,
            original_unit="mmHg",
            user_slot=1,
            sequence_number=None,
        )
    base.update(kw)
    return ReadingFacts(**base)


def obs_of(facts: ReadingFacts) -> dict[ObservationPart, dict[str, Any]]:
    return {part: valid(resource) for part, resource in observations(facts)}


def codings(element: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in element["coding"]}


def component(obs: dict[str, Any], mdc_code: str) -> dict[str, Any]:
    return next(c for c in obs["component"] if (MDC, mdc_code) in codings(c["code"]))


# --- glucose -----------------------------------------------------------------------------------
def test_glucose_is_mdc_capillary_with_loinc_in_mmol_per_litre() -> None:
    obs = obs_of(reading())[ObservationPart.MAIN]
    assert obs["id"] == "0123456789abcdef0123456789abcdef"
    assert codings(obs["code"]) == {(MDC, "160184"), (LOINC, "14743-9")}
    assert obs["valueQuantity"] == {
        "value": 6.2,
        "unit": "mmol/L",
        "system": UCUM,
        "code": "mmol/L",
    }
    assert obs["status"] == "final"
    assert {c["coding"][0]["code"] for c in obs["category"]} == {"laboratory", "phd"}
    assert obs["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdNumericObservation"
    ]
    assert obs["subject"] == {"reference": f"Patient/{PERSON}"}
    assert obs["performer"] == [{"reference": f"Patient/{PERSON}"}]
    assert obs["device"] == {"reference": f"Device/phd-{DEVICE}"}
    assert obs["effectiveDateTime"] == "2026-03-01T00:00:00Z"
    ext = {e["url"]: e for e in obs["extension"]}
    assert ext["http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"][
        "valueReference"
    ] == {"reference": f"Device/phg-{GATEWAY}"}
    assert ext["urn:anjia:fhir:ext:original-quantity"]["valueQuantity"] == {
        "value": 0.0062,
        "unit": "mol/L",
        "system": UCUM,
        "code": "mol/L",
    }
    assert ext["urn:anjia:fhir:ext:device-time"]["valueString"] == "2026-03-01T08:00:00"
    assert ext["urn:anjia:fhir:ext:clock-skew"]["valueQuantity"]["value"] == -3.0


def test_glucose_context_components() -> None:
    obs = obs_of(reading(meal=2, sample_location=2))[ObservationPart.MAIN]
    meal = component(obs, "8417864")
    assert codings(meal["valueCodeableConcept"]) == {(MDC, "8417872")}  # postprandial
    location = component(obs, "8417844")
    assert codings(location["valueCodeableConcept"]) == {(MDC, "8417852")}  # AST


@pytest.mark.parametrize(
    ("gls_meal", "mdc"),
    [(1, "8417868"), (2, "8417872"), (3, "8417876"), (4, "8417880"), (5, "8417908")],
)
def test_every_gls_meal_has_its_mdc_code(gls_meal: int, mdc: str) -> None:
    obs = obs_of(reading(meal=gls_meal))[ObservationPart.MAIN]
    assert codings(component(obs, "8417864")["valueCodeableConcept"]) == {(MDC, mdc)}


def test_unknown_meal_and_unavailable_location_give_no_component() -> None:
    obs = obs_of(reading(meal=0, sample_location=15))[ObservationPart.MAIN]
    assert "component" not in obs
    other = obs_of(reading(meal=None, sample_location=9))[ObservationPart.MAIN]
    assert codings(component(other, "8417844")["valueCodeableConcept"]) == {(MDC, "8417846")}


@pytest.mark.parametrize(
    ("sample_type", "expected"),
    [
        (None, {(MDC, "160184"), (LOINC, "14743-9")}),
        (1, {(MDC, "160184"), (LOINC, "14743-9")}),
        (2, {(MDC, "160188"), (LOINC, "15074-8")}),
        (8, {(MDC, "160368"), (LOINC, "15074-8")}),
        (9, {(MDC, "160212")}),
        (10, {(MDC, "160208")}),
    ],
)
def test_sample_types(sample_type: int | None, expected: set[tuple[str, str]]) -> None:
    obs = obs_of(reading(sample_type=sample_type))[ObservationPart.MAIN]
    assert codings(obs["code"]) == expected


def test_composite_identifier_follows_the_phd_rule() -> None:
    obs = obs_of(reading())[ObservationPart.MAIN]
    seconds = (date(2026, 3, 1) - date(2000, 1, 1)).days * 86400 + 8 * 3600
    composite = next(i["value"] for i in obs["identifier"] if "system" not in i)
    # EUI-64 = the System ID's wire octets reversed, 16 hex digits, upper case
    assert composite == f"7766554433221100-{PERSON}-160184-{seconds}-8417864-8417844"
    assert {"system": "urn:anjia:sid:reading", "value": obs["id"]} in obs["identifier"]
    no_time = obs_of(reading(device_time=None))[ObservationPart.MAIN]
    assert "-160184-s12-" in next(i["value"] for i in no_time["identifier"] if "system" not in i)


def test_the_same_reading_maps_to_the_same_resources() -> None:
    assert observations(reading()) == observations(reading())
    assert observations(reading()) != observations(reading(glucose_mmol_l=6.3))


# --- quality -----------------------------------------------------------------------------------
def test_meter_hi_and_lo_are_bounds_not_patient_values() -> None:
    hi = obs_of(reading(glucose_mmol_l=33.4, flags=frozenset({"high_out_of_range"})))
    q = hi[ObservationPart.MAIN]["valueQuantity"]
    assert (q["comparator"], q["value"]) == (">", 33.4)
    assert codings(hi[ObservationPart.MAIN]["interpretation"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", ">")
    }
    lo = obs_of(reading(glucose_mmol_l=1.0, flags=frozenset({"low_out_of_range"})))
    assert lo[ObservationPart.MAIN]["valueQuantity"]["comparator"] == "<"
    assert lo[ObservationPart.MAIN]["interpretation"][0]["coding"][0]["code"] == "<"


def test_control_solution_is_test_data_with_the_control_code() -> None:
    obs = obs_of(reading(sample_location=4, flags=frozenset({"control_solution"})))[
        ObservationPart.MAIN
    ]
    assert codings(obs["code"]) == {(MDC, "160208")}  # no patient glucose LOINC
    assert obs["meta"]["security"][0]["code"] == "HTEST"
    assert (
        obs["meta"]["security"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    )


def test_missing_and_invalid_values() -> None:
    missing = obs_of(reading(glucose_mmol_l=None, flags=frozenset({"value_missing"})))
    obs = missing[ObservationPart.MAIN]
    assert "valueQuantity" not in obs
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"
    invalid = obs_of(reading(flags=frozenset({"sensor_malfunction"})))[ObservationPart.MAIN]
    assert invalid["status"] == "entered-in-error"
    assert "valueQuantity" not in invalid
    assert invalid["dataAbsentReason"]["coding"][0]["code"] == "error"
    questionable = obs_of(reading(flags=frozenset({"implausible"})))[ObservationPart.MAIN]
    assert questionable["valueQuantity"]["value"] == 6.2
    assert questionable["interpretation"][0]["coding"][0]["code"] == "IND"
    flags = [e["valueCode"] for e in questionable["extension"] if e["url"].endswith("quality-flag")]
    assert flags == ["implausible"]


# --- blood pressure ------------------------------------------------------------------------------
def test_blood_pressure_is_a_compound_with_three_components() -> None:
    parts = obs_of(reading("blood_pressure_monitor"))
    assert list(parts) == [ObservationPart.MAIN, ObservationPart.PULSE]
    bp = parts[ObservationPart.MAIN]
    assert codings(bp["code"]) == {(MDC, "150020"), (LOINC, "85354-9")}
    assert "valueQuantity" not in bp
    assert {c["coding"][0]["code"] for c in bp["category"]} == {"vital-signs", "phd"}
    assert "http://hl7.org/fhir/StructureDefinition/bp" in bp["meta"]["profile"]
    for mdc, loinc, value in (
        ("150021", "8480-6", 128.0),
        ("150022", "8462-4", 82.0),
        ("150023", "8478-0", 97.3),
    ):
        c = component(bp, mdc)
        assert codings(c["code"]) == {(MDC, mdc), (LOINC, loinc)}
        assert c["valueQuantity"] == {
            "value": value,
            "unit": "mmHg",
            "system": UCUM,
            "code": "mm[Hg]",
        }
    composite = next(i["value"] for i in bp["identifier"] if "system" not in i)
    # no EUI-64 or address: the device key, separators (":", the identifier's "-") as "."
    assert composite.startswith(f"sn.BP.2.BP20260002-{PERSON}-150020-")
    assert {"url": "urn:anjia:fhir:ext:cuff-user", "valueInteger": 1} in bp["extension"]


def test_pulse_is_a_separate_heart_rate_observation() -> None:
    pulse = obs_of(reading("blood_pressure_monitor"))[ObservationPart.PULSE]
    assert pulse["id"] == "0123456789abcdef0123456789abcdef-pulse"
    assert codings(pulse["code"]) == {(MDC, "149546"), (LOINC, "8867-4")}
    assert pulse["valueQuantity"] == {
        "value": 70.0,
        "unit": "beats/minute",
        "system": UCUM,
        "code": "/min",
    }
    assert "http://hl7.org/fhir/StructureDefinition/heartrate" in pulse["meta"]["profile"]
    assert ObservationPart.PULSE not in obs_of(reading("blood_pressure_monitor", pulse_bpm=None))


def test_kpa_cuff_reports_stored_millimetres_of_mercury() -> None:
    # 16.0 kPa x 7.50062 = 120.00992 -> 120.0 mmHg at the gateway (0.1 mmHg); 10.7 kPa -> 80.3
    facts = reading(
        "blood_pressure_monitor",
        systolic_mmhg=120.0,
        diastolic_mmhg=80.3,
        mean_arterial_mmhg=None,
        original_unit="kPa",
    )
    bp = obs_of(facts)[ObservationPart.MAIN]
    values = [(c["valueQuantity"]["value"], c["valueQuantity"]["code"]) for c in bp["component"]]
    assert values == [(120.0, "mm[Hg]"), (80.3, "mm[Hg]")]  # no mean: two components
    assert {"url": "urn:anjia:fhir:ext:original-unit", "valueCode": "kPa"} in bp["extension"]


def test_measurement_status_is_derived_from_the_pressure() -> None:
    facts = reading(
        "blood_pressure_monitor",
        flags=frozenset({"improper_position", "body_movement", "narrow_pulse_pressure"}),
    )
    parts = obs_of(facts)
    status = parts[ObservationPart.STATUS]
    assert status["id"].endswith("-status")
    assert codings(status["code"]) == {(MDC, "8410608")}
    assert status["derivedFrom"] == [
        {"reference": f"Observation/{parts[ObservationPart.MAIN]['id']}"}
    ]
    bits = [c["code"]["coding"][0]["code"] for c in status["component"]]
    assert bits == ["8410608.0", "8410608.5"]
    assert all(c["valueCodeableConcept"]["coding"][0]["code"] == "Y" for c in status["component"])


def test_pulse_range_flags_are_interpretations() -> None:
    pulse = obs_of(
        reading("blood_pressure_monitor", pulse_bpm=260.0, flags=frozenset({"pulse_above_range"}))
    )[ObservationPart.PULSE]
    assert pulse["interpretation"][0]["coding"][0]["code"] == "HX"


def test_unknown_kinds_give_no_observation() -> None:
    assert observations(reading("thermometer")) == []


def test_instants_are_utc() -> None:
    assert fhir_instant(datetime(2026, 3, 1, 8, 0, tzinfo=SHANGHAI)) == "2026-03-01T00:00:00Z"
    with pytest.raises(ValueError, match="naive"):
        fhir_instant(datetime(2026, 3, 1))


# --- identifiers ---------------------------------------------------------------------------------
def test_eui64_and_bluetooth_addresses() -> None:
    # the PHD IG example device: EUI-64 74-E8-FF-FE-FF-05-1C-00, sent least significant octet first
    assert eui64_from_system_id("001c05fffeffe874") == "74-E8-FF-FE-FF-05-1C-00"
    assert eui64_from_system_id("not hex at all!!") is None
    assert eui64_from_system_id(None) is None
    assert bluetooth_eui48("00:1c:05:ff:e8:74") == "00-1C-05-FF-E8-74"
    assert bluetooth_eui48("00:1c:05") is None
    eui = gateway_eui64("gw-demo-0001")
    assert eui == gateway_eui64("gw-demo-0001") != gateway_eui64("gw-demo-0002")
    assert int(eui[:2], 16) & 0x03 == 0x02  # locally administered, unicast


def test_resource_ids_round_trip() -> None:
    rid = "0123456789abcdef0123456789abcdef"
    for part in ObservationPart:
        assert parse_observation_id(observation_id(rid, part)) == (rid, part)
    assert parse_observation_id(f"{rid}-main") is None
    assert parse_observation_id(f"{rid}-other") is None
    odd = observation_id("reading/with spaces", ObservationPart.MAIN)
    assert odd.startswith("x")
    assert len(odd) == 33
    assert parse_device_id(f"phd-{DEVICE}") == ("phd", DEVICE)
    assert parse_device_id(f"phg-{GATEWAY}") == ("phg", GATEWAY)
    assert parse_device_id("phx-1") is None
    assert parse_device_id("phd-nope") is None


# --- devices and patients ------------------------------------------------------------------
def test_phd_device() -> None:
    device = valid(
        phd_device(
            DeviceFacts(
                id=DEVICE,
                household_id=HOUSEHOLD,
                kind="glucose_meter",
                device_key="sysid:0011223344556677",
                system_id="0011223344556677",
                serial_number="GM20260001",
                address="C0:11:22:33:44:01",
                model_number="GM-1",
                manufacturer="Anjia Sim",
                label="血糖仪",
                owner_person_id=PERSON,
            )
        )
    )
    assert device["id"] == f"phd-{DEVICE}"
    by_system = {i["system"]: i for i in device["identifier"]}
    sysid = by_system["urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"]
    assert sysid["value"] == "77-66-55-44-33-22-11-00"
    assert sysid["type"]["coding"][0]["code"] == "SYSID"
    assert by_system["http://hl7.org/fhir/sid/eui-48/bluetooth"]["value"] == "C0-11-22-33-44-01"
    assert (device["serialNumber"], device["modelNumber"], device["manufacturer"]) == (
        "GM20260001",
        "GM-1",
        "Anjia Sim",
    )
    assert device["specialization"][0]["systemType"]["coding"][0]["code"] == "528401"
    assert device["patient"] == {"reference": f"Patient/{PERSON}"}
    cuff = valid(
        phd_device(
            DeviceFacts(
                id=DEVICE,
                household_id=HOUSEHOLD,
                kind="blood_pressure_monitor",
                device_key="sn:BP-2:BP20260002",
                serial_number="BP20260002",
            )
        )
    )
    assert cuff["specialization"][0]["systemType"]["coding"][0]["code"] == "528391"
    assert "patient" not in cuff
    assert [i["system"] for i in cuff["identifier"]] == ["urn:anjia:sid:device-key"]


def test_phg_device() -> None:
    phg = valid(phg_device(GatewayFacts(id=GATEWAY, uid="gw-demo-0001", household_id=HOUSEHOLD)))
    assert phg["id"] == f"phg-{GATEWAY}"
    assert phg["type"]["coding"][0]["code"] == "531981"
    assert phg["identifier"][0]["value"] == gateway_eui64("gw-demo-0001")
    assert phg["status"] == "active"
    revoked = phg_device(
        GatewayFacts(id=GATEWAY, uid="gw-demo-0001", household_id=HOUSEHOLD, revoked=True)
    )
    assert revoked["status"] == "inactive"


def test_patient_carries_identifiers_only_as_disclosed() -> None:
    facts = PersonFacts(
        id=PERSON, household_id=HOUSEHOLD, sex="female", birth_year=1958, name="张三", phone="138"
    )
    full = valid(patient(facts, Disclosure(name=True, telecom=True)))
    assert full["name"] == [{"use": "official", "text": "张三"}]
    assert full["telecom"][0]["value"] == "138"
    assert (full["gender"], full["birthDate"], full["id"]) == ("female", "1958", str(PERSON))
    pseudonymous = valid(patient(facts, Disclosure()))
    assert "name" not in pseudonymous
    assert "telecom" not in pseudonymous
    assert pseudonymous["meta"]["security"][0]["code"] == "PSEUDED"


@pytest.mark.parametrize(
    ("role", "purpose", "named"),
    [
        (Role.DOCTOR, None, True),
        (Role.RESIDENT, None, True),
        (Role.CLINIC_ADMIN, None, True),
        (Role.OPERATOR, Purpose.SUPPORT, True),
        (Role.OPERATOR, Purpose.LEGAL, True),
        (Role.OPERATOR, Purpose.INCIDENT, False),
        (Role.OPERATOR, Purpose.DATA_QUALITY, False),
        (Role.GATEWAY, None, False),
        (Role.BOOKING_BACKEND, None, False),
    ],
)
def test_disclosure(role: Role, purpose: Purpose | None, named: bool) -> None:
    assert disclosure_for(role, purpose) == Disclosure(name=named, telecom=named)


def test_bundle_and_outcome() -> None:
    obs = observations(reading())[0][1]
    bundle = valid(
        searchset(
            [(obs, "match")],
            base_url="https://cloud.example/fhir",
            self_url="https://cloud.example/fhir/Observation?patient=x",
            next_url="https://cloud.example/fhir/Observation?patient=x&_cursor=1_2_main",
        )
    )
    assert bundle["entry"][0]["fullUrl"] == f"https://cloud.example/fhir/Observation/{obs['id']}"
    assert [link["relation"] for link in bundle["link"]] == ["self", "next"]
    outcome = valid(operation_outcome("invalid", "date: bad"))
    assert outcome["issue"][0] == {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "date: bad",
    }


# --- search parameters ---------------------------------------------------------------------------
def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("values", "since", "until"),
    [
        (["2026-03-01"], _utc(2026, 2, 28, 16), _utc(2026, 3, 1, 16)),  # a Shanghai day
        (["eq2026-03"], _utc(2026, 2, 28, 16), _utc(2026, 3, 31, 16)),
        (["2026"], _utc(2025, 12, 31, 16), _utc(2026, 12, 31, 16)),
        (["ge2026-03-01T09:15"], _utc(2026, 3, 1, 1, 15), None),
        (["gt2026-03-01T09:15"], _utc(2026, 3, 1, 1, 16), None),
        (["le2026-03-01T00:00:00Z"], None, _utc(2026, 3, 1, 0, 0, 1)),
        (["lt2026-03-01T00:00:00+00:00"], None, _utc(2026, 3, 1)),
        (["lt2026-03-01T08:00:00 08:00"], None, _utc(2026, 3, 1)),  # '+' decoded as a space
        (["ge2026-03-01T00:00:00.5Z"], _utc(2026, 3, 1, 0, 0, 0, 500000), None),
        (
            ["ge2026-03-01", "lt2026-03-02", "ge2026-02-01"],
            _utc(2026, 2, 28, 16),
            _utc(2026, 3, 1, 16),
        ),
    ],
)
def test_date_parameters(values: list[str], since: datetime | None, until: datetime | None) -> None:
    interval = parse_dates(values, SHANGHAI)
    assert (interval.since, interval.until) == (since, until)


def test_contradictory_dates_are_empty() -> None:
    assert parse_dates(["ge2026-03-02", "lt2026-03-01"], UTC).empty


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2026-13-01", "invalid"),
        ("yesterday", "invalid"),
        ("xx2026", "invalid"),
        ("ne2026-03-01", "not-supported"),
        ("ap2026-03-01", "not-supported"),
        ("2026-03-01T25:00", "invalid"),
        ("2026-03-01T10:00+15:00", "invalid"),
    ],
)
def test_bad_dates(value: str, code: str) -> None:
    with pytest.raises(SearchParamError) as info:
        parse_dates([value], UTC)
    assert (info.value.param, info.value.code) == ("date", code)


def test_code_tokens() -> None:
    query = parse_codes(["http://loinc.org|8867-4,160184"])
    pulse = [{"system": MDC, "code": "149546"}, {"system": LOINC, "code": "8867-4"}]
    glucose = [{"system": MDC, "code": "160184"}, {"system": LOINC, "code": "14743-9"}]
    bp = [{"system": MDC, "code": "150020"}, {"system": LOINC, "code": "85354-9"}]
    assert codes_match(query, pulse)
    assert codes_match(query, glucose)
    assert not codes_match(query, bp)
    assert codes_match(parse_codes([f"{MDC}|"]), bp)
    assert not codes_match(parse_codes(["|150020"]), bp)
    assert not codes_match(parse_codes(["150020", "8867-4"]), bp)  # AND across parameters
    assert codes_match((), bp)
    for bad in ("", "a,,b", "|"):
        with pytest.raises(SearchParamError):
            parse_codes([bad])


def test_count_cursor_reference_and_unknown_parameters() -> None:
    assert parse_count([]) == 50
    assert parse_count(["500"]) == 500
    for bad in (["0"], ["501"], ["x"], ["1", "2"]):
        with pytest.raises(SearchParamError):
            parse_count(bad)
    cursor = Cursor.at(T, 42, ObservationPart.PULSE)
    assert parse_cursor([cursor.token()]) == cursor
    assert cursor.effective_at == T
    assert parse_cursor([]) is None
    with pytest.raises(SearchParamError):
        parse_cursor(["1_2_nope"])
    assert parse_reference(f"Patient/{PERSON}", "Patient", "patient") == str(PERSON)
    assert parse_reference(str(PERSON), "Patient", "patient") == str(PERSON)
    with pytest.raises(SearchParamError):
        parse_reference("Device/x", "Patient", "patient")
    with pytest.raises(SearchParamError):
        parse_reference("a b", "Patient", "patient")
    reject_unknown([("patient", "x"), ("_format", "json")], ("patient", "_format"))
    with pytest.raises(SearchParamError) as info:
        reject_unknown([("patient", "x"), ("_sort", "date")], ("patient",))
    assert info.value.code == "not-supported"
    with pytest.raises(SearchParamError):
        reject_unknown([("_format", "xml")], ("_format",))
