"""Code systems and codes of the FHIR mapping (specs/fhir_phd.md "Gateway -> FHIR mapping
cheat-sheet"; where the spec file is silent, the HL7 Personal Health Device IG and the IEEE
11073-10101 nomenclature it uses).

MDC codes are 32-bit "context-free" codes: partition * 65536 + term code. The glucose sample
types of partition 2 (SCADA) and the glucose context codes of partition 128 (PHD disease
management) are the IEEE 11073-10417 glucose meter specialization's terms:

* 160184 MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD, 160188 ..._CAPILLARY_PLASMA, 160368
  ..._UNDETERMINED_PLASMA: the spec file's table.
* 160192/160196 venous whole blood/plasma, 160200/160204 arterial, 160364 undetermined whole
  blood, 160208 control solution (MDC_CONC_GLU_CONTROL, term 29136), 160212 interstitial fluid:
  the same 10417 table (term codes 29120..29140 and 29292), not in the spec file.
* Meal context 8417864 MDC_CTXT_GLU_MEAL with 8417868 preprandial, 8417872 postprandial (the IG's
  meal-context example), 8417876 fasting, 8417880 casual, 8417908 bedtime (term 29300).
* Sample location 8417844 MDC_CTXT_GLU_SAMPLELOCATION with 8417848 finger, 8417852 alternative
  site, 8417856 earlobe, 8417860 control solution, and the spec file's 8417846 "other".

Pure: constants and lookup tables only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "ASN1_TO_HL7",
    "BPM_STATUS_BITS",
    "CONTINUA_DEVICE_IDENTIFIERS",
    "DATA_ABSENT_REASON",
    "EUI48_BLUETOOTH",
    "GLS_MEAL",
    "GLS_SAMPLE_LOCATION",
    "GLS_SAMPLE_TYPE",
    "HL7_OBSERVATION_CATEGORY",
    "IEEE_EUI64_SYSID",
    "LOINC",
    "MDC",
    "PHD_CATEGORY",
    "SAMPLE_LOCATION_NOT_AVAILABLE",
    "SAMPLE_LOCATION_OTHER",
    "UCUM",
    "V2_0136",
    "V3_ACT_REASON",
    "V3_INTERPRETATION",
    "Code",
    "Loinc",
    "Mdc",
    "Profiles",
    "SampleType",
]

# --- code systems ------------------------------------------------------------------------------
MDC: Final = "urn:iso:std:iso:11073:10101"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
HL7_OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
CONTINUA_DEVICE_IDENTIFIERS: Final = (
    "http://terminology.hl7.org/CodeSystem/ContinuaDeviceIdentifiers"
)
IEEE_EUI64_SYSID: Final = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
EUI48_BLUETOOTH: Final = "http://hl7.org/fhir/sid/eui-48/bluetooth"
ASN1_TO_HL7: Final = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"
V2_0136: Final = "http://terminology.hl7.org/CodeSystem/v2-0136"  # yes/no
V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"  # HTEST
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"


@dataclass(frozen=True, slots=True)
class Code:
    """One coding: system, code and display (the MDC reference id, or LOINC's short name)."""

    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}


class Mdc:
    """The MDC codes used (specs/fhir_phd.md table, plus the 10417 terms named above)."""

    BP_PANEL: Final = Code(MDC, "150020", "MDC_PRESS_BLD_NONINV")
    SYSTOLIC: Final = Code(MDC, "150021", "MDC_PRESS_BLD_NONINV_SYS")
    DIASTOLIC: Final = Code(MDC, "150022", "MDC_PRESS_BLD_NONINV_DIA")
    MEAN: Final = Code(MDC, "150023", "MDC_PRESS_BLD_NONINV_MEAN")
    PULSE_NON_INV: Final = Code(MDC, "149546", "MDC_PULS_RATE_NON_INV")
    BPM_STATUS: Final = Code(MDC, "8410608", "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS")
    GLU_CAPILLARY_WHOLEBLOOD: Final = Code(MDC, "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD")
    GLU_CONTROL: Final = Code(MDC, "160208", "MDC_CONC_GLU_CONTROL")
    MEAL: Final = Code(MDC, "8417864", "MDC_CTXT_GLU_MEAL")
    SAMPLE_LOCATION: Final = Code(MDC, "8417844", "MDC_CTXT_GLU_SAMPLELOCATION")
    DEV_SPEC_BPM: Final = Code(MDC, "528391", "MDC_DEV_SPEC_PROFILE_BPM")
    DEV_SPEC_GLUCOSE: Final = Code(MDC, "528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE")
    MDS_SIMPLE: Final = Code(MDC, "65573", "MDC_MOC_VMS_MDS_SIMP")
    PHG: Final = Code(MDC, "531981", "MDC_MOC_VMS_MDS_AHD")


class Loinc:
    BP_PANEL: Final = Code(LOINC, "85354-9", "Blood pressure panel with all children optional")
    SYSTOLIC: Final = Code(LOINC, "8480-6", "Systolic blood pressure")
    DIASTOLIC: Final = Code(LOINC, "8462-4", "Diastolic blood pressure")
    MEAN: Final = Code(LOINC, "8478-0", "Mean blood pressure")
    HEART_RATE: Final = Code(LOINC, "8867-4", "Heart rate")
    GLU_CAPILLARY_MOLES: Final = Code(
        LOINC, "14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"
    )
    GLU_CAPILLARY_MASS: Final = Code(
        LOINC, "41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"
    )
    GLU_BLOOD_MOLES: Final = Code(LOINC, "15074-8", "Glucose [Moles/volume] in Blood")
    GLU_BLOOD_MASS: Final = Code(LOINC, "2339-0", "Glucose [Mass/volume] in Blood")


@dataclass(frozen=True, slots=True)
class SampleType:
    """A GLS sample type as MDC (and LOINC for the mmol/L value we report; None: no LOINC)."""

    mdc: Code
    loinc: Code | None


_CAPILLARY_WB: Final = SampleType(Mdc.GLU_CAPILLARY_WHOLEBLOOD, Loinc.GLU_CAPILLARY_MOLES)


def _blood(code: str, display: str) -> SampleType:
    return SampleType(Code(MDC, code, display), Loinc.GLU_BLOOD_MOLES)


GLS_SAMPLE_TYPE: Final[dict[int | None, SampleType]] = {
    # GLS Glucose Measurement "Type" nibble -> MDC; absent: capillary whole blood (spec file:
    # "always MDC 160184 plus LOINC by unit"). LOINC 14743-9 is the glucometer's capillary code;
    # other sample types get the spec file's generic fallback 15074-8 (moles/volume in blood).
    None: _CAPILLARY_WB,
    1: _CAPILLARY_WB,
    2: _blood("160188", "MDC_CONC_GLU_CAPILLARY_PLASMA"),
    3: _blood("160192", "MDC_CONC_GLU_VENOUS_WHOLEBLOOD"),
    4: _blood("160196", "MDC_CONC_GLU_VENOUS_PLASMA"),
    5: _blood("160200", "MDC_CONC_GLU_ARTERIAL_WHOLEBLOOD"),
    6: _blood("160204", "MDC_CONC_GLU_ARTERIAL_PLASMA"),
    7: _blood("160364", "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD"),
    8: _blood("160368", "MDC_CONC_GLU_UNDETERMINED_PLASMA"),
    9: SampleType(Code(MDC, "160212", "MDC_CONC_GLU_ISF"), None),  # not blood: no LOINC
    10: SampleType(Mdc.GLU_CONTROL, None),  # control solution: never a patient glucose code
}

GLS_MEAL: Final[dict[int, Code]] = {
    # GLS Glucose Measurement Context "Meal" -> MDC_CTXT_GLU_MEAL_* (partition 128)
    1: Code(MDC, "8417868", "MDC_CTXT_GLU_MEAL_PREPRANDIAL"),
    2: Code(MDC, "8417872", "MDC_CTXT_GLU_MEAL_POSTPRANDIAL"),
    3: Code(MDC, "8417876", "MDC_CTXT_GLU_MEAL_FASTING"),
    4: Code(MDC, "8417880", "MDC_CTXT_GLU_MEAL_CASUAL"),
    5: Code(MDC, "8417908", "MDC_CTXT_GLU_MEAL_BEDTIME"),
}

GLS_SAMPLE_LOCATION: Final[dict[int, Code]] = {
    # GLS "Sample Location" nibble -> MDC_CTXT_GLU_SAMPLELOCATION_*; 15 "not available": none
    1: Code(MDC, "8417848", "MDC_CTXT_GLU_SAMPLELOCATION_FINGER"),
    2: Code(MDC, "8417852", "MDC_CTXT_GLU_SAMPLELOCATION_AST"),
    3: Code(MDC, "8417856", "MDC_CTXT_GLU_SAMPLELOCATION_EARLOBE"),
    4: Code(MDC, "8417860", "MDC_CTXT_GLU_SAMPLELOCATION_CTRLSOLUTION"),
}
SAMPLE_LOCATION_OTHER: Final = Code(MDC, "8417846", "MDC_CTXT_GLU_SAMPLELOCATION_OTHER")
SAMPLE_LOCATION_NOT_AVAILABLE: Final = 15

BPM_STATUS_BITS: Final[dict[str, tuple[int, str]]] = {
    # ReadingFlag value -> (bit of MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS, ASN.1 name); the IG's
    # PhdBitsEnumerationObservation codes each set bit as ASN1ToHL7 "8410608.<bit>".
    "body_movement": (0, "body-movement"),
    "cuff_too_loose": (1, "cuff-too-loose"),
    "irregular_pulse": (2, "irregular-pulse"),
    "pulse_above_range": (3, "pulse-rate-exceeds-upper-limit"),
    "pulse_below_range": (4, "pulse-rate-less-than-lower-limit"),
    "improper_position": (5, "improper-body-position"),
}


class Profiles:
    """``meta.profile`` canonical URLs (PHD IG, FHIR R4 vital-signs profiles)."""

    PHD_BASE: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
    COMPOUND_NUMERIC: Final = PHD_BASE + "PhdCompoundNumericObservation"
    NUMERIC: Final = PHD_BASE + "PhdNumericObservation"
    BITS: Final = PHD_BASE + "PhdBitsEnumerationObservation"
    PHD_DEVICE: Final = PHD_BASE + "PhdDevice"
    PHG_DEVICE: Final = PHD_BASE + "PhgDevice"
    BP: Final = "http://hl7.org/fhir/StructureDefinition/bp"
    HEART_RATE: Final = "http://hl7.org/fhir/StructureDefinition/heartrate"
    GATEWAY_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
