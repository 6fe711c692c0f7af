"""The one data-warehouse router factory, included under both prefixes.

`/api/environments/{environment_id}/data_warehouse/...` and
`/api/projects/{project_id}/data_warehouse/...` differ only in how the team is resolved; the
factory takes that resolver (`app.pipeline.auth.environment_resolver` or `project_resolver`,
built per action with the action's `Prefetch`) and registers every action on the app's router,
one route that answers with and without the trailing slash. Every action, every request,
takes this one path:

- `ActionRoute` hands the request to FastAPI's dependency solver, which runs the route's one
  guard dependency (no sub-dependencies, no parameters but the request): the key, the team in
  the path and the membership in one statement, the rate limit, the key's restrictions,
  scopes and admin, then the Idempotency-Key claim (API.md §3 order); and the endpoint's own
  dependencies (a session, query parameters, the body model);
- the endpoint, whose `ctx` parameter is that guard (FastAPI caches it per request);
- the answer serialized once, by the response model's own serializer, into the response,
  which `ActionRoute` sends as it is (no second serialization, no per-request wrapper).

Access checks come before body validation (API.md §3), even for a body that is not JSON:
the solver validates the body as it runs the dependencies, so `ActionRoute` decodes the JSON
first, marks a malformed body, and the guard answers `parse_error` only after the access
checks passed.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.dependencies.utils import solve_dependencies
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.datastructures import QueryParams
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from app.core.context import Prefetch, RequestContext
from app.core.errors import APIError, ParseError
from app.pipeline import idempotency
from app.pipeline.actions import Action
from app.pipeline.auth import PATH_IDS, TeamResolver
from app.pipeline.body_limits import raise_request_problem
from app.pipeline.errors import error_response
from app.pipeline.json_body import reuse_decoded_body
from app.pipeline.solver import body_for, direct_solver, solver_memo

ResolverFactory = Callable[[Prefetch | None], TeamResolver]
_VERBS = {"GET": "retrieve", "POST": "create", "DELETE": "destroy"}
MALFORMED_BODY = "malformed_body"  # the request state's mark of a body that is not JSON


def _access_guard(
    resolve_team: TeamResolver, action: Action
) -> Callable[..., Awaitable[RequestContext]]:
    """The route's one dependency: it takes only the request (the resolver reads the path's
    id itself), so FastAPI's solver has no parameter to extract or validate for it."""
    mutating = action.method in ("POST", "DELETE")

    async def guard(request: Request) -> RequestContext:
        ctx = await resolve_team(request)
        action.authorize(ctx)
        raise_request_problem(request.scope)  # too deep, NUL... (app/pipeline/body_limits.py)
        state = request.scope.setdefault("state", {})  # what `request.state` wraps
        if state.get(MALFORMED_BODY):
            raise ParseError()
        state["context"] = ctx
        if mutating:
            request.state.idempotency_claim = await idempotency.claim(
                request, user_id=ctx.principal.user_id, team_id=ctx.team.id, action=action.name
            )
        return ctx

    return guard


def _bound_endpoint(action: Action, guard: Callable[..., Any]) -> Callable[..., Any]:
    """The action's endpoint as this route calls it: `ctx` is the route's guard, and the
    answer is serialized once, with the response model's serializer, into a Response (FastAPI
    passes a Response through instead of validating, encoding and dumping it again)."""
    signature = inspect.signature(action.endpoint, eval_str=True)
    context = Annotated[RequestContext, Depends(guard)]
    params = [
        p.replace(annotation=context) if p.name == "ctx" else p
        for p in signature.parameters.values()
    ]
    sub_response = next((p.name for p in params if p.annotation is Response), None)
    adapter: TypeAdapter[Any] = TypeAdapter(action.response_model)
    model = action.response_model if isinstance(action.response_model, type) else None
    endpoint, status, exclude_none = action.endpoint, action.status_code, action.exclude_none

    async def call(**kwargs: Any) -> Response:
        result = await endpoint(**kwargs)
        if isinstance(result, Response):
            return result
        if model is None or type(result) is not model:
            result = adapter.validate_python(result, from_attributes=True)
        response = Response(
            adapter.dump_json(result, by_alias=True, exclude_none=exclude_none),
            status_code=status,
            media_type="application/json",
        )
        if sub_response is not None:
            extra: Response = kwargs[sub_response]
            response.headers.update(extra.headers)
            if extra.status_code:
                response.status_code = extra.status_code
        return response

    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=Response
    )
    call.__name__ = action.endpoint.__name__
    call.__doc__ = action.endpoint.__doc__
    return call


class _MalformedBody:
    """Stands in for a body that is not JSON until the access checks have run."""


async def _decode_json_body(request: Request) -> None:
    """Decode the JSON body ahead of FastAPI; a malformed one is marked, not raised."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    if raw and "json" in content_type.lower():
        reuse_decoded_body(request)  # the middleware's decode (app/pipeline/json_body.py)
        if hasattr(request, "_json"):
            return
        try:
            request._json = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            request._json = _MalformedBody()
            request.scope.setdefault("state", {})[MALFORMED_BODY] = True


class ActionRequest(Request):
    """Starlette's Request, whose query parameters skip `parse_qsl` when nothing in the query
    string is escaped (`%`, `+`): then splitting at `&` and `=` is the same parse."""

    @property
    def query_params(self) -> QueryParams:
        params: QueryParams | None = self.__dict__.get("_fast_query")
        if params is None:
            raw: bytes = self.scope["query_string"]
            if raw and b"%" not in raw and b"+" not in raw:
                text = raw.decode("latin-1")
                params = QueryParams([p.partition("=")[::2] for p in text.split("&") if p])
            else:
                params = super().query_params
            self.__dict__["_fast_query"] = params
        return params


class ActionRoute(APIRoute):
    """Every action's route. FastAPI documents it (OpenAPI, from the route's declaration)
    and solves its dependencies with its own solver (`solve_dependencies`: the guard, a
    session, query parameters, the body model); this class replaces the per-request
    wrapper FastAPI puts around that solver, which for an endpoint that already returns a
    finished `Response` is pure overhead: the native-telemetry hooks, the endpoint's source
    location for error messages, the serialization step and a second exception wrapper
    (errors reach the same handlers through the app's exception middleware). A route whose
    dependencies are all plain `async def`s with at most query parameters (the status poll,
    the activity and stats reads) skips the general solver: `direct_solver`
    (app/pipeline/solver.py) awaits the same dependencies in the same order and validates
    the query with FastAPI's own function.

    It also decodes the body before the access checks run, and stores (or releases) the
    Idempotency-Key claim the guard took, around the handler."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # The path's literal pieces (`/api/environments/`, `/data_warehouse/job_stats`): a
        # path that lacks one cannot match the route's pattern (`matches`).
        self._literals = tuple(
            piece.rstrip("/") for piece in re.split(r"\{[^}]*\}", path) if piece.strip("/")
        )
        # APIRoute built the handler once (`get_route_handler`, which keeps it as
        # `self._handler`) and wrapped it in FastAPI's `request_response`; serve it directly.
        # (Body limits are the request pipeline's: app/pipeline/body_limits.py.)
        self.app = self._serve

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """The router tries every route in turn, and there are two per action: a request
        for the last one would run every pattern before it. A substring test that the path
        holds the route's literal pieces settles most of them first; the pattern (and FastAPI's
        own matching) decides the rest."""
        if scope["type"] == "http":
            path = scope["path"]
            for piece in self._literals:
                if piece not in path:
                    return Match.NONE, {}
        return super().matches(scope)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = ActionRequest(scope, receive, send)
        # The exit stacks FastAPI's solver closes dependencies with `yield` on (a session):
        # "function" ones when the endpoint returns, "request" ones after the answer is sent.
        async with AsyncExitStack() as request_stack:
            scope["fastapi_inner_astack"] = request_stack
            async with AsyncExitStack() as function_stack:
                scope["fastapi_function_astack"] = function_stack
                response = await self._handler(request)
            await response(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant, body_field = self.dependant, self.body_field
        overrides, embed = self.dependency_overrides_provider, self._embed_body_fields
        assert dependant.call is not None
        endpoint = dependant.call
        memo = solver_memo(dependant)
        direct = direct_solver(dependant) if body_field is None else None

        async def handler(request: Request) -> Response:
            if direct is not None and not getattr(overrides, "dependency_overrides", None):
                values, errors = await direct(request)
                if errors:
                    raise RequestValidationError(errors, body=None)
                answer: Response = await endpoint(**values)  # `_bound_endpoint`
                return answer
            body = await body_for(request) if body_field is not None else None
            solved = await solve_dependencies(
                request=request,
                dependant=dependant,
                body=body,
                dependency_overrides_provider=overrides,
                async_exit_stack=request.scope["fastapi_inner_astack"],
                embed_body_fields=embed,
                **memo,
            )
            if solved.errors:
                raise RequestValidationError(solved.errors, body=body)
            response: Response = await endpoint(**solved.values)  # `_bound_endpoint`
            if response.background is None:
                response.background = solved.background_tasks
            return response

        self._handler = handler
        if not (self.methods or set()) & {"POST", "DELETE"}:
            return handler

        async def decoded_handler(request: Request) -> Response:
            await _decode_json_body(request)
            return await handler(request)

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await decoded_handler(request)
            except idempotency.ReplayStoredResponse as replay:
                return replay.stored
            except APIError as exc:
                claimed = getattr(request.state, "idempotency_claim", None)
                if claimed is None:
                    raise
                response = error_response(exc.status_code, exc.body(), exc.headers)
            except BaseException:
                claimed = getattr(request.state, "idempotency_claim", None)
                if claimed is not None:
                    await idempotency.release(request, claimed)
                raise
            claimed = getattr(request.state, "idempotency_claim", None)
            if claimed is not None:
                if response.status_code >= 500:
                    await idempotency.release(request, claimed)
                else:
                    await idempotency.store(request, claimed, response)
            return response

        self._handler = idempotent_handler
        return idempotent_handler


def _with_path_id(prefix: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The operation's OpenAPI extras with the prefix's id parameter (documented as
    FastAPI documents a declared `str` path parameter: the guard reads it, undeclared)."""
    name = re.search(r"\{(\w+)\}", prefix)
    assert name is not None and name[1] in PATH_IDS, prefix
    description = PATH_IDS[name[1]]
    title = name[1].replace("_", " ").title()
    parameter = {
        "name": name[1],
        "in": "path",
        "required": True,
        "schema": {"type": "string", "description": description, "title": title},
        "description": description,
    }
    extra = dict(extra or {})
    extra["parameters"] = [parameter, *extra.get("parameters", [])]
    return extra


def add_data_warehouse_actions(
    router: APIRouter,
    resolver: ResolverFactory,
    *,
    prefix: str,
    operation_prefix: str,
    actions: Iterable[Action],
) -> None:
    """Register every action on `router` (the app's own) under `prefix`, flat.

    Flat rather than an included sub-router: FastAPI scans an included router's routes twice
    per request (once to see that it matches, once to pick the route) and swaps scope keys for
    every candidate; a flat route is one regex. One route per action: its pattern also takes
    the path without the trailing slash (the contract serves both, with the same answer), so
    the scan is half as long and the undocumented twin is gone.
    """
    for action in actions:
        name = (action.operation_name or action.name).replace("-", "_")
        verb = action.verb or _VERBS[action.method]
        operation_id = f"{operation_prefix}data_warehouse_{name}_{verb}"
        guard = _access_guard(resolver(action.prefetch), action)
        router.add_api_route(
            f"{prefix}/{action.name}/",
            _bound_endpoint(action, guard),
            methods=[action.method],
            name=operation_id,
            operation_id=operation_id,
            response_model=action.response_model,
            status_code=action.status_code,
            response_model_exclude_none=action.exclude_none,
            responses=action.responses(),
            summary=action.summary,
            openapi_extra=_with_path_id(prefix, action.openapi_extra()),
            tags=["data_warehouse"],
            route_class_override=ActionRoute,
        )
        route = router.routes[-1]
        assert isinstance(route, ActionRoute) and route.path_regex.pattern.endswith("/$")
        route.path_regex = re.compile(route.path_regex.pattern[:-2] + "/?$")
