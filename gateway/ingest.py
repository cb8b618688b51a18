"""From a finished BLE session to durable, attributed readings: the :class:`~gateway.supervisor.
Ingest` of the daemon.

For each session, under one lock (the edge state is shared by every device):

1. :func:`edge.pipeline.process` with the current enrollment's attribution (an unknown device or
   an unmapped cuff slot stays unassigned, never a guessed person) and per-person thresholds;
2. contract messages, each reading with its local alert (urgent readings are flagged, so the
   publisher sends them at once and alone, never behind a bulk batch);
3. :meth:`SqliteOutbox.add` (fsync) and a wake-up of the publisher;
4. local urgent alerts: a bilingual log line at once, an :class:`EventMessage` through the
   publisher (paho queues it while offline and sends it when the link is back; the reading in the
   outbox carries the alert too, durably), and the optional ``on_alert`` hook;
5. the sync watermark, only now and only if nothing was refused; the edge state likewise;
6. cuff readings journaled during the session (:mod:`gateway.cuff_journal`) are forgotten there
   once in the outbox. Journal rows the session result lacks (a session cut short, a crash) join
   the batch; :meth:`ReadingIngest.salvage` drains the journal after a failed session and at
   start-up.

IO (outbox, watermarks, publisher); the decisions are the pure edge's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from device_drivers.driver import SyncResult
from device_drivers.model import BloodPressureReading, DeviceKind, GlucoseReading, Reading
from edge.pipeline import EdgeConfig, EdgeState, process
from edge.urgent import LocalAlert, Severity, ThresholdSet
from gateway import contract as c
from gateway.cuff_journal import CuffJournal
from gateway.enrollment import EnrolledDevice, Enrollment
from gateway.mqtt import new_event_id
from gateway.outbox import FillWarning, SqliteOutbox
from gateway.supervisor import IngestReport, device_address
from gateway.watermarks import WatermarkStore

__all__ = ["EventSink", "ReadingIngest", "alert_event", "alert_event_id"]

_LOGGER = logging.getLogger(__name__)

EventSink = Callable[[c.EventMessage], None]
"""Sends an event (the publisher, queued while offline)."""


def alert_event_id(alert: LocalAlert) -> str:
    """Stable per alert: a replayed sync raises the same event id (the cloud dedupes)."""
    return "e-" + hashlib.blake2b(alert.alert_id.encode(), digest_size=16).hexdigest()


def alert_event(gateway_id: str, alert: LocalAlert) -> c.EventMessage:
    return c.EventMessage(
        schema_version=c.SCHEMA_VERSION,
        gateway_id=gateway_id,
        event_id=alert_event_id(alert),
        occurred_at=alert.raised_at,
        type=c.EventType.URGENT_READING.value,
        severity="warning" if alert.severity is Severity.WARN else "critical",
        device_key=alert.device_key,
        person_ref=alert.person_ref,
        reading_id=c.reading_id_for(alert.reading_identity),
        rule_id=alert.rule.value,
        message_zh=alert.message_zh,
        message_en=alert.message_en,
        detail={"level": alert.severity.value, "measured_at": alert.measured_at.isoformat()},
    )


def _wire_alert(alert: LocalAlert) -> c.LocalAlert:
    return c.LocalAlert(
        rule_id=alert.rule.value,
        level=alert.severity.value,
        raised_at=alert.raised_at,
        message_zh=alert.message_zh,
        message_en=alert.message_en,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    messages: tuple[c.ReadingMessage, ...]
    unencodable: int


class ReadingIngest:
    """Callable as :class:`~gateway.supervisor.Ingest`. See the module docstring."""

    def __init__(
        self,
        gateway_id: str,
        outbox: SqliteOutbox,
        watermarks: WatermarkStore,
        *,
        enrollment: Callable[[], Enrollment],
        thresholds: Callable[[], ThresholdSet],
        notify: Callable[[bool], None],
        send_event: EventSink,
        edge_config: EdgeConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_alert: Callable[[LocalAlert], None] | None = None,
        journal: CuffJournal | None = None,
    ) -> None:
        self._gateway_id = gateway_id
        self._journal = journal
        self._outbox = outbox
        self._watermarks = watermarks
        self._enrollment = enrollment
        self._thresholds = thresholds
        self._notify = notify
        self._send_event = send_event
        self._edge_config = edge_config
        self._clock = clock
        self._on_alert = on_alert
        self._state = EdgeState.initial()
        self._lock = asyncio.Lock()

    async def __call__(self, device: EnrolledDevice, result: SyncResult) -> IngestReport:
        async with self._lock:
            return await self._ingest(device, result)

    async def salvage(self, device: EnrolledDevice | None = None) -> int:
        """Store what the cuff journal holds (of ``device``, or of every address): after a
        session that failed or timed out, and at start-up after a crash. Returns the number of
        journaled readings processed."""
        journal = self._journal
        if journal is None:
            return 0
        address = None if device is None else device_address(device)
        entries = await asyncio.to_thread(journal.pending, address)
        by_address: dict[str, list[Reading]] = {}
        for _reading_id, addr, reading in entries:
            by_address.setdefault(addr, []).append(reading)
        for addr, readings in by_address.items():
            enrolled = device if device is not None else self._enrolled_at(addr)
            result = SyncResult(device=readings[-1].device, readings=tuple(readings))
            report = await self(enrolled, result)
            _LOGGER.info(
                "%s: %d journaled cuff reading(s) recovered (%d in the outbox)",
                addr,
                len(readings),
                report.stored,
            )
        return len(entries)

    def _enrolled_at(self, address: str) -> EnrolledDevice:
        for enrolled in self._enrollment().devices:
            if device_address(enrolled) == address:
                return enrolled
        # no longer enrolled by address: attribution still works by identity
        return EnrolledDevice(kind=DeviceKind.BLOOD_PRESSURE_MONITOR, address=address)

    async def _journaled(self, address: str, result: SyncResult) -> tuple[Reading, ...]:
        """The session's readings plus journal rows of ``address`` it lacks."""
        journal = self._journal
        if journal is None or result.device.kind is not DeviceKind.BLOOD_PRESSURE_MONITOR:
            return result.readings
        have = {c.reading_id_for(r.identity) for r in result.readings}
        entries = await asyncio.to_thread(journal.pending, address)
        extra = [reading for reading_id, _a, reading in entries if reading_id not in have]
        return (*extra, *result.readings) if extra else result.readings

    async def _ingest(self, device: EnrolledDevice, result: SyncResult) -> IngestReport:
        address = device_address(device) or result.device.address.upper()
        now = self._clock()
        enrollment = self._enrollment()
        readings = await self._journaled(address, result)
        batch = process(
            readings,
            now,
            self._state,
            self._thresholds(),
            config=self._edge_config,
            person_of=lambda r: enrollment.attribute(r).person_ref,
        )
        alerts = {c.reading_id_for(a.reading_identity): a for a in batch.local_alerts}
        prepared = self._messages(batch.readings, enrollment, alerts)
        urgent = any(m.urgent for m in prepared.messages)
        added = await asyncio.to_thread(self._outbox.add, prepared.messages)
        if prepared.messages:
            self._notify(urgent)
        for warning in added.warnings:
            self._fill_event(warning, now)
        for alert in batch.local_alerts:
            self._raise(alert)
        if self._journal is not None and result.device.kind is DeviceKind.BLOOD_PRESSURE_MONITOR:
            # in the outbox now, or never going there (duplicate, unencodable): all but refused
            done = {c.reading_id_for(r.identity) for r in readings} - set(added.refused)
            await asyncio.to_thread(self._journal.remove, done)
        clean = not added.refused and not prepared.unencodable
        last_seq = _last_sequence(result) if clean else None
        if clean:
            self._state = batch.state
            await asyncio.to_thread(
                self._watermarks.commit,
                address,
                device_key=result.device.key,
                glucose_seq=result.watermark,
                bp_last_measured_at=_last_measured(readings),
            )
        else:
            _LOGGER.warning(
                "%s: %d readings refused by the outbox, %d not encodable: watermark kept",
                address,
                len(added.refused),
                prepared.unencodable,
            )
        return IngestReport(
            stored=len(added.stored),
            refused=len(added.refused),
            duplicates=batch.stats.duplicates,
            local_alerts=len(batch.local_alerts),
            watermark_committed=clean,
            last_sequence_number=last_seq,
        )

    def _messages(
        self,
        readings: Sequence[Reading],
        enrollment: Enrollment,
        alerts: dict[str, LocalAlert],
    ) -> _Prepared:
        messages: list[c.ReadingMessage] = []
        unencodable = 0
        for reading in readings:
            attribution = enrollment.attribute(reading)
            reading_id = c.reading_id_for(reading.identity)
            alert = alerts.get(reading_id)
            try:
                messages.append(
                    c.from_reading(
                        reading,
                        attribution.person_ref,
                        attribution=attribution.reason,
                        urgent=alert is not None,
                        local_alert=None if alert is None else _wire_alert(alert),
                    )
                )
            except c.ContractError as exc:
                unencodable += 1
                _LOGGER.error(  # noqa: TRY400 - the fault says it all; no traceback needed
                    "%s: a reading cannot go on the wire (%s); it stays on the device",
                    reading.device.key,
                    exc.fault.value,
                )
        return _Prepared(tuple(messages), unencodable)

    def _raise(self, alert: LocalAlert) -> None:
        # The household's alert: the instruction is the point (no person reference logged).
        _LOGGER.warning(
            "本地紧急提醒 LOCAL ALERT %s (%s) %s: %s | %s",
            alert.rule.value,
            alert.severity.value,
            alert.device_key,
            alert.message_zh,
            alert.message_en,
        )
        if self._on_alert is not None:
            try:
                self._on_alert(alert)
            except Exception:
                _LOGGER.exception("the local alert hook failed")
        self._send_event(alert_event(self._gateway_id, alert))

    def _fill_event(self, warning: FillWarning, now: datetime) -> None:
        self._send_event(warning.to_event(self._gateway_id, now, new_event_id()))


def _last_sequence(result: SyncResult) -> int | None:
    if result.watermark is not None:
        return result.watermark
    seqs = [r.sequence_number for r in result.readings if isinstance(r, GlucoseReading)]
    return max(seqs) if seqs else None


def _last_measured(readings: Sequence[Reading]) -> datetime | None:
    times = [
        r.measured_at
        for r in readings
        if isinstance(r, BloodPressureReading) and r.measured_at is not None
    ]
    return max(times) if times else None
