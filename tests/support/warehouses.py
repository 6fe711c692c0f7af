"""Test set-up: managed warehouses for the membership, rows and property_values tests.

`Warehouses.ready()` provisions for real: it calls `provision` through the API and runs the
worker until the warehouse is `ready`, so the database, login role, password and tables are
exactly what users get. `Warehouses.record(...)` writes only the service-database row, to put
a warehouse in a state (pending, failed, deleting, ...) without a worker moving it on.

Databases and roles created on the cluster are dropped when the test ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.devtools.embedded import PasswordCheckingCluster
from app.models import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.pgcluster.sql import database_dsn, quote_ident
from app.settings import Settings
from tests.support.harness import Tenant
from tests.support.lifecycle import run_burst_worker
from tests.support.status_recorder import expect


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
    def __init__(self, app: FastAPI, cluster: PasswordCheckingCluster, settings: Settings) -> None:
        self.app = app
        self.cluster = cluster
        self.settings = settings
        self._created: list[str] = []
        self._recorded: list[uuid.UUID] = []

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
        self._recorded.append(uuid.UUID(tenant.org_id))
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
        """A `ready` warehouse for the tenant's organization, provisioned through the API.

        With `table_name=None` another environment of the organization provisions it, so the
        tenant's environment has no membership yet.
        """
        name = f"wh-{uuid.uuid4().hex[:12]}"
        env_id = tenant.env_id if table_name else await tenant.add_environment("provisioner")
        suffix = table_name or f"prov_{uuid.uuid4().hex[:8]}"
        r = await tenant.client.post(
            f"/api/environments/{env_id}/data_warehouse/provision/",
            json={"database_name": name, "table_name": suffix},
            headers=tenant.headers,
        )
        expect(r, 202)
        self._created.append(r.json()["username"])
        await run_burst_worker(self.settings)
        status = await tenant.client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
        assert status.json()["state"] == "ready", status.text
        return ReadyWarehouse(name, r.json()["username"], r.json()["password"], self.cluster.port)

    async def membership(self, env_id: int) -> WarehouseTeamMembership | None:
        async with self.app.state.sessionmaker() as session:
            found: WarehouseTeamMembership | None = (
                await session.execute(
                    select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == env_id)
                )
            ).scalar_one_or_none()
            return found

    async def cleanup(self) -> None:
        # Rows written by `record()` have no real resources behind them: make them terminal so
        # a later test's worker (whose reconciler sweeps every live warehouse) leaves them be.
        if self._recorded:
            async with self.app.state.sessionmaker() as session:
                await session.execute(
                    update(ManagedWarehouse)
                    .where(ManagedWarehouse.organization_id.in_(self._recorded))
                    .values(state=WarehouseState.DELETED)
                )
                await session.commit()
        conn = await self.admin()
        try:
            for name in self._created:
                await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
                await conn.execute(f"DROP ROLE IF EXISTS {quote_ident(name)}")
        finally:
            await conn.close()


@pytest.fixture
async def warehouses(
    app: FastAPI, warehouse_cluster: PasswordCheckingCluster, settings: Settings
) -> AsyncIterator[Warehouses]:
    helper = Warehouses(app, warehouse_cluster, settings)
    try:
        yield helper
    finally:
        await helper.cleanup()
