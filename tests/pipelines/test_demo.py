"""`warehouse dev --demo` (app/devtools/demo.py): after it, every activity, stats and health
action shows something, and a second run adds nothing."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.devtools.demo import DemoFiller
from app.settings import Settings
from tests.support.harness import INTERNAL_TOKEN, Tenant
from tests.support.lifecycle import running_worker
from tests.support.status_recorder import expect

TABLES = (
    "external_data_sources",
    "external_data_schemas",
    "external_data_jobs",
    "saved_queries",
    "modeling_jobs",
    "batch_exports",
    "batch_export_runs",
    "pipeline_functions",
    "backfill_partitions",
)


def _filler(client: httpx.AsyncClient, tenant: Tenant) -> DemoFiller:
    return DemoFiller(
        client,
        internal_token=INTERNAL_TOKEN,
        api_key=tenant.key,
        organization_id=tenant.org_id,
        environment_id=tenant.env_id,
        ready_timeout=60,
    )


async def _counts(app: FastAPI, team_id: int) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        return {
            table: int(
                await session.scalar(
                    text(f"SELECT count(*) FROM {table} WHERE team_id = :t"),
                    {"t": team_id},
                )
            )
            for table in TABLES
        }


async def _get(client: httpx.AsyncClient, tenant: Tenant, action: str) -> Any:
    name, _, query = action.partition("?")
    r = await client.get(
        tenant.env_url(name) + (f"?{query}" if query else ""), headers=tenant.headers
    )
    expect(r, 200)
    return r.json()


async def test_demo_fills_every_action_and_is_idempotent(
    client: httpx.AsyncClient, app: FastAPI, tenant: Tenant, settings: Settings
) -> None:
    async with running_worker(settings):
        summary = await _filler(client, tenant).run()
    assert summary.records["import jobs"] > 100 and summary.records["model jobs"] == 90
    assert summary.records["new warehouse events"] == 300, summary.lines()

    running = await _get(client, tenant, "running_activity")
    assert {r["status"] for r in running["results"]} == {"Running"}
    assert {r["type"] for r in running["results"]} >= {"Stripe", "Postgres", "Materialized view"}
    completed = await _get(client, tenant, "completed_activity")
    assert len(completed["results"]) == 20 and completed["next"]
    failed = await _get(client, tenant, "completed_activity?outcome=failed&cutoff_days=30")
    assert failed["results"]

    for days in (1, 7, 30):
        stats = await _get(client, tenant, f"job_stats?days={days}")
        assert stats["external_data_jobs"]["running"] >= 2
        assert stats["modeling_jobs"]["running"] == 1
        assert stats["failed_jobs"] > 0 and stats["successful_jobs"] > 0
    month = await _get(client, tenant, "job_stats?days=30")
    assert sum(1 for b in month["breakdown"].values() if b["successful"]) >= 29

    health = await _get(client, tenant, "data_health_issues")
    kinds = {item["type"] for item in health["results"]}
    assert kinds == {
        "materialized_view",
        "external_data_sync",
        "source",
        "destination",
        "transformation",
    }
    names = {item["name"] for item in health["results"]}
    assert "S3 events export" in names and "Slack alerts" in names
    assert "Snowflake export (paused)" not in names
    assert (await _get(client, tenant, "data_ops_dashboard"))["dashboard_id"]

    rows = await _get(client, tenant, "total_rows_stats")
    assert rows["billing_available"] is True and rows["tracked_billing_rows"] > 0
    assert rows["breakdown_of_rows_by_source"]

    status = await _get(client, tenant, "managed-warehouse-data-status")
    assert status["events"]["readiness_state"] == "backfilling"
    assert status["events"]["completed_partitions"] == 11
    assert status["persons"]["readiness_state"] == "up_to_date"
    assert status["overall_readiness_state"] == "needs_attention"
    sources = status["sources"]["sources"]
    assert [s["source_name"] for s in sources][:1] and len(sources) == 3
    schemas = await _get(
        client, tenant, f"managed-warehouse-source-schemas?source_id={sources[0]['source_id']}"
    )
    assert schemas["schemas"]
    values = await _get(client, tenant, "property_values?table_name=events_demo&key=event")
    assert values["results"]
    warehouse = await _get(client, tenant, "warehouse_status")
    assert warehouse["state"] == "ready" and warehouse["table_suffix"] == "demo"

    before = await _counts(app, tenant.env_id)
    again = await _filler(client, tenant).run()
    assert again.records["new warehouse events"] == 0
    assert again.records["new warehouse persons"] == 0
    assert await _counts(app, tenant.env_id) == before
    assert (await _get(client, tenant, "warehouse_status"))["state"] == "ready"
