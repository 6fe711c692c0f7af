"""Appending rows to an environment's warehouse tables (internal API, API.md §6).

Rows are checked and turned into COPY records in one pass (`ingest.parse_batch`) and stored by
`app.pgcluster.ingest.copy_rows` (COPY straight into the table when every row is new, else
through a staging table with ON CONFLICT DO NOTHING), so a row pushed twice (same uuid/id) is
stored once and `inserted` counts only new rows.

A batch reads the service database once: the environment, its membership, its organization's
warehouse and that warehouse's cluster in one statement on the read pool (no transaction to
begin and commit). Only an environment whose tables are not created yet (or were dropped) goes
through the ORM session, which records their creation.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.read_pool import ReadPool
from app.models import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.pgcluster.ingest import copy_rows
from app.pgcluster.team_tables import TeamTables
from app.pgcluster.tenant_connection import TenantPools, tenant_database
from app.services.fleet.backends import cluster_dsn
from app.services.warehouse.ingest import parse_batch
from app.services.warehouse.membership import WarehouseMembershipService
from app.settings import Settings

NO_MEMBERSHIP = (
    "This environment has no warehouse backfill or onboarding yet: call enable_backfill or "
    "onboard-team first"
)
# LEFT JOINs: no row is an unknown environment; NULL membership or warehouse columns say
# which of the two is missing.
_LOOKUP = """
SELECT m.team_id AS member, m.table_suffix, m.schema_name,
       m.tables_created_at IS NOT NULL AS tables_created,
       w.state, w.database_name, w.cluster, c.admin_url_ciphertext
FROM teams t
LEFT JOIN warehouse_team_memberships m ON m.team_id = t.id
LEFT JOIN managed_warehouses w ON w.organization_id = m.organization_id
LEFT JOIN warehouse_clusters c ON c.name = w.cluster
WHERE t.id = $1
"""
_MOVED_AWAY = (asyncpg.exceptions.UndefinedTableError, asyncpg.exceptions.InvalidSchemaNameError)


def _not_ready(state: str | None) -> str:
    if state is None:
        return "The environment's warehouse tables do not exist yet: no managed warehouse"
    return f"The environment's warehouse tables do not exist yet: the managed warehouse is {state}"


class WarehouseRowsService:
    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        reads: ReadPool,
        pools: TenantPools | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.reads = reads
        self.pools = pools

    async def append(self, team_id: int, table: str, raw_rows: list[Any]) -> int:
        found = await self.reads.fetchrow(_LOOKUP, team_id)
        if found is None:
            raise NotFound("Environment not found")
        rows = parse_batch(table, raw_rows)
        if found["member"] is None:
            raise Conflict(NO_MEMBERSHIP)
        if found["state"] != WarehouseState.READY:
            raise Conflict(_not_ready(found["state"]))
        if not rows:
            return 0

        if not found["tables_created"]:
            await self._ensure_tables(team_id)
        tables = TeamTables.for_layout(
            table_suffix=found["table_suffix"], schema_name=found["schema_name"]
        )
        name = tables.events if table == "events" else tables.persons
        distinct = len(set(map(itemgetter(0), rows))) == len(rows)
        admin_dsn = cluster_dsn(self.settings, found["cluster"], found["admin_url_ciphertext"])
        database = found["database_name"]
        async with tenant_database(admin_dsn, database, pools=self.pools) as conn:
            try:
                return await copy_rows(
                    conn, tables.schema, name, table, rows, distinct_keys=distinct
                )
            except _MOVED_AWAY:
                pass
        # The tables were dropped behind our back (e.g. the warehouse was rebuilt): recreate.
        await self._ensure_tables(team_id)
        async with tenant_database(admin_dsn, database, pools=self.pools) as conn:
            return await copy_rows(conn, tables.schema, name, table, rows, distinct_keys=distinct)

    async def _ensure_tables(self, team_id: int) -> None:
        """Create the environment's tables and record it (in the request's transaction)."""
        membership = (
            await self.session.execute(
                select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == team_id)
            )
        ).scalar_one()
        warehouse = (
            await self.session.execute(
                select(ManagedWarehouse).where(
                    ManagedWarehouse.organization_id == membership.organization_id
                )
            )
        ).scalar_one()
        await WarehouseMembershipService(self.session, self.settings).ensure_tables(
            warehouse, membership
        )
