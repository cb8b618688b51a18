"""A slow uplink between a client and a real broker: a TCP proxy that forwards client -> broker
at ``upstream_bytes_per_s`` (a token bucket, 4 KB steps) and broker -> client as fast as it can.

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
from types import TracebackType

CHUNK = 4096


class SlowLink:
    def __init__(self, broker_port: int, upstream_bytes_per_s: float) -> None:
        self.broker_port = broker_port
        self.rate = upstream_bytes_per_s
        self.upstream_bytes = 0
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
        up = asyncio.ensure_future(self._pipe(client_r, broker_w, throttled=True))
        down = asyncio.ensure_future(self._pipe(broker_r, client_w, throttled=False))
        self._tasks.update((up, down))
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
                self._tasks.discard(task)
            for writer in (client_w, broker_w):
                writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, throttled: bool
    ) -> None:
        free_at = time.monotonic()  # when the link has sent what it was given (no bursts)
        while data := await reader.read(CHUNK if throttled else 65536):
            if throttled:
                self.upstream_bytes += len(data)
                free_at = max(free_at, time.monotonic()) + len(data) / self.rate
                await asyncio.sleep(free_at - time.monotonic())
            writer.write(data)
            await writer.drain()
