"""classify() and to_driver_error(): bleak/bumble-backend failures -> stage, retryable, backoff."""

from __future__ import annotations

import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
)

from device_drivers import bleak_link
from device_drivers.bleak_link import Classification, classify, to_driver_error
from device_drivers.bumble_backend.errors import (
    BumbleConnectionError,
    BumbleLinkLostError,
    BumblePairingError,
)
from device_drivers.errors import (
    ConnectStage,
    DeviceNotFoundError,
    DeviceUnavailableError,
    LinkLostError,
    PairingError,
)

ADDRESS = "C0:00:00:00:00:01"
S = ConnectStage


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


CASES: list[tuple[str, BaseException, Classification]] = [
    ("not found", BleakDeviceNotFoundError(ADDRESS, "gone"), Classification(S.SCAN, True, 4.0)),
    ("connect timeout", TimeoutError(), Classification(S.CONNECT, True, 0.25)),
    ("dbus socket died (EOF)", EOFError(), Classification(S.CONNECT, True, 0.25)),
    ("dbus socket died (pipe)", BrokenPipeError(), Classification(S.CONNECT, True, 0.25)),
    (
        "smp pairing failed",
        BumblePairingError(ADDRESS, "confirm value failed", smp_reason=0x04),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "bond lost on the peer",
        BumblePairingError(ADDRESS, "key missing", hci_status=0x06),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "link lost during discovery",
        BumbleLinkLostError(ADDRESS, 0x13, during="discover"),
        Classification(S.DISCOVER, True, 0.25),
    ),
    (
        "link lost during pairing",
        BumbleLinkLostError(ADDRESS, 0x08, during="pair"),
        Classification(S.PAIR, True, 0.25),
    ),
    (
        "link lost during subscribe",
        BumbleLinkLostError(ADDRESS, 0x08, during="subscribe"),
        Classification(S.SUBSCRIBE, True, 0.25),
    ),
    (
        "link lost during a read",
        BumbleLinkLostError(ADDRESS, None, during="read"),
        Classification(S.TRANSFER, True, 0.25),
    ),
    (
        "connection limit exceeded",
        BumbleConnectionError(ADDRESS, 0x09),
        Classification(S.CONNECT, True, 4.0),
    ),
    (
        "controller busy",
        BumbleConnectionError(ADDRESS, 0x0C),
        Classification(S.CONNECT, True, 1.0),
    ),
    (
        "failed to be established",
        BumbleConnectionError(ADDRESS, 0x3E),
        Classification(S.CONNECT, True, 0.25),
    ),
    (
        "unknown hci status",
        BumbleConnectionError(ADDRESS, 0x1F),
        Classification(S.CONNECT, True, 0.5),
    ),
    (
        "insufficient encryption while connecting",
        BleakGATTProtocolError(0x0F),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "insufficient authentication",
        BleakGATTProtocolError(0x05),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "other ATT error while discovering",
        BleakGATTProtocolError(0x0E),
        Classification(S.DISCOVER, True, 0.5),
    ),
    (
        "characteristic missing",
        BleakCharacteristicNotFoundError("2a52"),
        Classification(S.DISCOVER, False, 0.0),
    ),
    (
        "bluetooth off",
        BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF),
        Classification(S.SCAN, True, 30.0),
    ),
    (
        "bluez wrong passkey",
        BleakDBusError("org.bluez.Error.AuthenticationFailed", []),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "bluez pairing rejected",
        BleakDBusError("org.bluez.Error.AuthenticationRejected", []),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "bluez nobody typed the PIN",
        BleakDBusError("org.bluez.Error.AuthenticationTimeout", []),
        Classification(S.PAIR, True, 5.0),
    ),
    (
        "bluez device left the cache",
        BleakDBusError("org.freedesktop.DBus.Error.UnknownObject", []),
        Classification(S.SCAN, True, 4.0),
    ),
    (
        "bluez busy",
        BleakDBusError("org.bluez.Error.InProgress", []),
        Classification(S.CONNECT, True, 1.0),
    ),
    (
        "bluez abort by local",
        BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"]),
        Classification(S.CONNECT, True, 0.25),
    ),
    (
        "no D-Bus system bus (BlueZ not running)",
        FileNotFoundError(2, "No such file or directory"),
        Classification(S.SCAN, True, 30.0),
    ),
    (
        "bumble transport refused",
        ConnectionRefusedError(111, "Connect call failed"),
        Classification(S.SCAN, True, 30.0),
    ),
    ("generic bleak error", BleakError("Not connected"), Classification(S.CONNECT, True, 0.5)),
    ("programming error", ValueError("bad"), Classification(S.CONNECT, False, 0.0)),
    (
        "typed error passes through",
        PairingError(ADDRESS, "wrong PIN"),
        Classification(S.PAIR, False, 0.0),
    ),
    (
        "generic wrapper, specific cause",
        _chained(BleakError("connect failed"), BumblePairingError(ADDRESS, "x", smp_reason=5)),
        Classification(S.PAIR, False, 0.0),
    ),
]


@pytest.mark.parametrize(("exc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify(exc: BaseException, expected: Classification) -> None:
    assert classify(exc) == expected


def test_classification_unpacks_as_a_triple() -> None:
    stage, retryable, backoff_s = classify(TimeoutError())
    assert (stage, retryable, backoff_s) == (ConnectStage.CONNECT, True, 0.25)


def test_cause_chain_with_a_cycle_terminates() -> None:
    a = BleakError("a")
    b = BleakError("b")
    a.__cause__ = b
    b.__cause__ = a
    assert classify(a) == Classification(S.CONNECT, True, 0.5)


def test_backoff_constants_are_ordered() -> None:
    # Transient < busy < out of slots < pairing retry < no adapter: a busier reason waits longer.
    assert (
        0
        < bleak_link.BACKOFF_TRANSIENT_S
        < bleak_link.BACKOFF_BUSY_S
        < bleak_link.BACKOFF_OUT_OF_SLOTS_S
        < bleak_link.BACKOFF_PAIRING_RETRY_S
        < bleak_link.BACKOFF_NO_ADAPTER_S
    )


def test_not_found_becomes_device_not_found_error() -> None:
    err = to_driver_error(BleakDeviceNotFoundError(ADDRESS, "gone"), ADDRESS)
    assert type(err) is DeviceNotFoundError
    assert (err.address, err.stage, err.retryable, err.backoff_s) == (ADDRESS, S.SCAN, True, 4.0)


def test_pairing_failure_becomes_pairing_error() -> None:
    err = to_driver_error(BumblePairingError(ADDRESS, "x", smp_reason=0x04), ADDRESS)
    assert type(err) is PairingError
    assert (err.stage, err.retryable) == (S.PAIR, False)


def test_pairing_failure_keeps_pair_stage_even_when_a_stage_is_given() -> None:
    err = to_driver_error(BleakGATTProtocolError(0x0F), ADDRESS, stage=S.TRANSFER)
    assert type(err) is PairingError
    assert err.stage is S.PAIR


def test_retryable_pairing_timeout_is_not_a_pairing_error() -> None:
    err = to_driver_error(BleakDBusError("org.bluez.Error.AuthenticationTimeout", []), ADDRESS)
    assert type(err) is DeviceUnavailableError
    assert (err.stage, err.retryable, err.backoff_s) == (S.PAIR, True, 5.0)


def test_link_lost_becomes_link_lost_error_with_the_given_stage() -> None:
    err = to_driver_error(BumbleLinkLostError(ADDRESS, 0x08, during="read"), ADDRESS)
    assert type(err) is LinkLostError
    assert (err.stage, err.retryable, err.backoff_s) == (S.TRANSFER, True, 0.25)


def test_stage_override_for_generic_failures() -> None:
    err = to_driver_error(TimeoutError(), ADDRESS, stage=S.SUBSCRIBE)
    assert type(err) is DeviceUnavailableError
    assert (err.stage, err.retryable) == (S.SUBSCRIBE, True)
    assert "TimeoutError" in err.reason


def test_typed_error_is_returned_unchanged() -> None:
    original = LinkLostError(ADDRESS, S.TRANSFER)
    assert to_driver_error(original, ADDRESS) is original


@pytest.mark.parametrize(
    ("stage", "retryable", "expected"),
    [
        (S.CONNECT, True, True),
        (S.DISCOVER, True, True),
        (S.SUBSCRIBE, True, True),
        (S.SCAN, True, False),  # not found already waited the whole timeout
        (S.PAIR, True, False),  # needs the user (PIN)
        (S.CONNECT, False, False),
        (S.TRANSFER, True, False),
    ],
)
def test_retry_in_place(stage: ConnectStage, retryable: bool, expected: bool) -> None:
    error = DeviceUnavailableError(ADDRESS, stage, "x", retryable=retryable)
    assert bleak_link._retry_in_place(error) is expected
