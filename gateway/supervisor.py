"""One supervisor per enrolled device: when to sync, how to fail, what to report (docs/gateway.md).

A :class:`DeviceSupervisor` is an asyncio task that waits for a trigger and runs one sync at a
time for its device:

* **Triggers.** An advertisement heard by the scanner (a meter advertises when it has new data, a
  cuff after a measurement), the schedule (every ``ble.sync_interval_min``), and start-up. After
  a good sync, advertisements are ignored for ``ble.min_sync_gap_s`` (devices keep advertising
  while they wait for a collector).
* **Presence before a slot.** While the scanner runs, a device not heard recently is waited for
  *outside* the connection slots (up to ``ble.connect_timeout_s``), so a meter that is away or
  switched off never holds a slot; only devices that are on the air compete for them.
* **Slots and timeout.** A global :class:`asyncio.Semaphore` (``ble.max_concurrent_connections``)
  bounds concurrent connections; one session (connect + transfer) is cut after
  ``ble.sync_timeout_s`` so a device that never answers releases its slot.
* **Backoff.** A failure is classified by :func:`device_drivers.bleak_link.classify` (stage,
  retryable, backoff hint). Retryable failures back off exponentially from the hint up to
  ``ble.backoff_max_s``; non-retryable ones (pairing refused, service missing: a person must act)
  wait ``backoff_max_s``. A device that was not found is retried at once when it advertises.
* **Diagnostics** per device (last seen, RSSI, last sync and its outcome, failure stage and reason,
  battery, clock skew, last sequence number) for the status topic.

The BLE session and the storing of its readings are injected (:class:`Fetch`, :class:`Ingest`):
this module holds the policy only. Supervisors never share state, so one failing device never
blocks another. IO (asyncio), no bleak calls of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Protocol

from device_drivers.bleak_link import classify
from device_drivers.driver import SyncResult
from device_drivers.errors import ConnectStage, DeviceUnavailableError
from gateway.contract import DeviceDiagnostics
from gateway.enrollment import EnrolledDevice

__all__ = [
    "PRESENCE_WINDOW_S",
    "Fetch",
    "Ingest",
    "IngestReport",
    "Salvage",
    "SupervisorPolicy",
    "SupervisorPool",
    "SyncProgress",
    "Trigger",
    "backoff_delay",
    "device_address",
]

_LOGGER = logging.getLogger(__name__)

PRESENCE_WINDOW_S: Final = 30.0
"""A device heard advertising this recently counts as present: connect without waiting."""
MIN_BACKOFF_S: Final = 1.0
STOP_GRACE_S: Final = 10.0
"""On a clean stop, running syncs get this long to finish (a cuff forgets confirmed readings)."""
_SHORT: Final = 64  # DeviceDiagnostics string limit


class Trigger(StrEnum):
    START = "start"
    ADVERTISEMENT = "advertisement"
    SCHEDULE = "schedule"


@dataclass(slots=True)
class SyncProgress:
    """Where a running session is, so a timeout can say where it stopped."""

    stage: ConnectStage = ConnectStage.CONNECT


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What storing one sync's readings did."""

    stored: int  # readings now in the outbox (new or already there)
    refused: int = 0  # outbox full: left on the device
    duplicates: int = 0  # seen before by the edge
    local_alerts: int = 0
    watermark_committed: bool = False
    last_sequence_number: int | None = None


class Fetch(Protocol):
    """One BLE session with ``device``: connect, pair, transfer, disconnect. Raises the device
    layer's errors (or anything: the supervisor classifies it)."""

    async def __call__(self, device: EnrolledDevice, progress: SyncProgress) -> SyncResult: ...


class Ingest(Protocol):
    """Edge-process, attribute and store the readings of a session; commit the watermark."""

    async def __call__(self, device: EnrolledDevice, result: SyncResult) -> IngestReport: ...


Salvage = Callable[[EnrolledDevice], Awaitable[object]]
"""After a session that ended without a result (timeout, error): store what the session had
already made durable (the cuff journal, :meth:`gateway.ingest.ReadingIngest.salvage`)."""


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    connect_timeout_s: float = 20.0
    sync_timeout_s: float = 300.0
    backoff_max_s: float = 900.0
    min_sync_gap_s: float = 30.0
    presence_window_s: float = PRESENCE_WINDOW_S


def backoff_delay(
    retryable: bool, hint_s: float, consecutive_failures: int, backoff_max_s: float
) -> float:
    """Seconds to wait after the ``consecutive_failures``-th failure in a row. Pure.

    Retryable: ``max(hint, 1 s) * 2 ** (n - 1)``, capped at ``backoff_max_s``; not retryable
    (a person must act, e.g. re-pair): ``backoff_max_s``."""
    if not retryable:
        return backoff_max_s
    exponent = min(max(consecutive_failures, 1) - 1, 30)
    return float(min(backoff_max_s, max(hint_s, MIN_BACKOFF_S) * 2**exponent))


def device_address(device: EnrolledDevice) -> str | None:
    return device.address.upper() if device.address else None


def _short(text: str | None) -> str | None:
    return None if text is None else text[:_SHORT]


@dataclass(slots=True)
class _Diagnostics:
    device_key: str
    last_seen: datetime | None = None
    rssi_dbm: int | None = None
    last_sync: datetime | None = None
    last_sync_ok: bool | None = None
    failure_stage: str | None = None
    failure_reason: str | None = None
    consecutive_failures: int = 0
    battery_pct: int | None = None
    clock_skew_s: float | None = None
    last_sequence_number: int | None = None
    readings_synced: int = 0
    syncs: int = 0


class DeviceSupervisor:
    """Syncs one device when triggered; see the module docstring."""

    def __init__(
        self,
        device: EnrolledDevice,
        *,
        fetch: Fetch,
        ingest: Ingest,
        slots: asyncio.Semaphore,
        policy: SupervisorPolicy,
        scanner_running: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        salvage: Salvage | None = None,
    ) -> None:
        address = device_address(device)
        if address is None:
            raise ValueError("a supervised device needs an address to connect to")
        self.address = address
        self.device = device
        self._fetch = fetch
        self._ingest = ingest
        self._salvage = salvage
        self._slots = slots
        self._policy = policy
        self._scanner_running = scanner_running
        self._clock = clock
        self._diag = _Diagnostics(device_key=f"addr:{address}")
        self._wake = asyncio.Event()
        self._heard = asyncio.Event()
        self._pending: Trigger | None = None
        self._not_before = 0.0  # loop time: backoff
        self._last_ok_end: float | None = None  # loop time of the last good sync
        self._last_heard: float | None = None  # loop time of the last advertisement
        self._last_failure_stage: ConnectStage | None = None
        self._syncing = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- triggers ---------------------------------------------------------------------------
    def poke(self, trigger: Trigger) -> None:
        """Ask for a sync (it runs when the backoff allows)."""
        if self._closing:
            return
        if self._pending is None or trigger is Trigger.ADVERTISEMENT:
            self._pending = trigger
        self._wake.set()

    def heard(self, rssi: int | None) -> None:
        """The scanner heard this device advertise."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_heard = now
        self._diag.last_seen = self._clock()
        self._diag.rssi_dbm = rssi if rssi is not None and -200 <= rssi <= 50 else None
        self._heard.set()
        if self._syncing:
            return
        if self._last_ok_end is not None and now - self._last_ok_end < self._policy.min_sync_gap_s:
            return  # still advertising after a good sync: not new data
        if self._last_failure_stage is ConnectStage.SCAN:
            self._not_before = 0.0  # it was not found; now it is here
        self.poke(Trigger.ADVERTISEMENT)

    def update(self, device: EnrolledDevice) -> None:
        """A new enrollment for the same address (owner, slots or label changed)."""
        self.device = device

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"supervisor-{self.address}")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Let a running sync finish (up to ``grace_s``), then cancel."""
        self._closing = True
        self._pending = None
        task, self._task = self._task, None
        if task is None:
            return
        if self._syncing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    while self._syncing:  # noqa: ASYNC110 - the sync sets no event
                        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @property
    def syncing(self) -> bool:
        return self._syncing

    @property
    def syncs(self) -> int:
        return self._diag.syncs

    def diagnostics(self) -> DeviceDiagnostics:
        d = self._diag
        return DeviceDiagnostics(
            device_key=d.device_key,
            kind=self.device.kind.value,
            label=self.device.label,
            last_seen=d.last_seen,
            last_sync=d.last_sync,
            last_sync_ok=d.last_sync_ok,
            failure_stage=d.failure_stage,
            failure_reason=d.failure_reason,
            consecutive_failures=d.consecutive_failures,
            battery_pct=d.battery_pct,
            clock_skew_s=d.clock_skew_s,
            rssi_dbm=d.rssi_dbm,
            last_sequence_number=d.last_sequence_number,
            readings_synced=d.readings_synced,
        )

    # --- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            if self._pending is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait_s = self._not_before - loop.time()
            if wait_s > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
                continue
            trigger, self._pending = self._pending, None
            try:
                await self._sync(trigger)
            except asyncio.CancelledError:
                raise
            except Exception:  # the supervisor is the one place that catches broadly
                _LOGGER.exception("%s: sync crashed", self.address)
                self._failed(ConnectStage.TRANSFER, "internal error", False, 0.0)

    async def _present(self) -> bool:
        """True when the device can be expected on the air now (or presence is unknown)."""
        if not self._scanner_running():
            return True
        loop = asyncio.get_running_loop()
        if (
            self._last_heard is not None
            and loop.time() - self._last_heard < self._policy.presence_window_s
        ):
            return True
        self._heard.clear()
        try:
            async with asyncio.timeout(self._policy.connect_timeout_s):
                await self._heard.wait()
        except TimeoutError:
            return False
        return True

    async def _sync(self, trigger: Trigger) -> None:
        loop = asyncio.get_running_loop()
        if not await self._present():
            self._failed(ConnectStage.SCAN, "not heard advertising", True, 0.0)
            return
        self._syncing = True
        progress = SyncProgress()
        try:
            _LOGGER.info("%s: sync (%s)", self.address, trigger.value)
            try:
                async with self._slots:
                    async with asyncio.timeout(self._policy.sync_timeout_s):
                        result = await self._fetch(self.device, progress)
            except TimeoutError:
                reason = f"no answer within {self._policy.sync_timeout_s:g} s"
                self._failed(progress.stage, reason, True, 0.0)
                await self._salvaged()
                return
            except Exception as exc:  # classified below; the supervisor catches all
                if not isinstance(exc, DeviceUnavailableError):
                    _LOGGER.debug("%s: session error", self.address, exc_info=True)
                found = classify(exc)
                reason = getattr(exc, "reason", None) or type(exc).__name__
                self._failed(found.stage, str(reason), found.retryable, found.backoff_s)
                await self._salvaged()
                return
            report = await self._ingest(self.device, result)
            self._record(result, report)
            if result.ok:
                self._succeeded()
                self._last_ok_end = loop.time()
            else:
                stage = result.failure_stage or ConnectStage.TRANSFER
                retryable = stage is not ConnectStage.PAIR  # a refused pairing needs a person
                self._failed(stage, result.failure_reason or "failed", retryable, 0.0)
        finally:
            self._syncing = False

    async def _salvaged(self) -> None:
        if self._salvage is None:
            return
        try:
            await self._salvage(self.device)
        except Exception:
            _LOGGER.exception("%s: storing the journaled readings failed", self.address)

    def _record(self, result: SyncResult, report: IngestReport) -> None:
        d = self._diag
        d.device_key = result.device.key
        d.syncs += 1
        d.readings_synced += report.stored
        if result.battery_percent is not None and 0 <= result.battery_percent <= 100:
            d.battery_pct = result.battery_percent
        if result.clock_skew_s is not None:
            d.clock_skew_s = round(result.clock_skew_s, 1)
        if report.last_sequence_number is not None:
            d.last_sequence_number = report.last_sequence_number

    def _succeeded(self) -> None:
        d = self._diag
        d.last_sync = self._clock()
        d.last_sync_ok = True
        d.failure_stage = d.failure_reason = None
        d.consecutive_failures = 0
        self._last_failure_stage = None
        self._not_before = 0.0

    def _failed(self, stage: ConnectStage, reason: str, retryable: bool, hint_s: float) -> None:
        d = self._diag
        d.last_sync = self._clock()
        d.last_sync_ok = False
        d.failure_stage = stage.value
        d.failure_reason = _short(reason)
        d.consecutive_failures += 1
        self._last_failure_stage = stage
        delay = backoff_delay(retryable, hint_s, d.consecutive_failures, self._policy.backoff_max_s)
        self._not_before = asyncio.get_running_loop().time() + delay
        _LOGGER.warning(
            "%s: sync failed at %s (%s); failure %d in a row, next try in %.0f s",
            self.address,
            stage.value,
            d.failure_reason,
            d.consecutive_failures,
            delay,
        )


@dataclass(slots=True)
class SupervisorPool:
    """The supervisors of the enrolled devices, kept in step with the enrollment."""

    fetch: Fetch
    ingest: Ingest
    policy: SupervisorPolicy
    max_connections: int
    scanner_running: Callable[[], bool] = lambda: False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    salvage: Salvage | None = None
    supervisors: dict[str, DeviceSupervisor] = field(default_factory=dict)
    _slots: asyncio.Semaphore | None = None
    _warned: set[str] = field(default_factory=set)

    def slots(self) -> asyncio.Semaphore:
        """The connection slots (shared with discovery probes)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._slots

    def reconcile(self, devices: Iterable[EnrolledDevice]) -> None:
        """Start supervisors for new addresses, update changed ones, stop removed ones."""
        slots = self.slots()
        wanted: dict[str, EnrolledDevice] = {}
        for device in devices:
            address = device_address(device)
            if address is None:
                key = device.system_id or device.serial_number or "?"
                if key not in self._warned:
                    self._warned.add(key)
                    _LOGGER.info(
                        "an enrolled %s has no address yet: it is looked for by its identity "
                        "when a device of its kind advertises",
                        device.kind.value,
                    )
                continue
            wanted[address] = device
        for address in [a for a in self.supervisors if a not in wanted]:
            supervisor = self.supervisors.pop(address)
            asyncio.get_running_loop().create_task(supervisor.stop())
            _LOGGER.info("%s: no longer enrolled", address)
        for address, device in wanted.items():
            existing = self.supervisors.get(address)
            if existing is not None:
                existing.update(device)
                continue
            supervisor = DeviceSupervisor(
                device,
                fetch=self.fetch,
                ingest=self.ingest,
                slots=slots,
                policy=self.policy,
                scanner_running=self.scanner_running,
                clock=self.clock,
                salvage=self.salvage,
            )
            self.supervisors[address] = supervisor
            supervisor.start()
            supervisor.poke(Trigger.START)

    def poke_all(self, trigger: Trigger) -> None:
        for supervisor in self.supervisors.values():
            supervisor.poke(trigger)

    def heard(self, address: str, rssi: int | None) -> bool:
        """An advertisement from ``address``; False when it is not an enrolled device."""
        supervisor = self.supervisors.get(address.upper())
        if supervisor is None:
            return False
        supervisor.heard(rssi)
        return True

    def diagnostics(self) -> tuple[DeviceDiagnostics, ...]:
        return tuple(s.diagnostics() for s in self.supervisors.values())

    def by_address(self) -> Mapping[str, DeviceSupervisor]:
        return self.supervisors

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        supervisors = list(self.supervisors.values())
        self.supervisors.clear()
        await asyncio.gather(*(s.stop(grace_s) for s in supervisors))
