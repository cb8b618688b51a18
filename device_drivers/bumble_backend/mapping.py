"""Conversions between bumble objects and the shapes bleak expects.

bleak wants lowercase 128-bit UUID strings, property names such as ``"write-without-response"`` and
an :class:`~bleak.backends.scanner.AdvertisementData` per advertisement. Advertising data is
untrusted: a malformed AD structure is skipped (and logged at DEBUG), never raised, as in
bluetooth-data-tools' ``gap.py``. No I/O here.
"""

from __future__ import annotations

import logging
import uuid as std_uuid
from typing import Final

from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.scanner import AdvertisementData
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement
from bumble.hci import Address

__all__ = [
    "NO_RSSI",
    "address_text",
    "advertisement_data",
    "property_names",
    "uuid_text",
]

_LOGGER = logging.getLogger(__name__)

NO_RSSI: Final = -127
"""RSSI reported when the controller gives none (the value bleak-retry-connector uses)."""

_HCI_NOT_AVAILABLE: Final = 0x7F
_T = AdvertisingData.Type
_UUID_LIST_WIDTHS: Final[dict[int, int]] = {
    _T.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _T.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _T.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    _T.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA_WIDTHS: Final[dict[int, int]] = {
    _T.SERVICE_DATA_16_BIT_UUID: 2,
    _T.SERVICE_DATA_32_BIT_UUID: 4,
    _T.SERVICE_DATA_128_BIT_UUID: 16,
}


def uuid_text(value: UUID) -> str:
    """The lowercase 128-bit string of a bumble UUID (16- and 32-bit ones on the SIG base)."""
    return str(std_uuid.UUID(bytes=value.uuid_128_bytes[::-1]))


def _uuid_from_le(data: bytes) -> str:
    return uuid_text(UUID.from_bytes(data))


def address_text(address: Address) -> str:
    """``AA:BB:CC:DD:EE:FF`` without bumble's ``/P`` type suffix: the form bleak uses."""
    return address.to_string(with_type_qualifier=False)


def property_names(properties: int) -> list[CharacteristicPropertyName]:
    """bleak property names for a characteristic properties byte, in bit order."""
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if properties & bit]


def _local_name(data: AdvertisingData) -> str | None:
    for ad_type in (_T.COMPLETE_LOCAL_NAME, _T.SHORTENED_LOCAL_NAME):
        raw = data.get(ad_type, raw=True)
        if isinstance(raw, bytes) and raw:
            return raw.decode("utf-8", errors="replace")
    return None


def _service_uuids(data: AdvertisingData) -> list[str]:
    found: list[str] = []
    for ad_type, width in _UUID_LIST_WIDTHS.items():
        for raw in data.get_all(ad_type, raw=True):
            if len(raw) % width:
                _LOGGER.debug("skipping malformed service UUID list %s", raw.hex())
                continue
            for offset in range(0, len(raw), width):
                text = _uuid_from_le(raw[offset : offset + width])
                if text not in found:
                    found.append(text)
    return found


def _service_data(data: AdvertisingData) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for ad_type, width in _SERVICE_DATA_WIDTHS.items():
        for raw in data.get_all(ad_type, raw=True):
            if len(raw) < width:
                _LOGGER.debug("skipping malformed service data %s", raw.hex())
                continue
            found[_uuid_from_le(raw[:width])] = bytes(raw[width:])
    return found


def _manufacturer_data(data: AdvertisingData) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for raw in data.get_all(_T.MANUFACTURER_SPECIFIC_DATA, raw=True):
        if len(raw) < 2:
            _LOGGER.debug("skipping malformed manufacturer data %s", raw.hex())
            continue
        found[int.from_bytes(raw[:2], "little")] = bytes(raw[2:])
    return found


def _tx_power(data: AdvertisingData) -> int | None:
    raw = data.get(_T.TX_POWER_LEVEL, raw=True)
    if isinstance(raw, bytes) and len(raw) == 1:
        return int.from_bytes(raw, "little", signed=True)
    return None


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's view of one (accumulated) bumble advertisement."""
    data = advertisement.data
    rssi = advertisement.rssi
    return AdvertisementData(
        local_name=_local_name(data),
        manufacturer_data=_manufacturer_data(data),
        service_data=_service_data(data),
        service_uuids=_service_uuids(data),
        tx_power=_tx_power(data),
        rssi=NO_RSSI if rssi == _HCI_NOT_AVAILABLE else rssi,
        platform_data=(advertisement,),
    )
