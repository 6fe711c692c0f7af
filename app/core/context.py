"""Who is calling and on which environment: plain data shared by the pipeline and services.

Framework-free on purpose: services receive a `RequestContext` and never import FastAPI. The
request pipeline (`app.pipeline.auth`) builds it from one authentication statement; an action
may extend that statement with columns of its own (`Prefetch`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import MembershipLevel


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a personal API key and the user it acts as."""

    key_id: uuid.UUID
    user_id: int
    scopes: tuple[str, ...]
    scoped_teams: tuple[int, ...] | None
    scoped_organizations: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class TeamRef:
    """The environment named in the path, as the auth statement read it (not an ORM object:
    nothing in a request changes a team, and building a mapped instance per request cost more
    than the rest of the check)."""

    id: int
    project_id: int
    organization_id: uuid.UUID
    name: str
    timezone: str
    is_primary: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RequestContext:
    """A principal resolved against the environment named in the path."""

    principal: Principal
    team: TeamRef
    level: int
    prefetched: Mapping[str, Any] | None = None

    @property
    def organization_id(self) -> uuid.UUID:
        return self.team.organization_id

    @property
    def is_org_admin(self) -> bool:
        return self.level >= MembershipLevel.ADMIN


@dataclass(frozen=True, slots=True)
class Prefetch:
    """What an action reads in the authentication statement instead of a query of its own.

    `columns` are extra select items (each aliased, so they cannot shadow the key's); `joins`
    are LEFT JOINs that may use `t` (the team in the path) and `k` (the key). A read that
    only needs the team is then one round trip per request, not two. The values reach the
    endpoint as `RequestContext.prefetched`; for a request with no such team the row is
    answered 404 before any endpoint runs.
    """

    columns: str
    joins: str
