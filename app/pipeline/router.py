"""The one data-warehouse router factory, included under both prefixes.

`/api/environments/{environment_id}/data_warehouse/...` and
`/api/projects/{project_id}/data_warehouse/...` differ only in how the team is resolved; the
factory takes that resolver (`app.auth.environment_resolver` or `project_resolver`, built per
action with the action's `Prefetch`) and registers every action with and without the
trailing slash.

Access checks come before body validation (API.md §3), even for a body that is not JSON:
FastAPI decodes JSON before it runs dependencies, so `ActionRoute` decodes it first, marks a
malformed body, and the guard answers `parse_error` only after the access checks passed.

No `from __future__ import annotations` here: the guard's `Depends(resolve_team)` annotation
closes over a local and must be evaluated when the function is defined.
"""

import json
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
)
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    Request,
    Response,
)
from fastapi.routing import APIRoute

from app.core.context import Prefetch, RequestContext
from app.core.errors import APIError, ParseError
from app.pipeline import idempotency
from app.pipeline.actions import Action
from app.pipeline.auth import TeamResolver
from app.pipeline.errors import error_response
from app.routers import (
    membership as membership_actions,
)
from app.routers import (
    operations,
    storage,
)
from app.routers import (
    pipelines as pipeline_actions,
)
from app.routers import (
    warehouse as warehouse_actions,
)

ResolverFactory = Callable[[Prefetch | None], TeamResolver]
_VERBS = {"GET": "retrieve", "POST": "create", "DELETE": "destroy"}


def all_actions() -> list[Action]:
    return [
        *warehouse_actions.ACTIONS,
        *membership_actions.ACTIONS,
        *pipeline_actions.ACTIONS,
        *operations.ACTIONS,
        *storage.ACTIONS,
    ]


def _access_guard(
    resolve_team: TeamResolver, action: Action
) -> Callable[..., Awaitable[RequestContext]]:
    mutating = action.method in ("POST", "DELETE")

    async def guard(
        request: Request, ctx: Annotated[RequestContext, Depends(resolve_team)]
    ) -> RequestContext:
        action.authorize(ctx)
        if getattr(request.state, "malformed_body", False):
            raise ParseError()
        request.state.context = ctx
        if mutating:
            request.state.idempotency_claim = await idempotency.claim(
                request, user_id=ctx.principal.user_id, team_id=ctx.team.id, action=action.name
            )
        return ctx

    return guard


class _MalformedBody:
    """Stands in for a body that is not JSON until the access checks have run."""


async def _decode_json_body(request: Request) -> None:
    """Decode the JSON body ahead of FastAPI; a malformed one is marked, not raised."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    if raw and "json" in content_type.lower():
        try:
            request._json = json.loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            request._json = _MalformedBody()
            request.state.malformed_body = True


class ActionRoute(APIRoute):
    """Decodes the body before the access checks run; stores (or releases) the
    Idempotency-Key claim the guard took, around the handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        if not (self.methods or set()) & {"POST", "DELETE"}:
            return inner

        async def handler(request: Request) -> Response:
            await _decode_json_body(request)
            return await inner(request)

        async def idempotent_handler(request: Request) -> Response:
            try:
                response = await handler(request)
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

        return idempotent_handler


def build_data_warehouse_router(
    resolver: ResolverFactory, *, operation_prefix: str, actions: Iterable[Action]
) -> APIRouter:
    router = APIRouter(tags=["data_warehouse"], route_class=ActionRoute)
    for action in actions:
        name = (action.operation_name or action.name).replace("-", "_")
        verb = action.verb or _VERBS[action.method]
        operation_id = f"{operation_prefix}data_warehouse_{name}_{verb}"
        guard = Depends(_access_guard(resolver(action.prefetch), action))
        for path, documented in ((f"/{action.name}/", True), (f"/{action.name}", False)):
            router.add_api_route(
                path,
                action.endpoint,
                methods=[action.method],
                name=operation_id if documented else f"{operation_id}_no_slash",
                operation_id=operation_id if documented else f"{operation_id}_no_slash",
                include_in_schema=documented,
                dependencies=[guard],
                response_model=action.response_model,
                status_code=action.status_code,
                response_model_exclude_none=action.exclude_none,
                responses=action.responses(),
                summary=action.summary,
                openapi_extra=action.openapi_extra(),
            )
    return router
