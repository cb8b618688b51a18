"""Device clocks: measure the skew, decide whether to set the clock, correct device times.

Spec: specs/ble.md §3 (Current Time 0x2A2B: Date Time + day of week + Fractions256 + adjust reason;
set a meter clock to the gateway's *local* wall-clock time; always record the skew, meter time
minus gateway time at the read).

Health devices keep a naive local clock with no time zone. The skew is the device's clock minus the
gateway's local wall-clock time (in the household's time zone) at the moment of the read: a
correctly set meter has a skew near 0, a meter left on UTC in Asia/Shanghai has a skew of -8 h.

Correction treats the device clock as free-running since the read: the device's naive time minus
the skew is the gateway's local wall time *with the UTC offset in force at the read*. That is right
across a DST change the meter did not follow (most do not) and for a meter set to the wrong zone.
When the skew was not measured the device time is read as household local time and the reading is
flagged CLOCK_UNCORRECTED by :mod:`device_drivers.convert`.

Pure: no I/O, no clock (``read_at``/``now`` are passed in, aware).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Final

from device_drivers.codec.time_service import AdjustReason, CurrentTime

__all__ = [
    "ADJUST_REASON_EXTERNAL_REFERENCE",
    "CLOCK_TOLERANCE_S",
    "ClockDecision",
    "ClockPlan",
    "current_time_for",
    "device_time_to_utc",
    "gateway_local_time",
    "measure_skew",
    "plan_clock",
]

CLOCK_TOLERANCE_S: Final = 60.0
"""A device clock further off than this is set (when its Current Time is writable)."""

ADJUST_REASON_EXTERNAL_REFERENCE: Final = AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE
"""The adjust reason the gateway writes: bit 1, external reference time update (CTS)."""


class ClockDecision(StrEnum):
    KEEP = "keep"  # within tolerance
    WRITE = "write"  # off by more than the tolerance (or unknown) and writable
    CANNOT_WRITE = (
        "cannot_write"  # off, but the characteristic is not writable: correct in software
    )


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """``skew_s``: device minus gateway local time (None when the device's date is unknown)."""

    skew_s: float | None
    decision: ClockDecision


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def gateway_local_time(now: datetime, tz: tzinfo) -> datetime:
    """The household's naive local wall-clock time at the aware instant ``now``."""
    _require_aware("now", now)
    return now.astimezone(tz).replace(tzinfo=None)


def measure_skew(device_time: CurrentTime, read_at: datetime, tz: tzinfo) -> float | None:
    """Device time minus the gateway's local wall time at ``read_at``, in seconds (Fractions256
    included, rounded to milliseconds). None when the device does not know its date."""
    device = device_time.to_datetime()
    if device is None:
        return None
    return round((device - gateway_local_time(read_at, tz)).total_seconds(), 3)


def plan_clock(
    skew_s: float | None,
    *,
    writable: bool,
    tolerance_s: float = CLOCK_TOLERANCE_S,
) -> ClockPlan:
    """Whether to set the device clock: when it is off by more than ``tolerance_s`` or its date
    is unknown (``skew_s`` None)."""
    if tolerance_s < 0:
        raise ValueError("tolerance_s must not be negative")
    if skew_s is not None and abs(skew_s) <= tolerance_s:
        return ClockPlan(skew_s, ClockDecision.KEEP)
    return ClockPlan(skew_s, ClockDecision.WRITE if writable else ClockDecision.CANNOT_WRITE)


def current_time_for(now: datetime, tz: tzinfo) -> CurrentTime:
    """The Current Time value to write: the gateway's local wall time at ``now``, day of week
    (1 = Monday), Fractions256, adjust reason "external reference time update"."""
    return CurrentTime.from_datetime(gateway_local_time(now, tz), ADJUST_REASON_EXTERNAL_REFERENCE)


def device_time_to_utc(
    device_time: datetime,
    tz: tzinfo,
    *,
    clock_skew_s: float | None,
    reference: datetime,
) -> datetime:
    """The aware UTC instant of a naive device time.

    With a skew: ``device_time - skew`` is the gateway's local wall time on the UTC offset in
    force at ``reference`` (the aware instant the skew was measured, normally the sync). Without
    a skew: ``device_time`` read as household local time (the offset in force at that time; for
    a time repeated by a DST fall-back, the first occurrence).
    """
    if device_time.tzinfo is not None:
        raise ValueError(f"device_time must be naive (device local time), got {device_time!r}")
    _require_aware("reference", reference)
    if clock_skew_s is None:
        return device_time.replace(tzinfo=tz).astimezone(UTC)
    offset = reference.astimezone(tz).utcoffset()
    assert offset is not None  # astimezone(tz) of an aware datetime always has an offset
    wall = device_time - timedelta(seconds=clock_skew_s)
    return (wall - offset).replace(tzinfo=UTC)
