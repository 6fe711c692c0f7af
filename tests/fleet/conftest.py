"""Fleet tests: more throwaway password-checking clusters next to the suite's own one.

- `second_cluster`, `third_cluster`: started once per session, like the suite's own cluster.
- `fleet_app` (module): an app on a migrated service database of the module's own, so its
  placements never meet another test's warehouses; its configured cluster (bootstrapped as
  `default`) is the suite's, and the tests register the others through the internal API.
"""

from __future__ import annotations

import asyncio
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

from app.core.migrate import migrate_database
from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings, to_plain_dsn, with_database
from tests.support.harness import INTERNAL_HEADERS, make_app
from tests.support.lifecycle import derive_settings


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
        assert r.status_code == 200, r.text
        return {c["name"]: c for c in r.json()["results"]}

    async def placement(self, org_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/internal/warehouses/{org_id}", headers=INTERNAL_HEADERS)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture(scope="module")
async def fleet_db_url(settings: Settings) -> AsyncIterator[str]:
    server = to_plain_dsn(settings.database_url)
    name = f"wh_fleet_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(with_database(server, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server, name)
    await asyncio.to_thread(migrate_database, url)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


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
