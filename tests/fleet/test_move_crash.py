"""Crash safety of a move: a worker SIGKILLs itself before/after every step; a new one finishes.

Each scenario runs `python -m app.worker --burst` with `WAREHOUSE_FAILPOINT=<when>:move-<step>`,
checks it died there, then runs a fresh worker: the warehouse ends `ready` with exactly one
copy (on the target), and its password logs in there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.pgcluster import binaries
from tests.fleet.conftest import DEFAULT, B, Fleet
from tests.fleet.test_moves import _target_major, move, operation, provision_on
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
    assert body["connection"]["port"] == fleet.clusters[B].port
    assert (await operation(client, tenant, r.json()["operation_id"]))["status"] == "succeeded"
    assert await fleet.holds(DEFAULT, name) == (False, False)
    assert await fleet.holds(B, name) == (True, True)
    conn = await fleet.login(B, name, password)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 120
    finally:
        await conn.close()
    await fleet.drop_everywhere(name)


@pytest.mark.parametrize("failpoint", ["before:move-undo-target", "after:move-undo-freeze"])
async def test_a_rollback_survives_a_killed_worker(
    client: httpx.AsyncClient,
    fleet: Fleet,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failpoint: str,
) -> None:
    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT, rows=30)
    await fleet.only(DEFAULT, B)
    fake = tmp_path / "pg_restore"  # the copy always fails, so the move rolls back
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
        r = await move(client, tenant.org_id, B)
        expect(r, 202)
        assert await run_subprocess_worker(settings, failpoint=failpoint) == SIGKILLED
        assert (await status(client, tenant))["state"] == "migrating"
        await run_burst_worker(settings)
    finally:
        binaries.clear_cache()
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert (await fleet.where(tenant.org_id))["cluster"] == DEFAULT
    done = await operation(client, tenant, r.json()["operation_id"])
    assert done["status"] == "failed", done
    assert await fleet.holds(B, name) == (False, False)
    conn = await fleet.login(DEFAULT, name, password)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 30
    finally:
        await conn.close()
    await fleet.drop_everywhere(name)
