"""bleak exceptions raised by the bumble backend where bleak has no type of its own.

Every error is a :class:`bleak.exc.BleakError`, so code written against bleak keeps working, and
each carries the protocol code that caused it as an attribute (never only in the message). Imports
bleak only, not bumble, so :mod:`device_drivers.bleak_link` can classify these on any platform.
"""

from __future__ import annotations

from bleak.exc import BleakError

__all__ = ["BumbleConnectionError", "BumbleLinkLostError", "BumblePairingError"]


class BumblePairingError(BleakError):
    """Pairing or encrypting with a stored bond failed.

    ``smp_reason`` is the SMP Pairing Failed reason (Core Vol 3 Part H 3.5.5), ``hci_status`` the
    HCI status of a failed encryption start (0x06 PIN or Key Missing: the peer lost its bond). One
    of them is set.
    """

    def __init__(
        self,
        address: str,
        detail: str,
        *,
        smp_reason: int | None = None,
        hci_status: int | None = None,
    ) -> None:
        super().__init__(f"{address}: pairing failed: {detail}")
        self.address = address
        self.smp_reason = smp_reason
        self.hci_status = hci_status


class BumbleLinkLostError(BleakError):
    """The connection dropped while an operation was in flight.

    ``hci_reason`` is the HCI disconnect reason (None if unknown); ``during`` names the operation
    (``"pair"``, ``"discover"``, ``"read"``, ``"write"``, ``"subscribe"``, ...).
    """

    def __init__(self, address: str, hci_reason: int | None, *, during: str) -> None:
        reason = "unknown" if hci_reason is None else f"0x{hci_reason:02x}"
        super().__init__(f"{address}: link lost during {during} (HCI reason {reason})")
        self.address = address
        self.hci_reason = hci_reason
        self.during = during


class BumbleConnectionError(BleakError):
    """The controller refused or failed to create the connection (``hci_status``: HCI code)."""

    def __init__(self, address: str, hci_status: int | None) -> None:
        status = "unknown" if hci_status is None else f"0x{hci_status:02x}"
        super().__init__(f"{address}: connection failed (HCI status {status})")
        self.address = address
        self.hci_status = hci_status
