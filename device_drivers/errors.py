"""Typed errors of the device layer.

One root, :class:`DriverError`. Faults of the remote peer (a meter sent garbage, a RACP procedure
failed) are kept apart from faults of the link (the device went away). Every error carries the
data a caller needs to decide what to do, so nobody ever branches on message text.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ConnectStage",
    "DecodeError",
    "DeviceNotFoundError",
    "DeviceUnavailableError",
    "DriverError",
    "EncodeError",
    "GattError",
    "LinkLostError",
    "PairingError",
    "RacpError",
    "TransferTimeoutError",
]


class DriverError(Exception):
    """Root of every error raised by :mod:`device_drivers`."""


class DecodeError(DriverError, ValueError):
    """A characteristic value could not be decoded.

    ``characteristic`` is the snake_case name of the characteristic (``glucose_measurement``),
    ``fault`` says what is wrong in a few words, ``payload`` holds the offending bytes.
    """

    def __init__(self, characteristic: str, fault: str, payload: bytes = b"") -> None:
        self.characteristic = characteristic
        self.fault = fault
        self.payload = bytes(payload)
        super().__init__(f"{characteristic}: {fault} (payload {self.payload.hex() or 'empty'})")


class EncodeError(DriverError, ValueError):
    """A value cannot be represented on the wire (local misuse, never a peer fault)."""

    def __init__(self, characteristic: str, fault: str) -> None:
        self.characteristic = characteristic
        self.fault = fault
        super().__init__(f"{characteristic}: {fault}")


class RacpError(DriverError):
    """A Record Access Control Point procedure ended with a non-success response code."""

    def __init__(self, request_op_code: int, response_code: int, detail: str = "") -> None:
        self.request_op_code = request_op_code
        self.response_code = response_code
        msg = f"RACP op 0x{request_op_code:02x} failed with response code 0x{response_code:02x}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class GattError(DriverError):
    """The peer answered a GATT request with an ATT error (Core Vol 3 Part F 3.4.1.1).

    ``code`` is the ATT error code: 0x03 write not permitted, 0x05 insufficient authentication,
    0x0F insufficient encryption, 0x80/0x81 the Glucose service's application errors (procedure
    already in progress, CCCD improperly configured), ...
    """

    def __init__(self, uuid16: int | None, code: int, operation: str) -> None:
        self.uuid16 = uuid16
        self.code = code
        self.operation = operation
        target = f"0x{uuid16:04x}" if uuid16 is not None else "attribute"
        super().__init__(f"{operation} {target}: ATT error 0x{code:02x}")

    @property
    def requires_pairing(self) -> bool:
        """The peer refused for lack of security (0x05 insufficient authentication, 0x08
        authorization, 0x0C encryption key size, 0x0F encryption): pair or bond first."""
        return self.code in _SECURITY_ATT_CODES


_SECURITY_ATT_CODES = frozenset({0x05, 0x08, 0x0C, 0x0F})


class TransferTimeoutError(DriverError):
    """A transfer procedure saw no progress for longer than its deadline."""

    def __init__(self, stage: str, timeout_s: float) -> None:
        self.stage = stage
        self.timeout_s = timeout_s
        super().__init__(f"no progress during {stage} for {timeout_s:.1f} s")


class ConnectStage(StrEnum):
    """Where a session with a device failed: reported in per-device diagnostics."""

    SCAN = "scan"
    CONNECT = "connect"
    PAIR = "pair"
    DISCOVER = "discover"
    SUBSCRIBE = "subscribe"
    TRANSFER = "transfer"
    CLOCK = "clock"
    DISCONNECT = "disconnect"


class DeviceUnavailableError(DriverError):
    """The device could not be reached. ``retryable`` and ``backoff_s`` advise the supervisor."""

    def __init__(
        self,
        address: str,
        stage: ConnectStage,
        reason: str,
        *,
        retryable: bool = True,
        backoff_s: float = 0.0,
    ) -> None:
        self.address = address
        self.stage = stage
        self.reason = reason
        self.retryable = retryable
        self.backoff_s = backoff_s
        super().__init__(f"{address}: {stage.value} failed: {reason}")


class DeviceNotFoundError(DeviceUnavailableError):
    """Nothing answering to the address was seen while scanning."""

    def __init__(self, address: str, reason: str = "not seen while scanning") -> None:
        super().__init__(address, ConnectStage.SCAN, reason, retryable=True)


class PairingError(DeviceUnavailableError):
    """Pairing or bonding failed (wrong passkey, bond lost on one side)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(address, ConnectStage.PAIR, reason, retryable=False)


class LinkLostError(DeviceUnavailableError):
    """The connection dropped in the middle of a procedure."""

    def __init__(self, address: str, stage: ConnectStage, reason: str = "link lost") -> None:
        super().__init__(address, stage, reason, retryable=True)
