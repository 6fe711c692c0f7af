"""Authentication and authorization as FastAPI dependencies.

Order (API.md §3): key (401) -> team in the path (404) -> key's team/org restrictions and
scopes (403) -> organization admin (403). Each step is one indexed lookup; `last_used_at` is
written at most once an hour per key.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Request
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import DbSession
from app.errors import AuthenticationFailed, NotAuthenticated, NotFound, PermissionDenied
from app.keys import KEY_PREFIX, hash_key
from app.models import MembershipLevel, OrganizationMembership, PersonalAPIKey, Team
from app.scopes import first_missing_scope

LAST_USED_RESOLUTION = timedelta(hours=1)
MAX_ID = 2**63 - 1
KeySource = Literal["Authorization header", "body", "query string"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a personal API key and the user it acts as."""

    key_id: uuid.UUID
    user_id: int
    scopes: tuple[str, ...]
    scoped_teams: tuple[int, ...] | None
    scoped_organizations: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """A principal resolved against the environment named in the path."""

    principal: Principal
    team: Team
    level: int

    @property
    def organization_id(self) -> uuid.UUID:
        return self.team.organization_id

    @property
    def is_org_admin(self) -> bool:
        return self.level >= MembershipLevel.ADMIN


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


async def find_presented_key(request: Request) -> tuple[str, KeySource] | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "Authorization header"
    body_key = await _key_from_body(request)
    if body_key:
        return body_key, "body"
    query_key = request.query_params.get("personal_api_key")
    if query_key:
        return query_key, "query string"
    return None


async def authenticate(request: Request, session: DbSession) -> Principal:
    presented = await find_presented_key(request)
    if presented is None:
        raise NotAuthenticated()
    plaintext, source = presented
    invalid = AuthenticationFailed(f"Personal API key found in request {source} is invalid.")
    if not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
        raise invalid
    row = (
        await session.execute(
            select(
                PersonalAPIKey.id,
                PersonalAPIKey.user_id,
                PersonalAPIKey.scopes,
                PersonalAPIKey.scoped_teams,
                PersonalAPIKey.scoped_organizations,
                PersonalAPIKey.last_used_at,
            ).where(PersonalAPIKey.secure_value == hash_key(plaintext))
        )
    ).one_or_none()
    if row is None:
        raise invalid
    await request.app.state.rate_limiter.hit(row.id)
    now = datetime.now(UTC)
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_RESOLUTION:
        await _touch_last_used(session, row.id, now)
    principal = Principal(
        key_id=row.id,
        user_id=row.user_id,
        scopes=tuple(row.scopes),
        scoped_teams=tuple(row.scoped_teams) if row.scoped_teams else None,
        scoped_organizations=tuple(row.scoped_organizations) if row.scoped_organizations else None,
    )
    request.state.principal = principal
    return principal


async def _touch_last_used(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    # The WHERE makes concurrent requests in the same hour write once between them.
    await session.execute(
        update(PersonalAPIKey)
        .where(
            PersonalAPIKey.id == key_id,
            or_(
                PersonalAPIKey.last_used_at.is_(None),
                PersonalAPIKey.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def _parse_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_ID:
        raise NotFound()
    return int(raw)


async def _load_team(
    session: AsyncSession, principal: Principal, *, team_id: int | None, project_id: int | None
) -> RequestContext:
    stmt = select(Team, OrganizationMembership.level).outerjoin(
        OrganizationMembership,
        (OrganizationMembership.organization_id == Team.organization_id)
        & (OrganizationMembership.user_id == principal.user_id),
    )
    if team_id is not None:
        stmt = stmt.where(Team.id == team_id)
    else:
        stmt = stmt.where(Team.project_id == project_id, Team.is_primary.is_(True))
    row = (await session.execute(stmt)).one_or_none()
    if row is None or row.level is None:
        raise NotFound()
    return RequestContext(principal=principal, team=row.Team, level=row.level)


async def team_from_environment_path(
    principal: CurrentPrincipal,
    session: DbSession,
    environment_id: Annotated[str, Path(description="Environment (team) id.")],
) -> RequestContext:
    return await _load_team(session, principal, team_id=_parse_id(environment_id), project_id=None)


async def team_from_project_path(
    principal: CurrentPrincipal,
    session: DbSession,
    project_id: Annotated[str, Path(description="Project id; acts on its primary environment.")],
) -> RequestContext:
    return await _load_team(session, principal, team_id=None, project_id=_parse_id(project_id))


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


def current_context(request: Request) -> RequestContext:
    """The context the route's access guard resolved (set before the endpoint runs)."""
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


InternalCaller = Depends(require_internal_token)
