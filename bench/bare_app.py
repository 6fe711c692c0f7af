"""The framework's limit: one asyncpg SELECT from a pool per request, in two forms.

- `app`: raw ASGI, nothing between uvicorn and the query (the strictest floor);
- `starlette_app`: a plain Starlette app with one route (the framework FastAPI is built on).

bench/load.py runs both under the same uvicorn settings as the service, so the ratio
service/bare shows what our stack (FastAPI, auth, rate limiting, the action itself) costs.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_pool: asyncpg.Pool | None = None
_QUERY = "SELECT id, name, timezone FROM teams WHERE id = $1"


async def _keep_session(connection: asyncpg.Connection) -> None:
    pass


async def _open_pool() -> asyncpg.Pool:
    # Same size and no-op reset as the service's read pool (app/db.py), so the limit is not
    # slowed by a reset round trip the service does not pay. Idle connections close after 5 s:
    # bench/load.py keeps every server up while it measures the others, and PostgreSQL's
    # connection limit is shared.
    return await asyncpg.create_pool(
        os.environ["BARE_DATABASE_URL"],
        min_size=0,
        max_size=10,
        reset=_keep_session,
        max_inactive_connection_lifetime=5,
    )


def _team_id() -> int:
    return int(os.environ.get("BARE_TEAM_ID", "1"))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await _open_pool()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _pool is not None
    async with _pool.acquire() as conn:
        row = await conn.fetchrow(_QUERY, _team_id())
    body = json.dumps(dict(row) if row else {}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _team(request: Request) -> JSONResponse:
    pool: asyncpg.Pool = request.app.state.pool
    row = await pool.fetchrow(_QUERY, _team_id())
    return JSONResponse(dict(row) if row else {})


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = pool = await _open_pool()
    try:
        yield
    finally:
        await pool.close()


starlette_app = Starlette(routes=[Route("/", _team)], lifespan=_lifespan)
