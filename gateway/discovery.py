"""Finding enrolled devices that have no known Bluetooth address.

The cloud registers a household's meters by serial number or System ID (read off the box); nobody
types a Bluetooth address. When the scanner hears a device advertise the Glucose (0x1808) or Blood
Pressure (0x1810) service at an address that belongs to no supervised device, and some enrolled
device of that kind still has no address, :class:`Discovery` connects once (holding one of the
connection slots, bounded by ``ble.connect_timeout_s``), without pairing, reads Device Information
(:func:`device_drivers.driver.read_device_identity`) and disconnects:

* the identity matches an enrolled device without an address: the address is remembered in the
  ``discovered_devices`` table of the outbox file (a restart keeps it) and the gateway starts that
  device's supervisor (:func:`with_discovered_addresses` gives the enrollment with the addresses);
* it matches nothing: the address is "not ours" for ``not_ours_s`` (1 h): not probed again on
  every advertisement;
* the probe failed: tried again after ``retry_s``.

Nothing about a device that is not ours is logged (no address, no serial): a neighbour's meter is
nobody's business. Rotating (resolvable private) addresses need a bond to be resolved; see
docs/gateway.md. IO (bleak via :mod:`device_drivers.bleak_link`, SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Final

from device_drivers.bleak_link import ScanResult, connect_gatt_link
from device_drivers.driver import read_device_identity
from device_drivers.errors import DriverError
from device_drivers.model import DeviceIdentity, DeviceKind
from device_drivers.uuids import BLOOD_PRESSURE_SERVICE, GLUCOSE_SERVICE
from gateway.enrollment import EnrolledDevice, Enrollment
from gateway.state_db import StateTable

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = [
    "NOT_OURS_S",
    "DiscoveredAddresses",
    "Discovery",
    "IdentityProbe",
    "kind_of",
    "with_discovered_addresses",
]

_LOGGER = logging.getLogger(__name__)

NOT_OURS_S: Final = 3600.0
"""A device that is not enrolled is not probed again for this long."""
RETRY_S: Final = 60.0
"""A probe that failed (out of range, busy) is tried again after this long."""
DISCONNECT_TIMEOUT_S: Final = 5.0

SERVICE_KINDS: Final = {
    GLUCOSE_SERVICE: DeviceKind.GLUCOSE_METER,
    BLOOD_PRESSURE_SERVICE: DeviceKind.BLOOD_PRESSURE_MONITOR,
}

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS discovered_devices (
    address TEXT PRIMARY KEY,          -- upper case
    kind TEXT NOT NULL,
    system_id TEXT,
    serial_number TEXT,
    model_number TEXT,
    discovered_at REAL NOT NULL
);
"""


def kind_of(service_uuid16s: Iterable[int]) -> DeviceKind | None:
    """The device kind an advertisement announces, if it is one we sync. Pure."""
    for uuid16 in service_uuid16s:
        kind = SERVICE_KINDS.get(uuid16)
        if kind is not None:
            return kind
    return None


def with_discovered_addresses(
    devices: Iterable[EnrolledDevice], found: Iterable[DeviceIdentity]
) -> tuple[EnrolledDevice, ...]:
    """The enrolled devices, each one without an address given the address it was discovered
    at (matched by System ID or serial, as attribution does). Pure."""
    known = list(found)
    result: list[EnrolledDevice] = []
    for device in devices:
        if not device.address:
            match = next((i for i in known if device.matches(i)), None)
            if match is not None:
                device = dataclasses.replace(device, address=match.address.upper())
        result.append(device)
    return tuple(result)


class DiscoveredAddresses(StateTable):
    """The ``discovered_devices`` table of the outbox file. Thread-safe."""

    SCHEMA = _SCHEMA

    def all(self) -> list[DeviceIdentity]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address, kind, system_id, serial_number, model_number "
                "FROM discovered_devices ORDER BY discovered_at"
            ).fetchall()
        found: list[DeviceIdentity] = []
        for address, kind, system_id, serial, model in rows:
            with contextlib.suppress(ValueError):  # a kind of a future version
                found.append(DeviceIdentity(address, DeviceKind(kind), system_id, serial, model))
        return found

    def remember(self, identity: DeviceIdentity) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO discovered_devices "
                "(address, kind, system_id, serial_number, model_number, discovered_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET "
                "kind = excluded.kind, system_id = excluded.system_id, "
                "serial_number = excluded.serial_number, model_number = excluded.model_number, "
                "discovered_at = excluded.discovered_at",
                (
                    identity.address.upper(),
                    identity.kind.value,
                    identity.system_id,
                    identity.serial_number,
                    identity.model_number,
                    self._clock(),
                ),
            )


Probe = Callable[[str, DeviceKind], Awaitable[DeviceIdentity | None]]
"""Connect to an address, read its identity, disconnect (None: could not)."""


class IdentityProbe:
    """A :data:`Probe` over bleak (BlueZ) or a bumble air: one attempt, no pairing (we do not bond
    with a device before we know it is ours; Device Information is readable without)."""

    def __init__(
        self, *, tz: tzinfo, connect_timeout_s: float, air: BumbleAir | None = None
    ) -> None:
        self._tz = tz
        self._timeout_s = connect_timeout_s
        self._air = air

    async def __call__(self, address: str, kind: DeviceKind) -> DeviceIdentity | None:
        link = await connect_gatt_link(
            address, air=self._air, pair=False, timeout_s=self._timeout_s, attempts=1
        )
        try:
            return await read_device_identity(link, kind, tz=self._tz)
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                    await link.disconnect()


class Discovery:
    """Probes unknown advertisers while an enrolled device of their kind lacks an address."""

    def __init__(
        self,
        store: DiscoveredAddresses,
        *,
        enrollment: Callable[[], Enrollment],
        slots: Callable[[], asyncio.Semaphore],
        probe: Probe,
        on_found: Callable[[], None],
        probe_timeout_s: float,
        not_ours_s: float = NOT_OURS_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self._store = store
        self._enrollment = enrollment
        self._slots = slots
        self._probe = probe
        self._on_found = on_found
        self._probe_timeout_s = probe_timeout_s
        self._not_ours_s = not_ours_s
        self._retry_s = retry_s
        self.found: list[DeviceIdentity] = store.all()
        self._ignore_until: dict[str, float] = {}
        self._probing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.probes: Counter[str] = Counter()  # address -> probes (memory only, never logged)
        self.outcomes: Counter[str] = Counter()  # "ours", "not_ours", "failed"

    def enrolled_devices(self) -> tuple[EnrolledDevice, ...]:
        """The enrollment with discovered addresses filled in."""
        return with_discovered_addresses(self._enrollment().devices, self.found)

    def _is_found(self, address: str) -> bool:
        return any(i.address.upper() == address for i in self.found)

    def _missing(self, kind: DeviceKind) -> list[EnrolledDevice]:
        return [d for d in self.enrolled_devices() if d.kind is kind and not d.address]

    def heard(self, result: ScanResult) -> None:
        """An advertisement from an address no supervisor owns."""
        kind = kind_of(result.service_uuid16s)
        if kind is None:
            return
        address = result.address.upper()
        if address in self._probing or self._is_found(address):
            return  # a found device advertises on until its supervisor owns the address
        loop = asyncio.get_running_loop()
        until = self._ignore_until.get(address)
        if until is not None and loop.time() < until:
            return
        if not self._missing(kind):
            return
        self._probing.add(address)
        task = loop.create_task(self._identify(address, kind), name="discovery-probe")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _identify(self, address: str, kind: DeviceKind) -> None:
        try:
            await self._identify_once(address, kind)
        finally:  # only now may another advertisement of this address start a probe
            self._probing.discard(address)

    async def _identify_once(self, address: str, kind: DeviceKind) -> None:
        loop = asyncio.get_running_loop()
        identity: DeviceIdentity | None = None
        self.probes[address] += 1
        try:
            async with self._slots():
                async with asyncio.timeout(self._probe_timeout_s):
                    identity = await self._probe(address, kind)
        except (DriverError, TimeoutError, OSError) as exc:  # try again later
            _LOGGER.debug("discovery probe failed: %s", type(exc).__name__)
        if identity is None:
            self.outcomes["failed"] += 1
            self._ignore_until[address] = loop.time() + self._retry_s
            _LOGGER.info("a nearby %s could not be identified; trying again later", kind.value)
            return
        if self._is_found(address):
            return  # identified meanwhile (a restart's stored address): not a foreign device
        identity = dataclasses.replace(identity, address=address)
        matches = [d for d in self._missing(kind) if d.matches(identity)]
        if not matches:
            self.outcomes["not_ours"] += 1
            self._ignore_until[address] = loop.time() + self._not_ours_s
            _LOGGER.info(
                "a nearby %s is not enrolled: ignored for %.0f min",
                kind.value,
                self._not_ours_s / 60,
            )
            return
        self.outcomes["ours"] += 1
        # claimed before the await: an advertisement meanwhile must not start a second probe
        self.found = [*(i for i in self.found if i.address.upper() != address), identity]
        await asyncio.to_thread(self._store.remember, identity)
        _LOGGER.info("%s: enrolled %s discovered by its identity; syncing it", address, kind.value)
        self._on_found()

    async def stop(self) -> None:
        tasks: Sequence[asyncio.Task[Any]] = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
