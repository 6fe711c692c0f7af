"""Authentication and authorization as FastAPI dependencies.

Order (API.md §3): key (401) -> team in the path (404) -> key's team/org restrictions and
scopes (403) -> organization admin (403). Each step is one indexed lookup; `last_used_at` is
written at most once an hour per key.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, Request

from app.core.context import Prefetch, Principal, RequestContext, TeamRef
from app.core.errors import AuthenticationFailed, NotAuthenticated, NotFound, PermissionDenied
from app.core.read_pool import ReadPool
from app.core.request_id import note_rate_limit
from app.core.scopes import first_missing_scope
from app.pipeline.body_limits import raise_request_problem
from app.pipeline.ratelimit import RateLimitStatus
from app.services.identity.keys import KEY_PREFIX, hash_key

LAST_USED_RESOLUTION = timedelta(hours=1)
MAX_ID = 2**63 - 1
KeySource = Literal["Authorization header", "body", "query string"]


async def _key_from_body(request: Request) -> str | None:
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    if "json" not in request.headers.get("content-type", ""):
        return None
    raw = await request.body()
    if not raw or b"personal_api_key" not in raw:
        return None
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return None
    value = data.get("personal_api_key") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, if it is one."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _authorization(scope: Any) -> str:
    """The first Authorization header's value ('' without one), as `request.headers` reads
    it (names arrive lower-cased; values are latin-1), without raising on a missing one."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


async def find_presented_key(request: Request) -> tuple[str, KeySource] | None:
    token = bearer_token(_authorization(request.scope))
    if token is not None:
        return token, "Authorization header"
    body_key = await _key_from_body(request) if request.method != "GET" else None
    if body_key:
        return body_key, "body"
    query_key = request.query_params.get("personal_api_key")
    if query_key:
        return query_key, "query string"
    return None


# One indexed round trip resolves the key, the team in the path and the user's membership
# level; the LEFT JOINs keep "bad key" (no row) apart from "no such team" (NULL team columns).
# An action may add columns of its own to the same statement (`Prefetch`).
_AUTH_QUERY = """
SELECT k.id, k.user_id, k.scopes, k.scoped_teams, k.scoped_organizations, k.last_used_at,
       t.id AS team_id, t.project_id, t.organization_id, t.name AS team_name, t.timezone,
       t.is_primary, t.created_at AS team_created_at, m.level{columns}
FROM personal_api_keys k
LEFT JOIN teams t ON {team}
LEFT JOIN organization_memberships m
       ON m.organization_id = t.organization_id AND m.user_id = k.user_id{joins}
WHERE k.secure_value = $1
"""
TEAM_BY_ENVIRONMENT = "t.id = $2"
TEAM_BY_PROJECT = "t.project_id = $2 AND t.is_primary"


def auth_query(team: str, prefetch: Prefetch | None = None) -> str:
    return _AUTH_QUERY.format(
        team=team,
        columns=f",\n       {prefetch.columns}" if prefetch else "",
        joins=f"\n{prefetch.joins}" if prefetch else "",
    )


_TOUCH_LAST_USED = """
UPDATE personal_api_keys SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - interval '1 hour')
"""


def _parse_id(raw: str) -> int | None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_ID:
        return None
    return int(raw)


async def lookup_key(
    state: Any, plaintext: str, *, query: str, raw_id: str
) -> asyncpg.Record | None:
    """The auth row for a presented key and the team id in the path; None for a key that
    does not exist (or cannot be one). Runs outside the request transaction: a read needs no
    BEGIN/COMMIT."""
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
        return None
    path_id = _parse_id(raw_id)
    reads: ReadPool = state.read_pool
    return await reads.fetchrow(query, hash_key(plaintext), path_id if path_id is not None else -1)


async def admit(state: Any, row: asyncpg.Record) -> RateLimitStatus | None:
    """Count the request against the key's rate limit (429 beyond it) and note, at most once
    an hour, that the key was used. The write is its own statement, so it persists even
    when the request later fails. Returns the key's budget (None when limiting is off)."""
    budget: RateLimitStatus | None = await state.rate_limiter.hit(row["id"])
    note_rate_limit(budget)  # the X-RateLimit-* headers of the answer
    now = datetime.now(UTC)
    if row["last_used_at"] is None or row["last_used_at"] < now - LAST_USED_RESOLUTION:
        await state.read_pool.execute(_TOUCH_LAST_USED, row["id"], now)
    return budget


def principal_from_row(row: asyncpg.Record) -> Principal:
    return Principal(
        key_id=row["id"],
        user_id=row["user_id"],
        scopes=tuple(row["scopes"]),
        scoped_teams=tuple(row["scoped_teams"]) if row["scoped_teams"] else None,
        scoped_organizations=(
            tuple(row["scoped_organizations"]) if row["scoped_organizations"] else None
        ),
    )


def context_from_row(row: asyncpg.Record, principal: Principal) -> RequestContext:
    """The resolved context; 404 when the team does not exist or the user is not a member."""
    if row["team_id"] is None or row["level"] is None:
        raise NotFound()
    team = TeamRef(
        id=row["team_id"],
        project_id=row["project_id"],
        organization_id=row["organization_id"],
        name=row["team_name"],
        timezone=row["timezone"],
        is_primary=row["is_primary"],
        created_at=row["team_created_at"],
    )
    return RequestContext(principal=principal, team=team, level=row["level"], prefetched=row)


async def _resolve(request: Request, *, query: str, raw_id: str) -> RequestContext:
    presented = await find_presented_key(request)
    if presented is None:
        raise NotAuthenticated()
    plaintext, source = presented
    state = request.app.state
    row = await lookup_key(state, plaintext, query=query, raw_id=raw_id)
    if row is None:
        raise AuthenticationFailed(f"Personal API key found in request {source} is invalid.")
    await admit(state, row)
    # The request's state (what `request.state` wraps), read by the access line.
    principal = request.scope.setdefault("state", {})["principal"] = principal_from_row(row)
    return context_from_row(row, principal)


TeamResolver = Callable[..., Awaitable[RequestContext]]


# The id in each prefix's path, and how the OpenAPI documents it. The resolver reads the raw
# string itself (`_parse_id`: anything but a 64-bit id is simply no such team, 404), so FastAPI
# has nothing to validate; the router documents the parameter (app/pipeline/router.py).
PATH_IDS = {
    "environment_id": "Environment (team) id.",
    "project_id": "Project id; acts on its primary environment.",
}


def environment_resolver(prefetch: Prefetch | None = None) -> TeamResolver:
    """The dependency behind `/api/environments/{environment_id}/...`."""
    query = auth_query(TEAM_BY_ENVIRONMENT, prefetch)

    async def team_from_environment_path(request: Request) -> RequestContext:
        raw_id: str = request.path_params["environment_id"]
        return await _resolve(request, query=query, raw_id=raw_id)

    return team_from_environment_path


def project_resolver(prefetch: Prefetch | None = None) -> TeamResolver:
    """The dependency behind `/api/projects/{project_id}/...`: its primary environment."""
    query = auth_query(TEAM_BY_PROJECT, prefetch)

    async def team_from_project_path(request: Request) -> RequestContext:
        raw_id: str = request.path_params["project_id"]
        return await _resolve(request, query=query, raw_id=raw_id)

    return team_from_project_path


def check_key_restrictions(ctx: RequestContext) -> None:
    p = ctx.principal
    if p.scoped_teams is not None and ctx.team.id not in p.scoped_teams:
        raise PermissionDenied(
            f"API key does not have access to the requested project: ID {ctx.team.id}."
        )
    if p.scoped_organizations is not None and str(ctx.organization_id) not in (
        p.scoped_organizations
    ):
        raise PermissionDenied(
            f"API key does not have access to the requested organization: ID {ctx.organization_id}."
        )


def check_scopes(ctx: RequestContext, required: tuple[str, ...]) -> None:
    missing = first_missing_scope(ctx.principal.scopes, required)
    if missing is not None:
        raise PermissionDenied(f"API key missing required scope '{missing}'")


def check_org_admin(ctx: RequestContext, admin_verb: str | None) -> None:
    if admin_verb is not None and not ctx.is_org_admin:
        raise PermissionDenied(f"Only organization admins can {admin_verb} the managed warehouse")


async def current_context(request: Request) -> RequestContext:
    """The context the route's access guard resolved (set before the endpoint runs).

    Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    hand-off per request on the hottest path."""
    ctx: RequestContext = request.state.context
    return ctx


Context = Annotated[RequestContext, Depends(current_context)]


async def require_internal_token(request: Request) -> None:
    expected = request.app.state.settings.internal_api_token.get_secret_value().encode()
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise NotAuthenticated()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise AuthenticationFailed("Invalid internal API token.")
    request.state.internal = True
    raise_request_problem(request.scope)  # too deep, NUL... (app/pipeline/body_limits.py)


InternalCaller = Depends(require_internal_token)
