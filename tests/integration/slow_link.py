"""A slow uplink between an MQTT client and a real broker: a TCP proxy that forwards
client -> broker at ``upstream_bytes_per_s`` (a rate limiter in 4 KB steps, no bursts; None: as
fast as it can) and broker -> client after ``downstream_delay_s`` (a long round trip for the
PUBACKs). It reads the MQTT packets as they pass and keeps the peak of QoS 1/2 PUBLISHes the
client had sent and not yet had PUBACKed (MQTT 5's Receive Maximum is a bound on it).

Emulated because a real slow link cannot be made here without root-only traffic shaping of the
loopback (``tc``) that would slow every other test down too. Bytes queue where they would on a
home uplink: in the client's socket buffers and in front of the proxy's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType

CHUNK = 4096
PUBLISH, PUBACK = 3, 4


class PacketTypes:
    """MQTT control packet types from a byte stream fed in pieces (fixed header: the type in the
    high nibble of the first byte, then the remaining length, 1 to 4 bytes of 7 bits)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, int]]:
        """(type, flags) of every packet completed by ``data``."""
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            length, multiplier, pos = 0, 1, 1
            while True:
                if pos >= len(buffer):
                    return
                byte = buffer[pos]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                pos += 1
                if not byte & 0x80:
                    break
            if len(buffer) < pos + length:
                return
            first = buffer[0]
            del buffer[: pos + length]
            yield first >> 4, first & 0x0F


class SlowLink:
    def __init__(
        self,
        broker_port: int,
        upstream_bytes_per_s: float | None = None,
        downstream_delay_s: float = 0.0,
    ) -> None:
        self.broker_port = broker_port
        self.rate = upstream_bytes_per_s
        self.delay_s = downstream_delay_s
        self.upstream_bytes = 0
        self.unacked_publishes = 0
        self.peak_unacked_publishes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="slow-link", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port: int = listener.getsockname()[1]
        self._listener = listener

    def __enter__(self) -> SlowLink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(5)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self) -> None:
        self._listener.listen()
        self._listener.setblocking(False)
        self._server = await asyncio.start_server(self._client, sock=self._listener)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.broker_port)
        up = asyncio.ensure_future(self._upstream(client_r, broker_w))
        down = asyncio.ensure_future(self._downstream(broker_r, client_w))
        self._tasks.update((up, down))
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, broker_w):
                writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        packets = PacketTypes()
        free_at = time.monotonic()  # when the link has sent what it was given
        while data := await reader.read(CHUNK):
            for kind, flags in packets.feed(data):
                if kind == PUBLISH and flags & 0x06:  # QoS 1 or 2
                    self.unacked_publishes += 1
                    self.peak_unacked_publishes = max(
                        self.peak_unacked_publishes, self.unacked_publishes
                    )
            self.upstream_bytes += len(data)
            if self.rate is not None:
                free_at = max(free_at, time.monotonic()) + len(data) / self.rate
                await asyncio.sleep(free_at - time.monotonic())
            writer.write(data)
            await writer.drain()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        packets = PacketTypes()
        while data := await reader.read(65536):
            if self.delay_s:
                self._loop.call_later(self.delay_s, self._deliver, writer, data, packets)
            else:
                self._deliver(writer, data, packets)
            await writer.drain()

    def _deliver(self, writer: asyncio.StreamWriter, data: bytes, packets: PacketTypes) -> None:
        if writer.is_closing():
            return
        for kind, _ in packets.feed(data):
            if kind == PUBACK:
                self.unacked_publishes -= 1
        writer.write(data)
