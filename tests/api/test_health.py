"""Liveness and readiness probes."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.devtools.embedded import free_port
from app.main import create_app
from app.settings import Settings
from tests.support.http import assert_error, client_for
from tests.support.status_recorder import expect


async def test_healthz(client: httpx.AsyncClient):
    r = await client.get("/healthz")
    expect(r, 200)
    assert r.json() == {"status": "ok"}


async def test_readyz_when_dependencies_answer(client: httpx.AsyncClient):
    r = await client.get("/readyz")
    expect(r, 200)
    assert r.json() == {"status": "ok"}


async def test_readyz_503_when_database_unreachable(settings: Settings):
    closed = free_port()  # nothing listens there
    broken = Settings(
        environment="test",
        database_url=f"postgresql://postgres@127.0.0.1:{closed}/nowhere",
        redis_url=settings.redis_url,
        queue_name=settings.queue_name,
        _env_file=None,
    )
    app: FastAPI = create_app(broken)
    async with app.router.lifespan_context(app), client_for(app) as c:
        r = await c.get("/readyz")
        assert_error(r, 503, "unavailable", "The service database does not answer.")
        assert r.json()["type"] == "server_error"
        assert str(closed) not in r.text  # no connection details leak
        # Liveness does not depend on the database.
        expect(await c.get("/healthz"), 200)
