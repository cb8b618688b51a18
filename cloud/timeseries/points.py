"""Stored readings as InfluxDB line-protocol points. Pure.

One measurement per kind, canonical units in the field names:

========================  ===============================================  ==================
measurement               fields                                            from ``readings``
========================  ===============================================  ==================
``blood_pressure``        ``systolic``, ``diastolic``, ``mean``, ``pulse``  mmHg, mmHg, mmHg, bpm
``glucose``               ``mmol_l``                                        mmol/L
========================  ===============================================  ==================

Tags are opaque ids and low-cardinality codes only, never a name or an identifier of a person:
``person`` (the person's UUID; absent while the reading is unassigned), ``household`` (UUID),
``device`` (the device row's UUID, when known), ``device_kind`` (``glucose_meter``,
``blood_pressure_monitor``). The timestamp is the reading's effective UTC time (measured, else
received), in milliseconds. A point has the same series and timestamp every time it is written,
so a repeated write overwrites (InfluxDB) or deduplicates (VictoriaMetrics with
``-dedup.minScrapeInterval``) instead of adding a sample.

VictoriaMetrics names the series ``<measurement>_<field>``: ``blood_pressure_systolic``,
``glucose_mmol_l``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "FIELDS",
    "MEASUREMENTS",
    "MirrorReading",
    "line_protocol",
    "to_line",
]

MEASUREMENTS: Final[Mapping[str, str]] = {
    "blood_pressure_monitor": "blood_pressure",
    "glucose_meter": "glucose",
}
"""Reading kind (``DeviceKind`` value) -> measurement."""

FIELDS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "blood_pressure": (
        ("systolic", "systolic_mmhg"),
        ("diastolic", "diastolic_mmhg"),
        ("mean", "mean_arterial_mmhg"),
        ("pulse", "pulse_bpm"),
    ),
    "glucose": (("mmol_l", "glucose_mmol_l"),),
}
"""Measurement -> (field, ``MirrorReading.values`` key) in line order."""


@dataclass(frozen=True, slots=True)
class MirrorReading:
    """What the mirror needs of a stored reading (no personal data)."""

    kind: str
    effective_at: datetime
    household_id: uuid.UUID | None
    person_id: uuid.UUID | None
    device_id: uuid.UUID | None
    values: Mapping[str, float | None]


def _tag_value(value: str) -> str:
    # UUIDs and our codes never need escaping; escape anyway so a new code cannot break a line
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _field_value(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text  # 128.0 -> 128 (still a float field)


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("effective_at must be timezone-aware")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def to_line(reading: MirrorReading) -> str | None:
    """One line-protocol line (millisecond precision), or None when there is nothing to write:
    an unknown kind, or no finite value (a glucose HI/LO reading has no number)."""
    measurement = MEASUREMENTS.get(reading.kind)
    if measurement is None:
        return None
    fields = []
    for name, key in FIELDS[measurement]:
        value = reading.values.get(key)
        if value is not None and math.isfinite(value):
            fields.append(f"{name}={_field_value(value)}")
    if not fields:
        return None
    tags = {"device_kind": reading.kind}
    if reading.device_id is not None:
        tags["device"] = str(reading.device_id)
    if reading.household_id is not None:
        tags["household"] = str(reading.household_id)
    if reading.person_id is not None:
        tags["person"] = str(reading.person_id)
    tag_text = ",".join(f"{k}={_tag_value(v)}" for k, v in sorted(tags.items()))
    return f"{measurement},{tag_text} {','.join(fields)} {_epoch_ms(reading.effective_at)}"


def line_protocol(readings: Iterable[MirrorReading]) -> list[str]:
    """The lines of the readings that have something to write, in order."""
    return [line for line in map(to_line, readings) if line is not None]
