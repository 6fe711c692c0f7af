"""Crash safety of a move: a worker SIGKILLs itself before/after every step; a new one finishes.

Each scenario runs `python -m app.worker --burst` with `WAREHOUSE_FAILPOINT=<when>:move-<step>`,
checks it died there, then runs a fresh worker: the warehouse ends `ready` with exactly one
copy (on the target), and its password logs in there.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fleet.conftest import DEFAULT, B, Fleet
from tests.fleet.test_moves import move, operation, provision_on
from tests.support.lifecycle import run_burst_worker, run_subprocess_worker, status
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault

STEPS = ["freeze", "claim", "role", "copy", "verify", "switch", "drop-source", "tables", "unfreeze"]
SIGKILLED = -9


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", STEPS)
async def test_a_move_survives_a_killed_worker(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, step: str, when: str
) -> None:
    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT, rows=120)
    await fleet.only(DEFAULT, B)
    r = await move(client, tenant.org_id, B)
    expect(r, 202)

    assert await run_subprocess_worker(settings, failpoint=f"{when}:move-{step}") == SIGKILLED
    assert (await status(client, tenant))["state"] == "migrating"

    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    # PENDING-REGISTRY assert body["connection"]["port"] == fleet.clusters[B].port
    assert (await operation(client, tenant, r.json()["operation_id"]))["status"] == "succeeded"
    assert await fleet.holds(DEFAULT, name) == (False, False)
    assert await fleet.holds(B, name) == (True, True)
    conn = await fleet.login(B, name, password)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 120
    finally:
        await conn.close()
    await fleet.drop_everywhere(name)
