"""Local urgent rules: the alerts a gateway raises at home at once, with or without the network.

Rules (defaults from specs/clinical_rules.md; every threshold can be overridden per person):

* **G1** level-2 hypoglycaemia: glucose < 3.0 mmol/L (< 54 mg/dL) [ADA-6] level 2, [CN-T2DM]
  level 2 < 3.0; a meter "LO" result (below what it can measure) counts too. Severity URGENT.
* **G6** glucose >= 33.3 mmol/L (>= 600 mg/dL) or a meter "HI" result: HHS range
  [Hyperglycemic-crises-2024]. Severity EMERGENCY.
* **B3** a single blood pressure >= 180 systolic or >= 110 diastolic mmHg ([CN-PHS-HTN] emergency
  referral >= 180/>= 110, [CN-HTN] grade 3): prompt a re-measure after 1-5 minutes [AHA-crisis].
  Severity WARN.
* **B1-2** a second such reading of the same person 1-10 minutes after the first (the guideline
  says 1-5; up to 10 is allowed because people are slow to re-measure): confirmed. The gateway
  cannot know symptoms, so one alert covers B1 (call 120) and B2 (doctor the same day). Severity
  URGENT.

Only patient values count: a control-solution test never alerts, and neither does a reading
without a value (VALUE_MISSING). HI/LO results are not patient *values* (no number) but they are
patient *results*, so they do alert unless they are a control-solution test.

Safety choices (docs/edge.md):

* An implausibly *low* glucose value still raises G1 (eating 15 g of sugar is harmless, a missed
  level-2 hypo is not); an implausibly *high* one (above the plausible range with no HI flag, most
  likely mg/dL read as mmol/L) does not raise G6, because G6 tells the household to call 120. The
  alert carries the reading's flags so the screen can say "re-test". A blood pressure reading
  flagged IMPLAUSIBLE or SYSTOLIC_NOT_ABOVE_DIASTOLIC gets the re-measure prompt (B3) but never
  *confirms* a crisis.
* A reading older than ``act_window_s`` (default 1 hour) raises no local alert: "eat now" about a
  reading from yesterday's memory dump would be wrong. The cloud's rules still see it. Counted.
* A reading whose time cannot be trusted (TIME_FAULT) alerts only if it is the latest reading of
  its device in the batch (just measured, broken clock) and is judged by its reception time; the
  rest of a memory dump with a broken clock does not flood the household.

Pure: no I/O, no clock (``now`` is a parameter).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from device_drivers.model import (
    BloodPressureReading,
    GlucoseReading,
    Reading,
    ReadingFlag,
)
from edge import messages
from edge.columns import BatchColumns
from edge.dedupe import Identity
from edge.errors import ThresholdError

__all__ = [
    "MAX_RECENT_HIGH",
    "HighPressure",
    "LocalAlert",
    "PersonOf",
    "Severity",
    "ThresholdSet",
    "UrgentOutcome",
    "UrgentRule",
    "UrgentThresholds",
    "evaluate_urgent",
    "subject_of",
]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

PersonOf = Callable[[Reading], str | None]
"""Who a reading belongs to (the gateway's enrollment), or None when nobody is known yet."""

MAX_RECENT_HIGH: Final = 1024
"""Bound on remembered high blood-pressure readings awaiting confirmation."""

_NO_CONFIRM: Final = frozenset(
    {ReadingFlag.IMPLAUSIBLE, ReadingFlag.SYSTOLIC_NOT_ABOVE_DIASTOLIC, ReadingFlag.TIME_FAULT}
)


class Severity(StrEnum):
    WARN = "warning"  # the MQTT contract's LocalAlert.level spells it so
    URGENT = "urgent"
    EMERGENCY = "emergency"


class UrgentRule(StrEnum):
    """Rule ids as in specs/clinical_rules.md."""

    G1 = "G1"
    G6 = "G6"
    B3 = "B3"
    B1_2 = "B1-2"


_SEVERITY: Final = {
    UrgentRule.G1: Severity.URGENT,
    UrgentRule.G6: Severity.EMERGENCY,
    UrgentRule.B3: Severity.WARN,
    UrgentRule.B1_2: Severity.URGENT,
}


def _check(name: str, value: float, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ThresholdError(name, value, f"needs {lo} <= {name} <= {hi}")


@dataclass(frozen=True, slots=True)
class UrgentThresholds:
    """Thresholds of the local urgent rules for one person (defaults: specs/clinical_rules.md).

    Overrides are checked against wide sanity bounds only; the family doctor owns the values."""

    hypo_level2_mmol_l: float = 3.0
    """G1: below this is level-2 hypoglycaemia ([ADA-6], [CN-T2DM]: < 3.0 mmol/L, < 54 mg/dL)."""
    hyper_emergency_mmol_l: float = 33.3
    """G6: at or above this is the HHS range ([Hyperglycemic-crises-2024]: >= 600 mg/dL)."""
    systolic_crisis_mmhg: float = 180.0
    """B1-B3: systolic at or above this ([CN-PHS-HTN], [AHA-crisis], [CN-HTN] grade 3)."""
    diastolic_crisis_mmhg: float = 110.0
    """B1-B3: diastolic at or above this ([CN-PHS-HTN] >= 110; AHA uses 120)."""
    confirm_min_s: float = 60.0
    """B1-2: a confirming re-measure comes at least this long after the first ([AHA-crisis])."""
    confirm_max_s: float = 600.0
    """B1-2: ... and at most this long (guideline 5 minutes; 10 allowed)."""
    act_window_s: float = 3600.0
    """Readings older than this raise no local alert (the cloud rules still see them)."""

    def __post_init__(self) -> None:
        _check("hypo_level2_mmol_l", self.hypo_level2_mmol_l, 1.0, 10.0)
        _check("hyper_emergency_mmol_l", self.hyper_emergency_mmol_l, 10.0, 60.0)
        _check("systolic_crisis_mmhg", self.systolic_crisis_mmhg, 100.0, 300.0)
        _check("diastolic_crisis_mmhg", self.diastolic_crisis_mmhg, 60.0, 200.0)
        _check("confirm_min_s", self.confirm_min_s, 0.0, 3600.0)
        _check("confirm_max_s", self.confirm_max_s, 1.0, 3600.0)
        _check("act_window_s", self.act_window_s, 60.0, 7 * 86_400.0)
        if self.confirm_min_s >= self.confirm_max_s:
            raise ThresholdError(
                "confirm_min_s", self.confirm_min_s, "needs confirm_min_s < confirm_max_s"
            )


@dataclass(frozen=True, slots=True, eq=False)
class ThresholdSet:
    """The default thresholds and per-person overrides (person ref -> thresholds)."""

    default: UrgentThresholds = field(default_factory=UrgentThresholds)
    per_person: Mapping[str, UrgentThresholds] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(
        cls,
        default: UrgentThresholds | None = None,
        per_person: Mapping[str, UrgentThresholds] | None = None,
    ) -> ThresholdSet:
        return cls(default or UrgentThresholds(), MappingProxyType(dict(per_person or {})))

    def for_person(self, person_ref: str | None) -> UrgentThresholds:
        if person_ref is None:
            return self.default
        return self.per_person.get(person_ref, self.default)


@dataclass(frozen=True, slots=True)
class LocalAlert:
    """An alert raised at home. ``alert_id`` is derived from the rule and the reading's identity,
    so replaying a batch yields the same ids (send them with the readings when the link is back).
    """

    alert_id: str
    rule: UrgentRule
    severity: Severity
    person_ref: str | None
    device_key: str
    user_id: int | None  # cuff user slot
    reading_identity: Identity
    measured_at: datetime  # the reading's measured_at, or its received_at when that is untrusted
    raised_at: datetime
    value_text: str  # "2.6 mmol/L", "LO", "HI", "186/112 mmHg" (the reading has the numbers)
    message_zh: str
    message_en: str
    reading_flags: frozenset[ReadingFlag] = frozenset()
    confirms: Identity | None = None  # B1-2: the earlier reading this one confirms


@dataclass(frozen=True, slots=True)
class HighPressure:
    """A recent blood pressure at or above the crisis line, kept to confirm a re-measure."""

    subject: str
    identity: Identity
    measured_at_s: float
    usable: bool  # may confirm (not implausible, systolic above diastolic, time trusted)
    expires_at_s: float


@dataclass(frozen=True, slots=True)
class UrgentOutcome:
    alerts: tuple[LocalAlert, ...]
    recent_high: tuple[HighPressure, ...]
    too_old: int  # urgent readings older than the act window (left to the cloud)
    untrusted_time: int  # urgent readings skipped: untrusted time and not the device's latest


def subject_of(reading: Reading, person_ref: str | None) -> str:
    """Whose blood pressure a confirmation pairs: the person, else the device and cuff slot."""
    if person_ref is not None:
        return f"person:{person_ref}"
    user = reading.user_id if isinstance(reading, BloodPressureReading) else None
    return f"device:{reading.device.key}:u{user}"


def _glucose_text(reading: GlucoseReading, rule: UrgentRule) -> str:
    g = reading.glucose_mmol_l
    if rule is UrgentRule.G1 and ReadingFlag.LOW_OUT_OF_RANGE in reading.flags:
        return "LO"
    if rule is UrgentRule.G6 and ReadingFlag.HIGH_OUT_OF_RANGE in reading.flags:
        return "HI"
    if g is None:  # pragma: no cover - masks only select rows with a value or a HI/LO flag
        return "-"
    return f"{g:.1f} mmol/L"


def _pressure_text(reading: BloodPressureReading) -> str:
    return f"{reading.systolic_mmhg:g}/{reading.diastolic_mmhg:g} mmHg"


def _alert(
    rule: UrgentRule,
    reading: Reading,
    person_ref: str | None,
    now: datetime,
    value_text: str,
    text: messages.Bilingual,
    confirms: Identity | None = None,
) -> LocalAlert:
    identity = reading.identity
    measured = reading.measured_at
    if measured is None or ReadingFlag.TIME_FAULT in reading.flags:
        measured = reading.received_at  # the reading's own time cannot be trusted
    return LocalAlert(
        alert_id=f"{rule.value}|{'|'.join(identity)}",
        rule=rule,
        severity=_SEVERITY[rule],
        person_ref=person_ref,
        device_key=reading.device.key,
        user_id=reading.user_id if isinstance(reading, BloodPressureReading) else None,
        reading_identity=identity,
        measured_at=measured,
        raised_at=now,
        value_text=value_text,
        message_zh=text[0].format(value=value_text),
        message_en=text[1].format(value=value_text),
        reading_flags=reading.flags,
        confirms=confirms,
    )


def _latest_of_device(device_code: npt.NDArray[np.int64]) -> Bools:
    """True at the last row of each device (rows are in publishing order)."""
    n = device_code.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    if n:
        reversed_codes = device_code[::-1]
        _, first_in_reversed = np.unique(reversed_codes, return_index=True)
        out[n - 1 - first_in_reversed] = True
    return out


def _per_row(values: list[UrgentThresholds], attr: str) -> Floats:
    return np.asarray([getattr(t, attr) for t in values], dtype=np.float64)


def evaluate_urgent(
    readings: Sequence[Reading],
    now: datetime,
    thresholds: ThresholdSet,
    recent_high: tuple[HighPressure, ...] = (),
    person_of: PersonOf | None = None,
    columns: BatchColumns | None = None,
) -> UrgentOutcome:
    """Run the local urgent rules over readings that are unique (not duplicates), placed in time
    and in publishing order. ``columns`` may be passed when already built for ``readings`` (with
    flag masks current). Returns the alerts and the new list of recent high pressures."""
    cols = columns if columns is not None else BatchColumns.of(readings)
    n = len(readings)
    now_s = now.timestamp()
    persons: list[str | None] = (
        [person_of(r) for r in readings] if person_of is not None else [None] * n
    )
    per_row = [thresholds.for_person(p) for p in persons] if thresholds.per_person else []

    def limit(attr: str) -> Floats | float:
        if per_row:
            return _per_row(per_row, attr)
        value: float = getattr(thresholds.default, attr)
        return value

    # candidates, vectorised
    g = cols.glucose_mmol_l
    patient_glucose = (
        cols.is_glucose
        & cols.glucose_present
        & ~cols.value_missing
        & ~cols.control_solution
        & ~cols.high_out_of_range
        & ~cols.low_out_of_range
    )
    hi_lo_result = cols.is_glucose & ~cols.control_solution
    with np.errstate(invalid="ignore"):
        g1 = (patient_glucose & (g < limit("hypo_level2_mmol_l"))) | (
            hi_lo_result & cols.low_out_of_range
        )
        g6 = (patient_glucose & ~cols.implausible & (g >= limit("hyper_emergency_mmol_l"))) | (
            hi_lo_result & cols.high_out_of_range
        )
        bp = (
            ~cols.is_glucose
            & cols.systolic_present
            & cols.diastolic_present
            & ~cols.value_missing
            & (
                (cols.systolic_mmhg >= limit("systolic_crisis_mmhg"))
                | (cols.diastolic_mmhg >= limit("diastolic_crisis_mmhg"))
            )
        )
    urgent = g1 | g6 | bp
    if not urgent.any():
        kept = tuple(h for h in recent_high if h.expires_at_s >= now_s)
        return UrgentOutcome((), kept, 0, 0)

    # when each reading counts as measured, and whether it is fresh enough to act on
    trusted = ~cols.time_fault
    when = np.where(trusted, cols.measured_at_s, cols.received_at_s)
    act_window = limit("act_window_s")
    with np.errstate(invalid="ignore"):
        fresh = (now_s - when) <= act_window
    latest = _latest_of_device(cols.device_code)
    eligible = urgent & fresh & (trusted | latest)
    too_old = int((urgent & ~fresh).sum())
    untrusted_skipped = int((urgent & fresh & ~trusted & ~latest).sum())

    alerts: list[LocalAlert] = []
    for i in np.flatnonzero(eligible & (g1 | g6)).tolist():
        reading = readings[i]
        assert isinstance(reading, GlucoseReading)
        for rule, hit, text in (
            (UrgentRule.G1, g1, messages.GLUCOSE_LOW),
            (UrgentRule.G6, g6, messages.GLUCOSE_HIGH),
        ):
            if hit[i]:
                alerts.append(
                    _alert(rule, reading, persons[i], now, _glucose_text(reading, rule), text)
                )

    recent = [h for h in recent_high if h.expires_at_s >= now_s]
    bp_rows = np.flatnonzero(eligible & bp)
    for i in bp_rows[np.argsort(when[bp_rows], kind="stable")].tolist():
        reading = readings[i]
        assert isinstance(reading, BloodPressureReading)
        limits = per_row[i] if per_row else thresholds.default
        subject = subject_of(reading, persons[i])
        t = float(when[i])
        usable = bool(trusted[i]) and not (reading.flags & _NO_CONFIRM)
        confirmed: HighPressure | None = None
        if usable:
            for earlier in reversed(recent):
                gap = t - earlier.measured_at_s
                if (
                    earlier.usable
                    and earlier.subject == subject
                    and limits.confirm_min_s <= gap <= limits.confirm_max_s
                ):
                    confirmed = earlier
                    break
        text_value = _pressure_text(reading)
        if confirmed is not None:
            alerts.append(
                _alert(
                    UrgentRule.B1_2,
                    reading,
                    persons[i],
                    now,
                    text_value,
                    messages.BP_CONFIRMED,
                    confirms=confirmed.identity,
                )
            )
        else:
            alerts.append(
                _alert(UrgentRule.B3, reading, persons[i], now, text_value, messages.BP_REMEASURE)
            )
        recent.append(
            HighPressure(
                subject=subject,
                identity=reading.identity,
                measured_at_s=t,
                usable=usable,
                expires_at_s=t + limits.confirm_max_s + limits.act_window_s,
            )
        )
    alerts.sort(key=lambda a: (a.measured_at, a.rule.value))
    return UrgentOutcome(
        alerts=tuple(alerts),
        recent_high=tuple(recent[-MAX_RECENT_HIGH:]),
        too_old=too_old,
        untrusted_time=untrusted_skipped,
    )
