"""`provision` answers in the order of API.md §4.2: body (400) → a live warehouse (409) → the
name (409) → the environment's write-once table rule (400)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from app.settings import Settings
from tests.support.harness import Tenant
from tests.support.lifecycle import new_name, provision, run_burst_worker, status
from tests.support.status_recorder import expect

LIVE = "This organization already has a managed warehouse"


async def test_a_live_warehouse_is_reported_before_names_and_tables(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    expect(await provision(client, tenant, new_name(), "main"), 202)
    for name, table in [
        (new_name(), "other"),  # another table: still "a warehouse exists"
        ("postgres", "other"),  # a reserved name and another table
        ("postgres", "main"),
    ]:
        r = await provision(client, tenant, name, table)
        expect(r, 409)
        assert r.json()["code"] == "conflict"
        assert r.json()["detail"].startswith(LIVE), r.text
    # Body shapes still come first.
    r = await provision(client, tenant, "Bad_Name", "other")
    expect(r, 400)
    assert r.json()["attr"] == "database_name", r.text


async def test_after_deleted_the_name_comes_before_the_table_rule(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    expect(await provision(client, tenant, new_name(), "main"), 202)
    await run_burst_worker(settings)
    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"

    r = await provision(client, tenant, "postgres", "other")
    expect(r, 409)
    assert r.json()["detail"] == "'postgres' is reserved by the warehouse cluster"

    r = await provision(client, tenant, new_name(), "other")
    expect(r, 400)
    assert r.json()["attr"] == "table_name"
    assert r.json()["detail"] == (
        "This environment already writes to events_main, and its warehouse tables can't be changed"
    )
    assert (await status(client, tenant))["state"] == "deleted"  # nothing recorded


async def test_concurrent_provisions_naming_other_tables_get_one_202_and_409s(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    prefix = f"ct{uuid.uuid4().hex[:6]}"
    answers = await asyncio.gather(
        *(provision(client, tenant, f"{prefix}-{i}", f"table_{i}") for i in range(20))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * 19, [r.text for r in answers if r.status_code != 409]
    for r in answers:
        if r.status_code == 409:
            assert r.json()["detail"].startswith(LIVE), r.text
    body = await status(client, tenant)
    winner = next(r for r in answers if r.status_code == 202)
    assert body["table_suffix"] == f"table_{answers.index(winner)}"
