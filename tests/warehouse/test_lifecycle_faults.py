"""Failures the worker must survive: a cluster that trusts logins, a cluster that refuses
connections, and a Redis that loses every job."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete

from app.devtools.embedded import PasswordCheckingCluster, free_port
from app.main import create_app
from app.models import WarehouseTeamMembership
from app.pgcluster.postgres import TRUST_MESSAGE, PostgresWarehouseBackend
from app.pgcluster.safety import ClusterAuthGuard
from tests.support.faults import redis_server_binary
from tests.support.harness import create_tenant
from tests.support.lifecycle import (
    Cluster,
    bucket_objects,
    derive_settings,
    new_name,
    provision,
    run_burst_worker,
    running_worker,
    status,
    wait_for_state,
)
from tests.support.status_recorder import expect

TRUST_HBA = "host all all 127.0.0.1/32 trust\n"


@pytest.fixture(scope="session")
def cluster(warehouse_cluster) -> Cluster:
    return Cluster(warehouse_cluster)


@pytest.fixture(scope="module")
def trusting_pg() -> Iterator[str]:
    """A throwaway cluster whose pg_hba trusts every TCP login (no PostgreSQL on 5432 needed);
    its admin DSN carries no password, as a DSN for a trusting cluster would."""
    tmp = Path(tempfile.mkdtemp(prefix="lc-trusting-"))
    server = PasswordCheckingCluster(tmp / "data").start()
    try:
        (server.datadir / "pg_hba.conf").write_text(TRUST_HBA)

        async def reload() -> None:
            conn = await asyncpg.connect(server.admin_dsn)
            try:
                await conn.execute("SELECT pg_reload_conf()")
            finally:
                await conn.close()

        asyncio.run(reload())
        yield f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    finally:
        server.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


async def test_trusting_cluster_is_detected(settings, trusting_pg):
    trusting = PostgresWarehouseBackend(trusting_pg)
    checking = PostgresWarehouseBackend(settings.warehouse_admin_dsn)
    try:
        assert await trusting.trust_auth_problem() == TRUST_MESSAGE
        assert await checking.trust_auth_problem() is None
        allowed = derive_settings(settings, warehouse_allow_trust_auth=True)
        assert await ClusterAuthGuard(trusting, allowed).problem() is None
    finally:
        await trusting.close()
        await checking.close()


async def test_readyz_reports_a_trusting_cluster(settings, trusting_pg):
    app = create_app(derive_settings(settings, warehouse_admin_url=trusting_pg))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/readyz")
    expect(r, 503)
    assert r.json()["detail"] == TRUST_MESSAGE


async def test_worker_refuses_to_provision_on_a_trusting_cluster(
    client, tenant, settings, trusting_pg
):
    name = new_name()
    expect(await provision(client, tenant, name), 202)
    await run_burst_worker(derive_settings(settings, warehouse_admin_url=trusting_pg))
    body = await status(client, tenant)
    assert body["state"] == "failed", body
    assert body["status_message"] == f"Provisioning refused: {TRUST_MESSAGE}"
    conn = await asyncpg.connect(trusting_pg)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
        assert await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", name) == 0
    finally:
        await conn.close()
    # Fixed configuration: the same organization provisions again and gets there.
    expect(await provision(client, tenant, name), 202)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"


async def test_step_that_keeps_failing_ends_failed_then_recovers(
    client, app, tenant, settings, cluster
):
    name = new_name()
    first = await provision(client, tenant, name)
    expect(first, 202)
    closed = f"postgresql://postgres:nope@127.0.0.1:{free_port()}/postgres"
    broken = derive_settings(settings, warehouse_admin_url=closed, provision_deadline_seconds=1.5)
    await run_burst_worker(broken)

    body = await status(client, tenant)
    assert body["state"] == "failed", body
    assert (
        body["status_message"] == "Provisioning failed at step 'database': ConnectionRefusedError"
    )
    assert body["failed_at"] is not None and body["connection"] is None
    assert body["s3_state"] == "ready" and body["metadata_store_state"] == "failed"
    assert first.json()["password"] not in str(body)

    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 409)
    second = await provision(client, tenant, name)
    expect(second, 202)
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready" and body["failed_at"] is None
    conn = await cluster.login(name, name, second.json()["password"])
    await conn.close()
    assert await bucket_objects(settings, tenant.org_id) == []


async def test_failed_attempt_under_another_name_is_cleaned_up(
    client, app, tenant, settings, cluster
):
    # An environment onboarded with a schema PostgreSQL refuses (pg_ prefix) makes the tables
    # step fail after the database and role exist: a half-built warehouse.
    staging = await tenant.add_environment("staging")
    async with app.state.sessionmaker() as session, session.begin():
        bad = WarehouseTeamMembership(
            team_id=staging, organization_id=uuid.UUID(tenant.org_id), schema_name="pg_nope"
        )
        session.add(bad)
    first_name = new_name()
    expect(await provision(client, tenant, first_name), 202)
    await run_burst_worker(derive_settings(settings, provision_deadline_seconds=1.0))
    body = await status(client, tenant)
    assert body["state"] == "failed", body
    assert body["status_message"].startswith("Provisioning failed at step 'tables': ")
    assert await cluster.count_like(first_name) == (1, 1)

    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            delete(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == staging)
        )
    second_name = new_name()
    expect(await provision(client, tenant, second_name), 202)
    # Until the worker removes the leftovers, nobody else can take the old name.
    other = await create_tenant(client)
    r = await client.get(
        other.env_url("check-database-name") + f"?name={first_name}", headers=other.headers
    )
    assert r.json()["available"] is False
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    assert await cluster.count_like(first_name) == (0, 0)
    assert await cluster.count_like(second_name) == (1, 1)


@pytest.fixture
def private_redis():
    """A Redis of our own, so flushing it cannot hurt anyone else's run."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="lc-redis-"))
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


async def _wait_for_redis(url: str) -> None:
    r = aioredis.from_url(url)
    try:
        for _ in range(100):
            try:
                await r.ping()
                return
            except Exception:
                await asyncio.sleep(0.05)
        raise AssertionError("private redis did not start")
    finally:
        await r.aclose()


async def test_reconciler_finishes_after_redis_loses_the_jobs(settings, private_redis, cluster):
    await _wait_for_redis(private_redis)
    private = derive_settings(settings, redis_url=private_redis, queue_name="arq:lc-flush")
    app = create_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            tenant = await create_tenant(c)
            name = new_name()
            expect(await provision(c, tenant, name), 202)
            r = aioredis.from_url(private_redis)
            assert await r.zcard("arq:lc-flush") == 1
            await r.flushall()
            await r.aclose()
            async with running_worker(private):
                body = await wait_for_state(c, tenant, {"ready", "failed"}, within=30)
            assert body["state"] == "ready", body
            assert await cluster.count_like(name) == (1, 1)

            await c.post(tenant.env_url("deprovision"), headers=tenant.headers)
            r = aioredis.from_url(private_redis)
            await r.flushall()
            await r.aclose()
            async with running_worker(private):
                body = await wait_for_state(c, tenant, {"deleted", "failed"}, within=30)
            assert body["state"] == "deleted", body
            assert await cluster.count_like(name) == (0, 0)
