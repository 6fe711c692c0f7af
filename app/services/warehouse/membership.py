"""Environments joining their organization's warehouse: enable_backfill, onboard-team and
check-schema-name (API.md §4.2).

Rules, in order:
1. the name has the §4.1 shape (400);
2. the organization has a warehouse that is not `deleted` (else 400) and not `deleting` (409);
3. write-once per environment: the same layout and name again is an idempotent 200, anything
   else a 400 — this covers `onboard-team` for an environment that already writes to
   `events_<x>` and `enable_backfill` for one onboarded into a schema;
4. a name is used once per organization across both layouts (table suffix or schema), so a name
   another environment holds answers 409; so do the schema names the database reserves.

Membership changes of one organization are serialised by a transaction-scoped advisory lock;
the unique index `(organization_id, coalesce(schema_name, table_suffix))` backs it up against
writers that do not take the lock (a racing loser gets 409, never 500).

Tables are created in the warehouse at once when it is `ready`; otherwise the provisioning
worker creates the tables of every membership as its last step before `ready`. When a
membership slipped past that step (it was added while the worker was finishing), the tables are
created on first use (`ensure_tables`, called by the rows API) or by repeating the call.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import TeamRef
from app.core.errors import Conflict, ServiceUnavailable, ValidationFailed
from app.models import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.pgcluster.team_tables import TeamTables, ensure_team_tables
from app.pgcluster.tenant_connection import tenant_database
from app.services.fleet.backends import admin_dsn_of
from app.services.warehouse.names import (
    reserved_schema_reason,
    validate_schema_name,
    validate_table_name,
)
from app.settings import Settings

NO_WAREHOUSE = "No managed warehouse is provisioned for this organization. Provision one first."
WAREHOUSE_DELETING = (
    "The organization's managed warehouse is being deleted. Provision a new one once it is deleted."
)
WAREHOUSE_BUSY = "The warehouse is busy and the environment's tables could not be created yet."
CHANGED_CONCURRENTLY = (
    "This environment joined the warehouse in a concurrent request. Check warehouse_status."
)


def _name_taken(name: str) -> str:
    return f"The name '{name}' is already used by another environment of this organization"


def _write_once(membership: WarehouseTeamMembership) -> str:
    if membership.schema_name:
        where = f"the schema {membership.schema_name}"
    else:
        where = f"events_{membership.table_suffix}"
    return f"This environment already writes to {where}, and its warehouse tables can't be changed"


def tables_of(membership: WarehouseTeamMembership) -> TeamTables:
    return TeamTables.for_layout(
        table_suffix=membership.table_suffix, schema_name=membership.schema_name
    )


class WarehouseMembershipService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def enable_backfill(
        self, team: TeamRef, table_name: str | None
    ) -> WarehouseTeamMembership:
        suffix = validate_table_name(table_name)
        return await self._join(team, table_suffix=suffix, schema_name=None, attr="table_name")

    async def onboard_team(self, team: TeamRef, schema_name: str | None) -> WarehouseTeamMembership:
        schema = validate_schema_name(schema_name)
        return await self._join(team, table_suffix=None, schema_name=schema, attr="schema_name")

    async def schema_name_available(self, organization_id: uuid.UUID, name: str) -> bool:
        if reserved_schema_reason(name):
            return False
        return await self._holder_of(organization_id, name) is None

    async def membership_of(self, team_id: int) -> WarehouseTeamMembership | None:
        return (
            await self.session.execute(
                select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == team_id)
            )
        ).scalar_one_or_none()

    async def warehouse_of(self, organization_id: uuid.UUID) -> ManagedWarehouse | None:
        return (
            await self.session.execute(
                select(ManagedWarehouse).where(ManagedWarehouse.organization_id == organization_id)
            )
        ).scalar_one_or_none()

    async def ensure_tables(
        self, warehouse: ManagedWarehouse, membership: WarehouseTeamMembership
    ) -> None:
        """Create the membership's tables in the (ready) warehouse and record when."""
        await self._lock(membership.organization_id)
        async with tenant_database(
            await admin_dsn_of(self.session, self.settings, warehouse.cluster),
            warehouse.database_name,
        ) as conn:
            try:
                await ensure_team_tables(
                    conn, owner_role=warehouse.login_role, tables=tables_of(membership)
                )
            except (
                asyncpg.exceptions.LockNotAvailableError,
                asyncpg.exceptions.QueryCanceledError,
            ) as exc:
                raise ServiceUnavailable(WAREHOUSE_BUSY, headers={"Retry-After": "5"}) from exc
        membership.tables_created_at = datetime.now(UTC)
        await self.session.flush()

    async def _join(
        self,
        team: TeamRef,
        *,
        table_suffix: str | None,
        schema_name: str | None,
        attr: str,
    ) -> WarehouseTeamMembership:
        name = schema_name or table_suffix
        assert name is not None
        await self._lock(team.organization_id)
        warehouse = await self.warehouse_of(team.organization_id)
        if warehouse is None or warehouse.state == WarehouseState.DELETED:
            raise ValidationFailed(NO_WAREHOUSE)
        if warehouse.state == WarehouseState.DELETING:
            raise Conflict(WAREHOUSE_DELETING)

        membership = await self.membership_of(team.id)
        if membership is not None:
            if membership.table_suffix != table_suffix or membership.schema_name != schema_name:
                raise ValidationFailed(_write_once(membership), attr=attr)
            membership.backfill_enabled = True
        else:
            membership = await self._add(team, table_suffix, schema_name, name)

        if warehouse.state == WarehouseState.READY and membership.tables_created_at is None:
            await self.ensure_tables(warehouse, membership)
        return membership

    async def _add(
        self, team: TeamRef, table_suffix: str | None, schema_name: str | None, name: str
    ) -> WarehouseTeamMembership:
        if schema_name is not None:
            reason = reserved_schema_reason(schema_name)
            if reason:
                raise Conflict(reason)
        if await self._holder_of(team.organization_id, name) is not None:
            raise Conflict(_name_taken(name))
        membership = WarehouseTeamMembership(
            team_id=team.id,
            organization_id=team.organization_id,
            table_suffix=table_suffix,
            schema_name=schema_name,
            backfill_enabled=True,
        )
        self.session.add(membership)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # Someone who does not take the lock won the race for the name or the environment.
            if "uq_warehouse_team_memberships_team_id" in str(exc.orig):
                raise Conflict(CHANGED_CONCURRENTLY) from exc
            raise Conflict(_name_taken(name)) from exc
        return membership

    async def _holder_of(self, organization_id: uuid.UUID, name: str) -> int | None:
        """The environment of the organization using `name` as table suffix or schema."""
        team_id: int | None = (
            await self.session.execute(
                select(WarehouseTeamMembership.team_id)
                .where(
                    WarehouseTeamMembership.organization_id == organization_id,
                    or_(
                        WarehouseTeamMembership.schema_name == name,
                        WarehouseTeamMembership.table_suffix == name,
                    ),
                )
                .limit(1)
            )
        ).scalar_one_or_none()
        return team_id

    async def _lock(self, organization_id: uuid.UUID) -> None:
        # Re-entrant within the transaction, released at commit or rollback. Reads after it
        # (READ COMMITTED) see whatever the previous holder committed.
        await self.session.execute(
            select(
                func.pg_advisory_xact_lock(
                    func.hashtextextended(f"warehouse-membership:{organization_id}", 0)
                )
            )
        )
