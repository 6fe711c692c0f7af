"""Fixtures of the fault-injection scenarios: servers of their own, so stopping them hurts nobody.

- `service_db_url`: a freshly migrated service database (on the test PostgreSQL server) for one
  module. A worker's reconciler re-sends the job of every unfinished warehouse it can see, so a
  scenario with its own worker gets a database where only its own warehouses live.
- `RedisServer`: a `redis-server` child process without persistence, stopped by its PID and
  started again on the same port (so it comes back empty, as after a crash).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.settings import Settings
from tests.support.faults import RedisServer
from tests.support.scratch import scratch_database


@pytest.fixture(scope="module")
async def service_db_url(settings: Settings) -> AsyncIterator[str]:
    async with scratch_database(settings, "wh_faults") as url:
        yield url


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.cleanup()
