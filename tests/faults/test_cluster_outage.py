"""The warehouse cluster refuses connections for a few seconds, then comes back.

The cluster is a private password-checking PostgreSQL (not the session one), stopped with
`pg_ctl stop` and started again on the same port, for less than the provisioning deadline. The
worker keeps retrying the step that cannot reach it; once the cluster is back the warehouse
ends where it was going, with exactly one database, role and storage directory (or none).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings
from tests.support.harness import Tenant, create_tenant, make_app
from tests.support.lifecycle import (
    Cluster,
    bucket_objects,
    derive_settings,
    new_name,
    only_snapshots_left,
    provision,
    running_worker,
    status,
    wait_for_state,
)
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault

DOWN_SECONDS = 2.5
SUB_STATES = ("s3_state", "metadata_store_state", "identity_state", "secrets_state")


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PasswordCheckingCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="wh-faults-cluster-"))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def outage(
    settings: Settings, service_db_url: str, private_cluster: PasswordCheckingCluster
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """An API client and settings on the private cluster and this module's service database."""
    private = derive_settings(
        settings,
        database_url=service_db_url,
        queue_name=f"arq:faults-cluster:{uuid.uuid4().hex[:8]}",
        warehouse_admin_url=private_cluster.admin_dsn,
        warehouse_public_port=private_cluster.port,
    )
    assert private.provision_deadline_seconds > DOWN_SECONDS
    app = make_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, private


async def _down_for_a_while(
    cluster: PasswordCheckingCluster, client: httpx.AsyncClient, tenant: Tenant, going: str
) -> None:
    """Keep the (already stopped) cluster down, check the warehouse waits, start it again."""
    await asyncio.sleep(DOWN_SECONDS)
    body = await status(client, tenant)
    assert body["state"] == going, body
    assert "retrying" in body["status_message"], body
    await asyncio.to_thread(cluster.start)


async def test_provisioning_waits_for_the_cluster_to_come_back(
    outage: tuple[httpx.AsyncClient, Settings], private_cluster: PasswordCheckingCluster
) -> None:
    client, private = outage
    cluster = Cluster(private_cluster)
    tenant = await create_tenant(client)
    name = new_name("outage")
    r = await provision(client, tenant, name)
    expect(r, 202)
    await asyncio.to_thread(private_cluster.stop, "fast")
    async with running_worker(private):
        await _down_for_a_while(private_cluster, client, tenant, "provisioning")
        body = await wait_for_state(client, tenant, {"ready", "failed"}, within=30)
    assert body["state"] == "ready", body
    assert {body[s] for s in SUB_STATES} == {"ready"}, body
    assert await cluster.count_like(name) == (1, 1)
    assert await bucket_objects(private, tenant.org_id) == []
    conn = await cluster.login(name, name, r.json()["password"])
    assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
    await conn.close()


async def test_deprovisioning_waits_for_the_cluster_to_come_back(
    outage: tuple[httpx.AsyncClient, Settings], private_cluster: PasswordCheckingCluster
) -> None:
    client, private = outage
    cluster = Cluster(private_cluster)
    tenant = await create_tenant(client)
    name = new_name("outage")
    expect(await provision(client, tenant, name), 202)
    async with running_worker(private):
        assert (await wait_for_state(client, tenant, {"ready", "failed"}))["state"] == "ready"
        assert await cluster.count_like(name) == (1, 1)

        await asyncio.to_thread(private_cluster.stop, "fast")
        r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
        expect(r, 202)
        await _down_for_a_while(private_cluster, client, tenant, "deleting")
        body = await wait_for_state(client, tenant, {"deleted", "failed"}, within=30)
    assert body["state"] == "deleted", body
    assert await cluster.count_like(name) == (0, 0)
    assert await only_snapshots_left(private, tenant.org_id)
