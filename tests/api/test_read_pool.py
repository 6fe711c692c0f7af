"""The read pool (app/core/read_pool.py) on the real service database: it never opens more
connections than its size, hands connections to waiters, replaces connections the server
dropped, and loses no connection to a cancelled statement."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from app.core.read_pool import ReadPool
from app.settings import Settings, to_plain_dsn


@pytest.fixture
async def pool(settings: Settings):
    name = f"read-pool-test-{uuid.uuid4().hex[:8]}"
    opened: list[asyncpg.Connection] = []

    async def connect() -> asyncpg.Connection:
        connection = await asyncpg.connect(
            to_plain_dsn(settings.database_url), server_settings={"application_name": name}
        )
        opened.append(connection)
        return connection

    reads = ReadPool(connect, size=3)
    reads.test_name = name  # type: ignore[attr-defined]
    reads.test_opened = opened  # type: ignore[attr-defined]
    yield reads
    await reads.close()
    for connection in opened:
        connection.terminate()


async def _backends(settings: Settings, name: str) -> list[int]:
    admin = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", name
        )
        return [r["pid"] for r in rows]
    finally:
        await admin.close()


async def test_twenty_concurrent_statements_share_three_connections(pool, settings):
    results = await asyncio.gather(
        *(pool.fetchrow("SELECT $1::int AS n, pg_sleep(0.05)", i) for i in range(20))
    )
    assert [r["n"] for r in results] == list(range(20))
    assert len(pool.test_opened) == 3
    assert len(await _backends(settings, pool.test_name)) == 3


async def test_a_connection_the_server_dropped_is_replaced(pool, settings):
    await asyncio.gather(*(pool.fetchrow("SELECT pg_sleep(0.02)") for _ in range(3)))
    admin = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        for pid in await _backends(settings, pool.test_name):
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    for i in range(5):
        row = await pool.fetchrow("SELECT $1::int AS n", i)
        assert row is not None and row["n"] == i
    assert 1 <= len(await _backends(settings, pool.test_name)) <= 3


async def test_a_cancelled_statement_loses_no_connection(pool, settings):
    slow = [asyncio.create_task(pool.fetchrow("SELECT pg_sleep(5)")) for _ in range(3)]
    waiting = [asyncio.create_task(pool.fetchrow("SELECT 1 AS one")) for _ in range(4)]
    await asyncio.sleep(0.3)
    for task in slow:
        task.cancel()
    done = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [r["one"] for r in done] == [1, 1, 1, 1]
    assert all(task.cancelled() for task in slow)
    # The pool still answers many statements with at most its three connections, and the
    # cancelled statements stop on the server (asyncpg sends it a cancel request) long before
    # their 5 s would have run out.
    await asyncio.gather(*(pool.fetchrow("SELECT 1") for _ in range(30)))
    for _ in range(40):
        if len(await _backends(settings, pool.test_name)) <= 3:
            break
        await asyncio.sleep(0.05)
    assert len(await _backends(settings, pool.test_name)) <= 3


async def test_an_error_the_server_answers_keeps_the_connection(pool):
    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await pool.fetchrow("SELECT 1 / 0")
    assert (await pool.fetchrow("SELECT 2 AS two"))["two"] == 2
    assert len(pool.test_opened) == 1
