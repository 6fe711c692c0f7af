"""A scratch database on the test server, for tests that need a service database of their own
(a fleet of their own, an outage of their own, a `warehouse dev` of their own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.core.migrate import migrate_database
from app.settings import Settings, to_plain_dsn, with_database


async def _on_server(server: str, statement: str) -> None:
    conn = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(
    settings: Settings, prefix: str, *, migrated: bool = True
) -> AsyncIterator[str]:
    """Create `<prefix>_<random>` (migrated, unless told not to), yield its URL, drop it."""
    server = to_plain_dsn(settings.database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _on_server(server, f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    try:
        if migrated:
            await asyncio.to_thread(migrate_database, url)
        yield url
    finally:
        await _on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
