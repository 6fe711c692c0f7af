"""Draining a cluster of 10+ warehouses, one still provisioning and one failed (API.md §8)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.models import ManagedWarehouse, Operation
from app.pgcluster import binaries
from tests.fleet.conftest import DEFAULT, B, C, Fleet, new_name
from tests.fleet.test_moves import _target_major, move, operation, provision_on
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.lifecycle import run_burst_worker, status
from tests.support.status_recorder import expect

READY_COUNT = 10


async def drain(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(f"/internal/clusters/{name}/drain", headers=INTERNAL_HEADERS)


async def _provision(client: httpx.AsyncClient, tenant: Tenant, name: str) -> str:
    r = await client.post(
        tenant.env_url("provision"),
        json={"database_name": name, "table_name": "main"},
        headers=tenant.headers,
    )
    expect(r, 202)
    password: str = r.json()["password"]
    return password


async def test_drain_empties_a_cluster(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, app: Any, warehouses: Any
) -> None:
    # Placement (the cluster registry's) puts the drained cluster's warehouses there first.
    pytest.importorskip("app.services.fleet.placement")
    await fleet.only(C)
    ready: list[tuple[Tenant, str, str]] = []
    for _ in range(READY_COUNT):
        tenant = await create_tenant(client)
        name = new_name("dr")
        ready.append((tenant, name, await _provision(client, tenant, name)))
    await run_burst_worker(settings, within=120)
    for tenant, name, password in ready:
        assert (await fleet.where(tenant.org_id))["cluster"] == C
        conn = await fleet.login(C, name, password)
        await conn.execute(
            "INSERT INTO events_main VALUES (gen_random_uuid(), 'e', 'd', '{}', now())"
        )
        await conn.close()
    # One still provisioning (no worker has run for it yet) ...
    late = await create_tenant(client)
    late_name = new_name("dr")
    late_password = await _provision(client, late, late_name)
    # ... and one failed, with leftovers on the cluster.
    broken = await create_tenant(client)
    broken_name = await warehouses.record(broken, state="failed")
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(ManagedWarehouse)
            .where(ManagedWarehouse.organization_id == uuid.UUID(broken.org_id))
            .values(cluster=C)
        )
        await session.commit()
    conn = await fleet.admin(C)
    await conn.execute(f'CREATE DATABASE "{broken_name}"')
    await conn.close()

    # Not enough room elsewhere: refused, nothing starts.
    await fleet.only(DEFAULT, B)
    default_count = (await fleet.get(DEFAULT))["warehouses"]
    await fleet.patch(DEFAULT, max_warehouses=max(default_count, 1))
    b_count = (await fleet.get(B))["warehouses"]
    await fleet.patch(B, max_warehouses=b_count + 1)
    r = await drain(client, C)
    expect(r, 409)
    assert (await fleet.get(C))["state"] == "paused"
    await fleet.patch(DEFAULT, max_warehouses=500)
    await fleet.patch(B, max_warehouses=500)

    r = await drain(client, C)
    expect(r, 202)
    operation_ids = r.json()["operation_ids"]
    assert len(operation_ids) == READY_COUNT + 2
    assert (await fleet.get(C))["state"] == "draining"
    expect(await drain(client, C), 409)
    expect(await drain(client, "no-such-cluster"), 404)

    await run_burst_worker(settings, within=300)

    cluster = await fleet.get(C)
    assert cluster["state"] == "drained", cluster
    assert cluster["warehouses"] == 0
    for tenant, name, password in [*ready, (late, late_name, late_password)]:
        body = await status(client, tenant)
        assert body["state"] == "ready", body
        where = (await fleet.where(tenant.org_id))["cluster"]
        assert where in (DEFAULT, B)
        assert body["connection"]["port"] == fleet.clusters[where].port
        conn = await fleet.login(where, name, password)
        await conn.close()
        assert await fleet.holds(C, name) == (False, False)
    assert (await status(client, broken))["state"] == "failed"
    assert (await fleet.where(broken.org_id))["cluster"] in (DEFAULT, B)
    assert await fleet.holds(C, broken_name) == (False, False)
    async with app.state.sessionmaker() as session:
        statuses = (
            await session.scalars(
                select(Operation.status).where(
                    Operation.id.in_([uuid.UUID(i) for i in operation_ids])
                )
            )
        ).all()
    assert statuses == ["succeeded"] * len(operation_ids)
    assert (await drain(client, C)).status_code == 409  # already drained

    assert (await fleet.patch(C, state="active"))["state"] == "active"
    for _tenant, name, _ in [*ready, (late, late_name, late_password)]:
        await fleet.drop_everywhere(name)


async def test_a_drain_whose_move_fails_leaves_the_cluster_paused(
    client: httpx.AsyncClient,
    fleet: Fleet,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT, rows=3)
    await fleet.only(DEFAULT, C)
    r = await move(client, tenant.org_id, C)
    expect(r, 202)
    await run_burst_worker(settings)
    assert (await fleet.where(tenant.org_id))["cluster"] == C
    await fleet.only(DEFAULT)
    fake = tmp_path / "pg_restore"  # every copy fails
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "pg_restore (PostgreSQL) '
        f'{await _target_major(fleet)}.0"; exit 0; fi\n'
        "cat >/dev/null; exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))
    binaries.clear_cache()
    try:
        r = await drain(client, C)
        expect(r, 202)
        assert (await fleet.get(C))["state"] == "draining"
        await run_burst_worker(settings, within=120)
    finally:
        binaries.clear_cache()
    assert (await fleet.get(C))["state"] == "paused"
    (op_id,) = r.json()["operation_ids"]
    done = await operation(client, tenant, op_id)
    assert done["status"] == "failed", done
    assert (await status(client, tenant))["state"] == "ready"
    assert (await fleet.where(tenant.org_id))["cluster"] == C
    conn = await fleet.login(C, name, password)
    await conn.close()
    await fleet.drop_everywhere(name)
