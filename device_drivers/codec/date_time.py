"""GATT Date Time (0x2A08), the 7-byte time stamp of every health measurement: ble.md §1.1, §2.1.

``year u16, month u8, day u8, hours u8, minutes u8, seconds u8``. Year 1582..9999, 0 = unknown;
month 1..12, 0 = unknown; day 1..31, 0 = unknown; hours 0..23, minutes 0..59, seconds 0..59.
Values outside these ranges, and impossible dates (2025-02-30), are malformed and raise
:class:`DecodeError`. The time carries no zone: it is the device's local wall-clock time, so
:meth:`DateTime.to_datetime` returns a *naive* datetime. Seven bytes exactly when read on its own
(the characteristic 0x2A08 is fixed-size); inside other structures the caller reads 7 bytes.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from device_drivers.codec._wire import Reader, pack_uint
from device_drivers.errors import EncodeError

__all__ = ["DATE_TIME_SIZE", "DateTime", "date_time_fault", "read_date_time"]

DATE_TIME_SIZE = 7
_CHARACTERISTIC = "date_time"


def date_time_fault(
    year: int, month: int, day: int, hours: int, minutes: int, seconds: int
) -> str | None:
    """What is wrong with these fields, or None when they form a valid GATT Date Time."""
    if year != 0 and not 1582 <= year <= 9999:
        return f"year {year} out of range 1582..9999 (0 = unknown)"
    if not 0 <= month <= 12:
        return f"month {month} out of range 1..12 (0 = unknown)"
    if not 0 <= day <= 31:
        return f"day {day} out of range 1..31 (0 = unknown)"
    if day and month:
        # With the year unknown, allow 29 February (2000 is a leap year).
        last_day = calendar.monthrange(year or 2000, month)[1]
        if day > last_day:
            return f"impossible date {year:04d}-{month:02d}-{day:02d}"
    if not 0 <= hours <= 23:
        return f"hours {hours} out of range 0..23"
    if not 0 <= minutes <= 59:
        return f"minutes {minutes} out of range 0..59"
    if not 0 <= seconds <= 59:
        return f"seconds {seconds} out of range 0..59"
    return None


@dataclass(frozen=True, slots=True)
class DateTime:
    """A GATT Date Time. 0 in year, month or day means "not known"."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    def __post_init__(self) -> None:
        fault = date_time_fault(
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds
        )
        if fault is not None:
            raise EncodeError(_CHARACTERISTIC, fault)

    @property
    def is_known(self) -> bool:
        """True when year, month and day are all known."""
        return bool(self.year and self.month and self.day)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> DateTime:
        reader = Reader(data, _CHARACTERISTIC)
        value = read_date_time(reader, "date time")
        reader.expect_end()
        return value

    def __bytes__(self) -> bytes:
        return pack_uint(self.year, 2, _CHARACTERISTIC, "year") + bytes(
            (self.month, self.day, self.hours, self.minutes, self.seconds)
        )

    @classmethod
    def from_datetime(cls, value: datetime) -> DateTime:
        """The wall-clock fields of ``value`` (its zone, if any, is not sent; microseconds drop)."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)

    def to_datetime(self) -> datetime | None:
        """The naive local datetime, or None when year, month or day is unknown."""
        if not self.is_known:
            return None
        return datetime(  # noqa: DTZ001 - GATT time stamps carry no zone
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds
        )

    def iso(self) -> str | None:
        """ISO 8601 local time without zone (``2026-11-24T07:30:00``), None when unknown."""
        value = self.to_datetime()
        return None if value is None else value.isoformat()

    def to_dict(self) -> dict[str, object]:
        return {
            "iso": self.iso(),
            "year": self.year,
            "month": self.month,
            "day": self.day,
            "hours": self.hours,
            "minutes": self.minutes,
            "seconds": self.seconds,
        }


def read_date_time(reader: Reader, field: str) -> DateTime:
    """Read 7 bytes of Date Time for ``field``; faults name the reader's characteristic."""
    chunk = reader.take(DATE_TIME_SIZE, field)
    year = int.from_bytes(chunk[0:2], "little")
    month, day, hours, minutes, seconds = chunk[2], chunk[3], chunk[4], chunk[5], chunk[6]
    fault = date_time_fault(year, month, day, hours, minutes, seconds)
    if fault is not None:
        raise reader.error(f"{field}: {fault}")
    return DateTime(year, month, day, hours, minutes, seconds)
