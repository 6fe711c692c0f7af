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
        └── NoCapacity          503 server_error / no_capacity (no cluster has room, §8)

Services raise these; the request pipeline renders them (`app.pipeline.errors`). Anything else
that escapes a route is logged with the request id and answered 500 with a generic detail; the
exception text is never echoed to the client.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg
import redis.exceptions
from pydantic import BaseModel


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


class NoCapacity(ServiceUnavailable):
    code = "no_capacity"
    default_detail = "No warehouse cluster has room for a new warehouse"


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
