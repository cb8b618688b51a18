"""The gateway daemon's composition root: :func:`run_gateway` wires every part (docs/gateway.md).

```
scanner ──heard──▶ supervisors (one per device) ──slot──▶ BLE session (bleak / bumble)
schedule ─poke──▶      │ SyncResult
                       ▼
                 ingest: edge ─▶ outbox (fsync) ─▶ local alerts ─▶ watermark
                       │ notify                        │ events
                       ▼                               ▼
                 MQTT publisher ◀── acks, retained config (config_sync) ── broker
                       └── retained status with outbox stats and device diagnostics
```

Everything runs on one asyncio loop; SQLite work goes to threads. :func:`run_gateway` returns
when ``stop`` is set: syncs in progress get a grace period, the publisher publishes the retained
``offline`` status itself (a clean stop never fires the last will), and the outbox is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from edge.clock import ClockPolicy
from edge.pipeline import EdgeConfig
from edge.urgent import LocalAlert, ThresholdSet
from gateway import contract as c
from gateway.ble_session import BleSession
from gateway.config_sync import ConfigStore, ConfigSync, RuntimeConfig
from gateway.cuff_journal import CuffJournal
from gateway.discovery import DiscoveredAddresses, Discovery, IdentityProbe
from gateway.event_queue import EventQueue
from gateway.ingest import ReadingIngest
from gateway.mqtt import MqttPublisher, PublishError, new_event_id
from gateway.outbox import SqliteOutbox
from gateway.scanner import AdvertisementScanner
from gateway.settings import GatewaySettings
from gateway.supervisor import SupervisorPolicy, SupervisorPool, Trigger
from gateway.watermarks import WatermarkStore

if TYPE_CHECKING:
    from device_drivers.bleak_link import ScanResult
    from device_drivers.bumble_air import BumbleAir

__all__ = ["Gateway", "run_gateway"]

_LOGGER = logging.getLogger(__name__)

SCANNER_START_S = 5.0


def _software_version() -> str:
    try:
        return metadata.version("anjia")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return ""


def _now() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """The running daemon's parts. Built and driven by :func:`run_gateway`; tests may inspect
    it through the ``on_start`` hook."""

    def __init__(
        self,
        settings: GatewaySettings,
        outbox: SqliteOutbox,
        watermarks: WatermarkStore,
        config_store: ConfigStore,
        journal: CuffJournal,
        events: EventQueue,
        discovered: DiscoveredAddresses,
        *,
        air: BumbleAir | None,
        on_alert: Callable[[LocalAlert], None] | None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.watermarks = watermarks
        self.journal = journal
        ble = settings.ble
        self.config = ConfigSync(
            settings.gateway_id,
            RuntimeConfig(settings.enrollment(), ThresholdSet()),
            config_store,
            on_change=self._config_changed,
            send_event=self.send_event,
            new_event_id=new_event_id,
        )
        self.config.restore()
        self.ingest = ReadingIngest(
            settings.gateway_id,
            outbox,
            watermarks,
            enrollment=lambda: self.config.current.enrollment,
            thresholds=lambda: self.config.current.thresholds,
            notify=self._notify,
            send_event=self.send_event,
            edge_config=EdgeConfig(clock=ClockPolicy(household_tz=settings.zone)),
            clock=_now,
            on_alert=on_alert,
            journal=journal,
        )
        self.scanner = AdvertisementScanner(self._heard, air=air, on_unknown=self._unknown)
        self.pool = SupervisorPool(
            fetch=BleSession(
                ble, watermarks, tz=settings.zone, air=air, clock=_now, journal=journal
            ),
            ingest=self.ingest,
            salvage=self.ingest.salvage,
            policy=SupervisorPolicy(
                connect_timeout_s=ble.connect_timeout_s,
                sync_timeout_s=ble.sync_timeout_s,
                backoff_max_s=ble.backoff_max_s,
                min_sync_gap_s=ble.min_sync_gap_s,
            ),
            max_connections=ble.max_concurrent_connections,
            scanner_running=lambda: self.scanner.running,
            clock=_now,
        )
        self.discovery = Discovery(
            discovered,
            enrollment=lambda: self.config.current.enrollment,
            slots=self.pool.slots,
            probe=IdentityProbe(tz=settings.zone, connect_timeout_s=ble.connect_timeout_s, air=air),
            on_found=self._reconcile,
            probe_timeout_s=ble.connect_timeout_s + 10.0,
        )
        self.publisher = MqttPublisher(
            settings.mqtt,
            outbox,
            settings.gateway_id,
            on_config=self.config.on_config,
            on_bad_message=self.config.on_bad_config,
            diagnostics=self.pool.diagnostics,
            config_version=lambda: self.config.current.version,
            software_version=_software_version(),
            events=events,
        )
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._tasks: set[asyncio.Future[Any]] = set()

    # --- hooks ------------------------------------------------------------------------------
    def _heard(self, address: str, rssi: int | None) -> bool:
        return self.pool.heard(address, rssi)

    def _unknown(self, result: ScanResult) -> None:
        self.discovery.heard(result)

    def _reconcile(self) -> None:
        """Supervisors for the enrollment, with the addresses discovery found."""
        self.pool.reconcile(self.discovery.enrolled_devices())

    def _notify(self, urgent: bool) -> None:
        self.publisher.notify(urgent=urgent)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("gateway task failed", exc_info=task.exception())

    def send_event(self, event: c.EventMessage) -> None:
        """Send an event now, or when the broker is back: stored in the outbox file until its
        PUBACK (gateway/event_queue.py), so a restart while offline keeps it."""

        async def publish() -> None:
            try:
                await self.publisher.publish_event(event)
            except PublishError:
                _LOGGER.warning("could not queue event %s (%s)", event.event_id, event.type)

        self._spawn(publish())

    def _config_changed(self, config: RuntimeConfig) -> None:
        self._reconcile()
        self._spawn(self.publish_status())

    async def publish_status(self) -> None:
        if self.publisher.connected:  # the broker gets a fresh one on (re)connect anyway
            await self.publisher.publish_status()

    async def _scheduled_sync(self) -> None:
        self.pool.poke_all(Trigger.SCHEDULE)

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self.publisher.start()
        # cuff readings journaled by a session that a crash interrupted: into the outbox first
        await self.ingest.salvage()
        self.scanner.start()
        # presence first: the supervisors wait for their device's advertisement outside the slots
        await self.scanner.wait_running(SCANNER_START_S)
        self._reconcile()
        ble = self.settings.ble
        self.scheduler.add_job(
            self._scheduled_sync,
            "interval",
            minutes=ble.sync_interval_min,
            id="sync",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.publish_status,
            "interval",
            seconds=self.settings.status_interval_s,
            id="status",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()
        _LOGGER.info(
            "gateway %s running: %d devices supervised, config version %d",
            self.settings.gateway_id,
            len(self.pool.supervisors),
            self.config.current.version,
        )

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.scanner.stop()
        await self.discovery.stop()
        await self.pool.stop()
        for task in list(self._tasks):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 1.0)
        await self.publisher.stop()
        _LOGGER.info("gateway %s stopped", self.settings.gateway_id)


async def run_gateway(
    settings: GatewaySettings,
    *,
    air: BumbleAir | None = None,
    stop: asyncio.Event | None = None,
    on_alert: Callable[[LocalAlert], None] | None = None,
    on_start: Callable[[Gateway], None] | None = None,
) -> None:
    """Run the gateway until ``stop`` is set (forever without one).

    ``air``: a shared :class:`~device_drivers.bumble_air.BumbleAir` (the demo and the tests);
    without it ``ble.link`` decides: ``bleak`` (BlueZ) or ``bumble:<moniker>`` (a transport this
    call opens and closes). ``on_alert`` sees every local urgent alert as it is raised;
    ``on_start`` gets the running :class:`Gateway`. Raises :class:`~gateway.outbox.OutboxError`
    when the outbox file cannot be used.
    """
    stop = stop if stop is not None else asyncio.Event()
    own_air: BumbleAir | None = None
    link = settings.ble.link
    if air is None and link.startswith("bumble:"):
        from device_drivers.bumble_air import BumbleAir

        air = own_air = BumbleAir.from_moniker(link.removeprefix("bumble:"))
    path = settings.outbox.path
    outbox = SqliteOutbox(path, capacity=settings.outbox.capacity)
    watermarks: WatermarkStore | None = None
    config_store: ConfigStore | None = None
    journal: CuffJournal | None = None
    events: EventQueue | None = None
    discovered: DiscoveredAddresses | None = None
    try:
        watermarks = WatermarkStore(path)
        config_store = ConfigStore(path)
        journal = CuffJournal(path)
        events = EventQueue(path, capacity=settings.outbox.event_capacity)
        discovered = DiscoveredAddresses(path)
        gateway = Gateway(
            settings,
            outbox,
            watermarks,
            config_store,
            journal,
            events,
            discovered,
            air=air,
            on_alert=on_alert,
        )
        await gateway.start()
        try:
            if on_start is not None:
                on_start(gateway)
            await stop.wait()
        finally:
            await gateway.stop()
    finally:
        for store in (watermarks, config_store, journal, events, discovered):
            if store is not None:
                store.close()
        outbox.close()
        if own_air is not None:
            await own_air.close()
