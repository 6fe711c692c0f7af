"""The fast path for the hottest reads: a status poll answered without the per-request work
of routing and dependency injection.

Clients poll `warehouse_status` while their warehouse provisions, and dashboards poll it
after; it is by far the most frequent request. Actions marked `hot=True` (a read-only GET
whose endpoint takes only `ctx` and `request`) are answered here when the request is the
ordinary, successful kind: a GET under one of the two prefixes, no query string, a Bearer
key in the Authorization header, a key that exists, a team its user belongs to, restrictions
and scopes that allow the action, and an endpoint that answers. It runs what the routed path
runs:

- the same statement (`app.auth.lookup_key` with the action's `Prefetch`),
- the same checks (`Action.authorize`: restrictions, scopes, organization admin),
- the same endpoint function, serialized through the action's response model as FastAPI does,
- the same rate limiter and `last_used_at` note (`app.auth.admit`) — last here, after the
  side-effect-free endpoint, so that a request handed on has not been counted yet.

Anything else — no key or a bad one, an unknown team, a refused check, an API error from the
endpoint, a database that does not answer — goes to the FastAPI app untouched, before anything
was counted, and is answered there: error responses are made in one place. The one error made
here is 429, through the same `error_response`, so a throttled request is not counted twice.
Any other exception is a bug and is not caught here: the app's server-error handler logs it
and answers 500.

It is installed as the innermost user middleware: FastAPI's server-error and telemetry
middleware still wrap it, and it puts the matched route in the scope as the router would
(`route`, `endpoint`, `path_params`), so telemetry and logs name the operation either way.
`HOT_READS=false` turns it off; the tests compare both paths byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import (
    TEAM_BY_ENVIRONMENT,
    TEAM_BY_PROJECT,
    admit,
    auth_query,
    bearer_token,
    context_from_row,
    lookup_key,
    principal_from_row,
)
from app.errors import APIError, Throttled, error_response, is_connection_failure
from app.routers.actions import Action

_PATH = re.compile(r"/api/(environments|projects)/([^/]+)/data_warehouse/([^/]+?)(/?)")
_TEAM_BY = {"environments": TEAM_BY_ENVIRONMENT, "projects": TEAM_BY_PROJECT}
_PATH_PARAM = {"environments": "environment_id", "projects": "project_id"}


@dataclass(frozen=True)
class _HotRoute:
    action: Action
    query: str
    adapter: TypeAdapter[Any]


class HotReads:
    def __init__(self, app: ASGIApp, actions: Iterable[Action]) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], _HotRoute] = {}
        self._routed: dict[str, BaseRoute | None] = {}
        for action in actions:
            if not action.hot:
                continue
            if action.method != "GET":
                raise ValueError(f"hot action {action.name} must be a GET")
            adapter: TypeAdapter[Any] = TypeAdapter(action.response_model)
            for prefix, team in _TEAM_BY.items():
                self.routes[(prefix, action.name)] = _HotRoute(
                    action, auth_query(team, action.prefetch), adapter
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or scope["query_string"]
            or not await self._answer(scope, receive, send)
        ):
            await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if it is the ordinary kind; False hands it on, untouched."""
        match = _PATH.fullmatch(_route_path(scope))
        if match is None:
            return False
        prefix, raw_id, name, slash = match.groups()
        route = self.routes.get((prefix, name))
        key = _bearer_key(scope) if route is not None else None
        if route is None or key is None:
            return False
        app = scope["app"]
        param = _PATH_PARAM[prefix]
        routed = self._route_in(app, f"/api/{prefix}/{{{param}}}/data_warehouse/{name}{slash}")
        if routed is not None:
            scope["route"], scope["endpoint"] = routed, getattr(routed, "endpoint", None)
            scope["path_params"] = {param: raw_id}
        state = app.state
        action = route.action
        try:
            row = await lookup_key(state, key, query=route.query, raw_id=raw_id)
            if row is None:
                return False
            principal = principal_from_row(row)
            ctx = context_from_row(row, principal)
            action.authorize(ctx)
            request = Request(scope, receive)
            request.state.principal = principal
            request.state.context = ctx
            value = await action.endpoint(ctx=ctx, request=request)
            body = route.adapter.dump_json(value, by_alias=True, exclude_none=action.exclude_none)
        except APIError:
            return False  # refused or missing: the routed path answers, in the one error shape
        except Exception as exc:
            if is_connection_failure(exc):
                return False  # the routed path retries, then answers 503
            raise  # a bug: the server-error handler logs it and answers 500
        try:
            await admit(state, row)
        except Throttled as exc:
            response = error_response(exc.status_code, exc.body(), exc.headers)
            await response(scope, receive, send)
            return True
        except Exception as exc:
            if is_connection_failure(exc):
                return False  # the last_used_at note met an outage: the routed path answers
            raise
        await send(
            {
                "type": "http.response.start",
                "status": action.status_code,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True

    def _route_in(self, app: Any, path: str) -> BaseRoute | None:
        if path not in self._routed:
            self._routed[path] = next(
                (r for r in app.routes if getattr(r, "path", None) == path), None
            )
        return self._routed[path]


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path the app may be mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _bearer_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":  # the first one, as Starlette's Headers.get reads it
            return bearer_token(value.decode("latin-1"))
    return None
