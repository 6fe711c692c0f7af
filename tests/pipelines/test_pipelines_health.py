"""data_health_issues and data_ops_dashboard through the public API."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from app.models import Dashboard
from tests.support.harness import Tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect


async def _issues(client, tenant: Tenant):
    r = await client.get(tenant.env_url("data_health_issues"), headers=tenant.headers)
    expect(r, 200)
    return r.json()


async def test_one_issue_per_failing_thing_with_status_url_and_order(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    t = now()

    # A view whose newest run failed (an older success does not matter).
    view = await p.saved_query("broken_view")
    await p.modeling_job(view, status="Completed", created_at=t - timedelta(hours=5))
    await p.modeling_job(
        view,
        status="Failed",
        created_at=t - timedelta(hours=1),
        last_run_at=(t - timedelta(minutes=50)).isoformat(),
        error="division by zero",
    )
    # Synced tables: one failed, one over the billing limit.
    stripe = await p.source("Stripe")
    failed_table = await p.table(
        stripe,
        name="charges",
        status="Failed",
        sync_type="incremental",
        latest_error="401 from Stripe",
        last_synced_at=(t - timedelta(minutes=40)).isoformat(),
    )
    billing_table = await p.table(
        stripe,
        name="refunds",
        status="BillingLimitReached",
        last_synced_at=(t - timedelta(minutes=30)).isoformat(),
    )
    # A source in Error (its updated_at is "now").
    broken_source = await p.source("Hubspot", status="Error", latest_error="bad credentials")
    # A batch export whose latest run timed out.
    export = await p.batch_export("Nightly S3")
    await p.export_run(
        export,
        "TimedOut",
        created_at=t - timedelta(minutes=25),
        finished_at=(t - timedelta(minutes=20)).isoformat(),
        latest_error="timed out",
    )
    # Functions: degraded destination without error text, disabled transformation.
    dest = await p.function("Webhook", "destination", 11)
    transform = await p.function("GeoIP", "transformation", 3, error="crashed")

    body = await _issues(client, tenant)
    assert body["count"] == len(body["results"]) == 7
    by_id = {i["id"]: i for i in body["results"]}
    assert by_id[view] == {
        "id": view,
        "name": "broken_view",
        "type": "materialized_view",
        "status": "failed",
        "error": "division by zero",
        "failed_at": (t - timedelta(minutes=50)).isoformat(),
        "url": f"/data-warehouse/view/{view}",
    }
    assert by_id[failed_table] == {
        "id": failed_table,
        "name": "charges",
        "type": "external_data_sync",
        "status": "failed",
        "error": "401 from Stripe",
        "failed_at": (t - timedelta(minutes=40)).isoformat(),
        "url": f"/data-warehouse/sources/managed-{stripe}",
        "source_type": "Stripe",
        "sync_type": "incremental",
    }
    assert by_id[billing_table]["status"] == "billing_limit"
    assert by_id[billing_table]["sync_type"] is None
    assert by_id[billing_table]["source_type"] == "Stripe"
    src = by_id[broken_source]
    assert (src["type"], src["status"], src["name"], src["error"]) == (
        "source",
        "failed",
        "Hubspot",
        "bad credentials",
    )
    assert src["url"] == f"/data-warehouse/sources/managed-{broken_source}"
    assert "source_type" not in src and "sync_type" not in src
    exp = by_id[export]
    assert (exp["type"], exp["status"], exp["name"], exp["error"], exp["url"]) == (
        "destination",
        "failed",
        "Nightly S3",
        "timed out",
        f"/pipeline/batch-exports/{export}",
    )
    assert by_id[dest]["status"] == "degraded"
    assert by_id[dest]["error"] == "Destination experiencing issues"
    assert by_id[dest]["url"] == f"/pipeline/destinations/hog-{dest}/configuration"
    assert by_id[transform]["status"] == "disabled"
    assert by_id[transform]["error"] == "crashed"
    assert by_id[transform]["url"] == f"/pipeline/transformations/hog-{transform}/configuration"

    # Newest failure first: the source and functions just changed, then export, tables, view.
    order = [i["id"] for i in body["results"]]
    assert order[-4:] == [export, billing_table, failed_table, view]
    assert set(order[:3]) == {broken_source, dest, transform}
    stamps = [i["failed_at"] for i in body["results"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_healthy_deleted_paused_and_disabled_things_never_appear(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    t = now()
    recovered = await p.saved_query("recovered")
    await p.modeling_job(recovered, status="Failed", created_at=t - timedelta(hours=2))
    await p.modeling_job(recovered, status="Completed", created_at=t - timedelta(hours=1))
    deleted_view = await p.saved_query("deleted_view", deleted=True)
    await p.modeling_job(deleted_view, status="Failed")
    not_materialized = await p.saved_query("plain", is_materialized=False)
    await p.modeling_job(not_materialized, status="Failed")

    src = await p.source("Stripe")
    await p.table(src, name="paused", status="Failed", should_sync=False)
    await p.table(src, name="gone", status="Failed", deleted=True)
    await p.table(src, name="fine", status="Completed")
    gone_source = await p.source("Zendesk", status="Error", deleted=True)
    await p.table(gone_source, name="orphan", status="Failed")

    paused = await p.batch_export("paused", paused=True)
    await p.export_run(paused, "Failed")
    healed = await p.batch_export("healed")
    await p.export_run(healed, "Failed", created_at=t - timedelta(hours=1))
    await p.export_run(healed, "Completed", created_at=t)
    deleted_export = await p.batch_export("deleted", deleted=True)
    await p.export_run(deleted_export, "Terminated")

    await p.function("off", "destination", 3, enabled=False)
    await p.function("deleted", "transformation", 2, deleted=True)
    await p.function("healthy", "destination", 1)
    await p.function("unknown", "site_destination", 0)

    assert await _issues(client, tenant) == {"results": [], "count": 0}

    r = await client.get(
        tenant.env_url("data_health_issues"),
        headers={
            "Authorization": f"Bearer {await tenant.add_user(scopes=['warehouse_view:read'])}"
        },
    )
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'external_data_source:read'"


async def test_other_environments_issues_stay_there(client, tenant: Tenant, other_tenant: Tenant):
    await Pipelines(client, other_tenant.env_id).source("Stripe", status="Error")
    assert (await _issues(client, tenant))["count"] == 0
    assert (await _issues(client, other_tenant))["count"] == 1


async def test_concurrent_first_dashboard_calls_create_one(app: FastAPI, client, tenant: Tenant):
    responses = await asyncio.gather(
        *(
            client.get(tenant.env_url("data_ops_dashboard"), headers=tenant.headers)
            for _ in range(20)
        )
    )
    assert {r.status_code for r in responses} == {200}
    ids = {r.json()["dashboard_id"] for r in responses}
    assert len(ids) == 1
    async with app.state.sessionmaker() as s:
        count = await s.scalar(
            select(func.count()).select_from(Dashboard).where(Dashboard.team_id == tenant.env_id)
        )
    assert count == 1
    again = await client.get(tenant.project_url("data_ops_dashboard"), headers=tenant.headers)
    assert again.json()["dashboard_id"] in ids

    key = await tenant.add_user(scopes=["warehouse_view:read"])
    r = await client.get(
        tenant.env_url("data_ops_dashboard"), headers={"Authorization": f"Bearer {key}"}
    )
    expect(r, 403)
