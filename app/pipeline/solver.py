"""How an action route gets its dependencies' values: FastAPI's own solver, or a direct one.

`app.pipeline.router.ActionRoute` calls FastAPI's `solve_dependencies` for most routes, with a
memo it keeps for all of a route's requests (`solver_memo`). A route whose dependencies are
all plain `async def`s with at most query parameters (the status poll, the activity and stats
reads) skips the general solver: `direct_solver` awaits the same dependencies in the same
order and validates the query with FastAPI's own function. `body_for` hands the solver the
body as FastAPI's own request handler would.
"""

from __future__ import annotations

import email.message
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args, solve_dependencies
from pydantic_core import PydanticUndefined

from app.core.errors import ParseError

_SOLVER_TAKES_MEMO = "_uses_scopes_cache" in inspect.signature(solve_dependencies).parameters

# The solver makes a Response per request for the dependencies that take one; when none
# does, nobody sees it, so one stands in for every request (`solver_memo`).
_UNSEEN_RESPONSE = Response()


def solver_memo(dependant: Dependant) -> dict[str, Any]:
    """Keyword arguments for `solve_dependencies` that one route keeps for all its requests.

    The solver works out, per request, which dependencies take OAuth scopes (none here), in a
    memo keyed by the dependency; the route's dependencies never change, so one memo serves
    them all. And where no dependency takes a Response, the one it would make per request is
    never seen."""
    memo: dict[str, Any] = {"_uses_scopes_cache": {}} if _SOLVER_TAKES_MEMO else {}
    if not takes_response(dependant):
        memo["response"] = _UNSEEN_RESPONSE
    return memo


Solver = Callable[[Request], Awaitable[tuple[dict[str, Any], list[Any]]]]


def direct_solver(dependant: Dependant) -> Solver | None:
    """What FastAPI's solver computes for a simple dependency tree, computed directly: each
    dependency (a plain `async def`, each called once in the tree) awaited in declaration
    order with its own dependencies' values, then the node's query parameters validated by
    FastAPI's own `request_params_to_args` (so the same values and the same errors), and the
    request where one is declared. None when the tree needs the solver's general machinery:
    a path, header, cookie or body parameter, a Response, BackgroundTasks or security-scopes
    parameter, a generator dependency (an exit stack), a sync one (a thread), a concurrency
    limit, or the same dependency twice (its per-request cache). The route falls back to the
    solver whenever dependency overrides are set."""
    calls: list[Any] = []

    def plain(node: Dependant) -> bool:
        if (
            node.path_params
            or node.header_params
            or node.cookie_params
            or node.body_params
            or node.websocket_param_name
            or node.http_connection_param_name
            or node.response_param_name
            or node.background_tasks_param_name
            or node.security_scopes_param_name
            or node.own_oauth_scopes
            or getattr(node, "concurrency", None) is not None
        ):
            return False
        for sub in node.dependencies:
            if sub.name is None or not inspect.iscoroutinefunction(sub.call):
                return False
            if any(sub.call is seen for seen in calls):
                return False
            calls.append(sub.call)
            if not plain(sub):
                return False
        return True

    if not plain(dependant):
        return None
    return _solver_for(dependant)


def _solver_for(node: Dependant) -> Solver:
    subs = [(str(sub.name), sub.call, _solver_for(sub)) for sub in node.dependencies]
    query_params, request_name = node.query_params, node.request_param_name

    async def solve(request: Request) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for name, call, inner in subs:
            sub_values, sub_errors = await inner(request)
            if sub_errors:
                errors.extend(sub_errors)
                continue
            values[name] = await call(**sub_values)  # type: ignore[misc]
        if query_params:
            query_values, query_errors = request_params_to_args(query_params, request.query_params)
            values.update(query_values)
            errors += query_errors
        if request_name is not None:
            values[request_name] = request
        return values, errors

    return solve


def takes_response(dependant: Dependant) -> bool:
    """Whether the endpoint or any of its dependencies declares a `Response` parameter."""
    return dependant.response_param_name is not None or any(
        takes_response(sub) for sub in dependant.dependencies
    )


async def body_for(request: Request) -> Any:
    """The body as FastAPI's own request handler hands it to the solver: the decoded JSON when
    the content type is JSON (`application/json`, `application/*+json`), else the bytes;
    `Undefined` when there is none."""
    raw = await request.body()
    if not raw:
        return PydanticUndefined
    content_type = request.headers.get("content-type")
    if not content_type:
        return raw  # FastAPI's strict content type: no type, not JSON
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() == "application":
        subtype = message.get_content_subtype()
        if subtype == "json" or subtype.endswith("+json"):
            try:
                return await request.json()
            except ValueError as exc:  # not reached: `_decode_json_body` marked it first
                raise ParseError() from exc
    return raw
