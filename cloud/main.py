"""The app factory: ``create_app(settings=None) -> FastAPI``.

One settings object per process: passed in (tests, the CLI) or read once from the environment
here. The lifespan builds the :class:`~cloud.runtime.Runtime` (engine, cipher, tokens...), runs
the migrations when ``db.migrate_on_start`` is on, and disposes the engine at shutdown. Routers
are registered here with the one problem+json error mapping and a request-id middleware.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from cloud.api.problems import install_problem_handlers
from cloud.api.routes import auth, devices, directory, fhir, health, persons
from cloud.db.migrate import upgrade
from cloud.errors import ConfigError
from cloud.runtime import Clock, Runtime
from cloud.settings import CloudSettings

__all__ = ["create_app", "load_settings"]

_LOGGER = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def load_settings() -> CloudSettings:
    """Read ``ANJIA_CLOUD__*`` once. Errors name the settings, never echo their values."""
    try:
        return CloudSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError("ANJIA_CLOUD__*", problems) from None


def create_app(settings: CloudSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(Runtime.build, settings, clock)
        try:
            if settings.db.migrate_on_start:
                await run_in_threadpool(upgrade, runtime.engine)
            app.state.runtime = runtime
            _LOGGER.info("cloud ready (mode %s, %s)", settings.mode, runtime.engine.dialect.name)
            yield
        finally:
            runtime.close()

    app = FastAPI(
        title="Anjia cloud 安家云",
        version="0.1.0",
        summary="家庭健康监测：签约家庭、成员、网关与设备 / households, persons, gateways, devices",
        lifespan=lifespan,
    )
    install_problem_handlers(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-request-id", "")
        rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.request_id = rid
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        return response

    for module in (health, auth, directory, persons, devices, fhir):
        app.include_router(module.router)
    return app
