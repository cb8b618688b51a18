"""The scanning loop: notices enrolled devices when they advertise and pokes their supervisor.

Scans continuously (:func:`device_drivers.bleak_link.watch_advertisements`, no service filter:
enrolled devices are matched by address, and some meters put their service only in the scan
response). A glucose meter advertises when it has new data, a cuff after a measurement: the
supervisor syncs at once. Devices that are not enrolled are counted, never logged by address (a
neighbour's meter is nobody's business). While the scanner runs, the supervisors also use it to
know who is on the air (:attr:`AdvertisementScanner.running`). When the Bluetooth stack is out of
reach the loop retries with the classified backoff and the supervisors connect blindly meanwhile.
IO (bleak via :mod:`device_drivers.bleak_link`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from device_drivers.bleak_link import ScanResult, watch_advertisements
from device_drivers.errors import DeviceUnavailableError

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir

__all__ = ["AdvertisementScanner"]

_LOGGER = logging.getLogger(__name__)

RETRY_MIN_S: Final = 5.0
RETRY_MAX_S: Final = 300.0


class AdvertisementScanner:
    """``on_heard(address, rssi) -> bool`` is told of every advertisement; it returns whether
    the address belongs to an enrolled device. ``on_unknown(result)`` gets the others
    (:mod:`gateway.discovery`)."""

    def __init__(
        self,
        on_heard: Callable[[str, int | None], bool],
        *,
        air: BumbleAir | None = None,
        on_unknown: Callable[[ScanResult], None] | None = None,
    ) -> None:
        self._on_heard = on_heard
        self._on_unknown = on_unknown
        self._air = air
        self._running = False
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.unknown_advertisements = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ble-scanner")

    async def wait_running(self, timeout_s: float) -> bool:
        """Wait until the first scan is running (False on timeout or when it failed)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._started.wait()
        except TimeoutError:
            return False
        return self._running

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._running = False

    def _heard(self, result: ScanResult) -> None:
        if not self._on_heard(result.address.upper(), result.rssi):
            self.unknown_advertisements += 1
            if self._on_unknown is not None:
                self._on_unknown(result)  # discovery of enrolled devices without an address

    async def _run(self) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                async with watch_advertisements(self._heard, air=self._air):
                    self._running = True
                    self._started.set()
                    delay = RETRY_MIN_S
                    _LOGGER.info("scanning for enrolled devices")
                    await asyncio.Event().wait()  # until cancelled
            except DeviceUnavailableError as exc:
                self._running = False
                self._started.set()
                self.failures += 1
                delay = min(RETRY_MAX_S, max(delay, exc.backoff_s))
                _LOGGER.warning("cannot scan (%s); retrying in %.0f s", exc.reason, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
            except OSError as exc:  # a bumble transport that refuses
                self._running = False
                self._started.set()
                self.failures += 1
                _LOGGER.warning("cannot scan (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
            finally:
                self._running = False
