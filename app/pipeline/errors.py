"""The error handlers: every failure that leaves a route is rendered in the one shape.

The error tree itself (`app.core.errors`) sits below the services, which raise it; this module
is the request pipeline's side: FastAPI's own errors (422, 404, 405, malformed JSON), outages of
the database or Redis (503 with Retry-After) and the last-resort 500, which logs the request id
and never echoes the exception.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.core.errors import (
    APIError,
    MethodNotAllowed,
    NotFound,
    ParseError,
    ServiceUnavailable,
    ValidationFailed,
    is_connection_failure,
    validation_error_from_pydantic,
)
from app.core.request_id import current_request_id, new_request_id

logger = logging.getLogger("app.core.errors")


def error_response(
    status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=body, headers=headers)


def request_id(request: Request) -> str:
    """The request's id, as the outer middleware accepted or generated it (one id per request,
    the one in the X-Request-ID response header and on every log line)."""
    rid = current_request_id()
    if rid is None:  # an app without the request pipeline (not built by create_app)
        rid = getattr(request.state, "request_id", None) or new_request_id()
        request.state.request_id = rid
    return str(rid)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers (Starlette names only the first route's)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


def name_missing_body_fields(request: Request, errors: list[Any]) -> list[Any]:
    """A request without its required JSON body (or with the JSON `null`) answers like one
    with an empty object: the body's first required field is named (`<field> is required`,
    `attr` set; API.md §3, §6), as the public actions, whose bodies are optional, already do."""
    first = errors[0] if errors else {}
    if tuple(first.get("loc", ())) != ("body",):
        return errors
    if first.get("type") != "missing" and first.get("input", ...) is not None:
        return errors
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None:
        return errors
    _, inner = body_field.validate({}, {}, loc=("body",))
    missing = [e for e in inner if e.get("type") == "missing"]
    return missing or errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status_code, exc.body(), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error_from_pydantic(name_missing_body_fields(request, list(exc.errors())))
        return error_response(err.status_code, err.body())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err: APIError
        if exc.status_code == 404:
            err = NotFound()
        elif exc.status_code == 405:
            err = MethodNotAllowed(f'Method "{request.method}" not allowed.')
            if methods := allowed_methods(request):
                return error_response(405, err.body(), {"Allow": ", ".join(methods)})
        elif exc.status_code == 400:
            # FastAPI: "JSON decode error" / "There was an error parsing the body" (not UTF-8)
            detail = str(exc.detail)
            is_parse = "JSON" in detail or "parsing the body" in detail
            err = ParseError() if is_parse else ValidationFailed(detail)
        else:
            err = APIError(str(exc.detail))
            err.code = "error"
            return error_response(exc.status_code, err.body(), dict(exc.headers or {}))
        return error_response(err.status_code, err.body(), dict(exc.headers or {}))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _db_down(request: Request, exc: DBAPIError) -> JSONResponse:
        logger.warning(
            "database unavailable",
            extra={"request_id": request_id(request), "error_class": type(exc.orig).__name__},
        )
        return error_response(503, ServiceUnavailable().body(), {"Retry-After": "1"})

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        if not is_connection_failure(exc):
            return await _unhandled(request, exc)
        logger.warning(
            "dependency unavailable",
            extra={"request_id": request_id(request), "error_class": type(exc).__name__},
        )
        return error_response(503, ServiceUnavailable().body(), {"Retry-After": "1"})

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection of the process's pool stayed busy past the pool timeout: the
        # service is overloaded, not broken. Retry shortly.
        logger.warning("database pool exhausted", extra={"request_id": request_id(request)})
        return error_response(503, ServiceUnavailable().body(), {"Retry-After": "1"})

    # Raw driver errors (the read pool, Redis) when a server is down: a clean 503, handled
    # here rather than by the last-resort handler, which would log them as crashes.
    for exc_class in (
        OSError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.InterfaceError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    ):
        app.add_exception_handler(exc_class, _dependency_down)

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if _is_data_error(exc):
            # SQLSTATE class 22: a value the database cannot store (a NUL character, a number
            # out of range...). It came from the request, so it is the caller's 400.
            detail = (
                "The input contains a value that cannot be stored (for example a NUL character)."
            )
            return error_response(400, ValidationFailed(detail).body())
        return await _unhandled(request, exc)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        if is_connection_failure(exc):
            logger.warning("dependency unavailable", extra={"request_id": rid})
            return error_response(503, ServiceUnavailable().body(), {"Retry-After": "1"})
        logger.exception("unhandled error", extra={"request_id": rid})
        body = APIError(f"A server error occurred. Request id: {rid}.").body()
        return error_response(500, body, {"X-Request-ID": rid})


def _is_data_error(exc: DBAPIError) -> bool:
    import asyncpg

    cause = getattr(exc.orig, "__cause__", None) or exc.orig
    return isinstance(cause, asyncpg.exceptions.DataError)
