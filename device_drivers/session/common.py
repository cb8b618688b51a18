"""What every transfer session shares: the actions it asks the I/O layer to perform, and the error
raised when the *caller* drives a session wrongly.

Sessions are sans-I/O (h11 style): they never touch the radio or a clock. Each input method returns
a list of outputs, in order; outputs are either *actions* (things the driver must do on the link,
in the order given) or *events* (things that happened). Faults of the remote device never raise:
they come back as events. Only local misuse (calling a method in a state where it makes no sense)
raises :class:`LocalProtocolError`. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_drivers.errors import DriverError

__all__ = ["LocalProtocolError", "Subscribe", "Write"]


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Enable notifications or indications on a characteristic (the link picks the one the
    characteristic supports; indications for RACP and the blood-pressure measurement)."""

    uuid16: int


@dataclass(frozen=True, slots=True)
class Write:
    """Write ``data`` to a characteristic, with response."""

    uuid16: int
    data: bytes


class LocalProtocolError(DriverError):
    """A session method was called in a state where it is not allowed (a bug in the caller, never
    a fault of the device). ``state`` is the session's state, ``action`` the method called."""

    def __init__(self, session: str, state: str, action: str) -> None:
        self.session = session
        self.state = state
        self.action = action
        super().__init__(f"{session}: {action} is not allowed in state {state}")
