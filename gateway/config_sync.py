"""The cloud's retained config (``down/config``) applied at runtime, and kept for offline restarts.

The settings file's ``[[devices]]`` are version 0. A :class:`~gateway.contract.ConfigMessage`
with a higher ``version`` replaces the enrollment and the per-person thresholds of the local
urgent rules at once (the supervisors follow), and is stored in the outbox file
(``cloud_config`` table) so a restart without network keeps it. The same version again (the
retained message on every reconnect) is ignored quietly; an older one is ignored with a log line.

A config that cannot be used (not decodable, an unknown device kind, a cuff user id mapped twice,
a threshold out of its sanity bounds, ...) is rejected whole: a WARNING names the reason, a
``config_rejected`` event tells the cloud, and the gateway keeps running on what it had.

:func:`config_to_settings` is pure; :class:`ConfigStore` and :class:`ConfigSync` do the IO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from device_drivers.model import DeviceKind
from edge.errors import ThresholdError
from edge.urgent import ThresholdSet, UrgentThresholds
from gateway import contract as c
from gateway.enrollment import EnrolledDevice, Enrollment
from gateway.state_db import StateTable

__all__ = [
    "ConfigRejectedError",
    "ConfigStore",
    "ConfigSync",
    "RuntimeConfig",
    "config_to_settings",
]

_LOGGER = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS cloud_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    received_at REAL NOT NULL,
    payload BLOB NOT NULL              -- the ConfigMessage as received (JSON)
);
"""
_THRESHOLD_FIELDS: Final = {
    "glucose_urgent_low_mmol_l": "hypo_level2_mmol_l",
    "glucose_urgent_high_mmol_l": "hyper_emergency_mmol_l",
    "systolic_urgent_mmhg": "systolic_crisis_mmhg",
    "diastolic_urgent_mmhg": "diastolic_crisis_mmhg",
}


class ConfigRejectedError(ValueError):
    """A config message that cannot be applied; ``reason`` says why (for logs and the event)."""

    def __init__(self, reason: str, version: int | None = None) -> None:
        self.reason = reason
        self.version = version
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """What the gateway runs on: the enrollment and the local urgent-rule thresholds."""

    enrollment: Enrollment
    thresholds: ThresholdSet

    @property
    def version(self) -> int:
        return self.enrollment.version


def config_to_settings(message: c.ConfigMessage) -> RuntimeConfig:
    """Translate a decoded ConfigMessage; raises :class:`ConfigRejectedError`. Pure."""
    devices: list[EnrolledDevice] = []
    for i, device in enumerate(message.devices):
        try:
            kind = DeviceKind(device.kind)
        except ValueError:
            raise ConfigRejectedError(
                f"device {i}: unknown kind {device.kind!r}", message.version
            ) from None
        slots: dict[int, str] = {}
        for slot in device.user_slots:
            if slot.user_id in slots:
                raise ConfigRejectedError(
                    f"device {i}: cuff user id {slot.user_id} mapped twice", message.version
                )
            slots[slot.user_id] = slot.person_ref
        if slots and kind is not DeviceKind.BLOOD_PRESSURE_MONITOR:
            raise ConfigRejectedError(f"device {i}: user slots on a {kind.value}", message.version)
        devices.append(
            EnrolledDevice(
                kind=kind,
                system_id=device.system_id,
                serial_number=device.serial_number,
                address=device.address,
                person_ref=device.person_ref,
                user_slots=slots,
                label=device.label,
            )
        )
    per_person: dict[str, UrgentThresholds] = {}
    for person in message.persons:
        if person.person_ref in per_person:
            raise ConfigRejectedError(f"person {person.person_ref!r} listed twice", message.version)
        overrides = {
            name: float(value)
            for field_name, name in _THRESHOLD_FIELDS.items()
            if (value := getattr(person, field_name)) is not None
        }
        try:
            per_person[person.person_ref] = UrgentThresholds(**overrides)
        except ThresholdError as exc:
            raise ConfigRejectedError(
                f"person {person.person_ref!r}: {exc}", message.version
            ) from None
    return RuntimeConfig(
        Enrollment.of(devices, version=message.version), ThresholdSet.of(per_person=per_person)
    )


class ConfigStore(StateTable):
    """The last accepted cloud config, in the outbox file. Thread-safe."""

    SCHEMA = _SCHEMA

    def load(self) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM cloud_config WHERE id = 1").fetchone()
        return None if row is None else bytes(row[0])

    def save(self, version: int, payload: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO cloud_config (id, version, received_at, payload) VALUES (1, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET version = excluded.version, "
                "received_at = excluded.received_at, payload = excluded.payload",
                (version, datetime.now(UTC).timestamp(), payload),
            )


class ConfigSync:
    """Holds the running config; :meth:`on_config` / :meth:`on_bad_config` are the publisher's
    hooks (called on the event loop)."""

    def __init__(
        self,
        gateway_id: str,
        base: RuntimeConfig,
        store: ConfigStore,
        *,
        on_change: Callable[[RuntimeConfig], None],
        send_event: Callable[[c.EventMessage], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_event_id: Callable[[], str],
    ) -> None:
        self._gateway_id = gateway_id
        self.current = base
        self._store = store
        self._on_change = on_change
        self._send_event = send_event
        self._clock = clock
        self._new_event_id = new_event_id
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.rejected = 0

    def restore(self) -> bool:
        """Adopt the stored cloud config if it is newer than the settings file's. Call at start."""
        payload = self._store.load()
        if payload is None:
            return False
        try:
            message = c.decode_config(payload, gateway_id=self._gateway_id)
            config = config_to_settings(message)
        except (c.ContractError, ConfigRejectedError) as exc:
            _LOGGER.warning("the stored cloud config is unusable (%s); ignoring it", exc)
            return False
        if config.version <= self.current.version:
            return False
        self.current = config
        _LOGGER.info("using the stored cloud config, version %d", config.version)
        return True

    def on_config(self, message: c.ConfigMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._apply(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_bad_config(self, channel: c.Channel, error: c.ContractError) -> None:
        if channel is not c.Channel.CONFIG:
            return
        self._reject(f"undecodable: {error.fault.value}", None)

    async def _apply(self, message: c.ConfigMessage) -> None:
        async with self._lock:
            current = self.current.version
            if message.version == current:
                return  # the retained message again (every reconnect)
            if message.version < current:
                _LOGGER.info(
                    "ignoring cloud config version %d (running version %d)",
                    message.version,
                    current,
                )
                return
            try:
                config = config_to_settings(message)
            except ConfigRejectedError as exc:
                self._reject(exc.reason, message.version)
                return
            await asyncio.to_thread(self._store.save, message.version, c.encode(message))
            self.current = config
            _LOGGER.info(
                "cloud config version %d applied (%d devices, %d persons with thresholds)",
                message.version,
                len(message.devices),
                len(message.persons),
            )
            self._on_change(config)

    def _reject(self, reason: str, version: int | None) -> None:
        self.rejected += 1
        _LOGGER.warning(
            "cloud config%s rejected: %s; keeping version %d",
            "" if version is None else f" version {version}",
            reason,
            self.current.version,
        )
        detail: dict[str, str | int | float | bool | None] = {
            "reason": reason[:64],
            "running_version": self.current.version,
        }
        if version is not None:
            detail["version"] = version
        self._send_event(
            c.EventMessage(
                schema_version=c.SCHEMA_VERSION,
                gateway_id=self._gateway_id,
                event_id=self._new_event_id(),
                occurred_at=self._clock(),
                type=c.EventType.CONFIG_REJECTED.value,
                severity="warning",
                message_zh=f"网关拒绝了新的配置：{reason}",
                message_en=f"The gateway rejected a new configuration: {reason}",
                detail=detail,
            )
        )
