"""Fleet tests: more throwaway password-checking clusters next to the suite's own one.

- `second_cluster`, `third_cluster`: started once per session, like the suite's own cluster.
- `fleet` (per test): `fleet-b` and `fleet-c` registered on the session's app; see `Fleet`.
- `fleet_app` (module): an app on a migrated service database of the module's own, so its
  placements never meet another test's warehouses; its configured cluster (bootstrapped as
  `default`) is the suite's, and the tests register the others through the internal API.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings, with_database
from tests.support.harness import INTERNAL_HEADERS, make_app
from tests.support.lifecycle import derive_settings
from tests.support.scratch import scratch_database
from tests.support.status_recorder import expect


def _cluster(prefix: str) -> Iterator[PasswordCheckingCluster]:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def second_cluster() -> Iterator[PasswordCheckingCluster]:
    yield from _cluster("wh-cluster-b-")


@pytest.fixture(scope="session")
def third_cluster() -> Iterator[PasswordCheckingCluster]:
    yield from _cluster("wh-cluster-c-")


# -- a registered fleet -------------------------------------------------------------------


DEFAULT = "default"
B = "fleet-b"
C = "fleet-c"


class Fleet:
    """The suite's cluster (`default`) plus `fleet-b` and `fleet-c`, registered through the API.

    Tests choose which clusters take new warehouses with `only()`; at the end b and c are
    paused again and `default` is active, so tests elsewhere keep provisioning on `default`.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        app: Any,
        clusters: dict[str, PasswordCheckingCluster],
    ) -> None:
        self.client = client
        self.app = app
        self.clusters = clusters
        self.api = True

    async def register(self) -> None:
        for name, cluster in self.clusters.items():
            if name == DEFAULT:
                continue
            r = await self.client.post(
                "/internal/clusters",
                json={
                    "name": name,
                    "admin_url": cluster.admin_dsn,
                    "public_host": "127.0.0.1",
                    "public_port": cluster.port,
                },
                headers=INTERNAL_HEADERS,
            )
            if r.status_code in (404, 405):  # no registry API yet: write the rows
                self.api = False
                await self._insert(name, cluster)
                continue
            assert r.status_code in (200, 201), r.text

    async def _insert(self, name: str, cluster: PasswordCheckingCluster) -> None:
        from sqlalchemy.dialects.postgresql import insert

        from app.models import WarehouseCluster
        from app.services.fleet.bootstrap import admin_url_box

        box = admin_url_box(self.app.state.settings)
        async with self.app.state.sessionmaker() as session:
            await session.execute(
                insert(WarehouseCluster)
                .values(
                    name=name,
                    admin_url_ciphertext=box.encrypt(cluster.admin_dsn.encode()),
                    public_host="127.0.0.1",
                    public_port=cluster.port,
                    labels={},
                )
                .on_conflict_do_nothing()
            )
            await session.commit()

    async def patch(self, name: str, **changes: Any) -> dict[str, Any]:
        if self.api:
            r = await self.client.patch(
                f"/internal/clusters/{name}", json=changes, headers=INTERNAL_HEADERS
            )
            expect(r, 200)
            body: dict[str, Any] = r.json()
            return body
        from sqlalchemy import update

        from app.models import WarehouseCluster

        async with self.app.state.sessionmaker() as session:
            await session.execute(
                update(WarehouseCluster).where(WarehouseCluster.name == name).values(**changes)
            )
            await session.commit()
        return await self.get(name)

    async def get(self, name: str) -> dict[str, Any]:
        if self.api:
            r = await self.client.get(f"/internal/clusters/{name}", headers=INTERNAL_HEADERS)
            expect(r, 200)
            body: dict[str, Any] = r.json()
            return body
        from sqlalchemy import func, select

        from app.models import ManagedWarehouse, WarehouseCluster

        async with self.app.state.sessionmaker() as session:
            row = await session.get(WarehouseCluster, name)
            assert row is not None
            count = await session.scalar(
                select(func.count())
                .select_from(ManagedWarehouse)
                .where(ManagedWarehouse.cluster == name, ManagedWarehouse.state != "deleted")
            )
            return {
                "name": name,
                "state": row.state,
                "max_warehouses": row.max_warehouses,
                "warehouses": int(count or 0),
                "healthy": row.healthy,
            }

    async def set_healthy(self, name: str, healthy: bool) -> None:
        from sqlalchemy import update

        from app.models import WarehouseCluster

        async with self.app.state.sessionmaker() as session:
            await session.execute(
                update(WarehouseCluster)
                .where(WarehouseCluster.name == name)
                .values(healthy=healthy)
            )
            await session.commit()

    async def only(self, *names: str) -> None:
        """These clusters take new warehouses; the others are paused."""
        for name in self.clusters:
            state = (await self.get(name))["state"]
            wanted = "active" if name in names else "paused"
            if state in ("active", "paused", "drained") and state != wanted:
                await self.patch(name, state=wanted)

    async def restore(self) -> None:
        for name in self.clusters:
            wanted = "active" if name == DEFAULT else "paused"
            await self.patch(name, state=wanted, max_warehouses=500)

    async def where(self, org_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/internal/warehouses/{org_id}", headers=INTERNAL_HEADERS)
        expect(r, 200)
        body: dict[str, Any] = r.json()
        return body

    async def admin(self, name: str, database: str = "postgres") -> Any:
        return await asyncpg.connect(with_database(self.clusters[name].admin_dsn, database))

    async def holds(self, name: str, database: str) -> tuple[bool, bool]:
        conn = await self.admin(name)
        try:
            db = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            role = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", database)
            return bool(db), bool(role)
        finally:
            await conn.close()

    async def login(self, name: str, database: str, password: str) -> Any:
        return await asyncpg.connect(
            host="127.0.0.1",
            port=self.clusters[name].port,
            user=database,
            password=password,
            database=database,
            timeout=5,
        )

    async def drop_everywhere(self, database: str) -> None:
        for name in self.clusters:
            conn = await self.admin(name)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                await conn.execute(f'DROP ROLE IF EXISTS "{database}"')
            finally:
                await conn.close()


@pytest.fixture
async def fleet(
    client: httpx.AsyncClient,
    app: Any,
    warehouse_cluster: PasswordCheckingCluster,
    second_cluster: PasswordCheckingCluster,
    third_cluster: PasswordCheckingCluster,
) -> AsyncIterator[Fleet]:
    helper = Fleet(client, app, {DEFAULT: warehouse_cluster, B: second_cluster, C: third_cluster})
    await helper.register()
    try:
        yield helper
    finally:
        await helper.restore()


def new_name(prefix: str = "mv") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- a service database of the module's own -----------------------------------------------


@dataclass
class FleetApp:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clusters: list[PasswordCheckingCluster]

    async def register(
        self, name: str, cluster: PasswordCheckingCluster, **extra: Any
    ) -> httpx.Response:
        body = {
            "name": name,
            "admin_url": cluster.admin_dsn,
            "public_host": "127.0.0.1",
            "public_port": cluster.port,
            **extra,
        }
        return await self.client.post("/internal/clusters", json=body, headers=INTERNAL_HEADERS)

    async def patch(self, name: str, **changes: Any) -> httpx.Response:
        return await self.client.patch(
            f"/internal/clusters/{name}", json=changes, headers=INTERNAL_HEADERS
        )

    async def clusters_by_name(self) -> dict[str, dict[str, Any]]:
        r = await self.client.get("/internal/clusters", headers=INTERNAL_HEADERS)
        expect(r, 200)
        return {c["name"]: c for c in r.json()["results"]}

    async def placement(self, org_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/internal/warehouses/{org_id}", headers=INTERNAL_HEADERS)
        expect(r, 200)
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture(scope="module")
async def fleet_db_url(settings: Settings) -> AsyncIterator[str]:
    async with scratch_database(settings, "wh_fleet") as url:
        yield url


@pytest.fixture(scope="module")
async def fleet_app(
    settings: Settings,
    fleet_db_url: str,
    warehouse_cluster: PasswordCheckingCluster,
    second_cluster: PasswordCheckingCluster,
    third_cluster: PasswordCheckingCluster,
) -> AsyncIterator[FleetApp]:
    """An app on a service database of this module's own; its configured (`default`) cluster
    is the suite's, and `clusters` lists it with the second and third."""
    first = warehouse_cluster
    fleet_settings = derive_settings(
        settings,
        database_url=fleet_db_url,
        queue_name=f"{settings.queue_name}:fleet:{uuid.uuid4().hex[:8]}",
        warehouse_admin_url=first.admin_dsn,
        warehouse_public_port=first.port,
    )
    app = make_app(fleet_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            clusters = [warehouse_cluster, second_cluster, third_cluster]
            yield FleetApp(app, c, fleet_settings, clusters)
