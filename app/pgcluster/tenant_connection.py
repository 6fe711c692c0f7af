"""Connections to one organization's warehouse database as the cluster admin.

A request that touches the warehouse (creating an environment's tables, appending rows,
looking up property values) holds one connection for the duration of that work only. Without a
`TenantPools` the connection is opened and closed per use; with one (the API keeps one on its
state), it comes from a small pool per warehouse database, so a steady stream of ingest
batches does not pay a connection (and its password handshake) per batch. Pools idle for
`IDLE_SECONDS` are closed. Statements and lock waits are bounded, so a busy warehouse makes a
request fail fast instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.core.errors import Conflict
from app.pgcluster.sql import database_dsn

CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000
POOL_SIZE = 4
IDLE_SECONDS = 120.0
_SERVER_SETTINGS = {
    "application_name": "warehouse-api",
    "statement_timeout": str(STATEMENT_TIMEOUT_MS),
    "lock_timeout": str(LOCK_TIMEOUT_MS),
}


class WarehouseDatabaseMissing(Conflict):
    """The warehouse record says `ready` but its database is gone (being torn down)."""

    default_detail = "The managed warehouse's database does not exist; it may be being deleted."


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (RESET ALL, UNLISTEN, CLOSE ALL, advisory unlock):
    a round trip per batch that resets nothing, since what runs on these connections (COPY,
    the ingest staging table, DDL in transactions) sets no session settings, listens, keeps no
    cursors and takes no session-level advisory locks. asyncpg still rolls back a transaction
    left open before calling this, and the staging table is meant to outlive the release."""


class TenantPools:
    """Small asyncpg pools, one per warehouse database DSN, opened on first use."""

    def __init__(self) -> None:
        self._pools: dict[str, tuple[asyncpg.Pool, float]] = {}

    async def pool(self, dsn: str) -> asyncpg.Pool:
        now = time.monotonic()
        await self._close_idle(now)
        entry = self._pools.get(dsn)
        if entry is None:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=0,
                max_size=POOL_SIZE,
                timeout=CONNECT_TIMEOUT_SECONDS,
                max_inactive_connection_lifetime=IDLE_SECONDS,
                server_settings=_SERVER_SETTINGS,
                reset=_keep_session,
            )
        else:
            pool = entry[0]
        self._pools[dsn] = (pool, now)
        return pool

    async def _close_idle(self, now: float) -> None:
        for dsn, (pool, used) in list(self._pools.items()):
            if now - used > IDLE_SECONDS:
                del self._pools[dsn]
                await pool.close()

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool, _ in pools.values():
            await pool.close()


@asynccontextmanager
async def tenant_database(
    admin_dsn: str, database_name: str, *, pools: TenantPools | None = None
) -> AsyncIterator[Any]:
    """An asyncpg connection to `database_name`, as the admin of its cluster (`admin_dsn`)."""
    dsn = database_dsn(admin_dsn, database_name)
    if pools is not None:
        try:
            async with (await pools.pool(dsn)).acquire() as conn:
                yield conn
            return
        except asyncpg.exceptions.InvalidCatalogNameError as exc:
            raise WarehouseDatabaseMissing() from exc
    try:
        conn = await asyncpg.connect(
            dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=_SERVER_SETTINGS
        )
    except asyncpg.exceptions.InvalidCatalogNameError as exc:
        raise WarehouseDatabaseMissing() from exc
    try:
        yield conn
    finally:
        await conn.close()
