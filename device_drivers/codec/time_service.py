"""Current Time 0x2A2B of the Current Time Service (ble.md §3; Bluetooth CTS 1.1 §3.1).

10 bytes: Date Time (7) + Day of Week (1 = Monday ... 7 = Sunday, 0 = unknown) + Fractions256
(1/256 s) + Adjust Reason (bit0 manual time update, bit1 external reference time update, bit2
change of time zone, bit3 change of DST; bits 4-7 RFU, kept). Day of week 8..255 is malformed.
Trailing bytes are tolerated like the measurements (GATT values may be extended).

Pure: no I/O, no clock: :meth:`CurrentTime.from_datetime` takes the time to send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag
from typing import Final

from device_drivers.codec._names import bit_names
from device_drivers.codec._wire import Reader, pack_uint
from device_drivers.codec.date_time import DateTime, read_date_time
from device_drivers.errors import EncodeError

__all__ = ["ADJUST_REASON_NAMES", "DAY_OF_WEEK_NAMES", "AdjustReason", "CurrentTime"]

_CHARACTERISTIC: Final = "current_time"

DAY_OF_WEEK_NAMES: Final[dict[int, str]] = {
    1: "monday",
    2: "tuesday",
    3: "wednesday",
    4: "thursday",
    5: "friday",
    6: "saturday",
    7: "sunday",
}
ADJUST_REASON_NAMES: Final[dict[int, str]] = {
    0: "manual_time_update",
    1: "external_reference_time_update",
    2: "change_of_time_zone",
    3: "change_of_dst",
}


class AdjustReason(IntFlag):
    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """The Current Time characteristic value."""

    date_time: DateTime
    day_of_week: int = 0
    fractions256: int = 0
    adjust_reason: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.day_of_week, int) or not 0 <= self.day_of_week <= 7:
            raise EncodeError(_CHARACTERISTIC, f"day_of_week {self.day_of_week!r} not in 0..7")
        pack_uint(self.fractions256, 1, _CHARACTERISTIC, "fractions256")
        pack_uint(self.adjust_reason, 1, _CHARACTERISTIC, "adjust_reason")

    @classmethod
    def from_datetime(
        cls, value: datetime, adjust_reason: int = AdjustReason.MANUAL_TIME_UPDATE
    ) -> CurrentTime:
        """The Current Time to write for the wall-clock ``value`` (the gateway's local time)."""
        return cls(
            date_time=DateTime.from_datetime(value),
            day_of_week=value.isoweekday(),
            fractions256=value.microsecond * 256 // 1_000_000,
            adjust_reason=int(adjust_reason),
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> CurrentTime:
        reader = Reader(data, _CHARACTERISTIC)
        date_time = read_date_time(reader, "exact time")
        day_of_week = reader.u8("day of week")
        if day_of_week > 7:
            raise reader.error(f"day of week {day_of_week} not in 0..7 (0 = unknown)")
        fractions = reader.u8("fractions256")
        reason = reader.u8("adjust reason")
        return cls(date_time, day_of_week, fractions, reason)

    def __bytes__(self) -> bytes:
        return bytes(self.date_time) + bytes(
            (self.day_of_week, self.fractions256, self.adjust_reason)
        )

    def to_datetime(self) -> datetime | None:
        """Naive local datetime including the fraction (rounded down to the microsecond)."""
        value = self.date_time.to_datetime()
        if value is None:
            return None
        return value.replace(microsecond=self.fractions256 * 1_000_000 // 256)

    def to_dict(self) -> dict[str, object]:
        return {
            "iso": self.date_time.iso(),
            "date_time": self.date_time.to_dict(),
            "day_of_week": self.day_of_week,
            "day_of_week_name": DAY_OF_WEEK_NAMES.get(self.day_of_week),
            "fractions256": self.fractions256,
            "adjust_reason": self.adjust_reason,
            "adjust_reason_names": bit_names(ADJUST_REASON_NAMES, self.adjust_reason),
        }
