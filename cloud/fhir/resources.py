"""Patient, Device (PhdDevice, PhgDevice), Bundle and OperationOutcome resources.

* **Patient**: id and identifier are the person's uuid (``urn:anjia:sid:person``); gender; the
  birth year as ``birthDate`` (we keep no more). Name and phone only as :class:`Disclosure`
  allows (:func:`disclosure_for`); never the ID number or the address (least privilege: see
  docs/fhir.md "Privacy").
* **PhdDevice** (PHD IG StructureDefinition PhdDevice; specs/fhir_phd.md "Device identifiers"):
  identifiers SYSID (EUI-64, system ``urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680``), BTMAC
  (``http://hl7.org/fhir/sid/eui-48/bluetooth``) and our device key; manufacturer, model,
  serial; ``type`` MDC_MOC_VMS_MDS_SIMP; ``specialization`` 528391 (BP monitor) or 528401
  (glucose meter); ``patient`` the owner (a shared cuff has none: its users are per slot).
* **PhgDevice**: the gateway, ``type`` 531981 MDC_MOC_VMS_MDS_AHD, a SYSID EUI-64 derived from its
  uid (see :mod:`cloud.fhir.identifiers`), our gateway uid as a second identifier.
* **Bundle** ``searchset`` with ``self``/``next`` links and ``search.mode``; **OperationOutcome**
  for every error of the FHIR API.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from cloud.domain import Purpose, Role
from cloud.fhir import codes
from cloud.fhir.codes import Mdc, Profiles
from cloud.fhir.identifiers import (
    bluetooth_eui48,
    device_resource_id,
    eui64_from_system_id,
    gateway_eui64,
)
from cloud.fhir.model import (
    ANJIA_SID,
    BLOOD_PRESSURE,
    GLUCOSE,
    DeviceFacts,
    Disclosure,
    GatewayFacts,
    Json,
    PersonFacts,
)

__all__ = [
    "FHIR_JSON",
    "capability_statement",
    "disclosure_for",
    "operation_outcome",
    "patient",
    "phd_device",
    "phg_device",
    "searchset",
]

FHIR_JSON: Final = "application/fhir+json"

_IDENTIFIED: Final = Disclosure(name=True, telecom=True)
_PSEUDONYMOUS: Final = Disclosure()


def disclosure_for(role: Role, purpose: Purpose | None) -> Disclosure:
    """Which identifiers a Patient carries for a caller who may read the person at all.

    Family doctors, residents of the household and the clinic's admins care for the person and
    already see name and phone in the provisioning API: they get them. An operator reading under
    break-glass gets a pseudonymous Patient, except for ``support`` (helping this household) and
    ``legal`` (a lawful request), where the identity is the point. Machine roles never reach here.
    """
    if role in (Role.DOCTOR, Role.RESIDENT, Role.CLINIC_ADMIN):
        return _IDENTIFIED
    if role is Role.OPERATOR and purpose in (Purpose.SUPPORT, Purpose.LEGAL):
        return _IDENTIFIED
    return _PSEUDONYMOUS


def patient(person: PersonFacts, disclosure: Disclosure) -> Json:
    resource: Json = {"resourceType": "Patient", "id": str(person.id)}
    if not disclosure.name:
        resource["meta"] = {
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                    "code": "PSEUDED",
                    "display": "pseudonymized",
                }
            ]
        }
    resource |= {
        "identifier": [{"system": f"{ANJIA_SID}person", "value": str(person.id)}],
        "active": True,
        "gender": person.sex if person.sex in ("female", "male") else "unknown",
    }
    if disclosure.name and person.name:
        resource["name"] = [{"use": "official", "text": person.name}]
    if disclosure.telecom and person.phone:
        resource["telecom"] = [{"system": "phone", "value": person.phone, "use": "mobile"}]
    if person.birth_year is not None:
        resource["birthDate"] = f"{person.birth_year:04d}"
    return resource


def _identifier(code: str, display: str, system: str, value: str) -> Json:
    return {
        "type": {
            "coding": [
                {"system": codes.CONTINUA_DEVICE_IDENTIFIERS, "code": code, "display": display}
            ]
        },
        "system": system,
        "value": value,
    }


def phd_device(device: DeviceFacts) -> Json:
    identifiers: list[Json] = []
    eui64 = eui64_from_system_id(device.system_id)
    if eui64 is not None:
        identifiers.append(
            _identifier("SYSID", "IEEE 11073 System Identifier", codes.IEEE_EUI64_SYSID, eui64)
        )
    mac = bluetooth_eui48(device.address)
    if mac is not None:
        identifiers.append(
            _identifier("BTMAC", "Bluetooth MAC address", codes.EUI48_BLUETOOTH, mac)
        )
    identifiers.append({"system": f"{ANJIA_SID}device-key", "value": device.device_key})
    resource: Json = {
        "resourceType": "Device",
        "id": device_resource_id("phd", device.id),
        "meta": {"profile": [Profiles.PHD_DEVICE]},
        "identifier": identifiers,
        "status": "active",
    }
    if device.manufacturer:
        resource["manufacturer"] = device.manufacturer
    if device.serial_number:
        resource["serialNumber"] = device.serial_number
    if device.model_number:
        resource["modelNumber"] = device.model_number
    if device.label:
        resource["deviceName"] = [{"name": device.label, "type": "user-friendly-name"}]
    resource["type"] = {"coding": [Mdc.MDS_SIMPLE.coding()], "text": "Simple PHD"}
    specialization = {
        BLOOD_PRESSURE: (Mdc.DEV_SPEC_BPM, "血压计 Blood pressure monitor"),
        GLUCOSE: (Mdc.DEV_SPEC_GLUCOSE, "血糖仪 Glucose meter"),
    }.get(device.kind)
    if specialization is not None:
        code, text = specialization
        resource["specialization"] = [
            {"systemType": {"coding": [code.coding()], "text": text}, "version": "1"}
        ]
    if device.owner_person_id is not None:
        resource["patient"] = {"reference": f"Patient/{device.owner_person_id}"}
    return resource


def phg_device(gateway: GatewayFacts) -> Json:
    resource: Json = {
        "resourceType": "Device",
        "id": device_resource_id("phg", gateway.id),
        "meta": {"profile": [Profiles.PHG_DEVICE]},
        "identifier": [
            _identifier(
                "SYSID",
                "IEEE 11073 System Identifier",
                codes.IEEE_EUI64_SYSID,
                gateway_eui64(gateway.uid),
            ),
            {"system": f"{ANJIA_SID}gateway", "value": gateway.uid},
        ],
        "status": "inactive" if gateway.revoked else "active",
        "manufacturer": "Anjia",
        "modelNumber": "anjia-gateway",
        "type": {"coding": [Mdc.PHG.coding()], "text": "家庭网关 Personal health gateway"},
    }
    if gateway.label:
        resource["deviceName"] = [{"name": gateway.label, "type": "user-friendly-name"}]
    return resource


def searchset(
    entries: Sequence[tuple[Json, str]],
    *,
    base_url: str,
    self_url: str,
    next_url: str | None = None,
    bundle_id: str | None = None,
) -> Json:
    """A ``searchset`` Bundle. ``entries`` are (resource, search mode: ``match``/``include``);
    ``base_url`` is the FHIR base (``https://host/fhir``) for the entries' ``fullUrl``."""
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: Json = {"resourceType": "Bundle"}
    if bundle_id is not None:
        bundle["id"] = bundle_id
    bundle["type"] = "searchset"
    bundle["link"] = links
    bundle["entry"] = [
        {
            "fullUrl": f"{base_url}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": mode},
        }
        for resource, mode in entries
    ]
    return bundle


def operation_outcome(code: str, diagnostics: str, *, severity: str = "error") -> Json:
    """An OperationOutcome with one issue; ``code`` from the FHIR IssueType value set
    (``invalid``, ``not-found``, ``security``, ``login``, ``not-supported``, ``exception``...)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def capability_statement(base_url: str, software_version: str, date: str) -> Json:
    """What this server does (``GET /fhir/metadata``): R4, JSON, read-only, the search
    parameters of docs/fhir.md, bearer tokens."""

    def param(name: str, kind: str, doc: str) -> Json:
        return {"name": name, "type": kind, "documentation": doc}

    count = param("_count", "number", "page size, 1-500 (default 50)")
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "kind": "instance",
        "software": {"name": "Anjia cloud", "version": software_version},
        "implementation": {"description": "安家 Anjia FHIR API (read-only)", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth2 bearer token from POST /auth/token",
                },
                "resource": [
                    {
                        "type": "Patient",
                        "interaction": [{"code": "read"}],
                        "operation": [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            }
                        ],
                    },
                    {
                        "type": "Observation",
                        "supportedProfile": [
                            Profiles.COMPOUND_NUMERIC,
                            Profiles.NUMERIC,
                            Profiles.BITS,
                        ],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            param("patient", "reference", "required"),
                            param("code", "token", "system|code, code, system|; comma = OR"),
                            param("date", "date", "eq, ge, gt, le, lt; repeatable"),
                            count,
                        ],
                    },
                    {
                        "type": "Device",
                        "supportedProfile": [Profiles.PHD_DEVICE, Profiles.PHG_DEVICE],
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [param("patient", "reference", "required")],
                    },
                ],
            }
        ],
    }
