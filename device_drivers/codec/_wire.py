"""Bounds-checked little-endian reading and range-checked writing shared by the codecs.

Every read names the field it is for, so a short payload raises
``DecodeError(characteristic, "truncated: ...")`` instead of IndexError or struct.error.
Pure: no I/O.
"""

from __future__ import annotations

from device_drivers.codec.sfloat import MedFloat, decode_sfloat, encode_sfloat
from device_drivers.errors import DecodeError, EncodeError

__all__ = ["Reader", "pack_sfloat", "pack_sint", "pack_uint"]


class Reader:
    """A cursor over one payload of one characteristic."""

    __slots__ = ("_data", "_pos", "characteristic")

    def __init__(self, data: bytes | bytearray, characteristic: str) -> None:
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"{characteristic}: expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0
        self.characteristic = characteristic

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def error(self, fault: str) -> DecodeError:
        return DecodeError(self.characteristic, fault, self._data)

    def take(self, size: int, field: str) -> bytes:
        if self.remaining < size:
            raise self.error(
                f"truncated: {field} needs {size} byte(s) at offset {self._pos},"
                f" {self.remaining} left"
            )
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "little")

    def u8(self, field: str) -> int:
        return self.uint(1, field)

    def u16(self, field: str) -> int:
        return self.uint(2, field)

    def s16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little", signed=True)

    def sfloat(self, field: str) -> MedFloat:
        return decode_sfloat(self.u16(field))

    def expect_end(self) -> None:
        """For fixed-size values whose spec allows no growth."""
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected trailing byte(s)")


def pack_uint(value: int, size: int, characteristic: str, field: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value < (1 << (8 * size)):
        raise EncodeError(characteristic, f"{field} {value!r} does not fit in uint{8 * size}")
    return value.to_bytes(size, "little")


def pack_sint(value: int, size: int, characteristic: str, field: str) -> bytes:
    limit = 1 << (8 * size - 1)
    if not isinstance(value, int) or not -limit <= value < limit:
        raise EncodeError(characteristic, f"{field} {value!r} does not fit in sint{8 * size}")
    return value.to_bytes(size, "little", signed=True)


def pack_sfloat(value: MedFloat, characteristic: str, field: str) -> bytes:
    try:
        raw = encode_sfloat(value)
    except EncodeError as exc:
        raise EncodeError(characteristic, f"{field}: {exc.fault}") from exc
    return raw.to_bytes(2, "little")
