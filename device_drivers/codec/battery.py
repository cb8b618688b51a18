"""Battery Level 0x2A19 of the Battery Service (ble.md §3; Bluetooth BAS 1.0 §3.1).

Exactly one byte, 0..100 %. Any other length, or a value above 100, is malformed (the spec gives
the value no room to grow and 101..255 no meaning).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.codec._wire import Reader
from device_drivers.errors import EncodeError

__all__ = ["BatteryLevel"]

_CHARACTERISTIC: Final = "battery_level"


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    percent: int

    def __post_init__(self) -> None:
        if not isinstance(self.percent, int) or not 0 <= self.percent <= 100:
            raise EncodeError(_CHARACTERISTIC, f"percent {self.percent!r} not in 0..100")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> BatteryLevel:
        reader = Reader(data, _CHARACTERISTIC)
        if len(reader.data) != 1:
            raise reader.error(f"battery level is exactly 1 byte, got {len(reader.data)}")
        percent = reader.u8("battery level")
        if percent > 100:
            raise reader.error(f"battery level {percent} % above 100")
        return cls(percent)

    def __bytes__(self) -> bytes:
        return bytes((self.percent,))

    def to_dict(self) -> dict[str, object]:
        return {"percent": self.percent}
