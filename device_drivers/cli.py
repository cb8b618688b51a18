"""`anjia ble ...`: the device layer on the command line.

``register(subparsers)`` adds the ``ble`` command; each of its sub-commands is one ``_add_*``
function listed in ``_BLE_COMMANDS`` that adds a parser and sets ``func``. To add a sub-command
(``scan``, ``sync``), write ``_add_<name>(ble_sub)`` and its ``_cmd_<name>(args) -> int`` and
append it to ``_BLE_COMMANDS``. Heavy imports stay inside the command functions.

``anjia ble decode CHAR HEX...`` decodes one characteristic value and prints it as JSON; a
malformed payload or bad hex prints one line ``error: <characteristic>: <fault>`` to stderr and
exits 1; an unknown characteristic exits 2. ``anjia ble scan`` and ``anjia ble sync ADDRESS``
live in :mod:`device_drivers.cli_sync`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["parse_hex", "register"]

EXIT_OK = 0
EXIT_MALFORMED = 1
EXIT_USAGE = 2

_SEPARATORS = re.compile(r"[\s:,]+")


class HexError(ValueError):
    def __init__(self, fault: str) -> None:
        self.fault = fault
        super().__init__(fault)


def parse_hex(parts: Sequence[str]) -> bytes:
    """Bytes from hex text: spaces, colons and commas separate, each token may start with 0x.

    ``["01 d0"]``, ``["01:d0"]``, ``["0x01d0"]`` and ``["0x01", "0xd0"]`` all give the same two
    bytes. The text is the payload in wire order (an SFLOAT 0x07FF is sent as ``ff 07``).
    """
    tokens = [t for part in parts for t in _SEPARATORS.split(part.strip()) if t]
    digits = "".join(t[2:] if t[:2].lower() == "0x" else t for t in tokens)
    if len(digits) % 2:
        raise HexError(f"odd number of hex digits ({len(digits)})")
    try:
        return bytes.fromhex(digits)
    except ValueError as exc:
        bad = next((c for c in digits if c not in "0123456789abcdefABCDEF"), "?")
        raise HexError(f"not hexadecimal: {bad!r}") from exc


def _cmd_decode(args: argparse.Namespace) -> int:
    import json

    from device_drivers.codec import catalog
    from device_drivers.errors import DecodeError

    try:
        entry = catalog.lookup(args.characteristic)
    except catalog.UnknownCharacteristicError as exc:
        print(
            f"error: {exc.key}: unknown characteristic (known: {', '.join(exc.known)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        payload = parse_hex(args.hex)
        decoded = entry.decode(payload)
    except HexError as exc:
        print(f"error: {entry.name}: {exc.fault}", file=sys.stderr)
        return EXIT_MALFORMED
    except DecodeError as exc:
        print(f"error: {exc.characteristic}: {exc.fault}", file=sys.stderr)
        return EXIT_MALFORMED
    print(json.dumps(decoded, ensure_ascii=False, indent=2))
    return EXIT_OK


def _add_decode(ble_sub: Any) -> None:
    parser = ble_sub.add_parser(
        "decode",
        help="解码一个特征值 / decode one characteristic value to JSON",
        description=(
            "解码一个 BLE 特征值并以 JSON 输出。Decode one BLE characteristic value and print it "
            "as JSON. CHAR is a 16-bit UUID (2a18, 0x2A18) or a name (glucose_measurement, "
            "record_access_control_point, blood_pressure_measurement, current_time, "
            "battery_level, sfloat, float, ...)."
        ),
    )
    parser.add_argument("characteristic", metavar="CHAR", help="UUID (2a18) or name")
    parser.add_argument(
        "hex",
        metavar="HEX",
        nargs="+",
        help="payload in hex; spaces, colons and a 0x prefix are allowed",
    )
    parser.set_defaults(func=_cmd_decode)


def _add_scan(ble_sub: Any) -> None:
    from device_drivers.cli_sync import add_scan

    add_scan(ble_sub)


def _add_sync(ble_sub: Any) -> None:
    from device_drivers.cli_sync import add_sync

    add_sync(ble_sub)


# Sub-commands of `anjia ble`, in help order. Append new ones here.
_BLE_COMMANDS: list[Callable[[Any], None]] = [_add_decode, _add_scan, _add_sync]


def register(subparsers: Any) -> None:
    """Add ``ble`` and its sub-commands to the ``anjia`` parser (see gateway/cli.py)."""
    ble = subparsers.add_parser(
        "ble",
        help="蓝牙设备工具 / BLE device tools (decode, scan, sync)",
        description="蓝牙健康设备工具。BLE health-device tools.",
    )
    ble_sub = ble.add_subparsers(dest="ble_command", metavar="SUBCOMMAND", required=True)
    for add in _BLE_COMMANDS:
        add(ble_sub)
