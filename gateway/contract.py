"""The MQTT contract between a household gateway and the cloud (docs/mqtt.md), version 1.

Pure and imported by the cloud: standard library, msgspec and :mod:`device_drivers.model` only.

Topics are scoped per gateway, ``anjia/v1/gw/{gateway_id}/{channel}``, so that a broker ACL can
confine each gateway to its own prefix (docs/mqtt.md "Topics" and "Broker requirements"). Every
message carries ``schema_version``. Evolution follows msgspec's schema-evolution rules: within a
version fields are only added, each with a default, and never change type; decoders ignore unknown
fields; anything else is a new version, and a decoder rejects versions it does not support with
:attr:`ContractFault.UNSUPPORTED_VERSION`.

Decoding treats every payload as hostile: size is bounded per channel before parsing, nesting
depth is bounded by the parser, every number is range-checked (JSON has no NaN; out-of-range
numbers such as ``1e999`` are rejected), strings and lists have length limits. Any failure raises
:class:`ContractError` with a :class:`ContractFault`; callers never branch on message text.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, TypeVar

import msgspec

from device_drivers.model import BloodPressureReading, DeviceKind, GlucoseReading, Reading
from gateway.contract_messages import (
    MAX_ID_CHARS,
    MAX_READINGS_PER_ENVELOPE,
    AckMessage,
    ConfigMessage,
    DeviceConfig,
    DeviceDiagnostics,
    DeviceInfo,
    EventMessage,
    EventType,
    GlucoseContextMessage,
    LocalAlert,
    Message,
    OutboxStatus,
    PersonConfig,
    ReadingEnvelope,
    ReadingMessage,
    Rejection,
    StatusMessage,
    UserSlot,
)

__all__ = [
    "MAX_BYTES",
    "MAX_READINGS_PER_ENVELOPE",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "TOPIC_ROOT",
    "AckMessage",
    "Channel",
    "ConfigMessage",
    "ContractError",
    "ContractFault",
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
    "channel_of",
    "cloud_filter",
    "decode",
    "decode_ack",
    "decode_config",
    "decode_envelope",
    "decode_event",
    "decode_reading",
    "decode_readings",
    "decode_status",
    "encode",
    "encode_envelope",
    "encode_envelope_body",
    "encode_reading",
    "from_reading",
    "known_kind",
    "parse_topic",
    "reading_id_for",
    "topic",
    "validate_id",
]

SCHEMA_VERSION: Final = 1
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({1})
TOPIC_ROOT: Final = "anjia/v1/gw"
MAX_READING_BYTES: Final = 16 * 1024


class Channel(StrEnum):
    """The last two topic levels. ``up`` is gateway to cloud, ``down`` cloud to gateway."""

    READINGS = "up/readings"  # ReadingEnvelope, QoS 1
    STATUS = "up/status"  # StatusMessage, QoS 1, retained, also the last will (offline)
    EVENTS = "up/events"  # EventMessage, QoS 1
    ACKS = "down/acks"  # AckMessage, QoS 1
    CONFIG = "down/config"  # ConfigMessage, QoS 1, retained


MAX_BYTES: Final[dict[Channel, int]] = {
    Channel.READINGS: 512 * 1024,
    Channel.STATUS: 256 * 1024,
    Channel.EVENTS: 32 * 1024,
    Channel.ACKS: 256 * 1024,
    Channel.CONFIG: 256 * 1024,
}
"""Payload size limits per channel, checked before parsing."""


class ContractFault(StrEnum):
    NOT_BYTES = "not_bytes"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"  # not JSON
    TOO_DEEP = "too_deep"  # nesting beyond the parser's depth limit
    INVALID = "invalid"  # JSON, but not this message's schema (wrong type, range, length...)
    MISSING_VERSION = "missing_version"
    UNSUPPORTED_VERSION = "unsupported_version"
    GATEWAY_MISMATCH = "gateway_mismatch"  # payload gateway_id differs from the topic's
    BAD_TOPIC = "bad_topic"
    BAD_ID = "bad_id"
    NOT_FINITE = "not_finite"  # encoding side: NaN or infinity in a reading


class ContractError(ValueError):
    """A message or topic does not satisfy the contract. ``fault`` says what kind of failure,
    ``detail`` where (for logs; never parse it), ``schema_version`` when it could be read."""

    def __init__(
        self, fault: ContractFault, detail: str = "", *, schema_version: object = None
    ) -> None:
        self.fault = fault
        self.detail = detail
        self.schema_version = schema_version
        super().__init__(f"{fault.value}: {detail}" if detail else fault.value)


_MESSAGE_CHANNEL: Final[dict[type[Message], Channel]] = {
    ReadingEnvelope: Channel.READINGS,
    StatusMessage: Channel.STATUS,
    EventMessage: Channel.EVENTS,
    AckMessage: Channel.ACKS,
    ConfigMessage: Channel.CONFIG,
}


# --- topics ------------------------------------------------------------------------------------
# ASCII letters and digits first, then also . _ : - (a regex: ids are checked on every message)
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def validate_id(value: str, what: str = "gateway_id") -> str:
    """Return ``value`` if it is a safe id for topics and payloads, else raise BAD_ID.
    Ids never hold ``/``, ``+``, ``#``, ``$``, spaces or control characters."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_ID_CHARS
        or _ID_PATTERN.fullmatch(value) is None
    ):
        raise ContractError(ContractFault.BAD_ID, f"{what} {value!r:.80}")
    return value


def topic(gateway_id: str, channel: Channel) -> str:
    return f"{TOPIC_ROOT}/{validate_id(gateway_id)}/{channel.value}"


def cloud_filter(channel: Channel, share_group: str | None = None) -> str:
    """The cloud's subscription filter for ``channel`` of every gateway; with ``share_group`` a
    shared subscription (Mosquitto, EMQX; amqtt silently delivers nothing on ``$share``)."""
    base = f"{TOPIC_ROOT}/+/{channel.value}"
    return f"$share/{validate_id(share_group, 'share_group')}/{base}" if share_group else base


def parse_topic(value: str) -> tuple[str, Channel]:
    """``anjia/v1/gw/{gateway_id}/{direction}/{name}`` -> (gateway_id, channel)."""
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 6 or "/".join(parts[:3]) != TOPIC_ROOT:
        raise ContractError(ContractFault.BAD_TOPIC, f"{value!r:.200}")
    try:
        channel = Channel(f"{parts[4]}/{parts[5]}")
    except ValueError:
        raise ContractError(ContractFault.BAD_TOPIC, f"unknown channel in {value!r:.200}") from None
    try:
        gateway_id = validate_id(parts[3])
    except ContractError as exc:
        raise ContractError(ContractFault.BAD_TOPIC, exc.detail) from None
    return gateway_id, channel


# --- readings from the domain model ------------------------------------------------------------
def reading_id_for(identity: Sequence[str]) -> str:
    """The reading id: 32 hex digits of BLAKE2b-128 over the identity parts joined by U+001F.
    Stable across gateways, restarts and replays of the same reading."""
    return hashlib.blake2b("\x1f".join(identity).encode(), digest_size=16).hexdigest()


def _finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ContractError(ContractFault.NOT_FINITE, name)
    return value


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ContractError(ContractFault.INVALID, f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def from_reading(
    reading: Reading,
    person_ref: str | None,
    *,
    attribution: str | None = None,
    urgent: bool = False,
    local_alert: LocalAlert | None = None,
) -> ReadingMessage:
    """Translate a domain reading into its wire form. Raises ContractError (NOT_FINITE, INVALID)
    for values the wire cannot carry: never writes NaN as null or drops a field."""
    device = reading.device
    if reading.device_time is not None and reading.device_time.tzinfo is not None:
        raise ContractError(ContractFault.INVALID, "device_time must be naive (device clock)")
    common = {
        "reading_id": reading_id_for(reading.identity),
        "kind": reading.kind.value,
        "device": DeviceInfo(
            key=device.key,
            address=device.address,
            system_id=device.system_id,
            serial_number=device.serial_number,
            model_number=device.model_number,
            manufacturer=device.manufacturer,
        ),
        "person_ref": person_ref,
        "attribution": attribution,
        "sequence_number": reading.sequence_number,
        "device_time": reading.device_time,
        "measured_at": _utc(reading.measured_at, "measured_at"),
        "received_at": _utc(reading.received_at, "received_at"),
        "clock_skew_s": _finite("clock_skew_s", reading.clock_skew_s),
        "flags": tuple(sorted(flag.value for flag in reading.flags)),
        "urgent": urgent,
        "local_alert": local_alert,
    }
    if isinstance(reading, GlucoseReading):
        ctx = reading.context
        return ReadingMessage(
            **common,  # type: ignore[arg-type]
            glucose_mmol_l=_finite("glucose_mmol_l", reading.glucose_mmol_l),
            original_value=_finite("original_value", reading.original_value),
            original_unit=reading.original_unit,
            sample_type=reading.sample_type,
            sample_location=reading.sample_location,
            status_bits=reading.sensor_status,
            context=None
            if ctx is None
            else GlucoseContextMessage(
                meal=ctx.meal,
                tester=ctx.tester,
                health=ctx.health,
                carbohydrate_id=ctx.carbohydrate_id,
                carbohydrate_g=_finite("carbohydrate_g", ctx.carbohydrate_g),
                exercise_duration_s=ctx.exercise_duration_s,
                exercise_intensity_pct=ctx.exercise_intensity_pct,
                medication_id=ctx.medication_id,
                medication_mg=_finite("medication_mg", ctx.medication_mg),
                medication_ml=_finite("medication_ml", ctx.medication_ml),
                hba1c_pct=_finite("hba1c_pct", ctx.hba1c_pct),
            ),
        )
    assert isinstance(reading, BloodPressureReading)
    return ReadingMessage(
        **common,  # type: ignore[arg-type]
        user_id=reading.user_id,
        systolic_mmhg=_finite("systolic_mmhg", reading.systolic_mmhg),
        diastolic_mmhg=_finite("diastolic_mmhg", reading.diastolic_mmhg),
        mean_arterial_mmhg=_finite("mean_arterial_mmhg", reading.mean_arterial_mmhg),
        pulse_bpm=_finite("pulse_bpm", reading.pulse_bpm),
        original_unit=reading.original_unit,
        status_bits=reading.measurement_status,
    )


def known_kind(message: ReadingMessage) -> DeviceKind | None:
    """The reading's kind if this version of the contract knows it, else None."""
    try:
        return DeviceKind(message.kind)
    except ValueError:
        return None


# --- encoding ----------------------------------------------------------------------------------
def encode(message: Message | ReadingMessage) -> bytes:
    """Compact JSON (msgspec's encoder: orjson-class speed, and it knows the Structs)."""
    return msgspec.json.encode(message)


def encode_reading(message: ReadingMessage) -> bytes:
    """Encode one reading and check that it decodes under the contract's limits, so that the
    gateway never stores a reading the cloud would refuse on schema grounds."""
    data = msgspec.json.encode(message)
    decode_reading(data)
    return data


def encode_envelope(
    message_id: str, gateway_id: str, sent_at: datetime, readings: Sequence[bytes]
) -> bytes:
    """Build a ReadingEnvelope from readings already encoded by :func:`encode_reading`, by
    concatenation (the publisher's hot path): byte for byte what :func:`encode` would give."""
    return encode_envelope_body(message_id, gateway_id, sent_at, b",".join(readings), len(readings))


def encode_envelope_body(
    message_id: str, gateway_id: str, sent_at: datetime, body: bytes, count: int
) -> bytes:
    """:func:`encode_envelope` for ``count`` readings already joined by ``,`` into ``body``
    (as the outbox hands them out)."""
    if not 0 < count <= MAX_READINGS_PER_ENVELOPE:
        raise ContractError(ContractFault.INVALID, f"{count} readings in one envelope")
    validate_id(message_id, "message_id")
    validate_id(gateway_id)
    head = msgspec.json.encode(
        _EnvelopeHead(
            schema_version=SCHEMA_VERSION,
            message_id=message_id,
            gateway_id=gateway_id,
            sent_at=_utc(sent_at, "sent_at") or sent_at,
        )
    )
    return b"".join((head[:-1], b',"readings":[', body, b"]}"))


class _EnvelopeHead(msgspec.Struct, frozen=True):
    schema_version: int
    message_id: str
    gateway_id: str
    sent_at: datetime


# --- decoding ----------------------------------------------------------------------------------
class _Version(msgspec.Struct):
    schema_version: object = None


_T = TypeVar("_T", bound=msgspec.Struct)

_ENVELOPE_DECODER: Final = msgspec.json.Decoder(ReadingEnvelope)
_ACK_DECODER: Final = msgspec.json.Decoder(AckMessage)
_CONFIG_DECODER: Final = msgspec.json.Decoder(ConfigMessage)
_STATUS_DECODER: Final = msgspec.json.Decoder(StatusMessage)
_EVENT_DECODER: Final = msgspec.json.Decoder(EventMessage)
_READING_DECODER: Final = msgspec.json.Decoder(ReadingMessage)
_READINGS_DECODER: Final = msgspec.json.Decoder(tuple[ReadingMessage, ...])
_VERSION_DECODER: Final = msgspec.json.Decoder(_Version)


def _version_fault(data: bytes | bytearray | memoryview) -> ContractError | None:
    try:
        version = _VERSION_DECODER.decode(data).schema_version
    except (msgspec.DecodeError, RecursionError):
        return None
    if version is None:
        return ContractError(ContractFault.MISSING_VERSION, "no schema_version")
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        supported = sorted(SUPPORTED_SCHEMA_VERSIONS)
        return ContractError(
            ContractFault.UNSUPPORTED_VERSION,
            f"schema_version {version!r:.20} (this decoder supports {supported})",
            schema_version=version,
        )
    return None


def _decode(
    data: bytes | bytearray | memoryview,
    decoder: msgspec.json.Decoder[_T],
    limit: int,
    gateway_id: str | None,
    *,
    versioned: bool = True,
) -> _T:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ContractError(ContractFault.NOT_BYTES, type(data).__name__)
    if len(data) > limit:
        raise ContractError(ContractFault.TOO_LARGE, f"{len(data)} bytes > {limit}")
    try:
        message = decoder.decode(data)
    except msgspec.ValidationError as exc:
        fault = _version_fault(data) if versioned else None
        raise fault or ContractError(ContractFault.INVALID, str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ContractError(ContractFault.MALFORMED, str(exc)) from exc
    except RecursionError:
        raise ContractError(ContractFault.TOO_DEEP, "nesting too deep") from None
    if versioned:
        version = message.schema_version  # type: ignore[attr-defined]
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise _version_fault(data) or ContractError(ContractFault.UNSUPPORTED_VERSION)
        if gateway_id is not None and message.gateway_id != gateway_id:  # type: ignore[attr-defined]
            raise ContractError(ContractFault.GATEWAY_MISMATCH, "payload gateway_id != topic's")
    return message


def decode_envelope(
    data: bytes | bytearray | memoryview, *, gateway_id: str | None = None
) -> ReadingEnvelope:
    """Decode ``up/readings``. Pass the topic's ``gateway_id`` (from :func:`parse_topic`): the
    broker ACL vouches for the topic, not for the payload."""
    return _decode(data, _ENVELOPE_DECODER, MAX_BYTES[Channel.READINGS], gateway_id)


def decode_ack(
    data: bytes | bytearray | memoryview, *, gateway_id: str | None = None
) -> AckMessage:
    return _decode(data, _ACK_DECODER, MAX_BYTES[Channel.ACKS], gateway_id)


def decode_config(
    data: bytes | bytearray | memoryview, *, gateway_id: str | None = None
) -> ConfigMessage:
    return _decode(data, _CONFIG_DECODER, MAX_BYTES[Channel.CONFIG], gateway_id)


def decode_status(
    data: bytes | bytearray | memoryview, *, gateway_id: str | None = None
) -> StatusMessage:
    return _decode(data, _STATUS_DECODER, MAX_BYTES[Channel.STATUS], gateway_id)


def decode_event(
    data: bytes | bytearray | memoryview, *, gateway_id: str | None = None
) -> EventMessage:
    return _decode(data, _EVENT_DECODER, MAX_BYTES[Channel.EVENTS], gateway_id)


def decode_reading(data: bytes | bytearray | memoryview) -> ReadingMessage:
    """One reading on its own (as the gateway outbox stores it); not a wire message."""
    return _decode(data, _READING_DECODER, MAX_READING_BYTES, None, versioned=False)


def decode_readings(data: bytes | bytearray | memoryview) -> tuple[ReadingMessage, ...]:
    """A JSON array of readings as :func:`encode_reading` gives them; not a wire message."""
    if len(data) > MAX_READING_BYTES * MAX_READINGS_PER_ENVELOPE:
        raise ContractError(ContractFault.TOO_LARGE, f"{len(data)} bytes")
    try:
        return _READINGS_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise ContractError(ContractFault.INVALID, str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ContractError(ContractFault.MALFORMED, str(exc)) from exc


def decode(topic_name: str, data: bytes | bytearray | memoryview) -> tuple[str, Message]:
    """Decode any message by its topic: (gateway_id, message)."""
    gateway_id, channel = parse_topic(topic_name)
    message: Message
    if channel is Channel.READINGS:
        message = decode_envelope(data, gateway_id=gateway_id)
    elif channel is Channel.ACKS:
        message = decode_ack(data, gateway_id=gateway_id)
    elif channel is Channel.CONFIG:
        message = decode_config(data, gateway_id=gateway_id)
    elif channel is Channel.STATUS:
        message = decode_status(data, gateway_id=gateway_id)
    else:
        message = decode_event(data, gateway_id=gateway_id)
    return gateway_id, message


def channel_of(message: Message) -> Channel:
    return _MESSAGE_CHANNEL[type(message)]
