"""running_activity / completed_activity through the public API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.harness import Tenant, create_tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect


async def _get(client, tenant: Tenant, action: str, qs: str = "", status: int = 200):
    r = await client.get(tenant.env_url(action) + qs, headers=tenant.headers)
    expect(r, status)
    return r.json()


async def test_rows_carry_every_field_for_import_and_model_jobs(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    sid = await p.source("Stripe")
    tid = await p.table(sid, name="invoices")
    t0 = now() - timedelta(hours=2)
    import_id = await p.import_job(
        tid,
        status="Failed",
        rows=42,
        created_at=t0,
        finished_at=(t0 + timedelta(minutes=5)).isoformat(),
        latest_error="token expired",
        workflow_run_id="wf-1",
    )
    qid = await p.saved_query("daily_revenue", origin="data_warehouse")
    model_id = await p.modeling_job(
        qid,
        status="Completed",
        rows=7,
        created_at=t0 + timedelta(hours=1),
        last_run_at=(t0 + timedelta(hours=1, minutes=1)).isoformat(),
        workflow_run_id="wf-2",
    )
    body = await _get(client, tenant, "completed_activity", "?outcome=all")
    assert body["next"] is None and body["previous"] is None
    model_row, import_row = body["results"]
    assert model_row == {
        "id": model_id,
        "type": "Materialized view",
        "name": "daily_revenue",
        "status": "Completed",
        "rows": 7,
        "created_at": (t0 + timedelta(hours=1)).isoformat(),
        "finished_at": (t0 + timedelta(hours=1, minutes=1)).isoformat(),
        "latest_error": None,
        "workflow_run_id": "wf-2",
        "origin": "data_warehouse",
        "source_id": None,
    }
    assert import_row == {
        "id": import_id,
        "type": "Stripe",
        "name": "invoices",
        "status": "Failed",
        "rows": 42,
        "created_at": t0.isoformat(),
        "finished_at": (t0 + timedelta(minutes=5)).isoformat(),
        "latest_error": "token expired",
        "workflow_run_id": "wf-1",
        "origin": None,
        "source_id": sid,
    }


async def test_pagination_strings_and_caps(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    base = now() - timedelta(hours=1)
    ids = [await p.import_job(tid, created_at=base - timedelta(minutes=i)) for i in range(53)]

    first = await _get(client, tenant, "completed_activity", "?limit=500")
    assert [r["id"] for r in first["results"]] == ids[:50]
    assert first["next"] == "?limit=50&offset=50&cutoff_days=30"
    assert first["previous"] is None

    second = await _get(client, tenant, "completed_activity", "?limit=20&offset=45&kind=import")
    assert [r["id"] for r in second["results"]] == ids[45:]
    assert second["next"] is None
    assert second["previous"] == "?limit=20&offset=25&cutoff_days=30&kind=import"

    mid = await _get(
        client, tenant, "completed_activity", "?limit=5&offset=3&cutoff_days=7&outcome=all"
    )
    assert [r["id"] for r in mid["results"]] == ids[3:8]
    assert mid["next"] == "?limit=5&offset=8&cutoff_days=7&outcome=all"
    assert mid["previous"] == "?limit=5&offset=0&cutoff_days=7&outcome=all"

    negative = await _get(client, tenant, "completed_activity", "?offset=-5")
    assert len(negative["results"]) == 20 and negative["previous"] is None
    assert negative["next"] == "?limit=20&offset=20&cutoff_days=30"


@pytest.mark.parametrize(
    ("qs", "attr"),
    [
        ("?limit=abc", "limit"),
        ("?limit=1.5", "limit"),
        ("?offset=x", "offset"),
        ("?cutoff_days=ten", "cutoff_days"),
        ("?kind=export", "kind"),
        ("?outcome=weird", "outcome"),
        ("?limit=0", "limit"),
    ],
)
async def test_bad_query_params_are_400(client, tenant: Tenant, qs, attr):
    body = await _get(client, tenant, "completed_activity", qs, status=400)
    assert body["type"] == "validation_error" and body["attr"] == attr


async def test_running_kind_outcome_cutoff_and_isolation(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source("Hubspot"))
    qid = await p.saved_query("mv")
    t = now() - timedelta(minutes=30)
    running_import = await p.import_job(tid, status="Running", created_at=t)
    running_model = await p.modeling_job(qid, status="Running", created_at=t - timedelta(minutes=1))
    done = await p.import_job(tid, status="Completed", created_at=t - timedelta(minutes=2))
    billing = await p.import_job(
        tid, status="BillingLimitReached", created_at=t - timedelta(minutes=3)
    )
    cancelled = await p.modeling_job(qid, status="Cancelled", created_at=t - timedelta(minutes=4))
    failed_model = await p.modeling_job(qid, status="Failed", created_at=t - timedelta(minutes=5))
    old = await p.import_job(tid, status="Completed", created_at=now() - timedelta(days=31))
    old_running = await p.import_job(tid, status="Running", created_at=now() - timedelta(days=40))

    other = await create_tenant(client)
    op = Pipelines(client, other.env_id)
    await op.import_job(await op.table(await op.source()), status="Running")

    def ids(body):
        return [r["id"] for r in body["results"]]

    running = await _get(client, tenant, "running_activity")
    assert ids(running) == [running_import, running_model]
    assert ids(await _get(client, tenant, "running_activity", "?kind=model")) == [running_model]
    assert ids(await _get(client, tenant, "completed_activity")) == [done]
    failed = await _get(client, tenant, "completed_activity", "?outcome=failed")
    assert ids(failed) == [billing, failed_model]
    every = await _get(client, tenant, "completed_activity", "?outcome=all")
    assert ids(every) == [done, billing, cancelled, failed_model]
    longer = await _get(client, tenant, "completed_activity", "?cutoff_days=60&kind=import")
    assert ids(longer) == [done, old]
    assert ids(await _get(client, tenant, "running_activity", "?cutoff_days=60")) == [
        running_import,
        running_model,
        old_running,
    ]


async def test_jobs_of_deleted_tables_and_views_disappear(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    sid = await p.source()
    tid = await p.table(sid, name="gone")
    await p.import_job(tid)
    qid = await p.saved_query("gone_view")
    await p.modeling_job(qid)
    other_source = await p.source("Hubspot")
    await p.import_job(await p.table(other_source, name="contacts"))
    assert len((await _get(client, tenant, "completed_activity"))["results"]) == 3
    await p.table(sid, name="gone", id=tid, deleted=True)
    await p.saved_query("gone_view", id=qid, deleted=True)
    assert len((await _get(client, tenant, "completed_activity"))["results"]) == 1
    await p.source("Hubspot", id=other_source, deleted=True)
    assert (await _get(client, tenant, "completed_activity"))["results"] == []


async def test_project_prefix_and_scope(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    await p.import_job(await p.table(await p.source()), status="Running")
    r = await client.get(tenant.project_url("running_activity"), headers=tenant.headers)
    expect(r, 200)
    assert len(r.json()["results"]) == 1
    key = await tenant.add_user(scopes=["query:read"])
    r = await client.get(
        tenant.env_url("running_activity"), headers={"Authorization": f"Bearer {key}"}
    )
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'warehouse_view:read'"
