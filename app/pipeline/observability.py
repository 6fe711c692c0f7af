"""The outermost layer of every HTTP request: request id, body limits, access line, metrics.

One pure-ASGI middleware (no BaseHTTPMiddleware task hop), wrapped around the whole app —
outside FastAPI's server-error middleware — so it sees every answer, 500s included:

1. Request id (app/pipeline/request_id.py): kept from a sane `X-Request-ID` or generated, held
   in a context variable while the request runs, sent back on every response.
2. Body limits and text rules (app/pipeline/body_limits.py): a body over its limit is answered
   413 here, before anything else ran; a body or query that breaks the JSON/text rules is
   recorded for the access checks to raise, and the app gets an empty body instead.
3. The rate-limit budget an inner layer noted becomes `X-RateLimit-*` headers.
4. When the answer is complete: one access line (logger `app.access`) and the request's
   figures in the Prometheus metrics (app/pipeline/metrics.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.pipeline import request_id
from app.pipeline.body_limits import (
    PROBLEM_KEY,
    PayloadTooLarge,
    TooLarge,
    body_limit,
    check_body,
    check_query,
    is_json,
    read_body,
)
from app.pipeline.errors import error_response
from app.pipeline.metrics import HttpMetrics, RouteTemplates

access_logger = logging.getLogger("app.access")
_REQUEST_ID = b"x-request-id"
_RATE_LIMIT = b"x-ratelimit-limit"


class RequestPipeline:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, internal_body_limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.internal_body_limit = internal_body_limit
        self.route_template = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        raw_id = content_length = content_type = None
        has_body = False
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                if raw_id is None:
                    raw_id = value
            elif name == b"content-length":
                content_length, has_body = value, value != b"0"
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                content_type = value
        info, token = request_id.begin(request_id.accept_request_id(raw_id))
        id_header = (_REQUEST_ID, info.request_id.encode())
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(k == _REQUEST_ID for k, _ in headers):
                    headers.append(id_header)
                rate = info.rate
                if rate is not None and not any(k == _RATE_LIMIT for k, _ in headers):
                    headers += (
                        (_RATE_LIMIT, str(rate.limit).encode()),
                        (b"x-ratelimit-remaining", str(rate.remaining).encode()),
                        (b"x-ratelimit-reset", str(rate.reset).encode()),
                    )
                message = {**message, "headers": headers}
            await send(message)

        try:
            if has_body:
                receive = await self._checked_body(
                    scope, receive, send_with_headers, content_length, content_type
                )
            if scope["query_string"]:
                problem = check_query(scope["query_string"])
                if problem is not None:
                    scope.setdefault("state", {})[PROBLEM_KEY] = problem
            if status == 0:
                await self.app(scope, receive, send_with_headers)
        except Exception:
            if status == 0:
                status = 500
                raise  # nothing was sent: the server answers 500 and logs it
            # The server-error handler answered (and logged) it; the exception it re-raises
            # for the server's sake would only be logged twice.
        finally:
            self._finish(scope, status, time.perf_counter() - started, info)
            request_id.end(token)

    async def _checked_body(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        content_length: bytes | None,
        content_type: bytes | None,
    ) -> Receive:
        """Read the body within its limit; 413 at once past it. Returns the `receive` the app
        gets: the body again, or an empty one when it breaks a rule (recorded for later)."""
        limit = body_limit(scope["path"], self.internal_body_limit)
        declared = int(content_length) if content_length and content_length.isdigit() else None
        try:
            if declared is not None and declared > limit:
                raise TooLarge
            body = await read_body(receive, limit)
        except TooLarge:
            error = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
            response = error_response(error.status_code, error.body(), {"Connection": "close"})
            await response(scope, receive, send)
            return receive
        if body is None:
            return _disconnected
        problem = check_body(body, is_json(content_type))
        if problem is not None:
            scope.setdefault("state", {})[PROBLEM_KEY] = problem
            body = b""
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    def _finish(self, scope: Scope, status: int, seconds: float, info: Any) -> None:
        route = self.route_template(scope)
        method: str = scope["method"]
        self.metrics.observe(method, route, status, seconds)
        if access_logger.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            principal = state.get("principal")
            context = state.get("context")
            team_id = context.team.id if context is not None else None
            key_id = str(principal.key_id) if principal is not None else None
            access_logger.info(
                "%s %s %s %.1fms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "team_id": team_id,
                    "key_id": key_id,
                },
            )


class ObservedApp(FastAPI):
    """FastAPI with `RequestPipeline` around its whole middleware stack (server errors
    included). Needs `state.settings` and `state.http_metrics` (set by `create_app`)."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestPipeline(
            super().build_middleware_stack(),
            metrics=self.state.http_metrics,
            internal_body_limit=self.state.settings.max_internal_body_bytes,
        )


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
