"""The warehouse lifecycle driven through the projects prefix, with Idempotency-Key retries.

The same service code answers both prefixes; this walks the whole life of a warehouse through
`/api/projects/{id}/...` (and resets through `/api/environments/{id}/...`), and checks that a
provision retried with the same Idempotency-Key gives back the same password, not a second
warehouse.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

from tests.support.harness import INTERNAL_HEADERS, Tenant
from tests.support.lifecycle import new_name, run_burst_worker, wait_for_state
from tests.support.status_recorder import expect


async def _login(settings, connection: dict[str, Any], password: str) -> int:
    conn = await asyncpg.connect(
        host=connection["host"],
        port=connection["port"],
        user=connection["username"],
        password=password,
        database=connection["database"],
        timeout=5,
    )
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_whole_lifecycle_through_the_projects_prefix(client, tenant: Tenant, settings):
    name = new_name()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"database_name": name, "table_name": "main"}
    first = await client.post(
        tenant.project_url("provision"), json=body, headers={**tenant.headers, **key}
    )
    expect(first, 202)
    # A retry with the same key (e.g. after a dropped connection) replays the first answer.
    retries = await asyncio.gather(
        *(
            client.post(
                tenant.project_url("provision"), json=body, headers={**tenant.headers, **key}
            )
            for _ in range(5)
        )
    )
    assert {r.status_code for r in retries} == {202}
    assert {r.content for r in retries} == {first.content}
    # The same key through the other prefix names the same environment: the same answer.
    via_env = await client.post(
        tenant.env_url("provision"), json=body, headers={**tenant.headers, **key}
    )
    assert via_env.content == first.content
    # Without the key, it is a second provision of a live warehouse: 409.
    again = await client.post(tenant.project_url("provision"), json=body, headers=tenant.headers)
    expect(again, 409)

    await run_burst_worker(settings)
    ready = await wait_for_state(client, tenant, {"ready"})
    assert await _login(settings, ready["connection"], first.json()["password"]) == 1

    reset = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(reset, 200)
    assert await _login(settings, ready["connection"], reset.json()["password"]) == 1

    # A second project of the same organization onboards its own schema via the projects prefix.
    r = await client.post(
        "/internal/projects",
        json={"organization_id": tenant.org_id, "name": "Second"},
        headers=INTERNAL_HEADERS,
    )
    second_project = r.json()["id"]
    onboard = await client.post(
        f"/api/projects/{second_project}/data_warehouse/onboard-team/",
        json={"schema_name": "second_team"},
        headers=tenant.headers,
    )
    expect(onboard, 200)
    assert onboard.json() == {"onboarded": True, "schema_name": "second_team"}

    gone = await client.post(tenant.project_url("deprovision"), headers=tenant.headers)
    expect(gone, 202)
    await run_burst_worker(settings)
    await wait_for_state(client, tenant, {"deleted"})
    deleted = await client.delete(tenant.project_url("delete-org"), headers=tenant.headers)
    expect(deleted, 200)
    assert deleted.json() == {"status": "deleted", "org": tenant.org_id}
    check = await client.get(
        tenant.project_url("check-database-name") + f"?name={name}", headers=tenant.headers
    )
    assert check.json() == {"name": name, "available": True}


async def test_concurrent_provisions_with_one_idempotency_key(client, tenant: Tenant, settings):
    """20 at once with the same key: one warehouse; every answer is the first 202 or a 409 that
    says the first is still in flight; a retry afterwards replays the same password."""
    name = new_name()
    headers = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
    body = {"database_name": name, "table_name": "main"}
    responses = await asyncio.gather(
        *(client.post(tenant.env_url("provision"), json=body, headers=headers) for _ in range(20))
    )
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 409]
    assert len(accepted) + len(refused) == 20
    assert len({r.content for r in accepted}) == 1
    assert all("still in progress" in r.json()["detail"] for r in refused)
    retry = await client.post(tenant.env_url("provision"), json=body, headers=headers)
    expect(retry, 202)
    assert retry.content == accepted[0].content
    await run_burst_worker(settings)
    status = await wait_for_state(client, tenant, {"ready"})
    assert status["connection"]["database"] == name
    assert await _login(settings, status["connection"], retry.json()["password"]) == 1
