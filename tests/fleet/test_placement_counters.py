"""Placement counts the warehouses on their way to a cluster, and the counters it reads stay
exact (API.md §8): a cluster is never overfilled by provisions and incoming moves together."""

from __future__ import annotations

import asyncpg
import httpx
from sqlalchemy import text

from app.services.fleet.counters import check_counters
from app.settings import to_plain_dsn
from tests.fleet.conftest import FleetApp
from tests.support.harness import INTERNAL_HEADERS, create_tenant
from tests.support.lifecycle import new_name, provision, run_burst_worker, status
from tests.support.status_recorder import expect


async def _counted(fleet_app: FleetApp) -> dict[str, int]:
    """Warehouses that are not deleted per cluster, counted from the service's rows."""
    conn = await asyncpg.connect(to_plain_dsn(fleet_app.settings.database_url))
    try:
        rows = await conn.fetch(
            "SELECT c.name, count(w.id) FILTER (WHERE w.state <> 'deleted') AS n "
            "FROM warehouse_clusters c LEFT JOIN managed_warehouses w ON w.cluster = c.name "
            "WHERE c.admin_url_ciphertext IS NOT NULL GROUP BY c.name"
        )
    finally:
        await conn.close()
    return {row["name"]: row["n"] for row in rows}


async def _listed(fleet_app: FleetApp) -> dict[str, int]:
    return {name: c["warehouses"] for name, c in (await fleet_app.clusters_by_name()).items()}


async def _move(fleet_app: FleetApp, org_id: str, cluster: str) -> httpx.Response:
    return await fleet_app.client.post(
        f"/internal/warehouses/{org_id}/move", json={"cluster": cluster}, headers=INTERNAL_HEADERS
    )


async def test_a_move_in_flight_takes_its_place_on_the_target(fleet_app: FleetApp) -> None:
    _, c1, c2 = fleet_app.clusters
    expect(await fleet_app.patch("default", state="paused"), 200)
    expect(await fleet_app.register("gamma", c1, max_warehouses=1), 201)
    expect(await fleet_app.register("delta", c2, max_warehouses=5), 201)
    expect(await fleet_app.patch("gamma", state="paused"), 200)
    mover = await create_tenant(fleet_app.client)
    other = await create_tenant(fleet_app.client)
    for tenant in (mover, other):
        expect(await provision(fleet_app.client, tenant, new_name()), 202)
    await run_burst_worker(fleet_app.settings)
    for tenant in (mover, other):
        assert (await status(fleet_app.client, tenant))["state"] == "ready"
        assert (await fleet_app.placement(tenant.org_id))["cluster"] == "delta"

    # The move is accepted; no worker has run it, so gamma's one place is promised to it.
    expect(await fleet_app.patch("gamma", state="active"), 200)
    expect(await _move(fleet_app, mover.org_id, "gamma"), 202)
    assert await _listed(fleet_app) == {"default": 0, "gamma": 0, "delta": 2}
    # Another move onto gamma is refused ...
    r = await _move(fleet_app, other.org_id, "gamma")
    expect(r, 409)
    assert r.json()["detail"] == "The cluster 'gamma' has no room for another warehouse"

    # ... and though gamma looks empty (0 of 1), a provision goes to delta ...
    third = await create_tenant(fleet_app.client)
    expect(await provision(fleet_app.client, third, new_name()), 202)
    assert (await fleet_app.placement(third.org_id))["cluster"] == "delta"
    # ... and with delta paused there is no room at all.
    expect(await fleet_app.patch("delta", state="paused"), 200)
    fourth = await create_tenant(fleet_app.client)
    r = await provision(fleet_app.client, fourth, new_name())
    expect(r, 503)
    assert r.json()["code"] == "no_capacity"
    expect(await fleet_app.patch("delta", state="active"), 200)
    await run_burst_worker(fleet_app.settings, within=120)

    # The move ended: the warehouse is on gamma, which holds exactly its maximum.
    body = await status(fleet_app.client, mover)
    assert body["state"] == "ready", body
    assert body["connection"]["port"] == c1.port
    assert await _listed(fleet_app) == {"default": 0, "gamma": 1, "delta": 2}
    assert await _listed(fleet_app) == await _counted(fleet_app)


async def test_counters_follow_deletes_and_repair_when_changed_behind_the_service(
    fleet_app: FleetApp,
) -> None:
    _, _, c2 = fleet_app.clusters
    if "delta" not in await fleet_app.clusters_by_name():
        expect(await fleet_app.register("delta", c2, max_warehouses=5), 201)
    expect(await fleet_app.patch("delta", state="active"), 200)
    tenant = await create_tenant(fleet_app.client)
    expect(await provision(fleet_app.client, tenant, new_name()), 202)
    where = (await fleet_app.placement(tenant.org_id))["cluster"]
    before = await _listed(fleet_app)
    await run_burst_worker(fleet_app.settings)
    expect(await fleet_app.client.post(tenant.env_url("deprovision"), headers=tenant.headers), 202)
    await run_burst_worker(fleet_app.settings)
    assert (await status(fleet_app.client, tenant))["state"] == "deleted"
    after = await _listed(fleet_app)
    assert after[where] == before[where] - 1
    assert after == await _counted(fleet_app)

    # A write that bypasses the service (here: the counter itself) is repaired by the check
    # the worker runs with every cluster health check, and placement reads the repaired value.
    conn = await asyncpg.connect(to_plain_dsn(fleet_app.settings.database_url))
    try:
        await conn.execute("UPDATE warehouse_clusters SET warehouses = 5 WHERE name = 'delta'")
    finally:
        await conn.close()
    assert (await _listed(fleet_app))["delta"] == 5
    results = await check_counters(fleet_app.app.state.sessionmaker)
    assert results["delta"] is False and results["default"] is True
    assert await _listed(fleet_app) == await _counted(fleet_app)
    assert (await check_counters(fleet_app.app.state.sessionmaker))["delta"] is True
    async with fleet_app.app.state.sessionmaker() as session:
        incoming = await session.scalar(text("SELECT sum(incoming) FROM warehouse_clusters"))
    assert incoming == 0
