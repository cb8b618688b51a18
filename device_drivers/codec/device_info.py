"""Device Information Service 0x180A values (ble.md §3; Bluetooth DIS 1.1 §3).

* The string characteristics (Manufacturer Name 0x2A29, Model Number 0x2A24, Serial Number
  0x2A25, Hardware/Firmware/Software Revision 0x2A27/0x2A26/0x2A28) are UTF-8 without a
  terminator; some devices pad with NULs, which :func:`decode_string` strips from the end.
  Invalid UTF-8 raises :class:`DecodeError`, never UnicodeDecodeError.
* System ID 0x2A23: 8 bytes, a 40-bit manufacturer-defined identifier then a 24-bit
  organizationally unique identifier, each little-endian. Exactly 8 bytes.
* PnP ID 0x2A50: vendor id source u8 (1 = Bluetooth SIG, 2 = USB Implementer's Forum, others
  RFU and kept), vendor id u16, product id u16, product version u16. Exactly 7 bytes.

These are fixed-size identifiers, so unlike measurements a wrong length is malformed either way.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.codec._wire import Reader, pack_uint
from device_drivers.errors import EncodeError

__all__ = ["VENDOR_ID_SOURCE_NAMES", "PnpId", "SystemId", "decode_string", "encode_string"]

_SYSTEM_ID: Final = "system_id"
_PNP_ID: Final = "pnp_id"

VENDOR_ID_SOURCE_NAMES: Final[dict[int, str]] = {1: "bluetooth_sig", 2: "usb_if"}


def decode_string(data: bytes | bytearray, characteristic: str = "device_information") -> str:
    """A DIS UTF-8 string with trailing NUL padding removed."""
    reader = Reader(data, characteristic)
    try:
        return reader.data.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise reader.error(f"invalid UTF-8 at byte {exc.start}") from exc


def encode_string(text: str) -> bytes:
    """The UTF-8 wire form of a DIS string (no terminator)."""
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SystemId:
    """System ID 0x2A23 (EUI-64 style: 40-bit manufacturer id + 24-bit OUI, little-endian)."""

    manufacturer_identifier: int
    organizationally_unique_identifier: int

    def __post_init__(self) -> None:
        pack_uint(self.manufacturer_identifier, 5, _SYSTEM_ID, "manufacturer_identifier")
        pack_uint(
            self.organizationally_unique_identifier,
            3,
            _SYSTEM_ID,
            "organizationally_unique_identifier",
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> SystemId:
        reader = Reader(data, _SYSTEM_ID)
        if len(reader.data) != 8:
            raise reader.error(f"system id is exactly 8 bytes, got {len(reader.data)}")
        return cls(reader.uint(5, "manufacturer identifier"), reader.uint(3, "OUI"))

    def __bytes__(self) -> bytes:
        return self.manufacturer_identifier.to_bytes(
            5, "little"
        ) + self.organizationally_unique_identifier.to_bytes(3, "little")

    @property
    def hex(self) -> str:
        """16 hex digits of the 8 wire bytes, in wire order (the device key in the model)."""
        return bytes(self).hex()

    def to_dict(self) -> dict[str, object]:
        return {
            "manufacturer_identifier": self.manufacturer_identifier,
            "organizationally_unique_identifier": self.organizationally_unique_identifier,
            "hex": self.hex,
        }


@dataclass(frozen=True, slots=True)
class PnpId:
    """PnP ID 0x2A50."""

    vendor_id_source: int
    vendor_id: int
    product_id: int
    product_version: int

    def __post_init__(self) -> None:
        pack_uint(self.vendor_id_source, 1, _PNP_ID, "vendor_id_source")
        for field in ("vendor_id", "product_id", "product_version"):
            value = getattr(self, field)
            if not isinstance(value, int):
                raise EncodeError(_PNP_ID, f"{field} {value!r} is not an integer")
            pack_uint(value, 2, _PNP_ID, field)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray) -> PnpId:
        reader = Reader(data, _PNP_ID)
        if len(reader.data) != 7:
            raise reader.error(f"PnP ID is exactly 7 bytes, got {len(reader.data)}")
        return cls(
            reader.u8("vendor id source"),
            reader.u16("vendor id"),
            reader.u16("product id"),
            reader.u16("product version"),
        )

    def __bytes__(self) -> bytes:
        return (
            bytes((self.vendor_id_source,))
            + self.vendor_id.to_bytes(2, "little")
            + self.product_id.to_bytes(2, "little")
            + self.product_version.to_bytes(2, "little")
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "vendor_id_source": self.vendor_id_source,
            "vendor_id_source_name": VENDOR_ID_SOURCE_NAMES.get(self.vendor_id_source),
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "product_version": self.product_version,
        }
