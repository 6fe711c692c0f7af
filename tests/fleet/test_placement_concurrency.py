"""Concurrent provisions never overfill a cluster (API.md §8): 50 at once, room for 25."""

from __future__ import annotations

import asyncio

from tests.fleet.conftest import Fleet
from tests.support.harness import create_tenant
from tests.support.lifecycle import new_name, provision


async def test_fifty_simultaneous_provisions_never_overfill(fleet: Fleet) -> None:
    _, c1, c2 = fleet.clusters
    assert (await fleet.patch("default", state="paused")).status_code == 200
    assert (await fleet.register("gamma", c1, max_warehouses=10)).status_code == 201
    assert (await fleet.register("delta", c2, max_warehouses=15)).status_code == 201
    tenants = [await create_tenant(fleet.client) for _ in range(50)]

    answers = await asyncio.gather(*(provision(fleet.client, t, new_name()) for t in tenants))

    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 25 + [503] * 25, codes
    for r in answers:
        if r.status_code == 503:
            assert r.json()["code"] == "no_capacity"
    clusters = await fleet.clusters_by_name()
    assert clusters["gamma"]["warehouses"] == 10
    assert clusters["delta"]["warehouses"] == 15
    assert clusters["default"]["warehouses"] == 0
    placed = [
        (await fleet.placement(t.org_id))["cluster"]
        for t, r in zip(tenants, answers, strict=True)
        if r.status_code == 202
    ]
    assert sorted(placed) == ["delta"] * 15 + ["gamma"] * 10
