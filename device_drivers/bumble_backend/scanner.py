"""A bleak 3.x scanner backend over bumble: ``BleakScanner(backend=BumbleBleakScanner, air=air)``.

Scans on the air's single central (shared with every client, see :mod:`.central`), so scanning and
then connecting works on one link or one HCI transport (spec ble.md §6.2, the PR #1681 defect).
Each bumble advertisement (advertising data merged with its scan response) becomes a
:class:`~bleak.backends.scanner.AdvertisementData` and a :class:`~bleak.backends.device.BLEDevice`
whose ``details`` is the bumble :class:`~bumble.hci.Address` (it carries the address type).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError
from bumble.device import Advertisement

from device_drivers.bumble_backend.central import CentralState, central_state
from device_drivers.bumble_backend.mapping import address_text, advertisement_data

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = ["BumbleBleakScanner"]

_LOGGER = logging.getLogger(__name__)


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend; pass ``air=BumbleAir(...)`` through ``BleakScanner(...)``."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        air: BumbleAir | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if air is None:
            raise BleakError("BumbleBleakScanner needs air=BumbleAir(...) passed to BleakScanner")
        self._air = air
        self._active = scanning_mode != "passive"
        self._state: CentralState | None = None
        self._remove_listener: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._state is not None:
            raise BleakError("Scanner already started")
        state = await central_state(self._air)
        self.seen_devices = {}
        self._remove_listener = state.add_listener(self._on_advertisement)
        try:
            await state.acquire_scan(active=self._active)
        except BaseException:
            self._remove_listener()
            self._remove_listener = None
            raise
        self._state = state

    async def stop(self) -> None:
        state, self._state = self._state, None
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if state is not None:
            await state.release_scan()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        adv = advertisement_data(advertisement)
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        address = address_text(advertisement.address)
        previous = self.seen_devices.get(address)
        name = adv.local_name or (previous[0].name if previous else None)
        device = self.create_or_update_device(address, address, name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)
