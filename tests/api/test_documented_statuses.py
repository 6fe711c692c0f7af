"""Every success, 400 and 409 the OpenAPI document promises for a public action, asserted
through both prefixes (401/403/404 are tests/api/test_auth.py's matrix, 429
tests/api/test_every_action.py's).

One walk per prefix through a warehouse's life, in the order a client meets the statuses:
nothing to act on (404), bad input (400, including a malformed body and a bad Idempotency-Key
on the actions without a body), a pending warehouse that refuses deprovision, reset-password
and delete-org (409), then ready, deprovisioned and deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from app.models import WarehouseCluster
from app.services.fleet.bootstrap import admin_url_box
from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.lifecycle import new_name, run_burst_worker
from tests.support.pipeline_records import Pipelines
from tests.support.status_recorder import expect

Url = Callable[[str], str]
NO_BODY_ACTIONS = [
    ("POST", "reset-password"),
    ("POST", "deprovision"),
    ("DELETE", "delete-org"),
    ("POST", "snapshot"),
]


def _urls(tenant: Tenant, prefix: str) -> Url:
    return tenant.env_url if prefix == "environments" else tenant.project_url


class Walk:
    def __init__(self, client: httpx.AsyncClient, tenant: Tenant, url: Url) -> None:
        self.client, self.tenant, self.url = client, tenant, url

    async def call(
        self, method: str, action: str, status: int, *, query: str = "", **kw: Any
    ) -> httpx.Response:
        headers = {**self.tenant.headers, **kw.pop("headers", {})}
        r = await self.client.request(method, self.url(action) + query, headers=headers, **kw)
        return expect(r, status)


@pytest.mark.parametrize("prefix", ["environments", "projects"])
async def test_every_documented_status_of_the_public_actions(
    client: httpx.AsyncClient, settings: Settings, prefix: str
) -> None:
    tenant = await create_tenant(client)
    w = Walk(client, tenant, _urls(tenant, prefix))

    # Reads that need nothing, and their bad input.
    await w.call("GET", "check-database-name", 200, query="?name=acme")
    await w.call("GET", "check-database-name", 400)
    await w.call("GET", "check-schema-name", 200, query="?name=acme")
    await w.call("GET", "check-schema-name", 400, query="?name=9bad")
    for action, bad in [
        ("running_activity", "?limit=0"),
        ("completed_activity", "?outcome=weird"),
        ("job_stats", "?days=2"),
        ("operations", "?limit=x"),
        ("managed-warehouse-source-schemas", "?source_id=not-a-uuid"),
        ("property_values", "?table_name=events_main"),
    ]:
        await w.call("GET", action, 400, query=bad)
    for action in (
        "running_activity",
        "completed_activity",
        "job_stats",
        "data_health_issues",
        "data_ops_dashboard",
        "total_rows_stats",
        "managed-warehouse-data-status",
        "operations",
    ):
        await w.call("GET", action, 200)
    source_id = await Pipelines(client, tenant.env_id).source("Stripe")
    await w.call("GET", "managed-warehouse-source-schemas", 200, query=f"?source_id={source_id}")

    # Nothing to act on yet; bad input on the actions without a body.
    for method, action in NO_BODY_ACTIONS:
        await w.call(method, action, 404)
        json_type = {"content-type": "application/json"}
        r = await w.call(method, action, 400, content=b"{oops", headers=json_type)
        assert r.json()["code"] == "parse_error"
        r = await w.call(method, action, 400, headers={"Idempotency-Key": "x" * 300})
        assert r.json()["attr"] == "Idempotency-Key"
    await w.call("POST", "enable_backfill", 400, json={"table_name": "main"})  # no warehouse

    # Provision: bad body, accepted, a second one refused; a pending warehouse refuses the rest.
    name = new_name("doc")
    await w.call("POST", "provision", 400, json={"database_name": name})
    body = {"database_name": name, "table_name": "main"}
    provisioned = await w.call("POST", "provision", 202, json=body)
    await w.call("POST", "provision", 409, json={**body, "database_name": new_name("doc")})
    await w.call("POST", "deprovision", 409)  # pending: provisioning has not started
    await w.call("POST", "reset-password", 409)
    await w.call("DELETE", "delete-org", 409)
    await w.call("GET", f"operations/{provisioned.json()['operation_id']}", 200)
    await w.call("GET", "warehouse_status", 200)

    await run_burst_worker(settings)
    # The calling environment writes to events_main: the same table again is fine, another
    # is refused (400), and a name another environment uses conflicts (409).
    await w.call("POST", "enable_backfill", 200, json={"table_name": "main"})
    await w.call("POST", "enable_backfill", 400, json={"table_name": "other"})
    await w.call("POST", "enable_backfill", 400, json={})
    await w.call("POST", "onboard-team", 400, json={"schema_name": "Bad Name"})
    staging = await tenant.add_environment("staging")
    r = await client.post(
        f"/api/environments/{staging}/data_warehouse/onboard-team/",
        json={"schema_name": "staging_schema"},
        headers=tenant.headers,
    )
    expect(r, 200)
    await w.call("GET", "property_values", 200, query="?table_name=events_main&key=event")

    # Ready: rotate; deprovision; delete the record.
    await w.call("POST", "reset-password", 200)
    await w.call("POST", "deprovision", 202)
    await w.call("POST", "reset-password", 409)  # deleting
    await run_burst_worker(settings)
    await w.call("DELETE", "delete-org", 200)


@pytest.mark.parametrize("prefix", ["environments", "projects"])
async def test_the_primary_environment_without_tables_meets_the_others_names(
    client: httpx.AsyncClient, settings: Settings, prefix: str
) -> None:
    """enable_backfill / onboard-team: 200 for a free name, 409 for another environment's."""
    tenant = await create_tenant(client)
    staging = await tenant.add_environment("staging")
    r = await client.post(
        f"/api/environments/{staging}/data_warehouse/provision/",
        json={"database_name": new_name("doc"), "table_name": "staging_events"},
        headers=tenant.headers,
    )
    expect(r, 202)
    w = Walk(client, tenant, _urls(tenant, prefix))
    await w.call("POST", "enable_backfill", 409, json={"table_name": "staging_events"})
    await w.call("POST", "onboard-team", 409, json={"schema_name": "staging_events"})
    await w.call("POST", "onboard-team", 200, json={"schema_name": f"s_{uuid.uuid4().hex[:8]}"})
    other = await create_tenant(client)
    expect(
        await client.post(
            other.env_url("provision"),
            json={"database_name": new_name("doc"), "table_name": "main"},
            headers=other.headers,
        ),
        202,
    )
    ow = Walk(client, other, _urls(other, prefix))
    await ow.call("POST", "enable_backfill", 200, json={"table_name": "main"})
    await run_burst_worker(settings)  # leave no job behind for later tests' workers


async def test_internal_fleet_and_webhook_statuses(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    """The internal routes' 400/401/404/409 that domain tests reach only indirectly."""
    tenant = await create_tenant(client)
    where = f"/internal/warehouses/{tenant.org_id}"
    expect(await client.get(where), 401)
    expect(await client.get(where, headers=INTERNAL_HEADERS), 404)  # no warehouse yet
    expect(await client.get(f"/internal/warehouses/{uuid.uuid4()}", headers=INTERNAL_HEADERS), 404)
    # Text PostgreSQL cannot store (a NUL) in the query: 400 before anything is looked up.
    r = expect(await client.get(where + "?x=%00", headers=INTERNAL_HEADERS), 400)
    assert r.json()["code"] == "invalid_input"
    r = await client.delete(f"/internal/webhooks/{uuid.uuid4()}?x=%00", headers=INTERNAL_HEADERS)
    expect(r, 400)
    expect(await client.delete(f"/internal/webhooks/{uuid.uuid4()}", headers=INTERNAL_HEADERS), 404)
    for method in ("GET", "DELETE"):
        r = await client.request(
            method, "/internal/clusters/nowhere?x=%00", headers=INTERNAL_HEADERS
        )
        expect(r, 400)

    expect(
        await client.post("/internal/clusters/no-such-cluster/drain", headers=INTERNAL_HEADERS), 404
    )
    # A cluster that is already drained (an empty row: nothing to move, nothing placed on it).
    name = f"doc-drained-{uuid.uuid4().hex[:8]}"
    async with app.state.sessionmaker() as session, session.begin():
        session.add(
            WarehouseCluster(
                name=name,
                admin_url_ciphertext=admin_url_box(settings).encrypt(
                    b"postgresql://nobody@127.0.0.1:1/postgres"
                ),
                public_host="127.0.0.1",
                public_port=1,
                state="drained",
                healthy=False,
            )
        )
    try:
        r = await client.post(f"/internal/clusters/{name}/drain", headers=INTERNAL_HEADERS)
        assert "already drained" in expect(r, 409).json()["detail"]
    finally:
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(delete(WarehouseCluster).where(WarehouseCluster.name == name))
