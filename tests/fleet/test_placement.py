"""Placement across real clusters (API.md §8): lowest fill ratio, ties by name, 503 when full,
and `connection` pointing at the cluster the warehouse is on."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from app.devtools.embedded import PasswordCheckingCluster
from app.services.fleet.health import check_clusters
from tests.fleet.conftest import FleetApp
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.lifecycle import (
    derive_settings,
    new_name,
    provision,
    run_burst_worker,
    running_worker,
    status,
)
from tests.support.status_recorder import expect

NO_CAPACITY = {
    "type": "server_error",
    "code": "no_capacity",
    "detail": "No warehouse cluster has room for a new warehouse",
    "attr": None,
}


async def _login(cluster: PasswordCheckingCluster, name: str, password: str) -> None:
    conn = await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user=name, password=password, database=name
    )
    try:
        assert await conn.fetchval("SELECT current_database()") == name
    finally:
        await conn.close()


async def test_provisions_spread_by_fill_ratio_then_run_out(fleet_app: FleetApp) -> None:
    c0, c1, c2 = fleet_app.clusters
    expect(await fleet_app.patch("default", state="paused"), 200)
    expect(await fleet_app.register("alpha", c1, max_warehouses=2), 201)
    expect(await fleet_app.register("beta", c2, max_warehouses=4), 201)

    tenants: list[Tenant] = []
    passwords: dict[str, tuple[str, str]] = {}
    placed = []
    for _ in range(6):
        tenant = await create_tenant(fleet_app.client)
        name = new_name()
        r = await provision(fleet_app.client, tenant, name)
        expect(r, 202)
        tenants.append(tenant)
        passwords[tenant.org_id] = (name, r.json()["password"])
        placed.append((await fleet_app.placement(tenant.org_id))["cluster"])
    # Fill ratios (alpha/2, beta/4): 0|0 -> alpha (name), .5|0 -> beta, .5|.25 -> beta,
    # .5|.5 -> alpha (name), 1|.5 -> beta, 1|.75 -> beta.
    assert placed == ["alpha", "beta", "beta", "alpha", "beta", "beta"]
    clusters = await fleet_app.clusters_by_name()
    assert clusters["alpha"]["warehouses"] == 2 and clusters["beta"]["warehouses"] == 4
    assert clusters["default"]["warehouses"] == 0

    # Full: 503, and nothing of the attempt is recorded.
    late = await create_tenant(fleet_app.client)
    r = await provision(fleet_app.client, late, new_name())
    expect(r, 503)
    assert r.json() == NO_CAPACITY
    r = await fleet_app.client.post(
        late.project_url("provision"),
        json={"database_name": new_name(), "table_name": "main"},
        headers=late.headers,
    )
    expect(r, 503)  # the same through the projects prefix
    r = await fleet_app.client.get(late.env_url("warehouse_status"), headers=late.headers)
    expect(r, 404)
    r = await fleet_app.client.get(late.env_url("operations"), headers=late.headers)
    assert r.json()["results"] == []
    r = await fleet_app.client.get(f"/internal/warehouses/{late.org_id}", headers=INTERNAL_HEADERS)
    expect(r, 404)

    await run_burst_worker(fleet_app.settings)
    by_cluster = {"alpha": c1, "beta": c2}
    for tenant, where in zip(tenants, placed, strict=True):
        body = await status(fleet_app.client, tenant)
        assert body["state"] == "ready", body
        cluster = by_cluster[where]
        assert body["connection"]["port"] == cluster.port
        assert body["connection"]["host"] == "127.0.0.1"
        name, password = passwords[tenant.org_id]
        await _login(cluster, name, password)
        # Nowhere else: the other clusters hold nothing of it.
        for other in (c for c in fleet_app.clusters if c is not cluster):
            conn = await asyncpg.connect(other.admin_dsn)
            try:
                assert not await conn.fetchval(
                    "SELECT count(*) FROM pg_database WHERE datname = $1", name
                )
            finally:
                await conn.close()

    # A name is taken fleet-wide: a database of that name on any cluster blocks it.
    squatted = new_name("sq")
    conn = await asyncpg.connect(c0.admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{squatted}"')
    finally:
        await conn.close()
    r = await fleet_app.client.get(
        late.env_url("check-database-name"), params={"name": squatted}, headers=late.headers
    )
    assert r.json()["available"] is False, r.json()
    r = await provision(fleet_app.client, late, squatted)
    expect(r, 409)

    # Room again once capacity grows; a reset password is set on the warehouse's own cluster.
    expect(await fleet_app.patch("beta", max_warehouses=5), 200)
    r = await provision(fleet_app.client, late, new_name())
    expect(r, 202)
    assert (await fleet_app.placement(late.org_id))["cluster"] == "beta"
    r = await fleet_app.client.post(
        tenants[0].env_url("reset-password"), headers=tenants[0].headers
    )
    expect(r, 200)
    await _login(c1, passwords[tenants[0].org_id][0], r.json()["password"])

    # A cluster holding warehouses that are not deleted cannot be removed.
    r = await fleet_app.client.delete("/internal/clusters/alpha", headers=INTERNAL_HEADERS)
    expect(r, 409)
    assert r.json()["code"] == "conflict"
    await run_burst_worker(fleet_app.settings)
    for tenant in [tenants[0], late]:
        r = await fleet_app.client.post(tenant.env_url("deprovision"), headers=tenant.headers)
        expect(r, 202)
    await run_burst_worker(fleet_app.settings)
    clusters = await fleet_app.clusters_by_name()
    assert clusters["alpha"]["warehouses"] == 1 and clusters["beta"]["warehouses"] == 4


async def test_health_check_marks_a_cluster_that_is_down(fleet_app: FleetApp) -> None:
    c2 = fleet_app.clusters[2]
    if "beta" not in await fleet_app.clusters_by_name():
        pytest.skip("runs after the placement test registered beta")
    results = await check_clusters(fleet_app.app.state.sessionmaker, fleet_app.settings)
    assert results["beta"] is True
    c2.stop()
    try:
        # The worker's cron job probes every CLUSTER_CHECK_SECONDS.
        fast = derive_settings(fleet_app.settings, cluster_check_seconds=1)
        async with running_worker(fast):
            beta = await _wait_for_health(fleet_app, "beta", healthy=False)
        assert beta["last_checked_at"] is not None
        # Placement skips it: alpha has room for one more.
        tenant = await create_tenant(fleet_app.client)
        expect(await fleet_app.patch("beta", max_warehouses=50), 200)
        r = await provision(fleet_app.client, tenant, new_name())
        expect(r, 202)
        assert (await fleet_app.placement(tenant.org_id))["cluster"] == "alpha"
    finally:
        c2.start()
    results = await check_clusters(fleet_app.app.state.sessionmaker, fleet_app.settings)
    assert results["beta"] is True
    assert (await fleet_app.clusters_by_name())["beta"]["healthy"] is True


async def _wait_for_health(fleet_app: FleetApp, name: str, *, healthy: bool) -> dict[str, Any]:
    for _ in range(100):
        cluster = (await fleet_app.clusters_by_name())[name]
        if cluster["healthy"] is healthy:
            return cluster
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never became healthy={healthy}")


async def test_an_unknown_org_has_no_placement(fleet_app: FleetApp) -> None:
    r = await fleet_app.client.get(f"/internal/warehouses/{uuid.uuid4()}", headers=INTERNAL_HEADERS)
    expect(r, 404)
    assert r.json()["code"] == "not_found"
