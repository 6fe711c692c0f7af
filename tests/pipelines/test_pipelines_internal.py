"""Internal pipeline PUTs: idempotent upserts, validation, unknown parents, auth."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.models import ExternalDataJob, ExternalDataSource
from tests.support.harness import INTERNAL_HEADERS, Tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect


async def _count(app: FastAPI, model: type, **where: object) -> int:
    async with app.state.sessionmaker() as s:
        stmt = select(func.count()).select_from(model)
        for col, value in where.items():
            stmt = stmt.where(getattr(model, col) == value)
        return int(await s.scalar(stmt) or 0)


async def test_same_put_twice_leaves_one_row_and_changes_update(app, client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    sid = str(uuid.uuid4())
    body = {"source_type": "Stripe", "status": "Completed", "prefix": "billing"}
    first = await p.put(f"{p.base}/sources/{sid}", body)
    second = await p.put(f"{p.base}/sources/{sid}", body)
    assert await _count(app, ExternalDataSource, id=uuid.UUID(sid)) == 1
    assert first["updated_at"] == second["updated_at"]  # nothing changed, nothing touched

    changed = await p.put(f"{p.base}/sources/{sid}", {**body, "status": "Error"})
    assert changed["status"] == "Error"
    assert changed["updated_at"] > first["updated_at"]
    assert await _count(app, ExternalDataSource, id=uuid.UUID(sid)) == 1

    schema_id = await p.table(sid)
    jid = str(uuid.uuid4())
    for rows in (10, 10, 25):
        job = await p.put(
            f"{p.base}/import_jobs/{jid}",
            {
                "schema_id": schema_id,
                "status": "Completed",
                "rows_synced": rows,
                "billable": True,
                "created_at": "2026-11-01T10:00:00+01:00",
            },
        )
    assert await _count(app, ExternalDataJob, id=uuid.UUID(jid)) == 1
    assert job["rows_synced"] == 25
    assert job["source_id"] == sid


async def test_every_record_kind_upserts(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    qid = await p.saved_query()
    await p.modeling_job(qid, status="Failed", error="boom", last_run_at=now().isoformat())
    eid = await p.batch_export()
    await p.export_run(eid, "TimedOut", finished_at=now().isoformat())
    fid = await p.function("Slack", "destination", 2)
    out = await p.put(
        f"{p.base}/functions/{fid}",
        {"name": "Slack", "type": "destination", "state": 3, "enabled": True, "deleted": True},
    )
    assert out["state"] == 3 and out["deleted"] is True
    part = await p.partition("events", "2026-11", "running", total=12)
    again = await p.partition("events", "2026-11", "completed")
    assert part["total_partitions"] == again["total_partitions"] == 12  # kept when omitted
    assert again["state"] == "completed"
    billing = await p.put(
        f"/internal/organizations/{tenant.org_id}/billing",
        {
            "period_start": "2026-11-01T00:00:00Z",
            "period_end": "2026-12-01T00:00:00Z",
            "interval": "month",
            "tracked_rows": 5,
        },
    )
    assert billing["tracked_rows"] == 5


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "not_authenticated"), ({"Authorization": "Bearer nope"}, "authentication_failed")],
)
async def test_wrong_token_is_401(client, tenant: Tenant, headers, code):
    r = await client.put(
        f"/internal/environments/{tenant.env_id}/sources/{uuid.uuid4()}",
        json={"source_type": "Stripe", "status": "Completed"},
        headers=headers,
    )
    expect(r, 401)
    assert r.json()["code"] == code


async def test_bad_bodies_are_400_with_attr(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    sid = await p.source()
    schema_id = await p.table(sid)
    job = {
        "schema_id": schema_id,
        "status": "Completed",
        "rows_synced": 1,
        "billable": True,
        "created_at": now().isoformat(),
    }
    url = f"{p.base}/import_jobs/{uuid.uuid4()}"
    cases = [
        ({**job, "created_at": "2026-11-01T10:00:00"}, "created_at"),  # naive
        ({**job, "finished_at": "not a date"}, "finished_at"),
        ({**job, "status": "Exploded"}, "status"),
        ({**job, "rows_synced": -1}, "rows_synced"),
        ({**job, "rows_synced": 2**64}, "rows_synced"),
        ({**job, "surprise": 1}, "surprise"),
        ({**job, "billable": 0}, "billable"),  # strict: 0 is not false
        ({**job, "rows_synced": "5"}, "rows_synced"),
        ({**job, "created_at": 1_700_000_000}, "created_at"),
        ({k: v for k, v in job.items() if k != "billable"}, "billable"),
    ]
    for body, attr in cases:
        r = await client.put(url, json=body, headers=INTERNAL_HEADERS)
        expect(r, 400)
        assert r.json()["type"] == "validation_error"
        assert r.json()["attr"] == attr

    r = await client.put(
        f"{p.base}/functions/{uuid.uuid4()}",
        json={"name": "x", "type": "destination", "state": 7, "enabled": True},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "state"
    r = await client.put(
        f"{p.base}/functions/{uuid.uuid4()}",
        json={"name": "x", "type": "destination", "state": False, "enabled": True},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "state"
    r = await client.put(
        f"/internal/organizations/{tenant.org_id}/billing",
        json={
            "period_start": "2026-12-01T00:00:00Z",
            "period_end": "2026-11-01T00:00:00Z",
            "interval": "month",
            "tracked_rows": 0,
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "period_end"
    r = await client.put(
        f"{p.base}/backfill_partitions/groups/p1",
        json={"state": "running"},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "dataset"
    r = await client.put(f"{p.base}/sources/not-a-uuid", json={}, headers=INTERNAL_HEADERS)
    expect(r, 400)
    for team in (str(2**70), "0", "-1", "abc"):  # names no environment
        r = await client.put(
            f"/internal/environments/{team}/sources/{uuid.uuid4()}",
            json={"source_type": "Stripe", "status": "Completed"},
            headers=INTERNAL_HEADERS,
        )
        expect(r, 404)
    r = await client.put(
        f"/internal/organizations/{tenant.org_id}/billing",
        json={
            "period_start": 1_700_000_000,  # Unix time is not ISO-8601
            "period_end": "2026-12-01T00:00:00Z",
            "interval": "month",
            "tracked_rows": 0,
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "period_start"


async def test_unknown_parents_are_404(client, tenant: Tenant, other_tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    other = Pipelines(client, other_tenant.env_id)
    foreign_source = await other.source()
    foreign_table = await other.table(foreign_source)
    foreign_query = await other.saved_query()
    foreign_export = await other.batch_export()
    ts = now().isoformat()
    cases = [
        (
            f"/internal/environments/999999999/sources/{uuid.uuid4()}",
            {"source_type": "Stripe", "status": "Completed"},
        ),
        (
            f"{p.base}/sources/{foreign_source}/schemas/{uuid.uuid4()}",
            {"name": "t", "status": "Completed", "should_sync": True},
        ),
        (
            f"{p.base}/import_jobs/{uuid.uuid4()}",
            {
                "schema_id": foreign_table,
                "status": "Completed",
                "rows_synced": 1,
                "billable": True,
                "created_at": ts,
            },
        ),
        (
            f"{p.base}/modeling_jobs/{uuid.uuid4()}",
            {
                "saved_query_id": foreign_query,
                "status": "Completed",
                "rows_materialized": 1,
                "created_at": ts,
            },
        ),
        (
            f"{p.base}/batch_exports/{foreign_export}/runs/{uuid.uuid4()}",
            {"status": "Failed", "created_at": ts},
        ),
        (
            f"/internal/organizations/{uuid.uuid4()}/billing",
            {
                "period_start": "2026-11-01T00:00:00Z",
                "period_end": "2026-12-01T00:00:00Z",
                "interval": "month",
                "tracked_rows": 0,
            },
        ),
    ]
    for url, body in cases:
        r = await client.put(url, json=body, headers=INTERNAL_HEADERS)
        expect(r, 404)
        assert r.json()["code"] == "not_found"


async def test_id_of_another_environment_is_409(client, tenant: Tenant, other_tenant: Tenant):
    sid = await Pipelines(client, other_tenant.env_id).source()
    r = await client.put(
        f"/internal/environments/{tenant.env_id}/sources/{sid}",
        json={"source_type": "Hubspot", "status": "Completed"},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 409)
    # The other environment's record is untouched.
    same = await Pipelines(client, other_tenant.env_id).put(
        f"/internal/environments/{other_tenant.env_id}/sources/{sid}",
        {"source_type": "Stripe", "status": "Completed"},
    )
    assert same["team_id"] == other_tenant.env_id


async def test_timestamps_keep_their_instant(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    schema_id = await p.table(await p.source())
    created = now() - timedelta(hours=1)
    out = await p.put(
        f"{p.base}/import_jobs/{uuid.uuid4()}",
        {
            "schema_id": schema_id,
            "status": "Running",
            "rows_synced": 0,
            "billable": False,
            "created_at": created.astimezone().isoformat(),
        },
    )
    from datetime import datetime

    assert datetime.fromisoformat(out["created_at"]) == created


def _record_routes(parents: dict[str, str]) -> dict[str, tuple[str, dict[str, object]]]:
    """Each environment-scoped PUT: (path after the environment, a valid body)."""
    ts = now().isoformat()
    return {
        "source": ("sources/{id}", {"source_type": "Stripe", "status": "Completed"}),
        "schema": (
            f"sources/{parents['source']}/schemas/{{id}}",
            {"name": "t", "status": "Completed", "should_sync": True},
        ),
        "import_job": (
            "import_jobs/{id}",
            {
                "schema_id": parents["schema"],
                "status": "Completed",
                "rows_synced": 1,
                "billable": True,
                "created_at": ts,
            },
        ),
        "saved_query": ("saved_queries/{id}", {"name": "v", "is_materialized": True}),
        "modeling_job": (
            "modeling_jobs/{id}",
            {
                "saved_query_id": parents["query"],
                "status": "Completed",
                "rows_materialized": 1,
                "created_at": ts,
            },
        ),
        "batch_export": ("batch_exports/{id}", {"name": "e", "paused": False}),
        "export_run": (
            f"batch_exports/{parents['export']}/runs/{{id}}",
            {"status": "Completed", "created_at": ts},
        ),
        "function": (
            "functions/{id}",
            {"name": "f", "type": "destination", "state": 1, "enabled": True},
        ),
    }


async def _parents(p: Pipelines) -> dict[str, str]:
    source = await p.source()
    return {
        "source": source,
        "schema": await p.table(source),
        "query": await p.saved_query(),
        "export": await p.batch_export(),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "source",
        "schema",
        "import_job",
        "saved_query",
        "modeling_job",
        "batch_export",
        "export_run",
        "function",
    ],
)
async def test_every_record_put_answers_400_401_404_409(
    client, tenant: Tenant, other_tenant: Tenant, kind
):
    mine, theirs = Pipelines(client, tenant.env_id), Pipelines(client, other_tenant.env_id)
    my_route, body = _record_routes(await _parents(mine))[kind]
    their_route, their_body = _record_routes(await _parents(theirs))[kind]
    record_id = str(uuid.uuid4())
    url = f"{mine.base}/{my_route.format(id=record_id)}"

    r = await client.put(url, json=body)
    expect(r, 401)
    r = await client.put(url, json={}, headers=INTERNAL_HEADERS)
    expect(r, 400)
    assert r.json()["type"] == "validation_error"
    r = await client.put(
        f"/internal/environments/999999999/{my_route.format(id=record_id)}",
        json=body,
        headers=INTERNAL_HEADERS,
    )
    expect(r, 404)
    # The same id already stored by another environment: never moved, never overwritten.
    await theirs.put(f"{theirs.base}/{their_route.format(id=record_id)}", their_body)
    r = await client.put(url, json=body, headers=INTERNAL_HEADERS)
    expect(r, 409)
    assert r.json()["code"] == "conflict"


async def test_backfill_partition_and_billing_unknown_owner_is_404(client):
    r = await client.put(
        "/internal/environments/999999999/backfill_partitions/events/p1",
        json={"state": "running"},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 404)
    r = await client.put(
        "/internal/environments/1/backfill_partitions/events/p1", json={"state": "running"}
    )
    expect(r, 401)
    r = await client.put(
        f"/internal/organizations/{uuid.uuid4()}/billing",
        json={
            "period_start": "2026-11-01T00:00:00Z",
            "period_end": "2026-12-01T00:00:00Z",
            "interval": "month",
            "tracked_rows": 0,
        },
    )
    expect(r, 401)
