"""managed-warehouse-data-status and managed-warehouse-source-schemas."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi import FastAPI

from app.models import WarehouseTeamMembership
from app.services.pipelines.readiness import rollup
from tests.support.harness import Tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect


async def _status(client, tenant: Tenant):
    r = await client.get(tenant.env_url("managed-warehouse-data-status"), headers=tenant.headers)
    expect(r, 200)
    return r.json()


async def _join_warehouse(app: FastAPI, tenant: Tenant) -> None:
    # Stands in for enable_backfill (another part of the service owns that action).
    async with app.state.sessionmaker() as s, s.begin():
        s.add(
            WarehouseTeamMembership(
                team_id=tenant.env_id,
                organization_id=uuid.UUID(tenant.org_id),
                table_suffix=f"t{uuid.uuid4().hex[:8]}",
                backfill_enabled=True,
            )
        )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], "not_configured"),
        (["not_configured", "up_to_date"], "up_to_date"),
        (["up_to_date", "sync_paused"], "sync_paused"),
        (["sync_paused", "waiting"], "waiting"),
        (["waiting", "backfilling", "up_to_date"], "backfilling"),
        (["backfilling", "needs_attention", "not_configured"], "needs_attention"),
    ],
)
def test_rollup_priority(states, expected):
    assert rollup(states) == expected


async def test_nothing_configured(client, tenant: Tenant):
    body = await _status(client, tenant)
    assert body["overall_readiness_state"] == "not_configured"
    assert body["events"]["readiness_state"] == "not_configured"
    assert body["persons"]["dataset"] == "persons"
    assert body["sources"] == {
        "readiness_state": "not_configured",
        "detail": body["sources"]["detail"],
        "sources": [],
    }
    assert set(body["events"]) == {
        "dataset",
        "readiness_state",
        "detail",
        "completed_partitions",
        "total_partitions",
        "current_partition",
        "last_updated_at",
    }


async def test_backfill_partition_states(app, client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    await _join_warehouse(app, tenant)
    body = await _status(client, tenant)
    assert body["events"]["readiness_state"] == "waiting"  # no partitions yet
    assert body["overall_readiness_state"] == "waiting"

    await p.partition("events", "2026-01", "completed")
    body = await _status(client, tenant)
    assert body["events"]["readiness_state"] == "waiting"  # total unknown

    await p.partition("events", "2026-02", "running", total=3)
    events = (await _status(client, tenant))["events"]
    assert events["readiness_state"] == "backfilling"
    assert events["current_partition"] == "2026-02"
    assert (events["completed_partitions"], events["total_partitions"]) == (1, 3)

    await p.partition("events", "2026-02", "completed")
    events = (await _status(client, tenant))["events"]
    assert (events["readiness_state"], events["current_partition"]) == ("backfilling", None)

    await p.partition("events", "2026-03", "completed")
    body = await _status(client, tenant)
    assert body["events"]["readiness_state"] == "up_to_date"
    assert body["events"]["last_updated_at"] is not None
    assert body["persons"]["readiness_state"] == "waiting"
    assert body["overall_readiness_state"] == "waiting"

    await p.partition("persons", "p1", "failed", total=1)
    body = await _status(client, tenant)
    assert body["persons"]["readiness_state"] == "needs_attention"
    assert body["overall_readiness_state"] == "needs_attention"


async def test_sources_states_sorting_and_schemas(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    t = now() - timedelta(hours=1)
    ok = await p.source("Stripe", prefix="payments")
    await p.table(ok, name="charges", last_synced_at=t.isoformat())
    await p.table(ok, name="old", status="Failed", deleted=True)
    paused = await p.source("Hubspot")
    await p.table(paused, name="contacts", should_sync=False)
    await p.table(paused, name="deals", last_synced_at=t.isoformat())
    first = await p.source("Postgres")
    backfilling_table = await p.table(first, name="users", status="Running")
    await p.table(first, name="orders", last_synced_at=t.isoformat())
    broken = await p.source("Zendesk")
    failed_table = await p.table(broken, name="tickets", status="Failed", latest_error="429")
    empty = await p.source("Salesforce")
    await p.source("Mailchimp", deleted=True)

    body = await _status(client, tenant)
    sources = body["sources"]
    assert sources["readiness_state"] == "needs_attention"
    assert body["overall_readiness_state"] == "needs_attention"
    assert [(s["source_name"], s["readiness_state"]) for s in sources["sources"]] == [
        ("Zendesk", "needs_attention"),
        ("Postgres", "backfilling"),
        ("Hubspot", "sync_paused"),
        ("payments", "up_to_date"),
        ("Salesforce", "not_configured"),
    ]
    pg = sources["sources"][1]
    assert pg["source_id"] == first and pg["source_type"] == "Postgres"
    assert (pg["total_schemas"], pg["backfilled_schemas"]) == (2, 1)
    assert pg["last_synced_at"] == t.isoformat()
    assert sources["sources"][3]["total_schemas"] == 1  # the deleted table is gone
    assert sources["sources"][4]["source_id"] == empty

    r = await client.get(
        tenant.env_url("managed-warehouse-source-schemas") + f"?source_id={first}",
        headers=tenant.headers,
    )
    expect(r, 200)
    schemas = r.json()["schemas"]
    assert [(s["table_name"], s["readiness_state"]) for s in schemas] == [
        ("orders", "up_to_date"),
        ("users", "backfilling"),
    ]
    assert schemas[1]["schema_id"] == backfilling_table
    assert schemas[1]["source_name"] == "Postgres" and schemas[1]["source_id"] == first
    assert schemas[1]["last_synced_at"] is None

    r = await client.get(
        tenant.env_url("managed-warehouse-source-schemas") + f"?source_id={broken}",
        headers=tenant.headers,
    )
    (only,) = r.json()["schemas"]
    assert (only["schema_id"], only["readiness_state"], only["detail"]) == (
        failed_table,
        "needs_attention",
        "429",
    )


@pytest.mark.parametrize(
    ("qs", "status"),
    [
        ("", 400),
        ("?source_id=", 400),
        ("?source_id=nope", 400),
        (f"?source_id={uuid.uuid4()}", 404),
    ],
)
async def test_source_schemas_bad_ids(client, tenant: Tenant, qs, status):
    r = await client.get(
        tenant.env_url("managed-warehouse-source-schemas") + qs, headers=tenant.headers
    )
    expect(r, status)
    if status == 400:
        assert r.json()["attr"] == "source_id"


async def test_other_environments_source_is_404(client, tenant: Tenant, other_tenant: Tenant):
    sid = await Pipelines(client, other_tenant.env_id).source()
    r = await client.get(
        tenant.env_url("managed-warehouse-source-schemas") + f"?source_id={sid}",
        headers=tenant.headers,
    )
    expect(r, 404)


async def test_project_prefix_reads_the_primary_environment(client, tenant: Tenant):
    sid = await Pipelines(client, tenant.env_id).source("Stripe")
    r = await client.get(
        tenant.project_url("managed-warehouse-source-schemas") + f"?source_id={sid}",
        headers=tenant.headers,
    )
    expect(r, 200)
    assert r.json() == {"schemas": []}
