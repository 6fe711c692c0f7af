"""The framework's limit: a raw ASGI app doing one asyncpg SELECT from a pool per request.

Run under the same uvicorn settings as the service by bench/load.py, so the ratio
service/bare shows what our stack (FastAPI, auth, SQLAlchemy, the action itself) costs.
"""

from __future__ import annotations

import json
import os
from typing import Any

import asyncpg

_pool: asyncpg.Pool | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _pool
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _pool = await asyncpg.create_pool(
                    os.environ["BARE_DATABASE_URL"], min_size=5, max_size=10
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _pool is not None:
                    await _pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _pool is not None
    team_id = int(os.environ.get("BARE_TEAM_ID", "1"))
    async with _pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, name, timezone FROM teams WHERE id = $1", team_id)
    body = json.dumps(dict(row) if row else {}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
