"""Storage under faults: the S3 server down during a snapshot and during a deprovision (private
moto servers, stopped and started for real), and workers SIGKILLed at the snapshot and restore
steps. Nothing is dropped without its snapshot; everything converges."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.devtools.s3server import EmbeddedS3
from app.settings import Settings
from tests.storage.support import contents, object_digest, operation, ready_warehouse, snapshots
from tests.support.harness import Tenant, create_tenant, make_app
from tests.support.lifecycle import (
    Cluster,
    derive_settings,
    new_name,
    run_burst_worker,
    run_subprocess_worker,
    running_worker,
    status,
)
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault
SIGKILLED = -9


@pytest.fixture
async def private_s3(settings: Settings) -> AsyncIterator[tuple[EmbeddedS3, Settings]]:
    server = EmbeddedS3().start()
    try:
        # Its own queue (a long-running worker's cron jobs stay out of the session's), and a
        # storage check only at start-up: the private S3 server holds no other test's objects.
        yield (
            server,
            derive_settings(
                settings,
                s3_endpoint_url=server.endpoint_url,
                queue_name=f"arq:storage-faults:{uuid.uuid4().hex[:8]}",
                storage_check_seconds=3600,
            ),
        )
    finally:
        server.stop()


@pytest.fixture
async def private_client(private_s3) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(private_s3[1])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def wait_snapshot(
    client: httpx.AsyncClient, tenant: Tenant, status_: str, within: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        [snap] = [s for s in await snapshots(client, tenant) if s["kind"] == "manual"]
        if snap["status"] == status_:
            return snap
        assert asyncio.get_running_loop().time() < deadline, snap
        await asyncio.sleep(0.2)


async def test_s3_down_during_a_snapshot_then_back(private_s3, private_client):
    server, private = private_s3
    tenant = await create_tenant(private_client)
    await ready_warehouse(private_client, tenant, private, rows=300)

    server.stop()
    r = await private_client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    expect(r, 202)
    async with running_worker(private):
        await asyncio.sleep(2)  # attempts fail against the stopped server, and are retried
        assert (await wait_snapshot(private_client, tenant, "running"))["sha256"] is None
        await asyncio.to_thread(server.start)  # same port; moto starts empty
        snap = await wait_snapshot(private_client, tenant, "ready")
    size, digest = await object_digest(private, tenant.org_id, f"snapshots/{snap['id']}.dump")
    assert (snap["size_bytes"], snap["sha256"]) == (size, digest)
    op = await operation(private_client, tenant, r.json()["operation_id"])
    assert op["status"] == "succeeded"


async def test_s3_down_during_deprovision_drops_nothing(private_s3, private_client):
    server, private = private_s3
    tenant = await create_tenant(private_client)
    wh = await ready_warehouse(private_client, tenant, private, rows=300)
    before = await contents(private, wh["name"], wh["username"], wh["password"])

    server.stop()
    r = await private_client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    short = derive_settings(private, provision_deadline_seconds=3)
    await run_burst_worker(short)  # retries the final snapshot until the deadline, then stops
    body = await status(private_client, tenant)
    assert body["state"] == "ready", body
    assert "final snapshot could not be taken" in body["status_message"]
    assert "kept as it was" in body["status_message"]
    assert {body[s] for s in ("s3_state", "metadata_store_state", "identity_state")} == {"ready"}
    op = await operation(private_client, tenant, r.json()["operation_id"])
    assert op["status"] == "failed" and op["error"] == body["status_message"]
    [final] = await snapshots(private_client, tenant)
    assert final["kind"] == "final" and final["status"] == "failed"
    # Every row is still there, and the password still works.
    assert await contents(private, wh["name"], wh["username"], wh["password"]) == before

    # With the store back, the same request goes through: final snapshot first, then deleted.
    await asyncio.to_thread(server.start)
    r = await private_client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    await run_burst_worker(private)
    assert (await status(private_client, tenant))["state"] == "deleted"
    kinds = {(s["kind"], s["status"]) for s in await snapshots(private_client, tenant)}
    assert kinds == {("final", "failed"), ("final", "ready")}


@pytest.mark.parametrize("when", ["before", "after"])
async def test_snapshot_survives_a_killed_worker(client, tenant, settings, when):
    await ready_warehouse(client, tenant, settings, rows=50)
    r = await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    expect(r, 202)
    assert await run_subprocess_worker(settings, failpoint=f"{when}:snapshot") == SIGKILLED
    [snap] = await snapshots(client, tenant)
    assert snap["status"] == "running"
    await run_burst_worker(settings)  # the reconciler sends the lost job again
    [snap] = await snapshots(client, tenant)
    assert snap["status"] == "ready", snap
    size, digest = await object_digest(settings, tenant.org_id, f"snapshots/{snap['id']}.dump")
    assert (snap["size_bytes"], snap["sha256"]) == (size, digest)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_restore_survives_a_killed_worker(client, settings, warehouse_cluster, when):
    tenant = await create_tenant(client)
    wh = await ready_warehouse(client, tenant, settings, rows=200)
    before = await contents(settings, wh["name"], wh["username"], wh["password"])
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)
    [final] = await snapshots(client, tenant)

    name = new_name("crash")
    r = await client.post(
        tenant.env_url("restore"),
        json={"snapshot_id": final["id"], "database_name": name},
        headers=tenant.headers,
    )
    expect(r, 202)
    assert await run_subprocess_worker(settings, failpoint=f"{when}:restore") == SIGKILLED
    assert (await status(client, tenant))["state"] == "provisioning"
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    password = r.json()["password"]
    assert await contents(settings, name, name, password) == {**before, "owners": [name]}
    assert await Cluster(warehouse_cluster).count_like(name) == (1, 1)
