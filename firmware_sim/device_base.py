"""What both simulated devices share: identity (Device Information), battery, the device clock,
fault dice and connection/subscription bookkeeping (ble.md §3).

Pure: no I/O; the true time comes from an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.codec.battery import BatteryLevel
from device_drivers.codec.device_info import PnpId, SystemId
from device_drivers.codec.sfloat import MedFloat, Special
from device_drivers.codec.time_service import CurrentTime
from device_drivers.errors import DecodeError
from device_drivers.uuids import CURRENT_TIME
from firmware_sim.device_clock import DeviceClock, TrueClock
from firmware_sim.errors import ATT_OUT_OF_RANGE, SimAttError, SimConfigError
from firmware_sim.faults import Faults, RecordFault, TransferDice

__all__ = [
    "DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN",
    "RESERVED_SFLOAT",
    "TRUNCATE_BYTES",
    "DeviceInformation",
    "Notification",
    "SimDevice",
]

DEFAULT_HOUSEHOLD_UTC_OFFSET_MIN: Final = 480  # China Standard Time
TRUNCATE_BYTES: Final = 2
"""How many bytes the ``truncate_records`` fault cuts from the end of a measurement."""
RESERVED_SFLOAT: Final = MedFloat(0, 0, Special.RESERVED)
"""SFLOAT 0x0801, sent by the ``reserved_sfloat_records`` fault."""


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """Device Information Service 0x180A values (ble.md §3)."""

    manufacturer: str
    model: str
    serial: str
    system_id: SystemId
    hardware_revision: str = "1.0"
    firmware_revision: str = "1.4.2"
    software_revision: str = "1.4.2"
    pnp_id: PnpId | None = None

    @classmethod
    def glucose_meter(cls, serial: str = "AJG0000001") -> DeviceInformation:
        return cls(
            "Anjia Sim 安家",
            "AJ-G100",
            serial,
            _system_id(serial),
            pnp_id=PnpId(1, 0x05F1, 0x0100, 0x0142),
        )

    @classmethod
    def bp_monitor(cls, serial: str = "AJB0000001") -> DeviceInformation:
        return cls(
            "Anjia Sim 安家",
            "AJ-B200",
            serial,
            _system_id(serial),
            pnp_id=PnpId(1, 0x05F1, 0x0200, 0x0142),
        )


def _system_id(serial: str) -> SystemId:
    digest = sum((i + 1) * ord(c) for i, c in enumerate(serial)) * 2654435761
    return SystemId(digest & 0xFF_FFFF_FFFF, 0x5A_4A_41)  # "AJZ" as a made-up OUI


@dataclass(frozen=True, slots=True)
class Notification:
    """One value to send: notification (measurement/context) or indication (cuff reading)."""

    uuid16: int
    data: bytes
    sequence_number: int | None = None


class SimDevice:
    """What both devices share: clock, identity, battery, faults, connection bookkeeping."""

    def __init__(
        self,
        now: TrueClock,
        *,
        info: DeviceInformation,
        faults: Faults,
        household_utc_offset_minutes: int,
        battery_percent: int,
    ) -> None:
        zone = faults.clock_zone_offset_minutes
        self.clock = DeviceClock(
            now,
            zone_offset_minutes=household_utc_offset_minutes if zone is None else zone,
            skew_s=faults.clock_skew_s,
            drift_ppm=faults.clock_drift_ppm,
        )
        self.info = info
        self.faults = faults
        self._dice = TransferDice(faults)
        self._battery = BatteryLevel(battery_percent)
        self.connection_number = 0
        self.connected = False
        self._subscriptions: dict[int, tuple[bool, bool]] = {}

    # -- battery ------------------------------------------------------------------------------
    @property
    def battery_percent(self) -> int:
        return self._battery.percent

    @battery_percent.setter
    def battery_percent(self, percent: int) -> None:
        self._battery = BatteryLevel(percent)

    def battery_value(self) -> bytes:
        return bytes(self._battery)

    # -- time -----------------------------------------------------------------------------------
    def current_time_value(self) -> bytes:
        return bytes(self.clock.current_time())

    def write_current_time(self, data: bytes) -> None:
        """A write of Current Time 0x2A2B sets the device clock (ble.md §3)."""
        try:
            value = CurrentTime.from_bytes(data)
            self.clock.write(value)
        except (DecodeError, SimConfigError) as exc:
            raise SimAttError(CURRENT_TIME, ATT_OUT_OF_RANGE, str(exc)) from exc

    # -- connections ----------------------------------------------------------------------------
    def on_connect(self) -> None:
        self.connection_number += 1
        self.connected = True
        self._subscriptions.clear()

    def on_disconnect(self) -> None:
        self.connected = False
        self._subscriptions.clear()

    def set_subscription(self, uuid16: int, *, notify: bool, indicate: bool) -> None:
        """A CCCD write on this connection (bumble's ``characteristic_subscription``)."""
        self._subscriptions[uuid16] = (notify, indicate)

    def notifying(self, uuid16: int) -> bool:
        return self._subscriptions.get(uuid16, (False, False))[0]

    def indicating(self, uuid16: int) -> bool:
        return self._subscriptions.get(uuid16, (False, False))[1]

    @property
    def faults_active(self) -> bool:
        """Whether the transfer faults apply on the current connection."""
        return self.faults.active_on(self.connection_number)

    def _record_fault(self, index: int) -> RecordFault:
        return self._dice.record_fault(index, self.faults_active)
