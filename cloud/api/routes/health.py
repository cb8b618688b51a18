"""``GET /healthz``: the process is up and the database answers; with the time-series mirror
enabled, also its lag (pending entries, age of the oldest), so a stalled mirror is visible."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from sqlalchemy.exc import SQLAlchemyError

from cloud.api.deps import RuntimeDep
from cloud.api.schemas import Health, TsdbLag
from cloud.db.migrate import stored_revision
from cloud.db.repositories.ingest import TsdbPendingRepository
from cloud.runtime import Runtime

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
    return Health(status="ok", database="ok", revision=revision, tsdb=_tsdb_lag(runtime))


def _tsdb_lag(runtime: Runtime) -> TsdbLag | None:
    if not runtime.settings.tsdb.enabled:
        return None
    try:
        with runtime.session_factory() as session:
            pending, oldest = TsdbPendingRepository(session).lag()
    except SQLAlchemyError as exc:
        _LOGGER.warning("health check: mirror queue unreadable (%s)", type(exc).__name__)
        return None
    age = None if oldest is None else max(0.0, (runtime.clock() - oldest).total_seconds())
    return TsdbLag(pending=pending, oldest_pending_age_s=age)
