"""From contract messages to rows, and from a committed batch to the gateways' acks.

* :func:`to_new_reading`: one ``ReadingMessage`` (canonical units already) to the column values
  of a ``readings`` row. Plain attribute copies: a few microseconds per reading.
* :class:`AckCollector`: the application-level acks of one committed batch (docs/mqtt.md
  "Delivery and acks"). One :class:`AckMessage` per gateway and batch lists every reading of that
  gateway's envelopes in the batch as ``accepted`` (stored now), ``duplicates`` (stored before)
  or ``rejected`` (with a reason); ``message_id`` is the newest envelope it covers (the gateway
  removes readings by ``reading_id``, so an ack may cover several envelopes). An envelope the
  cloud could not read at all gets its own ack with ``envelope_error`` and removes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import msgspec

from cloud.db.repositories.readings import NewReading
from cloud.ingest.attribution import Attribution, GatewayInfo
from gateway.contract import (
    SCHEMA_VERSION,
    AckMessage,
    Channel,
    ReadingMessage,
    Rejection,
    topic,
)
from gateway.contract_messages import MAX_READINGS_PER_ENVELOPE

__all__ = ["MAX_IDS_PER_ACK", "AckCollector", "to_new_reading"]

MAX_IDS_PER_ACK: Final = 2 * MAX_READINGS_PER_ENVELOPE
"""The contract's limit on each id list of an AckMessage; longer lists are split."""


def to_new_reading(
    message: ReadingMessage,
    gateway: GatewayInfo,
    attribution: Attribution,
    stored_at: datetime,
) -> NewReading:
    context = message.context
    return NewReading(
        reading_id=message.reading_id,
        kind=message.kind,
        device_key=message.device.key,
        received_at=message.received_at,
        effective_at=message.measured_at or message.received_at,
        stored_at=stored_at,
        household_id=gateway.household_id,
        person_id=attribution.person_id,
        gateway_id=gateway.id,
        device_id=attribution.device_id,
        attribution=attribution.reason,
        sequence_number=message.sequence_number,
        user_slot=message.user_id,
        device_time=None if message.device_time is None else message.device_time.isoformat(),
        measured_at=message.measured_at,
        clock_skew_s=message.clock_skew_s,
        glucose_mmol_l=message.glucose_mmol_l,
        systolic_mmhg=message.systolic_mmhg,
        diastolic_mmhg=message.diastolic_mmhg,
        mean_arterial_mmhg=message.mean_arterial_mmhg,
        pulse_bpm=message.pulse_bpm,
        original_value=message.original_value,
        original_unit=message.original_unit,
        sample_type=message.sample_type,
        sample_location=message.sample_location,
        meal=None if context is None else context.meal,
        context=None if context is None else msgspec.to_builtins(context),
        status_bits=message.status_bits,
        flags=tuple(message.flags),
        urgent=message.urgent,
    )


@dataclass(slots=True)
class _GatewayAck:
    message_id: str | None = None
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


class AckCollector:
    """Collects the outcome of each reading of a batch, per gateway, then builds the acks."""

    __slots__ = ("_envelope_errors", "_gateways")

    def __init__(self) -> None:
        self._gateways: dict[str, _GatewayAck] = {}
        self._envelope_errors: list[tuple[str, str | None, str]] = []

    def _entry(self, gateway_uid: str, message_id: str) -> _GatewayAck:
        entry = self._gateways.get(gateway_uid)
        if entry is None:
            entry = self._gateways[gateway_uid] = _GatewayAck()
        entry.message_id = message_id
        return entry

    def accepted(self, gateway_uid: str, message_id: str, reading_id: str) -> None:
        self._entry(gateway_uid, message_id).accepted.append(reading_id)

    def duplicate(self, gateway_uid: str, message_id: str, reading_id: str) -> None:
        self._entry(gateway_uid, message_id).duplicates.append(reading_id)

    def rejected(self, gateway_uid: str, message_id: str, rejection: Rejection) -> None:
        self._entry(gateway_uid, message_id).rejected.append(rejection)

    def envelope_error(self, gateway_uid: str, message_id: str | None, reason: str) -> None:
        self._envelope_errors.append((gateway_uid, message_id, reason))

    def build(self, acked_at: datetime) -> list[tuple[str, AckMessage]]:
        """(topic, ack) pairs to publish, after the batch committed."""
        out: list[tuple[str, AckMessage]] = []
        for uid, entry in self._gateways.items():
            accepted, duplicates, rejected = entry.accepted, entry.duplicates, entry.rejected
            while accepted or duplicates or rejected:
                out.append(
                    (
                        topic(uid, Channel.ACKS),
                        AckMessage(
                            schema_version=SCHEMA_VERSION,
                            gateway_id=uid,
                            message_id=entry.message_id,
                            acked_at=acked_at,
                            accepted=tuple(accepted[:MAX_IDS_PER_ACK]),
                            duplicates=tuple(duplicates[:MAX_IDS_PER_ACK]),
                            rejected=tuple(rejected[:MAX_IDS_PER_ACK]),
                        ),
                    )
                )
                accepted = accepted[MAX_IDS_PER_ACK:]
                duplicates = duplicates[MAX_IDS_PER_ACK:]
                rejected = rejected[MAX_IDS_PER_ACK:]
        for uid, message_id, reason in self._envelope_errors:
            out.append(
                (
                    topic(uid, Channel.ACKS),
                    AckMessage(
                        schema_version=SCHEMA_VERSION,
                        gateway_id=uid,
                        message_id=message_id,
                        acked_at=acked_at,
                        envelope_error=reason[:64],
                    ),
                )
            )
        return out


def ids_of(acks: Sequence[tuple[str, AckMessage]]) -> set[str]:
    """Every reading id an ack list settles (accepted or duplicate): for tests and benches."""
    return {rid for _, ack in acks for rid in (*ack.accepted, *ack.duplicates)}
