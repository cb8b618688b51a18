"""Identifiers and resource ids of the FHIR mapping.

* Device identity (PHD IG, PhdDevice.identifier; specs/fhir_phd.md "Device identifiers"): the
  IEEE EUI-64 System ID, written as eight dash-separated upper-case hex octets
  (``74-E8-FF-FE-FF-05-1C-00``). Bluetooth's System ID characteristic (0x2A23) carries the
  EUI-64 least significant octet first (the manufacturer-defined identifier, then the OUI), and
  our device identity keeps those wire octets in hex (``device_drivers.model.DeviceIdentity``), so
  the EUI-64 is the wire octets reversed. The Bluetooth address is an EUI-48 written the same way.
* The PHG (our gateway) needs an EUI-64 too; the cloud does not know the gateway's MAC, so it
  derives a *locally administered* EUI-64 (U/L bit set, unicast) from the gateway uid: stable,
  unique in practice, and never mistaken for an IEEE-assigned one.
* The PHD composite identifier of an Observation (specs/fhir_phd.md "Dedup rules" (2)):
  ``device-patient-type-timestamp[-supplemental]`` with device = EUI-64 as 16 upper-case hex
  digits (or the 12-digit Bluetooth address), patient = the Patient's logical id, type = the MDC
  code, timestamp = the PHD's own clock as seconds since 2000-01-01T00:00:00 (whole seconds: the
  BLE Date Time resolution), supplemental = MDC codes of the supplemental components joined by
  ``-``. Without a device time the sequence number (``s<n>``) stands in for the timestamp, and
  without either the reception time in UTC seconds (``r<n>``).

Resource ids: Observations are ``<reading_id>`` (the compound or glucose measurement),
``<reading_id>-pulse`` and ``<reading_id>-status``; Devices are ``phd-<uuid>`` and
``phg-<uuid>``; Patients are the person's uuid.

Pure: standard library only.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

__all__ = [
    "ObservationPart",
    "bluetooth_eui48",
    "composite_identifier",
    "device_resource_id",
    "eui64_from_system_id",
    "gateway_eui64",
    "observation_id",
    "parse_device_id",
    "parse_observation_id",
]

_HEX16: Final = re.compile(r"^[0-9A-Fa-f]{16}$")
_MAC: Final = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_PLAIN_READING_ID: Final = re.compile(r"^[A-Za-z0-9.]{1,50}$")
_PHD_EPOCH: Final = datetime(2000, 1, 1)  # noqa: DTZ001 (a PHD clock has no zone)


class ObservationPart(StrEnum):
    """Which Observation of a reading: the measurement itself, the cuff's pulse, the cuff's
    measurement status (PhdBitsEnumerationObservation)."""

    MAIN = "main"
    PULSE = "pulse"
    STATUS = "status"


def eui64_from_system_id(system_id: str | None) -> str | None:
    """``'0011223344556677'`` (wire order) -> ``'77-66-55-44-33-22-11-00'``; None unless the
    System ID is 16 hex digits."""
    if not system_id or not _HEX16.match(system_id):
        return None
    return "-".join(f"{octet:02X}" for octet in bytes.fromhex(system_id)[::-1])


def bluetooth_eui48(address: str | None) -> str | None:
    """``'c0:11:22:33:44:01'`` -> ``'C0-11-22-33-44-01'``; None unless a 6-octet address."""
    if not address or not _MAC.match(address):
        return None
    return address.replace(":", "-").upper()


def gateway_eui64(uid: str) -> str:
    """A locally administered unicast EUI-64 derived from the gateway uid."""
    octets = bytearray(hashlib.blake2b(f"anjia-phg:{uid}".encode(), digest_size=8).digest())
    octets[0] = (octets[0] & 0xFC) | 0x02  # U/L bit: local; I/G bit: individual
    return "-".join(f"{octet:02X}" for octet in octets)


def _device_part(device_key: str) -> str:
    """The device part of the composite identifier, from ``DeviceIdentity.key``."""
    if device_key.startswith("sysid:"):
        eui = eui64_from_system_id(device_key[6:])
        if eui is not None:
            return eui.replace("-", "")
    if device_key.startswith("addr:"):
        mac = bluetooth_eui48(device_key[5:])
        if mac is not None:
            return mac.replace("-", "")
    # serial number only: the key itself, without the separators the identifier uses
    return re.sub(r"[^A-Za-z0-9.]", ".", device_key)


def _timestamp_part(
    device_time: str | None, sequence_number: int | None, received_at: datetime
) -> str:
    if device_time:
        try:
            stamp = datetime.fromisoformat(device_time)
        except ValueError:
            stamp = None
        if stamp is not None and stamp.tzinfo is None:
            return str(int((stamp - _PHD_EPOCH).total_seconds()))
    if sequence_number is not None:
        return f"s{sequence_number}"
    return (
        f"r{int((received_at.astimezone(UTC).replace(tzinfo=None) - _PHD_EPOCH).total_seconds())}"
    )


def composite_identifier(
    *,
    device_key: str,
    patient_id: str,
    mdc_type: str,
    device_time: str | None,
    sequence_number: int | None,
    received_at: datetime,
    supplemental: tuple[str, ...] = (),
) -> str:
    """The PHD composite identifier (see the module docstring)."""
    parts = [
        _device_part(device_key),
        patient_id,
        mdc_type,
        _timestamp_part(device_time, sequence_number, received_at),
        *supplemental,
    ]
    return "-".join(parts)


def observation_id(reading_id: str, part: ObservationPart) -> str:
    """The Observation's logical id. Reading ids are 32 hex digits (``reading_id_for``); one that
    is not a valid FHIR id is replaced by ``x`` + a hash (reachable by search only)."""
    base = reading_id
    if not _PLAIN_READING_ID.match(reading_id):
        base = "x" + hashlib.blake2b(reading_id.encode(), digest_size=16).hexdigest()
    return base if part is ObservationPart.MAIN else f"{base}-{part.value}"


def parse_observation_id(resource_id: str) -> tuple[str, ObservationPart] | None:
    """``<reading_id>[-pulse|-status]`` -> (reading id, part); None if it cannot be ours."""
    base, _, suffix = resource_id.partition("-")
    if not _PLAIN_READING_ID.match(base):
        return None
    if not suffix:
        return base, ObservationPart.MAIN
    try:
        part = ObservationPart(suffix)
    except ValueError:
        return None
    return (base, part) if part is not ObservationPart.MAIN else None


def device_resource_id(kind: str, row_id: uuid.UUID) -> str:
    """``phd-<uuid>`` for a meter or cuff, ``phg-<uuid>`` for a gateway."""
    return f"{kind}-{row_id}"


def parse_device_id(resource_id: str) -> tuple[str, uuid.UUID] | None:
    """``phd-<uuid>`` / ``phg-<uuid>`` -> (kind, uuid); None otherwise."""
    kind, _, rest = resource_id.partition("-")
    if kind not in ("phd", "phg"):
        return None
    try:
        return kind, uuid.UUID(rest)
    except ValueError:
        return None
