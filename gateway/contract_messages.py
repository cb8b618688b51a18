"""The message types of the MQTT contract, version 1 (docs/mqtt.md "Messages").

Split from :mod:`gateway.contract`, which re-exports every name here: import from there. msgspec
Structs, keyword-only and frozen; defaults are left out on the wire and unknown fields are ignored
(msgspec's schema-evolution rules: a field added within a version must have a default). Every
field type carries its limit: string and list lengths, number ranges (no NaN, no infinity), aware
UTC times for what the gateway measured and naive times for what a device clock said.

Pure: standard library and msgspec only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "MAX_ID_CHARS",
    "MAX_READINGS_PER_ENVELOPE",
    "AckMessage",
    "ConfigMessage",
    "DeviceConfig",
    "DeviceDiagnostics",
    "DeviceInfo",
    "EventMessage",
    "EventType",
    "GlucoseContextMessage",
    "LocalAlert",
    "Message",
    "OutboxStatus",
    "PersonConfig",
    "ReadingEnvelope",
    "ReadingMessage",
    "Rejection",
    "StatusMessage",
    "UserSlot",
]

MAX_READINGS_PER_ENVELOPE: Final = 500
MAX_ID_CHARS: Final = 64

# --- field types -------------------------------------------------------------------------------
_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=_ID_PATTERN)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Short = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Value = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]
Seconds = Annotated[float, msgspec.Meta(ge=-1e10, le=1e10)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Byte = Annotated[int, msgspec.Meta(ge=0, le=255)]
Version = Annotated[int, msgspec.Meta(ge=0, le=2**31)]
Aware = Annotated[datetime, msgspec.Meta(tz=True)]
Naive = Annotated[datetime, msgspec.Meta(tz=False)]
Flags = Annotated[tuple[Short, ...], msgspec.Meta(max_length=64)]
ReadingIds = Annotated[tuple[Key, ...], msgspec.Meta(max_length=2 * MAX_READINGS_PER_ENVELOPE)]


class _Base(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Keyword-only, immutable, defaults left out on the wire, unknown fields ignored."""


# --- readings ----------------------------------------------------------------------------------
class DeviceInfo(_Base, frozen=True, kw_only=True):
    """The meter or cuff. ``key`` is :attr:`DeviceIdentity.key` (stable across address changes)."""

    key: Key
    address: Short = ""
    system_id: Short | None = None
    serial_number: Short | None = None
    model_number: Short | None = None
    manufacturer: Short | None = None


class GlucoseContextMessage(_Base, frozen=True, kw_only=True):
    """GLS Glucose Measurement Context (GLS 3.107 codes), joined to its measurement."""

    meal: Byte | None = None
    tester: Byte | None = None
    health: Byte | None = None
    carbohydrate_id: Byte | None = None
    carbohydrate_g: Value | None = None
    exercise_duration_s: Count | None = None
    exercise_intensity_pct: Count | None = None
    medication_id: Byte | None = None
    medication_mg: Value | None = None
    medication_ml: Value | None = None
    hba1c_pct: Value | None = None


class LocalAlert(_Base, frozen=True, kw_only=True):
    """An alert the gateway raised at home (offline urgent rule), sent with its reading."""

    rule_id: Short
    level: Short  # "urgent" | "warning" (open)
    raised_at: Aware
    message_zh: Text = ""
    message_en: Text = ""


class ReadingMessage(_Base, frozen=True, kw_only=True):
    """One reading. ``reading_id`` is :func:`reading_id_for` of the reading's identity: the
    idempotency key every hop dedupes on. Values are in the canonical units of the field names;
    the kind-specific fields of the other kind are absent."""

    reading_id: Key
    kind: Short  # DeviceKind value; open: a newer gateway may send kinds this cloud rejects
    device: DeviceInfo
    person_ref: Key | None = None  # None: unassigned (unknown device or unmapped cuff slot)
    attribution: Short | None = None  # why: "enrolled", "slot", "unknown_device", ...
    sequence_number: Count | None = None
    user_id: Byte | None = None  # cuff user slot
    device_time: Naive | None = None  # as the device reported it, no zone
    measured_at: Aware | None = None  # corrected, UTC
    received_at: Aware
    clock_skew_s: Seconds | None = None
    glucose_mmol_l: Value | None = None
    systolic_mmhg: Value | None = None
    diastolic_mmhg: Value | None = None
    mean_arterial_mmhg: Value | None = None
    pulse_bpm: Value | None = None
    original_value: Value | None = None  # glucose as sent, in original_unit
    original_unit: Short | None = None  # "kg/L", "mol/L", "mmHg", "kPa"
    sample_type: Byte | None = None
    sample_location: Byte | None = None
    status_bits: Count = 0  # sensor status annunciation / BP measurement status, raw
    flags: Flags = ()  # ReadingFlag values; open
    context: GlucoseContextMessage | None = None
    urgent: bool = False
    local_alert: LocalAlert | None = None

    @property
    def unassigned(self) -> bool:
        return self.person_ref is None


class ReadingEnvelope(_Base, frozen=True, kw_only=True):
    """A batch of readings on ``up/readings``. ``message_id`` correlates the cloud's ack."""

    schema_version: Version
    message_id: Id
    gateway_id: Id
    sent_at: Aware
    readings: Annotated[
        tuple[ReadingMessage, ...], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_ENVELOPE)
    ]


# --- acks --------------------------------------------------------------------------------------
class Rejection(_Base, frozen=True, kw_only=True):
    reading_id: Key
    reason: Short  # e.g. "unsupported_kind", "invalid"
    detail: Text = ""
    retryable: bool = False  # True: keep it and send it again later


class AckMessage(_Base, frozen=True, kw_only=True):
    """The cloud's application-level ack on ``down/acks``: only this removes readings from the
    gateway outbox (not the MQTT PUBACK). ``accepted`` were stored now, ``duplicates`` had been
    stored before: both are done. ``envelope_error`` says the whole envelope was undecodable;
    the gateway then keeps every reading of it and retries later."""

    schema_version: Version
    gateway_id: Id
    message_id: Id | None = None
    acked_at: Aware
    accepted: ReadingIds = ()
    duplicates: ReadingIds = ()
    rejected: Annotated[
        tuple[Rejection, ...], msgspec.Meta(max_length=2 * MAX_READINGS_PER_ENVELOPE)
    ] = ()
    envelope_error: Short | None = None


# --- config ------------------------------------------------------------------------------------
class UserSlot(_Base, frozen=True, kw_only=True):
    user_id: Byte
    person_ref: Key


class DeviceConfig(_Base, frozen=True, kw_only=True):
    """One enrolled device, matched by System ID, then serial number, then address."""

    kind: Short
    system_id: Short | None = None
    serial_number: Short | None = None
    address: Short | None = None
    person_ref: Key | None = None
    user_slots: Annotated[tuple[UserSlot, ...], msgspec.Meta(max_length=256)] = ()
    label: Text = ""

    def __post_init__(self) -> None:
        if not (self.system_id or self.serial_number or self.address):
            raise ValueError("an enrolled device needs a system_id, serial_number or address")


class PersonConfig(_Base, frozen=True, kw_only=True):
    """Per-person thresholds for the gateway's local urgent rules (absent: the defaults)."""

    person_ref: Key
    glucose_urgent_low_mmol_l: Value | None = None
    glucose_urgent_high_mmol_l: Value | None = None
    systolic_urgent_mmhg: Value | None = None
    diastolic_urgent_mmhg: Value | None = None


class ConfigMessage(_Base, frozen=True, kw_only=True):
    """Enrollment and per-person settings, retained on ``down/config``. Higher ``version`` wins."""

    schema_version: Version
    gateway_id: Id
    version: Version
    issued_at: Aware
    devices: Annotated[tuple[DeviceConfig, ...], msgspec.Meta(max_length=256)] = ()
    persons: Annotated[tuple[PersonConfig, ...], msgspec.Meta(max_length=256)] = ()


# --- status ------------------------------------------------------------------------------------
class OutboxStatus(_Base, frozen=True, kw_only=True):
    pending: Count
    in_flight: Count = 0
    urgent_pending: Count = 0
    capacity: Count = 0
    rejected: Count = 0  # readings the cloud refused for good, kept in the gateway
    refused: Count = 0  # readings the full outbox refused (left on the meter)
    oldest_pending_at: Aware | None = None


class DeviceDiagnostics(_Base, frozen=True, kw_only=True):
    """Session diagnostics of one device (the three kinds of "no data")."""

    device_key: Key
    kind: Short
    label: Text = ""
    last_seen: Aware | None = None
    last_sync: Aware | None = None
    last_sync_ok: bool | None = None
    failure_stage: Short | None = None  # e.g. "connect", "pair", "discover", "transfer"
    failure_reason: Short | None = None
    consecutive_failures: Count = 0
    battery_pct: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    clock_skew_s: Seconds | None = None
    rssi_dbm: Annotated[int, msgspec.Meta(ge=-200, le=50)] | None = None
    last_sequence_number: Count | None = None
    readings_synced: Count = 0


class StatusMessage(_Base, frozen=True, kw_only=True):
    """Retained on ``up/status``; the MQTT last will is the same message with ``offline``."""

    schema_version: Version
    gateway_id: Id
    state: Literal["online", "offline"]
    sent_at: Aware
    software_version: Short = ""
    config_version: Version | None = None
    outbox: OutboxStatus | None = None
    devices: Annotated[tuple[DeviceDiagnostics, ...], msgspec.Meta(max_length=256)] = ()


# --- events ------------------------------------------------------------------------------------
class EventType(StrEnum):
    """Known event types. The field is open: decoders accept types they do not know."""

    URGENT_READING = "urgent_reading"
    OUTBOX_FILLING = "outbox_filling"  # crossed 80 % or 95 % of capacity
    OUTBOX_FULL = "outbox_full"  # new non-urgent readings are refused (they stay on the meter)
    READINGS_REJECTED = "readings_rejected"
    CONFIG_REJECTED = "config_rejected"
    DEVICE_FAILING = "device_failing"


Scalar = str | int | float | bool | None


class EventMessage(_Base, frozen=True, kw_only=True):
    schema_version: Version
    gateway_id: Id
    event_id: Id
    occurred_at: Aware
    type: Short
    severity: Literal["info", "warning", "critical"]
    device_key: Key | None = None
    person_ref: Key | None = None
    reading_id: Key | None = None
    rule_id: Short | None = None
    message_zh: Text = ""
    message_en: Text = ""
    detail: Annotated[dict[Short, Scalar], msgspec.Meta(max_length=32)] = {}


Message = ReadingEnvelope | AckMessage | ConfigMessage | StatusMessage | EventMessage
