"""What a data-warehouse action is, as data: the router factory turns each into two routes.

A router module declares each action right above its function:

    actions = ActionSet()

    @actions.action(name="job_stats", method="GET", scopes=READ, response_model=JobStatsOut,
                    summary="...")
    async def job_stats(ctx: Context, ...) -> JobStatsOut: ...

    ACTIONS = actions.actions

The declarations stay data (`Action`): the router factory registers them under both prefixes,
OpenAPI and the auth tests' matrix are derived from them. Endpoints are plain async functions
that take `ctx: Context` (the resolved team and caller) and their own inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from app.core.context import Prefetch, RequestContext
from app.core.errors import ErrorBody
from app.core.scopes import Scope
from app.pipeline.auth import check_key_restrictions, check_org_admin, check_scopes

HttpMethod = Literal["GET", "POST", "DELETE"]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input",
    401: "No API key, or an invalid one",
    403: "The key lacks a scope or team access, or the user is not an organization admin",
    404: "Unknown environment/project, or nothing to act on",
    409: "The current state does not allow this, or the name is taken",
    429: "Rate limit exceeded for this API key",
    503: "No warehouse cluster has room for a new warehouse (`no_capacity`)",
}


@dataclass(frozen=True)
class Action:
    name: str
    method: HttpMethod
    endpoint: Callable[..., Any]
    scopes: tuple[Scope, ...]
    response_model: Any
    summary: str
    admin_verb: str | None = None
    status_code: int = 200
    exclude_none: bool = False
    errors: tuple[int, ...] = field(default=())
    # Columns the endpoint reads in the authentication statement (one round trip, not two).
    prefetch: Prefetch | None = None
    # OpenAPI naming when the path is not the name (`operations/{operation_id}` is
    # `..._operations_retrieve`) or the verb is not the method's (`..._operations_list`).
    operation_name: str | None = None
    verb: str | None = None

    def authorize(self, ctx: RequestContext) -> None:
        """The key's team/organization restrictions, its scopes, then organization admin
        (API.md §3); raises PermissionDenied with the first that fails."""
        check_key_restrictions(ctx)
        check_scopes(ctx, self.scopes)
        check_org_admin(ctx, self.admin_verb)

    def openapi_extra(self) -> dict[str, Any] | None:
        if self.method not in ("POST", "DELETE"):
            return None
        return {
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                    "description": (
                        "Replays the first response for 24 h when the same request is retried "
                        "with the same key; another body with the same key answers 409."
                    ),
                }
            ]
        }

    def responses(self) -> dict[int | str, dict[str, Any]]:
        mutating = {400, 409} if self.method in ("POST", "DELETE") else set()
        statuses = sorted({401, 403, 404, 429, *mutating, *self.errors})
        return {s: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


class ActionSet:
    """The actions one router module declares, in declaration order."""

    def __init__(self) -> None:
        self.actions: list[Action] = []

    def action(
        self,
        *,
        name: str,
        method: HttpMethod,
        scopes: tuple[Scope, ...],
        response_model: Any,
        summary: str,
        **options: Any,
    ) -> Callable[[Endpoint], Endpoint]:
        """Declare the decorated function as the action `name` (see `Action` for options)."""

        def declare(endpoint: Endpoint) -> Endpoint:
            self.actions.append(
                Action(
                    name=name,
                    method=method,
                    endpoint=endpoint,
                    scopes=scopes,
                    response_model=response_model,
                    summary=summary,
                    **options,
                )
            )
            return endpoint

        return declare
