"""State shared by every bleak scanner and client that use one bumble central.

A :class:`~device_drivers.bumble_air.BumbleAir` has exactly one powered-on central device (one
HCI transport can be opened only once: the defect that got hbldh/bleak PR #1681 closed, spec ble.md
§6.2). Scanners and clients therefore never own the radio; they share a :class:`CentralState`:

* a reference-counted scan, so a scanner and a client's address lookup can run together;
* a cache of the addresses the central has heard advertising (with their address type, so a public
  address given as a plain string still connects, and so a connect never starts for a device that
  is not there);
* one lock around LE connection creation (a controller allows one pending LE connection);
* the pairing configuration: Just Works with bonding by default (spec ble.md §1.5), per connection
  overridable with a bumble ``PairingDelegate``. Bonds go to the central's key store, which is in
  memory and therefore shared by every client of the air and lost with it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from bumble.device import Advertisement, Connection, Device
from bumble.hci import Address
from bumble.pairing import PairingConfig, PairingDelegate

from device_drivers.bumble_backend.mapping import address_text

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = ["CentralState", "SeenDevice", "central_state"]

_LOGGER = logging.getLogger(__name__)

FRESH_S: Final = 2.0
"""An advertisement younger than this counts as "the device is there now": connect at once."""
SEEN_CACHE_SIZE: Final = 512

AdvertisementListener = Callable[[Advertisement], None]


@dataclass(slots=True)
class SeenDevice:
    address: Address
    name: str | None
    connectable: bool
    last_seen: float
    """Event-loop time of the last advertisement."""


class CentralState:
    """Scan sharing, seen-address cache, connect lock and pairing config of one central."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.connect_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._scan_users = 0
        self._scan_active = False
        self._seen: OrderedDict[str, SeenDevice] = OrderedDict()
        self._listeners: list[AdvertisementListener] = []
        self._delegates: weakref.WeakKeyDictionary[Connection, PairingDelegate] = (
            weakref.WeakKeyDictionary()
        )
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        device.pairing_config_factory = self._pairing_config

    # -- advertisements -------------------------------------------------------------------------
    def _on_advertisement(self, advertisement: Advertisement) -> None:
        key = address_text(advertisement.address)
        data = advertisement.data
        name_raw = data.get(data.Type.COMPLETE_LOCAL_NAME, raw=True) or data.get(
            data.Type.SHORTENED_LOCAL_NAME, raw=True
        )
        previous = self._seen.pop(key, None)
        name = (
            name_raw.decode("utf-8", errors="replace")
            if isinstance(name_raw, bytes) and name_raw
            else (previous.name if previous else None)
        )
        self._seen[key] = SeenDevice(
            address=advertisement.address,
            name=name,
            connectable=advertisement.is_connectable,
            last_seen=asyncio.get_running_loop().time(),
        )
        while len(self._seen) > SEEN_CACHE_SIZE:
            self._seen.popitem(last=False)
        for listener in list(self._listeners):
            listener(advertisement)

    def add_listener(self, listener: AdvertisementListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def seen(self, address: str) -> SeenDevice | None:
        return self._seen.get(address.upper())

    # -- scanning -------------------------------------------------------------------------------
    async def acquire_scan(self, *, active: bool = True) -> None:
        """Start scanning unless someone already is (an active request upgrades a passive scan)."""
        async with self._scan_lock:
            self._scan_users += 1
            if self.device.is_scanning and (self._scan_active or not active):
                return
            if self.device.is_scanning:
                await self.device.stop_scanning()
            await self.device.start_scanning(active=active, filter_duplicates=False)
            self._scan_active = active
            _LOGGER.debug("central %s scanning (active=%s)", self.device.random_address, active)

    async def release_scan(self) -> None:
        async with self._scan_lock:
            self._scan_users = max(0, self._scan_users - 1)
            if self._scan_users == 0 and self.device.is_scanning:
                await self.device.stop_scanning()
                _LOGGER.debug("central %s stopped scanning", self.device.random_address)

    async def find(self, address: str, timeout_s: float) -> SeenDevice | None:
        """The device if it advertises connectably now (recently seen, or heard while scanning for
        up to ``timeout_s``), else None."""
        key = address.upper()
        loop = asyncio.get_running_loop()
        known = self._seen.get(key)
        if known is not None and known.connectable and loop.time() - known.last_seen < FRESH_S:
            return known
        if timeout_s <= 0:
            return None
        found: asyncio.Future[None] = loop.create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            entry = self._seen.get(key)
            if (
                address_text(advertisement.address) == key
                and entry is not None
                and entry.connectable
                and not found.done()
            ):
                found.set_result(None)

        remove = self.add_listener(on_advertisement)
        await self.acquire_scan(active=False)
        try:
            async with asyncio.timeout(timeout_s):
                await found
        except TimeoutError:
            return None
        finally:
            remove()
            await self.release_scan()
        return self._seen.get(key)

    # -- pairing --------------------------------------------------------------------------------
    def set_pairing_delegate(self, connection: Connection, delegate: PairingDelegate) -> None:
        self._delegates[connection] = delegate

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        delegate = self._delegates.get(connection) or PairingDelegate()
        return PairingConfig(sc=True, mitm=True, bonding=True, delegate=delegate)


_STATES: weakref.WeakKeyDictionary[Device, CentralState] = weakref.WeakKeyDictionary()


async def central_state(air: BumbleAir) -> CentralState:
    """The shared state of ``air``'s central (created with it, released with it).

    Kept in a weak map keyed by the central device because the air is owned elsewhere and every
    scanner and client of that one central must see the same state."""
    device = await air.central_device()
    state = _STATES.get(device)
    if state is None:
        state = CentralState(device)
        _STATES[device] = state
    return state
