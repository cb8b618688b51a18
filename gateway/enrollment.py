"""Which devices belong to the household, and which person each reading belongs to.

A device is matched by its stable identity (System ID, then serial number + model, then Bluetooth
address). A glucose meter usually belongs to one person; a blood-pressure cuff may have several user
slots (1, 2, ... and 0xFF "guest/unknown"), each mapped to a person. A reading that matches no
enrolled device, or an enrolled cuff's slot that is not mapped, is attributed to nobody: it goes to
the "unassigned" queue and the cloud shows it for a person to claim. We never guess.

Enrollment arrives from the gateway's settings file and, later, as a retained config message from
the cloud; the newer version wins. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from device_drivers.model import BloodPressureReading, DeviceIdentity, DeviceKind, Reading

__all__ = ["UNASSIGNED", "Attribution", "EnrolledDevice", "Enrollment"]

UNASSIGNED: Final = None
"""The person reference of a reading that belongs to nobody yet."""


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    """One enrolled meter or cuff. At least one of the three identifiers must be set."""

    kind: DeviceKind
    system_id: str | None = None
    serial_number: str | None = None
    address: str | None = None
    person_ref: str | None = None  # the owner of a single-user device
    user_slots: Mapping[int, str] = field(default_factory=dict)  # cuff user id -> person ref
    label: str = ""

    def __post_init__(self) -> None:
        if not (self.system_id or self.serial_number or self.address):
            raise ValueError("an enrolled device needs a system_id, serial_number or address")

    def matches(self, device: DeviceIdentity) -> bool:
        if device.kind != self.kind:
            return False
        if self.system_id and device.system_id:
            return self.system_id.lower() == device.system_id.lower()
        if self.serial_number and device.serial_number:
            return self.serial_number == device.serial_number
        if self.address:
            return self.address.upper() == device.address.upper()
        return False


@dataclass(frozen=True, slots=True)
class Attribution:
    person_ref: str | None
    device_label: str | None
    reason: str  # "enrolled", "slot", "unknown_device", "unmapped_slot", "no_owner"

    @property
    def unassigned(self) -> bool:
        return self.person_ref is None


@dataclass(frozen=True, slots=True)
class Enrollment:
    devices: tuple[EnrolledDevice, ...] = ()
    version: int = 0

    @classmethod
    def of(cls, devices: Iterable[EnrolledDevice], version: int = 0) -> Enrollment:
        return cls(tuple(devices), version)

    def find(self, device: DeviceIdentity) -> EnrolledDevice | None:
        for enrolled in self.devices:
            if enrolled.matches(device):
                return enrolled
        return None

    def is_enrolled(self, device: DeviceIdentity) -> bool:
        return self.find(device) is not None

    def attribute(self, reading: Reading) -> Attribution:
        enrolled = self.find(reading.device)
        if enrolled is None:
            return Attribution(UNASSIGNED, None, "unknown_device")
        label = enrolled.label or None
        if isinstance(reading, BloodPressureReading) and enrolled.user_slots:
            if reading.user_id is not None and reading.user_id in enrolled.user_slots:
                return Attribution(enrolled.user_slots[reading.user_id], label, "slot")
            return Attribution(UNASSIGNED, label, "unmapped_slot")
        if enrolled.person_ref is None:
            return Attribution(UNASSIGNED, label, "no_owner")
        return Attribution(enrolled.person_ref, label, "enrolled")

    def newer(self, other: Enrollment) -> Enrollment:
        """The enrollment to keep when another version arrives (cloud push vs local file)."""
        return other if other.version > self.version else self
