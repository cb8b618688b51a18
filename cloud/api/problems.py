"""One mapping from errors to HTTP: RFC 9457 problem details (``application/problem+json``).

Domain errors (:class:`cloud.errors.CloudError`) map by class; request validation errors become
422 (or 400 for a body that is not JSON) with the failing locations, *without* echoing the input
(it may hold a password or an ID number); anything unexpected is a 500 whose details stay in the
server log. Titles are zh-CN first, then English.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud.errors import (
    AccessDeniedError,
    AuthenticationError,
    CloudError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PurposeRequiredError,
)

__all__ = ["PROBLEM_JSON", "install_problem_handlers", "problem"]

_LOGGER = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:anjia:problem:"

_STATUS: Final[list[tuple[type[CloudError], int, str]]] = [
    (PurposeRequiredError, 403, "需要说明访问目的 Purpose required"),
    (AccessDeniedError, 403, "无权访问 Forbidden"),
    (AuthenticationError, 401, "未认证 Not authenticated"),
    (NotFoundError, 404, "未找到 Not found"),
    (ConflictError, 409, "冲突 Conflict"),
    (InvalidRequestError, 422, "请求无效 Invalid request"),
]


def problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"{_TYPE_PREFIX}{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _cloud_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CloudError)
    for cls, status, title in _STATUS:
        if isinstance(exc, cls):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            extra: dict[str, Any] = {}
            if isinstance(exc, InvalidRequestError):
                extra["errors"] = [{"loc": [exc.location, exc.field], "msg": exc.reason}]
            return problem(request, status, exc.code, title, str(exc), headers, **extra)
    _LOGGER.error("internal error %s on %s", type(exc).__name__, request.url.path)
    return problem(request, 500, "internal", "服务器错误 Internal error", "see the server log")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    if any(err["type"] == "json_invalid" for err in errors):
        return problem(
            request,
            400,
            "malformed",
            "请求格式错误 Malformed request",
            "the body is not JSON",
            errors=errors,
        )
    return problem(
        request,
        422,
        "validation",
        "请求无效 Invalid request",
        f"{len(errors)} field(s) failed validation",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else None
    return problem(request, exc.status_code, "http", str(exc.detail), str(exc.detail), headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    _LOGGER.error("unexpected %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return problem(request, 500, "internal", "服务器错误 Internal error", "see the server log")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CloudError, _cloud_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
