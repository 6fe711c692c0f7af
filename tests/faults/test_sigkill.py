"""SIGKILL, by PID, of the long-running worker mid-step and of the API mid-request.

- The worker is `python -m app.worker` (not `--burst`: its cron reconciler, arq's in-progress
  marks and job timeouts are the real thing). Killed after a step's action on the cluster and
  before it was recorded, or at a random moment with several warehouses in flight, a fresh
  worker finishes every warehouse with exactly one database and one role.
- The API is uvicorn in a child process. A provision is held mid-transaction (its warehouse
  row and membership written, not committed) by a lock this test holds on `operations`; the
  API is killed there. Nothing of it is left, and the client's retry with the same
  Idempotency-Key gets the warehouse once the abandoned claim is stale, then a byte-identical
  replay.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from app.settings import Settings, to_plain_dsn
from tests.support.harness import Tenant, create_tenant, make_app
from tests.support.lifecycle import (
    Cluster,
    derive_settings,
    new_name,
    provision,
    status,
    wait_for_state,
)
from tests.support.processes import ApiProcess, WorkerProcess, eventually
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault

SIGKILLED = -9
STALE_CLAIM_SECONDS = 2.0


@pytest.fixture
def private(settings: Settings, service_db_url: str) -> Settings:
    return derive_settings(
        settings,
        database_url=service_db_url,
        queue_name=f"arq:faults-kill:{uuid.uuid4().hex[:8]}",
        idempotency_stale_claim_seconds=STALE_CLAIM_SECONDS,
    )


@pytest.fixture
async def client(private: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def _ready_everywhere(
    client: httpx.AsyncClient,
    cluster: Cluster,
    tenants: list[Tenant],
    answers: list[tuple[str, str]],
) -> None:
    for tenant, (name, password) in zip(tenants, answers, strict=True):
        body = await wait_for_state(client, tenant, {"ready", "failed"}, within=60)
        assert body["state"] == "ready", body
        assert await cluster.count_like(name) == (1, 1)
        conn = await cluster.login(name, name, password)
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
        await conn.close()


@pytest.mark.parametrize("failpoint", ["after:database", "after:role", "before:tables"])
async def test_long_running_worker_killed_mid_step_is_finished_by_the_next(
    client: httpx.AsyncClient, private: Settings, warehouse_cluster, failpoint: str
) -> None:
    tenant = await create_tenant(client)
    name = new_name("kill")
    r = await provision(client, tenant, name)
    expect(r, 202)

    doomed = WorkerProcess(private, WAREHOUSE_FAILPOINT=failpoint)
    await doomed.spawn()
    assert await doomed.wait(within=60) == SIGKILLED
    assert (await status(client, tenant))["state"] == "provisioning"

    worker = WorkerProcess(private)
    await worker.spawn()
    try:
        await _ready_everywhere(
            client, Cluster(warehouse_cluster), [tenant], [(name, r.json()["password"])]
        )
    finally:
        await worker.stop()


async def test_long_running_worker_killed_while_busy(
    client: httpx.AsyncClient, private: Settings, warehouse_cluster
) -> None:
    tenants = [await create_tenant(client) for _ in range(3)]
    answers = []
    for tenant in tenants:
        name = new_name("busy")
        r = await provision(client, tenant, name)
        expect(r, 202)
        answers.append((name, r.json()["password"]))

    doomed = WorkerProcess(private)
    await doomed.spawn()

    async def started() -> bool:
        states = [(await status(client, t))["state"] for t in tenants]
        return "provisioning" in states

    await eventually(started, within=30, every=0.01)
    assert await doomed.kill() == SIGKILLED

    worker = WorkerProcess(private)
    await worker.spawn()
    try:
        await _ready_everywhere(client, Cluster(warehouse_cluster), tenants, answers)
    finally:
        await worker.stop()


async def _count(conn: asyncpg.Connection, table: str, org_id: str) -> int:
    column = "organization_id"
    value: int = await conn.fetchval(
        f"SELECT count(*) FROM {table} WHERE {column} = $1",
        uuid.UUID(org_id),
    )
    return value


async def test_api_killed_mid_request_leaves_nothing_and_the_retry_succeeds(
    private: Settings,
) -> None:
    api = ApiProcess(private)
    await api.start()
    db = await asyncpg.connect(to_plain_dsn(private.database_url))
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            tenant = await create_tenant(c)
            headers = {**tenant.headers, "Idempotency-Key": f"kill-{uuid.uuid4().hex}"}
            body = {"database_name": new_name("midreq"), "table_name": "main"}

            blocker = db.transaction()
            await blocker.start()
            await db.execute("LOCK TABLE operations IN EXCLUSIVE MODE")
            pending = asyncio.create_task(
                c.post(tenant.env_url("provision"), json=body, headers=headers)
            )

            async def waiting_on_our_lock() -> bool:
                waiting: int = await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return waiting > 0

            await eventually(waiting_on_our_lock)
            assert await api.kill() == SIGKILLED
            with pytest.raises(httpx.TransportError):
                await pending
            await blocker.rollback()

            # Nothing of the killed request's transaction is left.
            for table in ("managed_warehouses", "warehouse_team_memberships", "audit_log"):
                assert await _count(db, table, tenant.org_id) == 0, table
            assert await _count(db, "operations", tenant.org_id) == 0

        await api.start()
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            tenant.client = c
            answers = []
            deadline = asyncio.get_running_loop().time() + STALE_CLAIM_SECONDS + 15
            while True:
                r = await c.post(tenant.env_url("provision"), json=body, headers=headers)
                answers.append(r.status_code)
                if r.status_code != 409 or asyncio.get_running_loop().time() > deadline:
                    break
                assert "in progress" in r.json()["detail"], r.text
                await asyncio.sleep(0.25)
            expect(r, 202)
            replay = await c.post(tenant.env_url("provision"), json=body, headers=headers)
            expect(replay, 202)
            assert replay.content == r.content
            assert await _count(db, "managed_warehouses", tenant.org_id) == 1
            assert (await status(c, tenant))["state"] == "pending"
    finally:
        await db.close()
        await api.stop()
