"""Servers that die without warning: Redis SIGKILLed, the warehouse cluster stopped with
`pg_ctl stop -m immediate` (no checkpoint, every connection cut).

Redis is a private redis-server (no persistence, so it comes back empty, as after a crash);
the cluster a private password-checking PostgreSQL. While Redis is dead the API still answers
and accepts a provision; while the cluster is dead the worker retries and `reset-password`
answers a 5xx, which releases its Idempotency-Key so the retry rotates the password once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings
from tests.support.faults import RedisServer
from tests.support.harness import create_tenant, make_app
from tests.support.lifecycle import (
    Cluster,
    derive_settings,
    new_name,
    provision,
    running_worker,
    status,
    wait_for_state,
)
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault

SUB_STATES = ("s3_state", "metadata_store_state", "identity_state", "secrets_state")


async def sigkill(server: RedisServer) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    assert await asyncio.wait_for(server.proc.wait(), 10) == -9
    server.proc = None


async def test_provisioning_finishes_after_redis_is_killed(
    settings: Settings, warehouse_cluster, service_db_url: str, redis_server: RedisServer
) -> None:
    private = derive_settings(
        settings,
        database_url=service_db_url,
        redis_url=redis_server.url,
        queue_name=f"arq:faults-redis-kill:{uuid.uuid4().hex[:8]}",
        rate_limit_per_minute=1000,
    )
    cluster = Cluster(warehouse_cluster)
    app = make_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first, second = await create_tenant(c), await create_tenant(c)
            first_name, second_name = new_name("rkill"), new_name("rkill")
            async with running_worker(private):
                r1 = await provision(c, first, first_name)
                expect(r1, 202)
                await sigkill(redis_server)

                down = await c.get(first.env_url("warehouse_status"), headers=first.headers)
                expect(down, 200)
                r2 = await provision(c, second, second_name)
                expect(r2, 202)
                await asyncio.sleep(1.0)
                await redis_server.start()

                for tenant in (first, second):
                    body = await wait_for_state(c, tenant, {"ready", "failed"}, within=40)
                    assert body["state"] == "ready", body

            for name, response in ((first_name, r1), (second_name, r2)):
                assert await cluster.count_like(name) == (1, 1)
                conn = await cluster.login(name, name, response.json()["password"])
                await conn.close()


@pytest.fixture(scope="module")
def crash_cluster() -> Iterator[PasswordCheckingCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="wh-faults-crash-"))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def on_crash_cluster(
    settings: Settings, service_db_url: str, crash_cluster: PasswordCheckingCluster
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    private = derive_settings(
        settings,
        database_url=service_db_url,
        queue_name=f"arq:faults-crash:{uuid.uuid4().hex[:8]}",
        warehouse_admin_url=crash_cluster.admin_dsn,
        warehouse_public_port=crash_cluster.port,
    )
    app = make_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, private


async def test_cluster_stopped_immediately_mid_provision_and_during_reset_password(
    on_crash_cluster: tuple[httpx.AsyncClient, Settings],
    crash_cluster: PasswordCheckingCluster,
) -> None:
    client, private = on_crash_cluster
    cluster = Cluster(crash_cluster)
    tenant = await create_tenant(client)
    name = new_name("crash")
    r = await provision(client, tenant, name)
    expect(r, 202)
    async with running_worker(private):

        async def cluster_step_started() -> bool:
            body = await status(client, tenant)
            return bool(body["metadata_store_state"] != "pending" or body["state"] == "ready")

        deadline = asyncio.get_running_loop().time() + 30
        while not await cluster_step_started():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        await asyncio.to_thread(crash_cluster.stop, "immediate")
        cut = await status(client, tenant)
        assert cut["state"] == "provisioning", cut  # killed mid-way, not after the end
        await asyncio.sleep(2.0)
        await asyncio.to_thread(crash_cluster.start)
        body = await wait_for_state(client, tenant, {"ready", "failed"}, within=40)
    assert body["state"] == "ready", body
    assert {body[s] for s in SUB_STATES} == {"ready"}
    assert await cluster.count_like(name) == (1, 1)
    old_password = r.json()["password"]
    (await cluster.login(name, name, old_password)).terminate()

    # The cluster dies again: reset-password cannot rotate, answers 5xx, and its key is released.
    await asyncio.to_thread(crash_cluster.stop, "immediate")
    headers = {**tenant.headers, "Idempotency-Key": f"rotate-{uuid.uuid4().hex}"}
    try:
        failed = await client.post(tenant.env_url("reset-password"), headers=headers)
        assert failed.status_code in (500, 502, 503), failed.text
        assert failed.json()["type"] == "server_error"
        assert old_password not in failed.text
    finally:
        await asyncio.to_thread(crash_cluster.start)
    retried = await client.post(tenant.env_url("reset-password"), headers=headers)
    expect(retried, 200)
    replay = await client.post(tenant.env_url("reset-password"), headers=headers)
    expect(replay, 200)
    assert replay.content == retried.content
    new_password = retried.json()["password"]
    assert new_password != old_password
    (await cluster.login(name, name, new_password)).terminate()
    with pytest.raises(Exception, match="password authentication failed"):
        await cluster.login(name, name, old_password)
    assert (await status(client, tenant))["state"] == "ready"


async def test_cluster_stopped_immediately_during_teardown(
    on_crash_cluster: tuple[httpx.AsyncClient, Settings],
    crash_cluster: PasswordCheckingCluster,
) -> None:
    client, private = on_crash_cluster
    cluster = Cluster(crash_cluster)
    tenant = await create_tenant(client)
    name = new_name("crash")
    expect(await provision(client, tenant, name), 202)
    async with running_worker(private):
        assert (await wait_for_state(client, tenant, {"ready", "failed"}))["state"] == "ready"
        r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
        expect(r, 202)
        await asyncio.to_thread(crash_cluster.stop, "immediate")
        await asyncio.sleep(2.0)
        assert (await status(client, tenant))["state"] == "deleting"
        await asyncio.to_thread(crash_cluster.start)
        body = await wait_for_state(client, tenant, {"deleted", "failed"}, within=40)
    assert body["state"] == "deleted", body
    assert await cluster.count_like(name) == (0, 0)
