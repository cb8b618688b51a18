"""Who a reading belongs to, decided by the cloud's own records (docs/ingest.md "Attribution").

The gateway sends its own attribution (``person_ref``, from the config it last received), but the
database is authoritative: a reading is attributed with the household's devices, owners and cuff
user slots as stored now. The rules are the gateway's (``gateway/enrollment.py``), so both ends
agree when their configs agree: a device is matched by System ID, then serial number, then
Bluetooth address, within the gateway's household only; a cuff with mapped user slots attributes
by slot (an unmapped slot, such as 255 "guest", stays unassigned); a single-user device
attributes to its owner; anything else is unassigned with the reason, never guessed.

Pure: standard library and the contract's message types only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from gateway.contract import ReadingMessage

__all__ = [
    "BLOOD_PRESSURE",
    "Attribution",
    "GatewayInfo",
    "KnownDevice",
    "attribute",
]

BLOOD_PRESSURE: Final = "blood_pressure_monitor"


@dataclass(frozen=True, slots=True)
class Attribution:
    person_id: uuid.UUID | None
    device_id: uuid.UUID | None
    reason: str  # "enrolled", "slot", "unknown_device", "unmapped_slot", "no_owner"


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A device registered in the household (``devices`` row and its cuff slots)."""

    id: uuid.UUID
    kind: str
    system_id: str | None = None
    serial_number: str | None = None
    address: str | None = None
    owner_person_id: uuid.UUID | None = None
    slots: Mapping[int, uuid.UUID] = field(default_factory=dict)

    def matches(self, message: ReadingMessage) -> bool:
        """The gateway's matching rule (``EnrolledDevice.matches``), on the wire's device info."""
        if message.kind != self.kind:
            return False
        device = message.device
        if self.system_id and device.system_id:
            return self.system_id.lower() == device.system_id.lower()
        if self.serial_number and device.serial_number:
            return self.serial_number == device.serial_number
        if self.address:
            return self.address.upper() == device.address.upper()
        return False


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """A gateway as the ingest needs it, with its household's devices. Cached per worker and
    reloaded when ``config_version`` changes (bumped on every device, owner or slot change)."""

    id: uuid.UUID
    uid: str
    household_id: uuid.UUID
    config_version: int
    revoked: bool
    devices: tuple[KnownDevice, ...] = ()

    def find(self, message: ReadingMessage) -> KnownDevice | None:
        for device in self.devices:
            if device.matches(message):
                return device
        return None


def attribute(gateway: GatewayInfo, message: ReadingMessage) -> Attribution:
    device = gateway.find(message)
    if device is None:
        return Attribution(None, None, "unknown_device")
    if message.kind == BLOOD_PRESSURE and device.slots:
        person = None if message.user_id is None else device.slots.get(message.user_id)
        if person is not None:
            return Attribution(person, device.id, "slot")
        return Attribution(None, device.id, "unmapped_slot")
    if device.owner_person_id is None:
        return Attribution(None, device.id, "no_owner")
    return Attribution(device.owner_person_id, device.id, "enrolled")
