"""One BLE session with an enrolled device: connect (and pair), run its driver, disconnect.

The :class:`~gateway.supervisor.Fetch` of the daemon. The glucose meter resumes after its stored
watermark (:mod:`gateway.watermarks`); the cuff hands over whatever it still holds, each reading
journaled as it arrives (:mod:`gateway.cuff_journal`), because the cuff forgets it at once. The
link is always disconnected, also when the supervisor's timeout cancels the session. IO (bleak
via :mod:`device_drivers.bleak_link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Final

from device_drivers.bleak_link import connect_gatt_link
from device_drivers.driver import BloodPressureDriver, GlucoseMeterDriver, SyncResult
from device_drivers.errors import ConnectStage
from device_drivers.model import BloodPressureReading, DeviceKind, Reading
from gateway.cuff_journal import CuffJournal
from gateway.enrollment import EnrolledDevice
from gateway.supervisor import SyncProgress, device_address
from gateway.watermarks import WatermarkStore

if TYPE_CHECKING:
    from device_drivers.bumble_air import BumbleAir
    from gateway.settings import BleSettings

__all__ = ["BleSession"]

_LOGGER = logging.getLogger(__name__)

DISCONNECT_TIMEOUT_S: Final = 5.0
BP_SESSION_SHARE: Final = 0.5
"""A cuff session may use at most this share of ``sync_timeout_s`` (the rest: connecting)."""


class BleSession:
    """Callable as :class:`~gateway.supervisor.Fetch`."""

    def __init__(
        self,
        ble: BleSettings,
        watermarks: WatermarkStore,
        *,
        tz: tzinfo,
        air: BumbleAir | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        journal: CuffJournal | None = None,
    ) -> None:
        self._ble = ble
        self._journal = journal
        self._watermarks = watermarks
        self._tz = tz
        self._air = air
        self._clock = clock

    async def __call__(self, device: EnrolledDevice, progress: SyncProgress) -> SyncResult:
        address = device_address(device)
        assert address is not None
        ble = self._ble
        progress.stage = ConnectStage.CONNECT
        link = await connect_gatt_link(
            address,
            air=self._air,
            pair=ble.pair,
            timeout_s=ble.connect_timeout_s,
            attempts=ble.connect_attempts,
        )
        progress.stage = ConnectStage.TRANSFER
        try:
            if device.kind is DeviceKind.GLUCOSE_METER:
                mark = await asyncio.to_thread(self._watermarks.get, address)
                since = None if mark is None else mark.glucose_since(None)
                meter = GlucoseMeterDriver(
                    link, clock=self._clock, tz=self._tz, timeout_s=ble.transfer_timeout_s
                )
                result = await meter.fetch_since(since)
                if mark is not None and mark.glucose_since(result.device.key) != since:
                    # another meter answers at this address: its numbering is its own
                    _LOGGER.info("%s: a different meter answers; syncing all it holds", address)
                    result = await meter.fetch_since(None)
                return result
            cuff = BloodPressureDriver(
                link,
                clock=self._clock,
                tz=self._tz,
                max_session_s=ble.sync_timeout_s * BP_SESSION_SHARE,
            )
            return await cuff.collect(
                idle_timeout_s=ble.cuff_idle_s, on_reading=self._journal_hook(address)
            )
        finally:
            progress.stage = ConnectStage.DISCONNECT
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                    await link.disconnect()

    def _journal_hook(self, address: str) -> Callable[[Reading], None] | None:
        journal = self._journal
        if journal is None:
            return None

        def store(reading: Reading) -> None:
            if isinstance(reading, BloodPressureReading):
                journal.add(address, reading)

        return store
