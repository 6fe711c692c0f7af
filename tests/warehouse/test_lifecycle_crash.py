"""Crash safety: a worker SIGKILLs itself before/after every step; a new worker finishes.

Each scenario runs `python -m app.worker --burst` with `WAREHOUSE_FAILPOINT=<when>:<step>`,
checks it really died at that point (exit by SIGKILL), then runs a fresh worker and checks the
warehouse reached its goal with exactly one database, one role and one storage directory (or
none after teardown).
"""

from __future__ import annotations

import pytest

from tests.support.harness import create_tenant
from tests.support.lifecycle import (
    Cluster,
    bucket_objects,
    new_name,
    only_snapshots_left,
    provision,
    run_burst_worker,
    run_subprocess_worker,
    status,
)
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault

PROVISION_STEPS = ["storage", "database", "role", "secret", "tables", "probe"]
TEARDOWN_STEPS = [
    "final-snapshot",
    "drop-database",
    "drop-role",
    "remove-storage",
    "destroy-secret",
]
SIGKILLED = -9


@pytest.fixture(scope="session")
def cluster(warehouse_cluster) -> Cluster:
    return Cluster(warehouse_cluster)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", PROVISION_STEPS)
async def test_provisioning_survives_a_killed_worker(client, settings, cluster, step, when):
    tenant = await create_tenant(client)
    name = new_name("crash")
    r = await provision(client, tenant, name)
    expect(r, 202)

    assert await run_subprocess_worker(settings, failpoint=f"{when}:{step}") == SIGKILLED
    assert (await status(client, tenant))["state"] == "provisioning"

    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert await cluster.count_like(name) == (1, 1)
    assert await bucket_objects(settings, tenant.org_id) == []
    conn = await cluster.login(name, name, r.json()["password"])
    assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
    await conn.close()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", TEARDOWN_STEPS)
async def test_teardown_survives_a_killed_worker(client, settings, cluster, step, when):
    tenant = await create_tenant(client)
    name = new_name("crash")
    expect(await provision(client, tenant, name), 202)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)

    assert await run_subprocess_worker(settings, failpoint=f"{when}:{step}") == SIGKILLED
    assert (await status(client, tenant))["state"] == "deleting"

    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "deleted", body
    assert await cluster.count_like(name) == (0, 0)
    assert await only_snapshots_left(settings, tenant.org_id)


async def test_deprovision_while_a_killed_worker_held_the_provisioning_job(
    client, settings, cluster
):
    tenant = await create_tenant(client)
    name = new_name("crash")
    expect(await provision(client, tenant, name), 202)
    assert await run_subprocess_worker(settings, failpoint="after:role") == SIGKILLED
    assert (await status(client, tenant))["state"] == "provisioning"
    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)

    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "deleted", body
    assert await cluster.count_like(name) == (0, 0)
    assert await only_snapshots_left(settings, tenant.org_id)
