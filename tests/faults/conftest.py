"""Fixtures of the fault-injection scenarios: servers of their own, so stopping them hurts nobody.

- `service_db_url`: a freshly migrated service database (on the test PostgreSQL server) for one
  module. A worker's reconciler re-sends the job of every unfinished warehouse it can see, so a
  scenario with its own worker gets a database where only its own warehouses live.
- `RedisServer`: a `redis-server` child process without persistence, stopped by its PID and
  started again on the same port (so it comes back empty, as after a crash).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.core.migrate import migrate_database
from app.settings import Settings, to_plain_dsn, with_database
from tests.support.faults import RedisServer


@pytest.fixture(scope="module")
async def service_db_url(settings: Settings) -> AsyncIterator[str]:
    server = to_plain_dsn(settings.database_url)
    name = f"wh_faults_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server, name)
    await asyncio.to_thread(migrate_database, url)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.cleanup()
