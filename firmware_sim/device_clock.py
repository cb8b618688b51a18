"""The wall clock inside a simulated device: true time + zone + skew + drift (ble.md §3, CTS).

A health device keeps a naive local wall-clock time (GATT Date Time carries no zone). Here it is
modelled as::

    device_time(t) = utc(t) + zone + offset + drift_ppm * 1e-6 * (t - set_at)

where ``offset`` starts as the configured skew and ``set_at`` is when the clock was last set. A
write of Current Time 0x2A2B sets the clock: from then on the device shows the written time plus
drift since the write. Each write is kept in :attr:`DeviceClock.adjustments` so tests can check
how the gateway set it.

Pure: the true time comes from an injected ``now() -> aware datetime``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from device_drivers.codec.time_service import AdjustReason, CurrentTime
from firmware_sim.errors import SimConfigError

__all__ = ["ClockAdjustment", "DeviceClock", "TrueClock"]

TrueClock = Callable[[], datetime]
"""Returns the true current time, aware (tests pass a fake)."""


@dataclass(frozen=True, slots=True)
class ClockAdjustment:
    """One write of Current Time: when (true UTC), what was written, what the device showed."""

    at: datetime
    written: CurrentTime
    device_time_before: datetime


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SimConfigError("clock", f"true time must be aware, got {moment!r}")
    return moment.astimezone(UTC).replace(tzinfo=None)


class DeviceClock:
    """A device's wall clock; ``zone_offset_minutes`` is the zone it was set in."""

    def __init__(
        self,
        now: TrueClock,
        *,
        zone_offset_minutes: int,
        skew_s: float = 0.0,
        drift_ppm: float = 0.0,
    ) -> None:
        self._now = now
        self._set_at = _utc_naive(now())
        self._offset = timedelta(minutes=zone_offset_minutes, seconds=skew_s)
        self._drift_ppm = drift_ppm
        self._adjust_reason = 0
        self.adjustments: list[ClockAdjustment] = []

    def now(self) -> datetime:
        """The true current time (aware), from the injected clock."""
        return self._now()

    def at(self, moment: datetime) -> datetime:
        """The naive wall-clock time the device shows at the true (aware) ``moment``."""
        utc = _utc_naive(moment)
        drift_s = (utc - self._set_at).total_seconds() * self._drift_ppm * 1e-6
        return utc + self._offset + timedelta(seconds=drift_s)

    def read(self) -> datetime:
        """What the device shows now (naive, with microseconds)."""
        return self.at(self._now())

    def current_time(self) -> CurrentTime:
        """The Current Time 0x2A2B value the device serves now."""
        return CurrentTime.from_datetime(self.read(), adjust_reason=self._adjust_reason)

    def write(self, value: CurrentTime) -> None:
        """Set the clock to ``value`` (a Current Time write). Raises SimConfigError for a time the
        device cannot hold (unknown date)."""
        shown = value.to_datetime()
        if shown is None:
            raise SimConfigError("current_time", "the written time has an unknown date")
        now = self._now()
        before = self.read()
        utc = _utc_naive(now)
        self._set_at = utc
        self._offset = shown - utc
        self._adjust_reason = value.adjust_reason or AdjustReason.MANUAL_TIME_UPDATE
        self.adjustments.append(ClockAdjustment(now, value, before))

    @property
    def skew_s(self) -> float:
        """Device time minus true UTC now, in seconds (includes the zone offset)."""
        return (self.read() - _utc_naive(self._now())).total_seconds()
