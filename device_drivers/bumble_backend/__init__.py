"""bleak backends over bumble: drive simulated meters (or a bumble-hosted USB dongle) with bleak.

``BleakClient(address, backend=BumbleBleakClient, air=air)`` and
``BleakScanner(backend=BumbleBleakScanner, air=air)`` where ``air`` is a
:class:`~device_drivers.bumble_air.BumbleAir`; both share the air's single central. The classes are
imported lazily so that :mod:`.errors` (bleak only) can be used without importing bumble.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from device_drivers.bumble_backend.client import BumbleBleakClient
    from device_drivers.bumble_backend.errors import (
        BumbleConnectionError,
        BumbleLinkLostError,
        BumblePairingError,
    )
    from device_drivers.bumble_backend.scanner import BumbleBleakScanner

__all__ = [
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "BumbleConnectionError",
    "BumbleLinkLostError",
    "BumblePairingError",
]

_WHERE = {
    "BumbleBleakClient": "client",
    "BumbleBleakScanner": "scanner",
    "BumbleConnectionError": "errors",
    "BumbleLinkLostError": "errors",
    "BumblePairingError": "errors",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
