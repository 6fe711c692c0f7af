"""Connections to one organization's warehouse database as the cluster admin.

Opened per use and always closed: a request that touches the warehouse (creating an
environment's tables, appending rows, looking up property values) holds one connection for the
duration of that work only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.settings import Settings
from app.warehouse.sql import database_dsn

CONNECT_TIMEOUT_SECONDS = 5.0


@asynccontextmanager
async def tenant_database(settings: Settings, database_name: str) -> AsyncIterator[Any]:
    """An asyncpg connection to `database_name` on the warehouse cluster, as its admin."""
    conn = await asyncpg.connect(
        database_dsn(settings.warehouse_admin_dsn, database_name),
        timeout=CONNECT_TIMEOUT_SECONDS,
        server_settings={"application_name": "warehouse-api"},
    )
    try:
        yield conn
    finally:
        await conn.close()
