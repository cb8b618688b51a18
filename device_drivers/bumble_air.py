"""The shared bumble radio ("the air") that simulated meters and our bleak backend meet on.

Two ways to build one:

* ``BumbleAir()``: an in-process :class:`bumble.link.LocalLink`. Every device created on it gets its
  own virtual controller on the link, so a simulated meter and the gateway's central talk real
  ATT/GATT/SMP with no radio, no root and no OS Bluetooth (bumble's own TwoDevices pattern).
* ``BumbleAir.from_moniker("tcp-client:127.0.0.1:9000")``: the central's host runs over an HCI
  transport (bumble moniker). On the other end is a controller: a USB dongle (``usb:0``), or the
  virtual controller that ``anjia sim run --transport tcp-server:_:9000`` exposes (see
  :meth:`BumbleAir.expose`). One transport is opened once and shared by scanner and client.

IO module: only the device layer's bumble backend and :mod:`firmware_sim` use it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from typing import Any

from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import HCI_CONNECTION_TIMEOUT_ERROR, Address, HCI_Disconnect_Command
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

__all__ = ["BumbleAir"]

_LOGGER = logging.getLogger(__name__)


def _not_a_crossed_hang_up(record: logging.LogRecord) -> bool:
    """bumble's controller logs an ERROR when a link-layer control PDU (the peer's TerminateInd)
    arrives for a connection it has already closed: both ends hung up at once, as a cuff and the
    gateway do after a transfer. Nothing is lost; keep it out of the logs of the simulated air."""
    return not str(record.msg).startswith("Cannot find a connection for")


logging.getLogger("bumble.controller").addFilter(_not_a_crossed_hang_up)
_counter = itertools.count(1)


def _static_address(n: int) -> str:
    # Random static addresses have the two top bits set (Core Vol 6 Part B 1.3.2.1).
    return f"C0:00:00:00:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"


def _random_static_address() -> str:
    """A random static address (two top bits set, the rest not all 0 or all 1): the host of
    another process joins a shared simulated link, where counted addresses would collide."""
    while True:
        bits = secrets.randbits(46)
        if bits not in (0, (1 << 46) - 1):
            value = (0b11 << 46) | bits
            return ":".join(f"{(value >> shift) & 0xFF:02X}" for shift in range(40, -1, -8))


class BumbleAir:
    """One shared link or transport; create devices on it with :meth:`create_device`."""

    def __init__(self, link: LocalLink | None = None) -> None:
        self.link = link or LocalLink()
        self._host_transport: Any = None
        self._host_device: Device | None = None
        self._host_lock = asyncio.Lock()
        self._moniker: str | None = None
        self._exposed: list[Any] = []
        self._watchdogs: list[asyncio.Task[None]] = []

    @classmethod
    def from_moniker(cls, moniker: str) -> BumbleAir:
        """An air whose central runs over a bumble HCI transport (``tcp-client:host:port``,
        ``usb:0``, ``serial:/dev/ttyACM0``, ...). Opened lazily, once."""
        air = cls()
        air._moniker = moniker
        return air

    @property
    def moniker(self) -> str | None:
        return self._moniker

    def new_address(self) -> str:
        return _static_address(next(_counter))

    async def create_device(self, name: str, address: str | None = None) -> Device:
        """A powered-off bumble Device with its own virtual controller on the in-process link."""
        addr = Address(address or self.new_address(), Address.RANDOM_DEVICE_ADDRESS)
        controller = Controller(f"ctrl-{name}", link=self.link)
        host = Host(controller, AsyncPipeSink(controller))
        return Device(name, addr, host=host)

    async def central_device(self, name: str = "anjia-gateway") -> Device:
        """The powered-on central shared by our bleak scanner and client backends.

        In-process it is a fresh device on the link; over a transport it is the single host that
        owns the transport (a transport cannot be opened twice)."""
        async with self._host_lock:
            if self._host_device is not None:
                return self._host_device
            if self._moniker is None:
                device = await self.create_device(name)
            else:
                _LOGGER.info("opening bumble transport %s", self._moniker)
                self._host_transport = await open_transport(self._moniker)
                device = Device.with_hci(
                    name,
                    Address(_random_static_address(), Address.RANDOM_DEVICE_ADDRESS),
                    self._host_transport.source,
                    self._host_transport.sink,
                )
            await device.power_on()
            self._host_device = device
            return device

    async def expose(self, moniker: str) -> None:
        """Put one more virtual controller on this link whose HCI side is served on a transport
        (``tcp-server:_:9000``), so a host in another process can join the simulated air."""
        transport = await open_transport(moniker)
        controller = Controller(
            f"exposed-{len(self._exposed)}",
            host_source=transport.source,
            host_sink=transport.sink,
            link=self.link,
        )
        self._exposed.append(transport)
        self._watchdogs.append(asyncio.create_task(_drop_links_when_host_leaves(controller)))
        _LOGGER.info("virtual controller exposed on %s", moniker)

    async def close(self) -> None:
        if self._host_device is not None:
            try:
                await self._host_device.power_off()
            except Exception:
                _LOGGER.debug("power_off failed while closing", exc_info=True)
            self._host_device = None
        if self._host_transport is not None:
            await self._host_transport.close()
            self._host_transport = None
        for watchdog in self._watchdogs:
            watchdog.cancel()
        self._watchdogs.clear()
        for transport in self._exposed:
            await transport.close()
            # bumble's tcp-server transport does not close its listening socket itself (0.0.236)
            server = getattr(transport, "server", None)
            if server is not None:
                server.close()
        self._exposed.clear()


HOST_WATCH_S = 0.1


async def _drop_links_when_host_leaves(controller: Controller) -> None:
    """A host process that dies (kill -9) takes its radio with it: the peers of its connections
    see a supervision timeout and advertise again. bumble's exposed controller would keep those
    connections open with nobody behind them, so a simulated cuff would wait for a confirmation
    forever and never advertise for the restarted gateway. Watches the tcp-server transport's
    client (``sink.transport``), once it had one."""
    sink = controller.hci_sink
    had_host = False
    while True:
        await asyncio.sleep(HOST_WATCH_S)
        connected = getattr(sink, "transport", True) is not None
        if connected:
            had_host = True
            continue
        if not had_host:
            continue
        had_host = False
        for connection in list(controller.le_connections.values()):
            _LOGGER.info("host of the exposed controller left: dropping its link")
            controller.on_hci_disconnect_command(
                HCI_Disconnect_Command(
                    connection_handle=connection.handle,
                    reason=HCI_CONNECTION_TIMEOUT_ERROR,
                )
            )
