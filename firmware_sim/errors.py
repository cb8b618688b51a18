"""Typed errors of the simulator (one root, :class:`SimError`).

:class:`SimAttError` is how the pure device state asks the GATT server to answer a write with an
ATT error response; :mod:`firmware_sim.peripheral` turns it into bumble's ``att.ATT_Error``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATT_CCCD_IMPROPERLY_CONFIGURED",
    "ATT_OUT_OF_RANGE",
    "ATT_PROCEDURE_ALREADY_IN_PROGRESS",
    "SimAttError",
    "SimConfigError",
    "SimError",
]

ATT_PROCEDURE_ALREADY_IN_PROGRESS: Final = 0x80
"""GLS application error: a RACP procedure runs and the write is not an Abort (ble.md §1.4)."""
ATT_CCCD_IMPROPERLY_CONFIGURED: Final = 0x81
"""GLS application error: measurement notifications or RACP indications not enabled (§1.4)."""
ATT_OUT_OF_RANGE: Final = 0xFF
"""Core Specification Supplement common profile error: a written value is out of range."""


class SimError(Exception):
    """Root of the simulator's errors."""


class SimConfigError(SimError, ValueError):
    """A simulator setting is out of range (local misuse)."""

    def __init__(self, setting: str, fault: str) -> None:
        self.setting = setting
        self.fault = fault
        super().__init__(f"{setting}: {fault}")


class SimAttError(SimError):
    """A GATT write the device refuses with ATT error ``code`` on characteristic ``uuid16``."""

    def __init__(self, uuid16: int, code: int, reason: str) -> None:
        self.uuid16 = uuid16
        self.code = code
        self.reason = reason
        super().__init__(f"0x{uuid16:04X}: ATT error 0x{code:02X} ({reason})")
