"""Test set-up: a tenant's managed warehouse as the provisioning worker would leave it.

STAND-IN FOR REAL PROVISIONING. The provisioning API and worker live on another branch, so
these helpers reproduce the end state of a successful provision directly:

- on the password-checking `warehouse_cluster`: a real database owned by a real LOGIN role
  (with a password), `CONNECT` revoked from PUBLIC;
- in the service database: the `ManagedWarehouse` row (state and all four sub-states `ready`)
  and the provisioning environment's membership (`table_suffix = table_name`), whose tables are
  created with `ensure_team_tables` as the worker's last step before `ready`.

`Warehouses.record(...)` writes only the service-database row, for the states in which no
database exists (pending, provisioning, failed, deleting, deleted).

Everything created on the cluster is dropped when the test ends. Once provisioning is merged,
`Warehouses.ready()` should call `provision` and wait for the worker instead.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.embedded import PasswordCheckingCluster
from app.models import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.warehouse.sql import database_dsn, quote_ident
from app.warehouse.team_tables import TeamTables, ensure_team_tables
from tests.conftest import Tenant


@dataclass
class ReadyWarehouse:
    database_name: str
    login_role: str
    password: str
    port: int

    def login_dsn(self) -> str:
        return (
            f"postgresql://{self.login_role}:{self.password}@127.0.0.1:{self.port}/"
            f"{self.database_name}"
        )

    async def login(self) -> Any:
        """A connection as the warehouse's login role, checked by password."""
        return await asyncpg.connect(self.login_dsn())


class Warehouses:
    def __init__(self, app: FastAPI, cluster: PasswordCheckingCluster) -> None:
        self.app = app
        self.cluster = cluster
        self._created: list[str] = []

    async def admin(self, database: str = "postgres") -> Any:
        return await asyncpg.connect(database_dsn(self.cluster.admin_dsn, database))

    async def record(
        self,
        tenant: Tenant,
        *,
        state: str,
        database_name: str | None = None,
        table_name: str | None = "main",
        tables_created: bool = False,
    ) -> str:
        """Write the warehouse row (and the provisioning environment's membership)."""
        name = database_name or f"wh-{uuid.uuid4().hex[:12]}"
        now = datetime.now(UTC)
        async with self.app.state.sessionmaker() as session:
            session.add(
                ManagedWarehouse(
                    organization_id=uuid.UUID(tenant.org_id),
                    database_name=name,
                    login_role=name.replace("-", "_"),
                    state=state,
                    s3_state=state,
                    metadata_store_state=state,
                    identity_state=state,
                    secrets_state=state,
                    ready_at=now if state == WarehouseState.READY else None,
                )
            )
            if table_name is not None:
                session.add(
                    WarehouseTeamMembership(
                        team_id=tenant.env_id,
                        organization_id=uuid.UUID(tenant.org_id),
                        table_suffix=table_name,
                        tables_created_at=now if tables_created else None,
                    )
                )
            await session.commit()
        return name

    async def set_state(self, tenant: Tenant, state: str) -> None:
        async with self.app.state.sessionmaker() as session:
            wh = (
                await session.execute(
                    select(ManagedWarehouse).where(
                        ManagedWarehouse.organization_id == uuid.UUID(tenant.org_id)
                    )
                )
            ).scalar_one()
            wh.state = state
            await session.commit()

    async def ready(self, tenant: Tenant, *, table_name: str | None = "main") -> ReadyWarehouse:
        """A `ready` warehouse for the tenant's organization, as after provisioning."""
        name = f"wh-{uuid.uuid4().hex[:12]}"
        role = name.replace("-", "_")
        password = secrets.token_urlsafe(24)
        self._created.append(name)
        conn = await self.admin()
        try:
            # Test-only DDL; the password is URL-safe, so it needs no escaping.
            await conn.execute(
                f"CREATE ROLE {quote_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"PASSWORD '{password}'"
            )
            await conn.execute(f"CREATE DATABASE {quote_ident(name)} OWNER {quote_ident(role)}")
            await conn.execute(f"REVOKE CONNECT ON DATABASE {quote_ident(name)} FROM PUBLIC")
        finally:
            await conn.close()
        await self.record(
            tenant,
            state=WarehouseState.READY,
            database_name=name,
            table_name=table_name,
            tables_created=table_name is not None,
        )
        if table_name is not None:
            db = await self.admin(name)
            try:
                tables = TeamTables.for_layout(table_suffix=table_name, schema_name=None)
                await ensure_team_tables(db, owner_role=role, tables=tables)
            finally:
                await db.close()
        return ReadyWarehouse(name, role, password, self.cluster.port)

    async def membership(self, env_id: int) -> WarehouseTeamMembership | None:
        async with self.app.state.sessionmaker() as session:
            return (
                await session.execute(
                    select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == env_id)
                )
            ).scalar_one_or_none()

    async def cleanup(self) -> None:
        conn = await self.admin()
        try:
            for name in self._created:
                await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
                await conn.execute(f"DROP ROLE IF EXISTS {quote_ident(name.replace('-', '_'))}")
        finally:
            await conn.close()


@pytest.fixture
async def warehouses(
    app: FastAPI, warehouse_cluster: PasswordCheckingCluster
) -> AsyncIterator[Warehouses]:
    helper = Warehouses(app, warehouse_cluster)
    try:
        yield helper
    finally:
        await helper.cleanup()
