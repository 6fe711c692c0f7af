"""Provision, use, rotate, isolate and tear down real warehouses (API.md §4.2, §5 audit)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest
from sqlalchemy import select

from app.models import AuditLog, ManagedWarehouse, WarehouseTeamMembership
from app.services.warehouse.jobs import advance_job_id
from app.settings import Settings
from app.worker.main import IN_PROGRESS_TIMEOUT_SECONDS
from app.worker.reconcile import Reconciler
from tests.support.harness import Tenant, create_tenant
from tests.support.lifecycle import (
    Cluster,
    bucket_objects,
    new_name,
    only_snapshots_left,
    provision,
    run_burst_worker,
    status,
)
from tests.support.status_recorder import expect

SUB_STATES = ("s3_state", "metadata_store_state", "identity_state", "secrets_state")


@pytest.fixture(scope="session")
def cluster(warehouse_cluster) -> Cluster:
    return Cluster(warehouse_cluster)


async def audit_rows(app, org_id: str) -> list[AuditLog]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.organization_id == uuid.UUID(org_id))
            .order_by(AuditLog.id)
        )
        return list(rows)


async def provision_ready(client, tenant: Tenant, settings: Settings, table: str = "main"):
    name = new_name()
    r = await provision(client, tenant, name, table)
    expect(r, 202)
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    return name, r.json()


async def test_provision_to_ready_and_log_in(client, app, tenant, settings, cluster, caplog):
    caplog.set_level(logging.DEBUG)
    name = new_name()
    r = await provision(client, tenant, name, "main")
    expect(r, 202)
    answer = r.json()
    assert answer["status"] == "provisioning started"
    assert answer["org"] == tenant.org_id
    assert answer["username"] == name
    assert len(answer["password"]) >= 43

    before = await status(client, tenant)
    assert before["state"] == "pending"
    assert all(before[s] == "pending" for s in SUB_STATES)
    assert before["connection"] is None and before["ready_at"] is None
    assert before["has_backfill"] is True and before["table_suffix"] == "main"

    await run_burst_worker(settings)

    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert all(body[s] == "ready" for s in SUB_STATES)
    assert body["ready_at"] is not None and body["failed_at"] is None
    assert body["connection"] == {
        "host": settings.warehouse_public_host,
        "port": settings.warehouse_public_port,
        "database": name,
        "username": name,
    }
    assert answer["password"] not in str(body)

    conn = await cluster.login(name, answer["username"], answer["password"])
    try:
        await conn.execute("CREATE TABLE mine (id int primary key, note text)")
        await conn.execute("INSERT INTO mine VALUES (1, 'hello')")
        assert await conn.fetchval("SELECT note FROM mine") == "hello"
        # The environment's tables exist and belong to the login role.
        await conn.execute(
            "INSERT INTO events_main (uuid, event, distinct_id, timestamp)"
            " VALUES (gen_random_uuid(), 'signup', 'u1', now())"
        )
        assert await conn.fetchval("SELECT count(*) FROM persons_main") == 0
        assert (
            await conn.fetchval(
                "SELECT rolsuper OR rolcreatedb OR rolcreaterole"
                " FROM pg_roles WHERE rolname = current_user"
            )
            is False
        )
    finally:
        await conn.close()

    # Only a SCRAM verifier is stored on the cluster; the storage directory exists.
    assert (await cluster.rolpassword(name)).startswith("SCRAM-SHA-256$4096:")
    assert await bucket_objects(settings, tenant.org_id) == []

    assert "advance_warehouse" in caplog.text  # the worker's records were captured
    assert answer["password"] not in caplog.text

    rows = await audit_rows(app, tenant.org_id)
    transitions = [(a.action, a.from_state, a.to_state, a.actor_user_id) for a in rows]
    assert transitions == [
        ("provision", None, "pending", tenant.user_id),
        ("state_change", "pending", "provisioning", None),
        ("state_change", "provisioning", "ready", None),
    ]
    assert rows[0].actor_key_id is not None
    assert all(answer["password"] not in (a.detail or "") for a in rows)


async def test_reset_password_rotates_for_real(client, app, tenant, settings, cluster):
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 404)
    assert r.json()["detail"] == "No managed warehouse exists for this organization"

    name = new_name()
    first = await provision(client, tenant, name)
    expect(first, 202)
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 409)
    assert r.json()["code"] == "conflict"
    await run_burst_worker(settings)

    old = first.json()["password"]
    r = await client.post(tenant.project_url("reset-password"), headers=tenant.headers)
    expect(r, 200)
    new = r.json()
    assert new["username"] == name and new["password"] != old

    conn = await cluster.login(name, name, new["password"])
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await cluster.login(name, name, old)

    rows = await audit_rows(app, tenant.org_id)
    rotation = [a for a in rows if a.action == "rotate_password"]
    assert len(rotation) == 1
    assert rotation[0].actor_user_id == tenant.user_id
    assert (rotation[0].from_state, rotation[0].to_state) == ("ready", "ready")


async def test_tenants_are_isolated(client, settings, cluster):
    a = await create_tenant(client)
    b = await create_tenant(client)
    name_a, creds_a = await provision_ready(client, a, settings, table="alpha")
    name_b, creds_b = await provision_ready(client, b, settings, table="beta")

    with pytest.raises(asyncpg.PostgresError):
        await cluster.login(name_b, creds_a["username"], creds_a["password"])
    with pytest.raises(asyncpg.PostgresError):
        await cluster.login(name_a, creds_b["username"], creds_b["password"])
    can_read = await cluster.fetchval_in(
        name_b, "SELECT has_table_privilege($1, 'public.events_beta', 'SELECT')", name_a
    )
    assert can_read is False
    can_connect = await cluster.fetchval_in(
        "postgres", "SELECT has_database_privilege($1, $2, 'CONNECT')", name_a, name_b
    )
    assert can_connect is False
    # Nor the cluster's own databases, where catalogs and other sessions could be browsed:
    # the cluster's pg_hba lets a role other than the admin reach only its namesake database.
    for database in ("postgres", "template1"):
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await cluster.login(database, creds_a["username"], creds_a["password"])
    conn = await cluster.login(name_a, creds_a["username"], creds_a["password"])
    await conn.close()


async def test_deprovision_then_delete_record(client, app, tenant, settings, cluster):
    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 404)
    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    expect(r, 404)

    name, _ = await provision_ready(client, tenant, settings)
    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    expect(r, 409)

    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    operation_id = r.json()["operation_id"]
    assert r.json() == {
        "status": "deprovisioning started",
        "org": tenant.org_id,
        "operation_id": operation_id,
    }
    assert (await status(client, tenant))["state"] == "deleting"
    r = await client.post(tenant.project_url("deprovision"), headers=tenant.headers)
    assert r.status_code == 202  # repeating converges, on the same operation
    assert r.json()["operation_id"] == operation_id
    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    assert r.status_code == 409  # deleting

    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "deleted", body
    assert all(body[s] == "deleted" for s in SUB_STATES)
    assert body["connection"] is None
    assert not await cluster.database_exists(name)
    assert not await cluster.role_exists(name)
    assert await only_snapshots_left(settings, tenant.org_id)

    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    assert r.json()["status"] == "deleted"

    r = await client.get(
        tenant.env_url("check-database-name") + f"?name={name}", headers=tenant.headers
    )
    assert r.json()["available"] is True  # its own name, reusable by this org

    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    expect(r, 200)
    assert r.json() == {"status": "deleted", "org": tenant.org_id}
    r = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
    expect(r, 404)
    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    expect(r, 404)

    other = await create_tenant(client)
    r = await client.get(
        other.env_url("check-database-name") + f"?name={name}", headers=other.headers
    )
    assert r.json() == {"name": name, "available": True}

    rows = await audit_rows(app, tenant.org_id)
    tail = [(a.action, a.from_state, a.to_state) for a in rows][-5:]
    assert tail == [
        ("state_change", "provisioning", "ready"),
        ("deprovision", "ready", "deleting"),
        ("snapshot_ready", None, None),  # the final snapshot, before anything is dropped
        ("state_change", "deleting", "deleted"),
        ("delete_record", "deleted", None),
    ]


async def test_provision_again_after_deleted(client, tenant, settings, cluster):
    name, _ = await provision_ready(client, tenant, settings)
    r = await provision(client, tenant, new_name())
    assert r.status_code == 409  # already has a live warehouse
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)
    r = await provision(client, tenant, name)
    expect(r, 202)
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready"
    conn = await cluster.login(name, name, r.json()["password"])
    await conn.close()


async def test_concurrent_provisions_make_one_warehouse(client, tenant, settings, cluster):
    prefix = f"cc{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}" for i in range(20)]
    answers = await asyncio.gather(*(provision(client, tenant, n) for n in names))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * 19, [r.text for r in answers if r.status_code not in (202, 409)]
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    assert await cluster.count_like(f"{prefix}-%") == (1, 1)
    assert await bucket_objects(settings, tenant.org_id) == []


async def test_duplicate_sends_collapse_into_one_job(client, app, tenant, settings):
    r = await provision(client, tenant, new_name())
    expect(r, 202)
    async with app.state.sessionmaker() as session:
        warehouse = await session.scalar(
            select(ManagedWarehouse).where(
                ManagedWarehouse.organization_id == uuid.UUID(tenant.org_id)
            )
        )
    job_id = advance_job_id(warehouse.id, warehouse.generation)
    redis = app.state.redis
    score = await redis.zscore(settings.queue_name, job_id)
    assert score is not None
    reconciler = Reconciler(
        app.state.sessionmaker,
        redis,
        queue_name=settings.queue_name,
        in_progress_timeout_s=IN_PROGRESS_TIMEOUT_SECONDS,
    )
    await reconciler.run_once()
    await reconciler.run_once()
    # Already queued under the same id: the re-sends collapsed into the one job.
    assert await redis.zscore(settings.queue_name, job_id) == score
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"


async def test_same_name_race_between_orgs(client, settings, cluster):
    tenants = [await create_tenant(client) for _ in range(5)]
    name = new_name()
    answers = await asyncio.gather(*(provision(client, t, name) for t in tenants))
    assert sorted(r.status_code for r in answers) == [202, 409, 409, 409, 409]
    await run_burst_worker(settings)
    assert await cluster.count_like(name) == (1, 1)


async def test_two_workers_share_the_work_without_doubling_it(client, settings, cluster):
    tenants = [await create_tenant(client) for _ in range(6)]
    names = [new_name("pair") for _ in tenants]
    for t, n in zip(tenants, names, strict=True):
        expect(await provision(client, t, n), 202)
    await asyncio.gather(run_burst_worker(settings), run_burst_worker(settings))
    for t, n in zip(tenants, names, strict=True):
        assert (await status(client, t))["state"] == "ready"
        assert await cluster.count_like(n) == (1, 1)
        assert await bucket_objects(settings, t.org_id) == []


async def test_every_environment_gets_its_tables_again_after_reprovisioning(
    client, app, tenant, settings, cluster
):
    name, _ = await provision_ready(client, tenant, settings, table="main")
    # Another environment onboarded with its own schema (as onboard-team records it).
    staging = await tenant.add_environment("staging")
    async with app.state.sessionmaker() as session, session.begin():
        session.add(
            WarehouseTeamMembership(
                team_id=staging, organization_id=uuid.UUID(tenant.org_id), schema_name="analytics"
            )
        )
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"

    r = await provision(client, tenant, name, table="main")
    expect(r, 202)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    conn = await cluster.login(name, name, r.json()["password"])
    try:
        await conn.execute(
            "INSERT INTO analytics.persons (id, distinct_ids, created_at)"
            " VALUES (gen_random_uuid(), ARRAY['a'], now())"
        )
        assert await conn.fetchval("SELECT count(*) FROM analytics.persons") == 1
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
    finally:
        await conn.close()
