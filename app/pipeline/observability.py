"""The outermost layer of every HTTP request: request id, body limits, access line, metrics.

One pure-ASGI middleware (no BaseHTTPMiddleware task hop), wrapped around the whole app —
outside FastAPI's server-error middleware — so it sees every answer, 500s included:

1. Request id (app/pipeline/request_id.py): kept from a sane `X-Request-ID` or generated, held
   in a context variable while the request runs, sent back on every response.
2. Body limits and text rules (app/pipeline/body_limits.py): a body over its limit is answered
   413 here, before anything else ran; a body or query that breaks the JSON/text rules is
   recorded for the access checks to raise, and the app gets an empty body instead; the JSON
   of a body that keeps them is kept for the routes, which do not decode it again
   (app/pipeline/json_body.py).
3. The rate-limit budget an inner layer noted becomes `X-RateLimit-*` headers.
4. When the answer is complete: one access line (logger `app.access`) and the request's
   figures in the Prometheus metrics (app/pipeline/metrics.py). Both are written in batches,
   at most FLUSH_SECONDS later (and at shutdown, and before this process answers a scrape):
   formatting many lines in one go and writing them with one system call costs a fraction of
   doing it inside every request (bench/load.py --observability).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import request_id
from app.core.logging import emit_batch, quick_record
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
from app.pipeline.json_body import DECODED_KEY, NOT_DECODED
from app.pipeline.metrics import HttpMetrics, RouteTemplates
from app.pipeline.ratelimit import RateLimiter, RateLimitStatus

_ACCESS = "app.access"
access_logger = logging.getLogger(_ACCESS)
logger = logging.getLogger(__name__)
# Finished requests are written in batches: every FLUSH_SECONDS, or at FLUSH_ITEMS.
FLUSH_SECONDS = 0.1
FLUSH_ITEMS = 256
_PIPELINES: weakref.WeakSet[RequestPipeline] = weakref.WeakSet()
_REQUEST_ID = b"x-request-id"
_RATE_LIMIT = b"x-ratelimit-limit"


class RequestPipeline:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, internal_body_limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.internal_body_limit = internal_body_limit
        self.route_template = RouteTemplates()
        self._done: list[tuple[Any, ...]] = []
        _PIPELINES.add(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._flush_at_shutdown(send)
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
                # A copy: the list may be a Response object's own headers.
                headers = [*message.get("headers", ())]
                # Only the server-error handler names the id itself.
                if status < 500 or all(k != _REQUEST_ID for k, _ in headers):
                    headers.append(id_header)
                rate = info.rate
                if rate is None and scope["path"].startswith("/api/"):
                    # A public answer given before any key was counted (API.md §10).
                    rate = _unspent_budget(scope)
                if rate is not None and status != 429:  # a 429 carries its own (exc.headers)
                    headers += (
                        (_RATE_LIMIT, str(rate.limit).encode()),
                        (b"x-ratelimit-remaining", str(rate.remaining).encode()),
                        (b"x-ratelimit-reset", str(rate.reset).encode()),
                    )
                message["headers"] = headers
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

    def _flush_at_shutdown(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                self.flush()
            await send(message)

        return lifespan_send

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
        problem, decoded = check_body(body, is_json(content_type))
        if problem is not None:
            scope.setdefault("state", {})[PROBLEM_KEY] = problem
            body = b""
        elif decoded is not NOT_DECODED:
            scope.setdefault("state", {})[DECODED_KEY] = decoded
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    def _finish(self, scope: Scope, status: int, seconds: float, info: Any) -> None:
        """Note the finished request; its figures and access line are written by `flush`."""
        state = scope.get("state") or {}
        principal = state.get("principal")
        context = state.get("context")
        self._done.append(
            (
                scope["method"],
                self.route_template(scope),
                status,
                seconds,
                context.team.id if context is not None else None,
                principal.key_id if principal is not None else None,
                info.request_id,
                time.time(),
            )
        )
        if len(self._done) == 1:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        elif len(self._done) >= FLUSH_ITEMS:
            self.flush()

    def flush(self) -> None:
        """Write what finished requests left: metrics, then one access line each."""
        done, self._done = self._done, []
        if not done:
            return
        try:
            for method, route, status, seconds, *_ in done:
                self.metrics.observe(method, route, status, seconds)
            if access_logger.isEnabledFor(logging.INFO):
                emit_batch(access_logger, [_access_record(*item) for item in done])
        except Exception:
            logger.exception("request telemetry not written")


def _access_record(
    method: str,
    route: str,
    status: int,
    seconds: float,
    team_id: int | None,
    key_id: Any,
    rid: str,
    created: float,
) -> logging.LogRecord:
    milliseconds = round(seconds * 1000, 2)
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": milliseconds,
        "team_id": team_id,
        "key_id": str(key_id) if key_id is not None else None,
        "request_id": rid,
    }
    message = f"{method} {route} {status} {milliseconds}ms"
    return quick_record(_ACCESS, logging.INFO, message, fields, created)


def flush_pending() -> None:
    """Write every pipeline's pending figures and access lines now (a scrape, a test)."""
    for pipeline in list(_PIPELINES):
        pipeline.flush()


class ObservedApp(FastAPI):
    """FastAPI with `RequestPipeline` around its whole middleware stack (server errors
    included). Needs `state.settings` and `state.http_metrics` (set by `create_app`)."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestPipeline(
            _without_idle_layers(super().build_middleware_stack(), self.max_body_size),
            metrics=self.state.http_metrics,
            internal_body_limit=self.state.settings.max_internal_body_bytes,
        )


def _without_idle_layers(stack: ASGIApp, max_body_size: int | None) -> ASGIApp:
    """FastAPI's stack minus two layers that only pass every request through here: the
    native-telemetry exception hook (native telemetry is off: `create_app`) and FastAPI's
    app-wide body limit when none is set (the body limits are this pipeline's)."""
    idle = {"ExceptionTelemetryMiddleware"}  # FastAPI's own names (matched by name: private)
    if max_body_size is None:
        idle.add("AppBodyLimitMiddleware")
    layer: Any = stack
    while hasattr(layer, "app"):
        inner = layer.app
        if type(inner).__name__ in idle and hasattr(inner, "app"):
            layer.app = inner.app
        else:
            layer = inner
    return stack


def _unspent_budget(scope: Scope) -> RateLimitStatus | None:
    app = scope.get("app")
    limiter: RateLimiter | None = getattr(getattr(app, "state", None), "rate_limiter", None)
    return limiter.unspent() if limiter is not None else None


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
