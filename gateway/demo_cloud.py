"""The demo's cloud and broker, embedded: amqtt, the FastAPI app under uvicorn, ingest workers.

Everything listens on free loopback ports and keeps its data in a temporary directory (SQLite
with the public development keys: never real data). amqtt speaks MQTT 3.1.1 only, so the demo runs
one ingest worker without a shared subscription and lets clients in without passwords on
loopback; production uses Mosquitto or EMQX with TLS and per-gateway ACLs (docs/deployment.md).
IO, thin.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from cloud.ingest.service import IngestService
    from cloud.runtime import Runtime
    from cloud.settings import CloudSettings

__all__ = ["ApiError", "DemoBroker", "DemoCloud", "free_port"]

_LOGGER = logging.getLogger(__name__)
HTTP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        super().__init__(f"{method} {path} -> {status}: {detail}")


@dataclass(slots=True)
class DemoBroker:
    """amqtt in this event loop, on a free loopback port (MQTT 3.1.1)."""

    port: int = field(default_factory=free_port)
    _broker: Any = None

    async def start(self) -> DemoBroker:
        from amqtt.broker import Broker

        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None


@dataclass(slots=True)
class DemoCloud:
    """The cloud on SQLite in ``directory``: API on ``base_url``, ingest from ``broker_port``."""

    directory: Path
    broker_port: int
    http_port: int = field(default_factory=free_port)
    settings: CloudSettings | None = None
    runtime: Runtime | None = None
    ingest: IngestService | None = None
    _server: uvicorn.Server | None = None
    _serving: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def start(self) -> DemoCloud:
        import uvicorn

        from cloud.ingest.service import IngestService
        from cloud.main import create_app
        from cloud.runtime import Runtime
        from cloud.settings import CloudSettings, DatabaseSettings, HttpSettings, IngestMqttSettings

        self.settings = CloudSettings(
            db=DatabaseSettings(url=f"sqlite:///{self.directory / 'cloud.db'}"),
            http=HttpSettings(port=self.http_port),
            mqtt=IngestMqttSettings(
                port=self.broker_port,
                protocol="mqtt311",
                client_id_prefix="demo-ingest",
                batch_interval_ms=20,
            ),
        )
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.http_port,
            log_config=None,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(30):
            while not self._server.started:
                if self._serving.done():
                    self._serving.result()  # raises what stopped it
                await asyncio.sleep(0.02)
        # the app migrated the database at start; the ingest shares the file
        self.runtime = await asyncio.to_thread(Runtime.build, self.settings)
        self.ingest = IngestService(self.runtime, workers=1, name="demo-ingest")
        await asyncio.to_thread(self.ingest.start)
        return self

    async def stop(self) -> None:
        if self.ingest is not None:
            await asyncio.to_thread(self.ingest.stop)
            self.ingest = None
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
            self._server = None

    async def create_operator(self) -> tuple[str, str]:
        """An operator account made on the database directly (as `anjia cloud create-operator`
        does); returns its username and a fresh password."""
        from cloud.domain import Role
        from cloud.services.directory import DirectoryService

        runtime = self.runtime
        assert runtime is not None, "start() first"
        username, password = "demo-operator", secrets.token_urlsafe(18)

        def create() -> None:
            with runtime.session_factory() as session:
                DirectoryService(session, runtime.passwords, runtime.clock).create_machine_user(
                    None, username, password, Role.OPERATOR
                )

        await asyncio.to_thread(create)
        return username, password

    async def login(self, username: str, password: str) -> str:
        body = await self.call(
            "POST", "/auth/token", form={"username": username, "password": password}
        )
        token: str = body["access_token"]
        return token

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One request to the API over real HTTP; the decoded JSON, or :class:`ApiError`."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        data = None
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - our own loopback URL

        def send() -> Any:
            try:
                with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                raise ApiError(method, path, exc.code, exc.read().decode(errors="replace")) from exc
            return json.loads(raw) if raw else None

        return await asyncio.to_thread(send)
