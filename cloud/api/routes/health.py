"""``GET /healthz``: the process is up and the database answers."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import RuntimeDep
from cloud.api.schemas import Health
from cloud.db.migrate import stored_revision

router = APIRouter(tags=["health"])
_LOGGER = logging.getLogger(__name__)


@router.get("/healthz", response_model=Health)
def healthz(runtime: RuntimeDep, response: Response) -> Health:
    try:
        revision = stored_revision(runtime.engine)
    except SQLAlchemyError as exc:
        _LOGGER.warning("health check: database unavailable (%s)", type(exc).__name__)
        response.status_code = 503
        return Health(status="degraded", database="unavailable", revision=None)
    return Health(status="ok", database="ok", revision=revision)
