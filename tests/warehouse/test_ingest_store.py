"""Storing a batch (app/pgcluster/ingest.py) against real PostgreSQL: COPY straight in when
every row is new, the exact way otherwise, and `inserted` exact either way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from app.pgcluster.ingest import copy_rows
from app.settings import Settings, to_plain_dsn

TABLE = (
    "(uuid uuid primary key, event text not null, distinct_id text not null, "
    "properties jsonb not null default '{}', timestamp timestamptz not null)"
)


def row(key: uuid.UUID | None = None) -> tuple[Any, ...]:
    return (key or uuid.uuid4(), "pageview", "u1", '{"plan": "pro"}', datetime.now(UTC))


@pytest.fixture
async def schema(settings: Settings) -> AsyncIterator[str]:
    name = f"ingest_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        await conn.execute(f"CREATE SCHEMA {name}; CREATE TABLE {name}.events {TABLE}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


@pytest.fixture
async def connections(settings: Settings) -> AsyncIterator[list[asyncpg.Connection]]:
    conns = [await asyncpg.connect(to_plain_dsn(settings.database_url)) for _ in range(2)]
    try:
        yield conns
    finally:
        for conn in conns:
            await conn.close()


async def count(conn: asyncpg.Connection, schema: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.events"))


async def test_new_rows_sent_again_and_mixed(
    connections: list[asyncpg.Connection], schema: str
) -> None:
    conn = connections[0]
    batch = [row() for _ in range(500)]
    assert await copy_rows(conn, schema, "events", "events", batch, distinct_keys=True) == 500
    assert await copy_rows(conn, schema, "events", "events", batch, distinct_keys=True) == 0
    # Only the middle is stored already: the probe passes, COPY is refused, the exact way counts.
    mixed = [row(), *batch[200:300], row()]
    assert await copy_rows(conn, schema, "events", "events", mixed, distinct_keys=True) == 2
    inside = [batch[0], row(), row()]
    inside.append(inside[1])
    assert await copy_rows(conn, schema, "events", "events", inside, distinct_keys=False) == 2
    assert await count(conn, schema) == 504


async def test_a_batch_caught_in_a_deadlock_is_stored(
    connections: list[asyncpg.Connection], schema: str
) -> None:
    # Another writer holds y (uncommitted) while this batch, going the exact way, holds x and
    # waits for y; the other then waits for x. PostgreSQL ends the deadlock by failing the
    # batch's INSERT (it waited first); the batch runs again and counts exactly.
    other, conn = connections
    x, y = sorted([uuid.uuid4(), uuid.uuid4()])  # the INSERT takes keys in order: x, then y
    transaction = other.transaction()
    await transaction.start()
    await other.copy_records_to_table("events", schema_name=schema, records=[row(y)])
    batch = [row(x), row(y), row()]
    storing = asyncio.create_task(
        copy_rows(conn, schema, "events", "events", batch, distinct_keys=False)
    )
    await asyncio.sleep(0.3)
    await other.copy_records_to_table("events", schema_name=schema, records=[row(x)])
    await transaction.commit()
    assert await storing == 1
    assert await count(conn, schema) == 3
