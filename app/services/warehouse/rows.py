"""Appending rows to an environment's warehouse tables (internal API, API.md §6).

Rows are checked and turned into COPY records in one pass (`ingest.parse_batch`) and stored by
`app.pgcluster.ingest.copy_rows` (COPY straight into the table when every row is new, else
through a staging table with ON CONFLICT DO NOTHING), so a row pushed twice (same uuid/id) is
stored once and `inserted` counts only new rows.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.models import ManagedWarehouse, Team, WarehouseState, WarehouseTeamMembership
from app.pgcluster.ingest import copy_rows
from app.pgcluster.tenant_connection import TenantPools, tenant_database
from app.services.fleet.backends import admin_dsn_of
from app.services.warehouse.ingest import parse_batch
from app.services.warehouse.membership import WarehouseMembershipService, tables_of
from app.settings import Settings

NO_MEMBERSHIP = (
    "This environment has no warehouse backfill or onboarding yet: call enable_backfill or "
    "onboard-team first"
)


def _not_ready(state: str | None) -> str:
    if state is None:
        return "The environment's warehouse tables do not exist yet: no managed warehouse"
    return f"The environment's warehouse tables do not exist yet: the managed warehouse is {state}"


class WarehouseRowsService:
    def __init__(
        self, session: AsyncSession, settings: Settings, pools: TenantPools | None = None
    ) -> None:
        self.session = session
        self.settings = settings
        self.pools = pools

    async def append(self, team_id: int, table: str, raw_rows: list[Any]) -> int:
        # The environment, its membership and its organization's warehouse in one statement.
        found = (
            await self.session.execute(
                select(Team.id, WarehouseTeamMembership, ManagedWarehouse)
                .outerjoin(WarehouseTeamMembership, WarehouseTeamMembership.team_id == Team.id)
                .outerjoin(
                    ManagedWarehouse,
                    ManagedWarehouse.organization_id == WarehouseTeamMembership.organization_id,
                )
                .where(Team.id == team_id)
            )
        ).one_or_none()
        if found is None:
            raise NotFound("Environment not found")
        rows = parse_batch(table, raw_rows)
        _, membership, warehouse = found
        if membership is None:
            raise Conflict(NO_MEMBERSHIP)
        if warehouse is None or warehouse.state != WarehouseState.READY:
            raise Conflict(_not_ready(warehouse.state if warehouse else None))
        if not rows:
            return 0

        memberships = WarehouseMembershipService(self.session, self.settings)
        if membership.tables_created_at is None:
            await memberships.ensure_tables(warehouse, membership)
        tables = tables_of(membership)
        admin_dsn = await admin_dsn_of(self.session, self.settings, warehouse.cluster)
        name = tables.events if table == "events" else tables.persons
        distinct = len({row[0] for row in rows}) == len(rows)
        async with tenant_database(admin_dsn, warehouse.database_name, pools=self.pools) as conn:
            try:
                return await copy_rows(
                    conn, tables.schema, name, table, rows, distinct_keys=distinct
                )
            except (
                asyncpg.exceptions.UndefinedTableError,
                asyncpg.exceptions.InvalidSchemaNameError,
            ):
                pass
        # The tables were dropped behind our back (e.g. the warehouse was rebuilt): recreate.
        await memberships.ensure_tables(warehouse, membership)
        async with tenant_database(admin_dsn, warehouse.database_name, pools=self.pools) as conn:
            return await copy_rows(conn, tables.schema, name, table, rows, distinct_keys=distinct)
