"""A stored reading as FHIR R4 Observations, following the Personal Health Device IG
(specs/fhir_phd.md "Observation skeleton", "Measurement status", "Dedup rules", "Timestamps").

A blood-pressure reading gives up to three Observations, a glucose reading one:

* **Blood pressure** (PhdCompoundNumericObservation + the core ``bp`` vital-sign profile): code
  MDC 150020 + LOINC 85354-9, categories ``vital-signs`` and ``PhdObservationCategories#phd``,
  components systolic (150021 / 8480-6), diastolic (150022 / 8462-4) and mean (150023 / 8478-0)
  in ``mm[Hg]``. A cuff that reported kPa was converted at the gateway (``MMHG_PER_KPA``, 0.1
  mmHg); the values are the stored mmHg and the original unit is kept in an extension.
* **Pulse** from the cuff, a separate Observation (PhdNumericObservation + core ``heartrate``):
  MDC 149546 MDC_PULS_RATE_NON_INV + LOINC 8867-4 in ``/min`` (the spec file's cuff code; 149530
  is the oximeter's).
* **Measurement status** when the cuff or the edge reported one (PhdBitsEnumerationObservation,
  IG example ``bpm-status``): MDC 8410608 with one component per set bit, ASN1ToHL7
  ``8410608.<bit>`` = v2-0136 ``Y``, and ``derivedFrom`` the blood-pressure Observation (the IG
  links a measurement's status to the measurement this way).
* **Glucose** (PhdNumericObservation): the GLS sample type's MDC code (default 160184 capillary
  whole blood) + LOINC by unit (we report canonical mmol/L: 14743-9 for capillary blood, the
  spec's fallback 15074-8 for other blood samples), ``valueQuantity`` in ``mmol/L`` with the
  meter's original value and unit (``kg/L`` or ``mol/L``, both UCUM) in an extension, categories
  ``laboratory`` and ``phd``, and the context as components: meal (8417864) and sample location
  (8417844) with coded values (spec file: "context components").

Every Observation: ``status`` final; ``subject`` and ``performer`` the Patient;
``effectiveDateTime`` the skew-corrected instant in UTC (or the reception time when the device
gave none, flagged); ``device`` the PhdDevice; the ``observation-gatewayDevice`` extension the
PhgDevice; identifiers: the reading id (our idempotency key) and the PHD composite identifier.
The device's own clock reading and the measured clock skew are kept in extensions (Tidepool-style
``deviceTime``; we do not emit coincident-time-stamp Observations: the skew is per reading).

Quality (specs/fhir_phd.md "Measurement status"; docs/edge.md):

* ``control_solution``: a meter test, never a patient value. Coded MDC_CONC_GLU_CONTROL (no
  glucose LOINC, so code searches for patient glucose never find it) and labelled
  ``meta.security`` HTEST (test health data).
* ``high_out_of_range`` / ``low_out_of_range`` (meter "HI"/"LO"): the number is the meter's
  limit, not the patient's value: ``valueQuantity.comparator`` ``>`` / ``<`` and interpretation
  ``>`` / ``<`` (off scale high / low).
* ``sensor_malfunction`` / ``device_fault`` (the device says the result is invalid): status
  ``entered-in-error``, no value, ``dataAbsentReason`` error.
* ``value_missing`` (an SFLOAT NaN/NRes/INF): no value, ``dataAbsentReason`` not-a-number.
* Other device errors and the edge's ``implausible`` / ``systolic_not_above_diastolic``:
  interpretation ``IND`` (questionable). Every flag is also listed, as stored, in the
  ``urn:anjia:fhir:ext:quality-flag`` extension, so nothing the edge found is lost.

Pure: standard library only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from cloud.fhir import codes
from cloud.fhir.codes import Code, Loinc, Mdc, Profiles
from cloud.fhir.identifiers import (
    ObservationPart,
    composite_identifier,
    device_resource_id,
    observation_id,
)
from cloud.fhir.model import ANJIA_EXT, ANJIA_SID, BLOOD_PRESSURE, GLUCOSE, Json, ReadingFacts

__all__ = [
    "INVALID_FLAGS",
    "NOT_PATIENT_VALUE_FLAGS",
    "QUESTIONABLE_FLAGS",
    "fhir_instant",
    "observations",
]

NOT_PATIENT_VALUE_FLAGS: Final = frozenset(
    {"control_solution", "high_out_of_range", "low_out_of_range", "value_missing"}
)
INVALID_FLAGS: Final = frozenset({"sensor_malfunction", "device_fault"})
QUESTIONABLE_FLAGS: Final = frozenset(
    {
        "implausible",
        "systolic_not_above_diastolic",
        "sample_size_insufficient",
        "strip_insertion_error",
        "strip_type_incorrect",
        "temperature_high",
        "temperature_low",
        "read_interrupted",
    }
)
_MMHG: Final = {"unit": "mmHg", "system": codes.UCUM, "code": "mm[Hg]"}
_PER_MIN: Final = {"unit": "beats/minute", "system": codes.UCUM, "code": "/min"}
_MMOL_L: Final = {"unit": "mmol/L", "system": codes.UCUM, "code": "mmol/L"}


def fhir_instant(value: datetime) -> str:
    """An aware datetime as a FHIR dateTime in UTC (``2026-03-01T00:00:00Z``)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: FHIR instants need a zone")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _concept(*coding: Code, text: str | None = None) -> Json:
    out: Json = {"coding": [c.coding() for c in coding]}
    if text:
        out["text"] = text
    return out


def _category(code: str, display: str) -> Json:
    return {
        "coding": [{"system": codes.HL7_OBSERVATION_CATEGORY, "code": code, "display": display}]
    }


_VITAL_SIGNS: Final = _category("vital-signs", "Vital Signs")
_LABORATORY: Final = _category("laboratory", "Laboratory")
_PHD: Final = {"coding": [{"system": codes.PHD_CATEGORY, "code": "phd"}]}


def _quantity(value: float, unit: dict[str, str], comparator: str | None = None) -> Json:
    out: Json = {"value": value, **unit}
    if comparator:
        out["comparator"] = comparator
    return out


def _interpretation(code: str, display: str) -> Json:
    return {"coding": [{"system": codes.V3_INTERPRETATION, "code": code, "display": display}]}


def _absent(code: str) -> Json:
    return {"coding": [{"system": codes.DATA_ABSENT_REASON, "code": code}]}


class _Base:
    """The elements every Observation of one reading shares."""

    __slots__ = ("reading",)

    def __init__(self, reading: ReadingFacts) -> None:
        self.reading = reading

    def skeleton(self, part: ObservationPart, profiles: list[str], mdc: Code) -> Json:
        r = self.reading
        patient = {"reference": f"Patient/{r.person_id}"}
        resource: Json = {
            "resourceType": "Observation",
            "id": observation_id(r.reading_id, part),
            "meta": {"profile": profiles},
        }
        extension = self.extensions()
        if extension:
            resource["extension"] = extension
        resource["identifier"] = [
            {
                "system": f"{ANJIA_SID}reading",
                "value": r.reading_id if part is ObservationPart.MAIN else f"{r.reading_id}/{part}",
            },
            {
                "value": composite_identifier(
                    device_key=r.device_key,
                    patient_id=str(r.person_id),
                    mdc_type=mdc.code,
                    device_time=r.device_time,
                    sequence_number=r.sequence_number,
                    received_at=r.received_at,
                    supplemental=self.supplemental(part),
                )
            },
        ]
        resource["status"] = "final"
        resource["subject"] = patient
        resource["effectiveDateTime"] = fhir_instant(r.effective_at)
        resource["performer"] = [dict(patient)]
        if r.device_id is not None:
            resource["device"] = {"reference": f"Device/{device_resource_id('phd', r.device_id)}"}
        return resource

    def supplemental(self, part: ObservationPart) -> tuple[str, ...]:
        r = self.reading
        if r.kind != GLUCOSE or part is not ObservationPart.MAIN:
            return ()
        out = []
        if r.meal in codes.GLS_MEAL:
            out.append(Mdc.MEAL.code)
        if _location(r.sample_location) is not None:
            out.append(Mdc.SAMPLE_LOCATION.code)
        return tuple(out)

    def extensions(self) -> list[Json]:
        r = self.reading
        out: list[Json] = []
        if r.gateway_id is not None:
            out.append(
                {
                    "url": Profiles.GATEWAY_EXTENSION,
                    "valueReference": {
                        "reference": f"Device/{device_resource_id('phg', r.gateway_id)}"
                    },
                }
            )
        if r.device_time:
            out.append({"url": f"{ANJIA_EXT}device-time", "valueString": r.device_time})
        if r.clock_skew_s is not None:
            out.append(
                {
                    "url": f"{ANJIA_EXT}clock-skew",
                    "valueQuantity": {
                        "value": r.clock_skew_s,
                        "unit": "s",
                        "system": codes.UCUM,
                        "code": "s",
                    },
                }
            )
        if r.user_slot is not None:
            out.append({"url": f"{ANJIA_EXT}cuff-user", "valueInteger": r.user_slot})
        out.extend(
            {"url": f"{ANJIA_EXT}quality-flag", "valueCode": flag} for flag in sorted(r.flags)
        )
        return out

    def quality(self, resource: Json, has_value: bool) -> bool:
        """Apply status, security label, dataAbsentReason and interpretation. Returns whether a
        value may be given."""
        flags = self.reading.flags
        interpretations: list[Json] = []
        if "control_solution" in flags:
            resource["meta"]["security"] = [
                {"system": codes.V3_ACT_REASON, "code": "HTEST", "display": "test health data"}
            ]
        if flags & INVALID_FLAGS:
            resource["status"] = "entered-in-error"
            resource["dataAbsentReason"] = _absent("error")
            return False
        if not has_value or "value_missing" in flags:
            resource["dataAbsentReason"] = _absent("not-a-number")
            has_value = False
        if "high_out_of_range" in flags:
            interpretations.append(_interpretation(">", "Off scale high"))
        if "low_out_of_range" in flags:
            interpretations.append(_interpretation("<", "Off scale low"))
        if flags & QUESTIONABLE_FLAGS:
            interpretations.append(_interpretation("IND", "Indeterminate"))
        if interpretations:
            resource["interpretation"] = interpretations
        return has_value


def _location(code: int | None) -> Code | None:
    if code is None or code == codes.SAMPLE_LOCATION_NOT_AVAILABLE:
        return None
    return codes.GLS_SAMPLE_LOCATION.get(code, codes.SAMPLE_LOCATION_OTHER)


def _comparator(flags: frozenset[str]) -> str | None:
    if "high_out_of_range" in flags:
        return ">"
    if "low_out_of_range" in flags:
        return "<"
    return None


def _glucose(reading: ReadingFacts) -> list[tuple[ObservationPart, Json]]:
    base = _Base(reading)
    sample = codes.GLS_SAMPLE_TYPE.get(reading.sample_type, codes.GLS_SAMPLE_TYPE[None])
    if "control_solution" in reading.flags:
        sample = codes.GLS_SAMPLE_TYPE[10]
    coding = (sample.mdc,) if sample.loinc is None else (sample.mdc, sample.loinc)
    text = "质控液测试 Control solution test" if sample.mdc == Mdc.GLU_CONTROL else "血糖 Glucose"
    obs = base.skeleton(ObservationPart.MAIN, [Profiles.NUMERIC], sample.mdc)
    obs["category"] = [_LABORATORY, _PHD]
    obs["code"] = _concept(*coding, text=text)
    if base.quality(obs, reading.glucose_mmol_l is not None):
        assert reading.glucose_mmol_l is not None
        obs["valueQuantity"] = _quantity(
            reading.glucose_mmol_l, _MMOL_L, _comparator(reading.flags)
        )
        if reading.original_value is not None and reading.original_unit in ("kg/L", "mol/L"):
            obs.setdefault("extension", []).append(
                {
                    "url": f"{ANJIA_EXT}original-quantity",
                    "valueQuantity": {
                        "value": reading.original_value,
                        "unit": reading.original_unit,
                        "system": codes.UCUM,
                        "code": reading.original_unit,
                    },
                }
            )
    components = []
    meal = codes.GLS_MEAL.get(reading.meal) if reading.meal is not None else None
    if meal is not None:
        components.append(
            {
                "code": _concept(Mdc.MEAL, text="餐时 Meal"),
                "valueCodeableConcept": _concept(meal),
            }
        )
    location = _location(reading.sample_location)
    if location is not None:
        components.append(
            {
                "code": _concept(Mdc.SAMPLE_LOCATION, text="采血部位 Sample location"),
                "valueCodeableConcept": _concept(location),
            }
        )
    if components:
        obs["component"] = components
    return [(ObservationPart.MAIN, obs)]


def _pressure_component(mdc: Code, loinc: Code, value: float | None, text: str) -> Json:
    component: Json = {"code": _concept(loinc, mdc, text=text)}
    if value is None:
        component["dataAbsentReason"] = _absent("not-a-number")
    else:
        component["valueQuantity"] = _quantity(value, _MMHG)
    return component


def _blood_pressure(reading: ReadingFacts) -> list[tuple[ObservationPart, Json]]:
    base = _Base(reading)
    bp_id = observation_id(reading.reading_id, ObservationPart.MAIN)
    obs = base.skeleton(
        ObservationPart.MAIN, [Profiles.COMPOUND_NUMERIC, Profiles.BP], Mdc.BP_PANEL
    )
    obs["category"] = [_VITAL_SIGNS, _PHD]
    obs["code"] = _concept(Mdc.BP_PANEL, Loinc.BP_PANEL, text="血压 Blood pressure")
    has_value = reading.systolic_mmhg is not None or reading.diastolic_mmhg is not None
    if base.quality(obs, has_value):
        components = [
            _pressure_component(
                Mdc.SYSTOLIC, Loinc.SYSTOLIC, reading.systolic_mmhg, "收缩压 Systolic"
            ),
            _pressure_component(
                Mdc.DIASTOLIC, Loinc.DIASTOLIC, reading.diastolic_mmhg, "舒张压 Diastolic"
            ),
        ]
        if reading.mean_arterial_mmhg is not None:
            components.append(
                _pressure_component(Mdc.MEAN, Loinc.MEAN, reading.mean_arterial_mmhg, "平均压 Mean")
            )
        obs["component"] = components
    if reading.original_unit and reading.original_unit != "mmHg":
        obs.setdefault("extension", []).append(
            {"url": f"{ANJIA_EXT}original-unit", "valueCode": reading.original_unit}
        )
    out = [(ObservationPart.MAIN, obs)]

    if reading.pulse_bpm is not None:
        pulse = base.skeleton(
            ObservationPart.PULSE, [Profiles.NUMERIC, Profiles.HEART_RATE], Mdc.PULSE_NON_INV
        )
        pulse["category"] = [_VITAL_SIGNS, _PHD]
        pulse["code"] = _concept(Mdc.PULSE_NON_INV, Loinc.HEART_RATE, text="脉率 Pulse rate")
        if not reading.flags & INVALID_FLAGS:
            pulse["valueQuantity"] = _quantity(reading.pulse_bpm, _PER_MIN)
            interpretations = []
            if "pulse_above_range" in reading.flags:
                interpretations.append(_interpretation("HX", "above high threshold"))
            if "pulse_below_range" in reading.flags:
                interpretations.append(_interpretation("LX", "below low threshold"))
            if interpretations:
                pulse["interpretation"] = interpretations
        else:
            pulse["status"] = "entered-in-error"
            pulse["dataAbsentReason"] = _absent("error")
        out.append((ObservationPart.PULSE, pulse))

    bits = sorted(codes.BPM_STATUS_BITS[f] for f in reading.flags if f in codes.BPM_STATUS_BITS)
    if bits:
        status = base.skeleton(ObservationPart.STATUS, [Profiles.BITS], Mdc.BPM_STATUS)
        status["category"] = [_PHD]
        status["code"] = _concept(Mdc.BPM_STATUS, text="测量状态 Measurement status")
        status["derivedFrom"] = [{"reference": f"Observation/{bp_id}"}]
        status["component"] = [
            {
                "code": {
                    "coding": [
                        {"system": codes.ASN1_TO_HL7, "code": f"{Mdc.BPM_STATUS.code}.{bit}"}
                    ],
                    "text": name,
                },
                "valueCodeableConcept": {"coding": [{"system": codes.V2_0136, "code": "Y"}]},
            }
            for bit, name in bits
        ]
        out.append((ObservationPart.STATUS, status))
    return out


_ELEMENT_ORDER: Final = {
    name: i
    for i, name in enumerate(
        (
            "resourceType",
            "id",
            "meta",
            "extension",
            "identifier",
            "status",
            "category",
            "code",
            "subject",
            "effectiveDateTime",
            "performer",
            "valueQuantity",
            "dataAbsentReason",
            "interpretation",
            "device",
            "derivedFrom",
            "component",
        )
    )
}


def _ordered(resource: Json) -> Json:
    """The elements in the order of the FHIR specification's Observation (JSON does not care;
    people reading a record do)."""
    return dict(sorted(resource.items(), key=lambda item: _ELEMENT_ORDER.get(item[0], 99)))


def observations(reading: ReadingFacts) -> list[tuple[ObservationPart, Json]]:
    """The Observations of one reading, in a fixed order (main, pulse, status). Unknown kinds
    give none (the ingest rejects them; a newer cloud may map them)."""
    if reading.kind == GLUCOSE:
        parts = _glucose(reading)
    elif reading.kind == BLOOD_PRESSURE:
        parts = _blood_pressure(reading)
    else:
        return []
    return [(part, _ordered(resource)) for part, resource in parts]
