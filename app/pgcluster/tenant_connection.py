"""Connections to one organization's warehouse database as the cluster admin.

Opened per use and always closed: a request that touches the warehouse (creating an
environment's tables, appending rows, looking up property values) holds one connection for the
duration of that work only. Statements and lock waits are bounded, so a busy warehouse makes a
request fail fast instead of hanging.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.core.errors import Conflict
from app.pgcluster.sql import database_dsn
from app.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5.0
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000


class WarehouseDatabaseMissing(Conflict):
    """The warehouse record says `ready` but its database is gone (being torn down)."""

    default_detail = "The managed warehouse's database does not exist; it may be being deleted."


@asynccontextmanager
async def tenant_database(settings: Settings, database_name: str) -> AsyncIterator[Any]:
    """An asyncpg connection to `database_name` on the warehouse cluster, as its admin."""
    try:
        conn = await asyncpg.connect(
            database_dsn(settings.warehouse_admin_dsn, database_name),
            timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={
                "application_name": "warehouse-api",
                "statement_timeout": str(STATEMENT_TIMEOUT_MS),
                "lock_timeout": str(LOCK_TIMEOUT_MS),
            },
        )
    except asyncpg.exceptions.InvalidCatalogNameError as exc:
        raise WarehouseDatabaseMissing() from exc
    try:
        yield conn
    finally:
        await conn.close()
