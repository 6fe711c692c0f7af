"""The "same-work" limits: what `running_activity` and `job_stats` do, minus our stack.

A plain Starlette app with an asyncpg pool (the same no-reset pool as the service's read pool)
that, per request, runs the very statements the service runs — the authentication statement
for the presented key (`app.pipeline.auth.auth_query`), then the action's own statement
(`app.services.pipelines.activity.activity_sql`/`activity_params`,
`app.services.pipelines.stats.stats_statement`) — and JSON-encodes the rows. No FastAPI, no
dependency injection, no ORM, no pydantic, no rate limiter. bench/load.py measures the service
against it in the same run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.core.context import TeamRef
from app.pipeline.auth import TEAM_BY_ENVIRONMENT, auth_query
from app.services.identity.keys import hash_key
from app.services.pipelines.activity import (
    ActivityKind,
    ActivityQuery,
    activity_params,
    activity_sql,
)
from app.services.pipelines.stats import stats_statement

_AUTH = auth_query(TEAM_BY_ENVIRONMENT)
_NAMED = re.compile(r"(?<!:):([a-z_]+)\b")


def positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQLAlchemy `text()` (`:name`) -> asyncpg (`$n`), in order of first use."""
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return _NAMED.sub(number, sql), [params[n] for n in names]


async def _keep_session(connection: asyncpg.Connection) -> None:
    pass


async def _auth(request: Request) -> asyncpg.Record:
    pool: asyncpg.Pool = request.app.state.pool
    key = request.headers.get("authorization", "").partition(" ")[2]
    row = await pool.fetchrow(_AUTH, hash_key(key), int(os.environ["BARE_TEAM_ID"]))
    assert row is not None and row["team_id"] is not None
    return row


def _json(rows: list[asyncpg.Record]) -> Response:
    body = json.dumps([dict(r) for r in rows], default=str, separators=(",", ":"))
    return Response(body, media_type="application/json")


async def running_activity(request: Request) -> Response:
    row = await _auth(request)
    query = ActivityQuery(limit=20, offset=0, cutoff_days=30, kind=ActivityKind.ALL, running=True)
    sql, args = positional(
        activity_sql(query), activity_params(row["team_id"], query, datetime.now(UTC))
    )
    return _json(await request.app.state.pool.fetch(sql, *args))


async def job_stats(request: Request) -> Response:
    row = await _auth(request)
    team = TeamRef(
        id=row["team_id"],
        project_id=row["project_id"],
        organization_id=row["organization_id"],
        name=row["team_name"],
        timezone=row["timezone"],
        is_primary=row["is_primary"],
        created_at=row["team_created_at"],
    )
    _, sql, params = stats_statement(team, 7, datetime.now(UTC))
    text, args = positional(sql, params)
    return _json(await request.app.state.pool.fetch(text, *args))


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = pool = await asyncpg.create_pool(
        os.environ["BARE_DATABASE_URL"],
        min_size=0,
        max_size=10,
        reset=_keep_session,
        max_inactive_connection_lifetime=5,
    )
    try:
        yield
    finally:
        await pool.close()


async def healthz(request: Request) -> Response:
    return Response("{}", media_type="application/json")


app = Starlette(
    routes=[
        Route("/running_activity", running_activity),
        Route("/job_stats", job_stats),
        Route("/healthz", healthz),
    ],
    lifespan=_lifespan,
)
