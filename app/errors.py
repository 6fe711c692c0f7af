"""One error shape for every failure: `{"type", "code", "detail", "attr"}`.

    APIError (status, type, code)
    ├── ValidationFailed        400 validation_error / invalid_input | required
    ├── ParseError              400 invalid_request  / parse_error
    ├── NotAuthenticated        401 authentication_error / not_authenticated
    ├── AuthenticationFailed    401 authentication_error / authentication_failed
    ├── PermissionDenied        403 authentication_error / permission_denied
    ├── NotFound                404 invalid_request / not_found
    ├── MethodNotAllowed        405 invalid_request / method_not_allowed
    ├── Conflict                409 invalid_request / conflict
    ├── Throttled               429 throttled_error / throttled (+ Retry-After)
    └── ServiceUnavailable      503 server_error / unavailable

Anything else that escapes a route is logged with the request id and answered 500 with a
generic detail; the exception text is never echoed to the client.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.pipeline.request_id import current_request_id, new_request_id

logger = logging.getLogger("app.errors")


class ErrorBody(BaseModel):
    """The body of every error response."""

    type: str
    code: str
    detail: str
    attr: str | None = None


class APIError(Exception):
    status_code: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: str = "error"
    default_detail: ClassVar[str] = "A server error occurred."

    def __init__(
        self,
        detail: str | None = None,
        *,
        attr: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.attr = attr
        if code is not None:
            self.code = code
        self.headers = headers
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}


class ValidationFailed(APIError):
    status_code = 400
    type = "validation_error"
    code = "invalid_input"
    default_detail = "Invalid input."


class ParseError(APIError):
    status_code = 400
    type = "invalid_request"
    code = "parse_error"
    default_detail = "Malformed request body: not valid JSON."


class NotAuthenticated(APIError):
    status_code = 401
    type = "authentication_error"
    code = "not_authenticated"
    default_detail = "Authentication credentials were not provided."


class AuthenticationFailed(APIError):
    status_code = 401
    type = "authentication_error"
    code = "authentication_failed"
    default_detail = "Incorrect authentication credentials."


class PermissionDenied(APIError):
    status_code = 403
    type = "authentication_error"
    code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(APIError):
    status_code = 404
    type = "invalid_request"
    code = "not_found"
    default_detail = "Not found."


class MethodNotAllowed(APIError):
    status_code = 405
    type = "invalid_request"
    code = "method_not_allowed"
    default_detail = "Method not allowed."


class Conflict(APIError):
    status_code = 409
    type = "invalid_request"
    code = "conflict"
    default_detail = "The request conflicts with the current state."


class Throttled(APIError):
    status_code = 429
    type = "throttled_error"
    code = "throttled"
    default_detail = "Request was throttled."


class ServiceUnavailable(APIError):
    status_code = 503
    type = "server_error"
    code = "unavailable"
    default_detail = "The service is temporarily unavailable. Try again shortly."


def error_response(
    status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status_code, content=body, headers=headers)


def _attr_from_loc(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or None


def validation_error_from_pydantic(errors: list[Any]) -> APIError:
    """FastAPI's 422 list -> one 400 in our shape, naming the first offending field."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return ParseError()
    first = errors[0] if errors else {}
    loc = first.get("loc", ())
    attr = _attr_from_loc(loc)
    if first.get("type") == "missing":
        name = attr or "field"
        return ValidationFailed(f"{name} is required", attr=attr, code="required")
    msg = str(first.get("msg", "Invalid input."))
    detail = f"{attr}: {msg}" if attr else msg
    return ValidationFailed(detail[:500], attr=attr)


def request_id(request: Request) -> str:
    """The request's id, as the outer middleware accepted or generated it (one id per request,
    the one in the X-Request-ID response header and on every log line)."""
    rid = current_request_id()
    if rid is None:  # an app without the request pipeline (not built by create_app)
        rid = getattr(request.state, "request_id", None) or new_request_id()
        request.state.request_id = rid
    return str(rid)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status_code, exc.body(), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = validation_error_from_pydantic(list(exc.errors()))
        return error_response(err.status_code, err.body())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err: APIError
        if exc.status_code == 404:
            err = NotFound()
        elif exc.status_code == 405:
            err = MethodNotAllowed(f'Method "{request.method}" not allowed.')
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


def is_connection_failure(exc: BaseException) -> bool:
    """asyncpg / redis connection failures that mean 'try again', not 'bug'."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(
            cur,
            ConnectionError
            | OSError
            | TimeoutError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.TooManyConnectionsError
            | asyncpg.exceptions.AdminShutdownError
            | redis.exceptions.ConnectionError
            | redis.exceptions.TimeoutError,
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
