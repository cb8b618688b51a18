"""The seam between transfer procedures and the radio: a narrow GATT link protocol.

Drivers speak only this. :mod:`device_drivers.bleak_link` implements it over bleak (real BlueZ
adapters, or simulated meters through our bumble backend for bleak). Characteristics are named by
their 16-bit SIG number. Pure: a Protocol, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["GattLink", "ValueCallback"]

ValueCallback = Callable[[int, bytes], None]
"""Called on the event loop with (characteristic uuid16, value) for each notification/indication."""


class GattLink(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def is_connected(self) -> bool: ...

    def has_characteristic(self, uuid16: int) -> bool: ...

    async def read(self, uuid16: int) -> bytes: ...

    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None: ...

    async def subscribe(self, uuid16: int, callback: ValueCallback) -> None:
        """Enable notifications or indications (whichever the characteristic supports; indications
        when it supports only those, as the BP measurement and RACP do)."""
        ...

    async def unsubscribe(self, uuid16: int) -> None: ...

    async def disconnect(self) -> None: ...
