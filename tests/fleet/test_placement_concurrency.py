"""Concurrent provisions never overfill a cluster (API.md §8): 50 at once, room for 25."""

from __future__ import annotations

import asyncio

from tests.fleet.conftest import FleetApp
from tests.support.harness import create_tenant
from tests.support.lifecycle import new_name, provision
from tests.support.status_recorder import expect


async def test_fifty_simultaneous_provisions_never_overfill(fleet_app: FleetApp) -> None:
    _, c1, c2 = fleet_app.clusters
    expect(await fleet_app.patch("default", state="paused"), 200)
    expect(await fleet_app.register("gamma", c1, max_warehouses=10), 201)
    expect(await fleet_app.register("delta", c2, max_warehouses=15), 201)
    tenants = [await create_tenant(fleet_app.client) for _ in range(50)]

    answers = await asyncio.gather(*(provision(fleet_app.client, t, new_name()) for t in tenants))

    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 25 + [503] * 25, codes
    for r in answers:
        if r.status_code == 503:
            assert r.json()["code"] == "no_capacity"
    clusters = await fleet_app.clusters_by_name()
    assert clusters["gamma"]["warehouses"] == 10
    assert clusters["delta"]["warehouses"] == 15
    assert clusters["default"]["warehouses"] == 0
    placed = [
        (await fleet_app.placement(t.org_id))["cluster"]
        for t, r in zip(tenants, answers, strict=True)
        if r.status_code == 202
    ]
    assert sorted(placed) == ["delta"] * 15 + ["gamma"] * 10
