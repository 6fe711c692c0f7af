"""Fixtures of the fault-injection scenarios: servers of their own, so stopping them hurts nobody.

- `service_db_url`: a freshly migrated service database (on the test PostgreSQL server) for one
  module. A worker's reconciler re-sends the job of every unfinished warehouse it can see, so a
  scenario with its own worker gets a database where only its own warehouses live.
- `RedisServer`: a `redis-server` child process without persistence, stopped by its PID and
  started again on the same port (so it comes back empty, as after a crash).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from app.embedded import free_port
from app.settings import Settings, to_plain_dsn, with_database
from tests.conftest import migrate


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
    await asyncio.to_thread(migrate, url)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class RedisServer:
    """A private redis-server on a fixed port: `stop()` (SIGTERM by PID) and `start()` again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="wh-faults-redis-"))
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert self.proc is None, "already running"
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = aioredis.from_url(self.url)
        try:
            for _ in range(200):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.02)
            raise AssertionError("private redis-server did not start")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), 10)
        self.proc = None

    async def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 10)
            self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.cleanup()
