"""job_stats and total_rows_stats through the public API."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect


async def _stats(client, tenant: Tenant, qs: str = "", status: int = 200):
    r = await client.get(tenant.env_url("job_stats") + qs, headers=tenant.headers)
    expect(r, status)
    return r.json()


@pytest.mark.parametrize(
    ("qs", "detail"),
    [
        ("?days=14", "Invalid days parameter. Must be 1, 7, or 30."),
        ("?days=0", "Invalid days parameter. Must be 1, 7, or 30."),
        ("?days=99999999999999999", "Invalid days parameter. Must be 1, 7, or 30."),
        ("?days=x", "Invalid days parameter"),
        ("?days=7.0", "Invalid days parameter"),
        ("?days=", "Invalid days parameter"),
        ("?days=999999999999999999999999999", "Invalid days parameter. Must be 1, 7, or 30."),
    ],
)
async def test_days_validation(client, tenant: Tenant, qs, detail):
    body = await _stats(client, tenant, qs, status=400)
    assert body["detail"] == detail
    assert body["attr"] == "days"


async def test_counts_billing_statuses_as_failures_once(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    qid = await p.saved_query()
    t = now() - timedelta(seconds=2)
    for status in ("Completed", "Completed", "Failed", "BillingLimitReached", "BillingLimitTooLow"):
        await p.import_job(tid, status=status, created_at=t)
    await p.import_job(tid, status="Running", created_at=t)
    await p.import_job(tid, status="Failed", created_at=t, billable=False)  # not counted
    await p.import_job(tid, status="Completed", created_at=now() - timedelta(days=8))  # outside
    for status in ("Completed", "Failed", "Cancelled", "Running"):
        await p.modeling_job(qid, status=status, created_at=t)

    body = await _stats(client, tenant)
    assert body["days"] == 7
    assert body["external_data_jobs"] == {"total": 6, "running": 1, "successful": 2, "failed": 3}
    assert body["modeling_jobs"] == {"total": 4, "running": 1, "successful": 1, "failed": 1}
    assert body["total_jobs"] == 10
    assert body["successful_jobs"] == 3
    assert body["failed_jobs"] == 4
    assert len(body["breakdown"]) == 7
    today = t.date().isoformat()
    assert list(body["breakdown"])[-1] == today
    assert body["breakdown"][today] == {"successful": 3, "failed": 4}
    assert sum(b["failed"] for b in body["breakdown"].values()) == 4
    assert (
        body["cutoff_time"]
        == datetime.combine(t.date() - timedelta(days=6), time(0), tzinfo=UTC).isoformat()
    )


async def test_daily_buckets_follow_the_environment_zone_across_midnight(client):
    zone = ZoneInfo("Asia/Tokyo")  # +09:00, no DST
    tenant = await create_tenant(client, timezone="Asia/Tokyo")
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    today = datetime.now(zone).date()
    yesterday = today - timedelta(days=1)
    late = datetime.combine(yesterday, time(23, 30), tzinfo=zone)
    early = datetime.combine(today, time(0, 30), tzinfo=zone)
    # Both instants fall on the same UTC day; only the Tokyo day tells them apart.
    assert late.astimezone(UTC).date() == early.astimezone(UTC).date()
    await p.import_job(tid, status="Completed", created_at=late)
    await p.import_job(tid, status="Failed", created_at=early)
    first_day = today - timedelta(days=6)
    await p.import_job(
        tid, created_at=datetime.combine(first_day, time(0, 10), tzinfo=zone)
    )  # first bucket
    await p.import_job(
        tid, created_at=datetime.combine(first_day, time(0), tzinfo=zone) - timedelta(minutes=5)
    )  # just before the window

    body = await _stats(client, tenant, "?days=7")
    assert body["cutoff_time"] == datetime.combine(first_day, time(0), tzinfo=zone).isoformat()
    assert body["cutoff_time"].endswith("+09:00")
    assert body["breakdown"][yesterday.isoformat()] == {"successful": 1, "failed": 0}
    assert body["breakdown"][today.isoformat()] == {"successful": 0, "failed": 1}
    assert body["breakdown"][first_day.isoformat()] == {"successful": 1, "failed": 0}
    assert body["external_data_jobs"]["total"] == 3

    month = await _stats(client, tenant, "?days=30")
    assert len(month["breakdown"]) == 30 and list(month["breakdown"])[-1] == today.isoformat()
    assert month["external_data_jobs"]["total"] == 4


async def test_hourly_buckets_for_one_day(client):
    zone = ZoneInfo("Asia/Kolkata")  # +05:30: local hours start at :30 UTC
    tenant = await create_tenant(client, timezone="Asia/Kolkata")
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    hour = datetime.now(zone).replace(minute=0, second=0, microsecond=0)
    await p.import_job(tid, status="Completed", created_at=hour + timedelta(seconds=1))
    await p.import_job(tid, status="Failed", created_at=hour - timedelta(seconds=1))
    await p.import_job(tid, created_at=hour - timedelta(hours=23))  # first bucket
    await p.import_job(tid, created_at=hour - timedelta(hours=23, seconds=1))  # outside

    body = await _stats(client, tenant, "?days=1")
    keys = list(body["breakdown"])
    assert len(keys) == 24
    assert keys[-1] == hour.isoformat() and keys[-1].endswith("+05:30")
    assert keys[0] == (hour - timedelta(hours=23)).isoformat() == body["cutoff_time"]
    assert body["breakdown"][keys[-1]] == {"successful": 1, "failed": 0}
    assert body["breakdown"][keys[-2]] == {"successful": 0, "failed": 1}
    assert body["breakdown"][keys[0]] == {"successful": 1, "failed": 0}
    assert body["external_data_jobs"]["total"] == 3


async def _billing(client, tenant: Tenant, start: datetime, end: datetime, tracked: int):
    r = await client.put(
        f"/internal/organizations/{tenant.org_id}/billing",
        json={
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "interval": "month",
            "tracked_rows": tracked,
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 200)


async def test_total_rows_stats_with_billing_record(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    stripe = await p.source("Stripe")
    hubspot = await p.source("Hubspot")
    t_stripe, t_hub = await p.table(stripe), await p.table(hubspot)
    # Off the 15-minute marks, so the period's edges are read from the jobs, the rest from rollups.
    mark = datetime.fromtimestamp(now().timestamp() // 900 * 900, UTC)
    start = mark - timedelta(days=10) + timedelta(minutes=7)
    end = mark + timedelta(days=20, minutes=7)
    await _billing(client, tenant, start, end, tracked=100)
    await p.import_job(t_stripe, rows=20, created_at=start + timedelta(seconds=1))  # edge
    await p.import_job(t_stripe, rows=40, created_at=start + timedelta(days=1))
    await p.import_job(t_stripe, rows=40, created_at=now() - timedelta(hours=1))
    await p.import_job(t_hub, rows=50, created_at=now())
    await p.import_job(t_hub, rows=999, billable=False)
    await p.import_job(t_hub, rows=777, created_at=start - timedelta(seconds=1))
    qid = await p.saved_query()
    await p.modeling_job(qid, rows=12)
    await p.modeling_job(qid, rows=500, created_at=start - timedelta(days=1))

    r = await client.get(tenant.env_url("total_rows_stats"), headers=tenant.headers)
    expect(r, 200)
    body = r.json()
    assert body["billing_available"] is True
    assert body["billing_interval"] == "month"
    assert datetime.fromisoformat(body["billing_period_start"]) == start
    assert datetime.fromisoformat(body["billing_period_end"]) == end
    assert (body["tracked_billing_rows"], body["pending_billing_rows"], body["total_rows"]) == (
        100,
        50,
        150,
    )
    assert body["breakdown_of_rows_by_source"] == {stripe: 100, hubspot: 50}
    assert body["materialized_rows_in_billing_period"] == 12

    # Billing is per organization: another environment's rows add to pending, not breakdown.
    staging = Pipelines(client, await tenant.add_environment("staging"))
    await staging.import_job(await staging.table(await staging.source()), rows=30)
    body = (await client.get(tenant.env_url("total_rows_stats"), headers=tenant.headers)).json()
    assert (body["pending_billing_rows"], body["total_rows"]) == (80, 180)
    assert body["breakdown_of_rows_by_source"] == {stripe: 100, hubspot: 50}

    await _billing(client, tenant, start, end, tracked=1000)  # tracked ahead of sync: no negatives
    body = (await client.get(tenant.env_url("total_rows_stats"), headers=tenant.headers)).json()
    assert (body["pending_billing_rows"], body["total_rows"]) == (0, 1000)


async def test_total_rows_stats_without_billing_uses_calendar_month(client, tenant: Tenant):
    p = Pipelines(client, tenant.env_id)
    await p.import_job(await p.table(await p.source()), rows=25)
    r = await client.get(tenant.env_url("total_rows_stats"), headers=tenant.headers)
    body = r.json()
    today = datetime.now(UTC)
    start = datetime(today.year, today.month, 1, tzinfo=UTC)
    end = datetime(today.year + (today.month == 12), today.month % 12 + 1, 1, tzinfo=UTC)
    assert body["billing_available"] is False
    assert body["billing_interval"] == "month"
    assert datetime.fromisoformat(body["billing_period_start"]) == start
    assert datetime.fromisoformat(body["billing_period_end"]) == end
    assert (body["tracked_billing_rows"], body["pending_billing_rows"], body["total_rows"]) == (
        0,
        25,
        25,
    )


@pytest.mark.parametrize(
    ("start", "end", "inner"),
    [
        ("2026-11-01T00:07:00+00:00", "2026-11-01T01:07:00+00:00", ("00:15", "01:00")),
        ("2026-11-01T00:00:00+00:00", "2026-11-01T00:30:00+00:00", ("00:00", "00:30")),
        ("2026-11-01T00:01:00+00:00", "2026-11-01T00:14:00+00:00", ("00:14", "00:14")),
    ],
)
def test_rollup_bounds(start, end, inner):
    from app.services.pipelines.stats import rollup_bounds

    got = rollup_bounds(datetime.fromisoformat(start), datetime.fromisoformat(end))
    assert tuple(t.strftime("%H:%M") for t in got) == inner


async def test_rollups_follow_every_change_of_a_job(app, client, tenant: Tenant):
    """Status changes, billable flips, moves between buckets: stats stay exact."""
    from sqlalchemy import text

    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    qid = await p.saved_query()
    t = now() - timedelta(minutes=1)
    job = await p.import_job(tid, status="Running", rows=0, created_at=t)
    model = await p.modeling_job(qid, status="Running", created_at=t)
    stats = await _stats(client, tenant)
    assert stats["external_data_jobs"] == {"total": 1, "running": 1, "successful": 0, "failed": 0}

    await p.import_job(tid, id=job, status="Completed", rows=500, created_at=t)
    await p.import_job(tid, id=job, status="Completed", rows=500, created_at=t)  # repeat
    await p.modeling_job(qid, id=model, status="Failed", created_at=t - timedelta(days=2))
    stats = await _stats(client, tenant)
    assert stats["external_data_jobs"] == {"total": 1, "running": 0, "successful": 1, "failed": 0}
    assert stats["modeling_jobs"] == {"total": 1, "running": 0, "successful": 0, "failed": 1}
    day = (t - timedelta(days=2)).date().isoformat()
    assert stats["breakdown"][day] == {"successful": 0, "failed": 1}

    await p.import_job(tid, id=job, status="Failed", rows=500, created_at=t, billable=False)
    stats = await _stats(client, tenant)
    assert stats["external_data_jobs"]["total"] == 0

    # Whatever happened, the rollups equal a fresh count of the jobs.
    async with app.state.sessionmaker() as s:
        rolled = (
            await s.execute(
                text(
                    "SELECT r.kind, r.jobs, r.successful, r.failed, d.rows FROM"
                    " (SELECT kind, sum(jobs) AS jobs, sum(successful) AS successful,"
                    "  sum(failed) AS failed FROM pipeline_job_rollups WHERE team_id = :t"
                    "  GROUP BY kind) r"
                    " JOIN (SELECT kind, sum(rows) AS rows FROM pipeline_daily_rows"
                    "  WHERE team_id = :t GROUP BY kind) d ON d.kind = r.kind"
                    " ORDER BY r.kind"
                ),
                {"t": tenant.env_id},
            )
        ).all()
        raw = (
            await s.execute(
                text(
                    "SELECT 'import', count(*), count(*) FILTER (WHERE status = 'Completed'),"
                    " count(*) FILTER (WHERE status <> 'Completed' AND status <> 'Running'),"
                    " coalesce(sum(rows_synced), 0) FROM external_data_jobs"
                    " WHERE team_id = :t AND billable"
                    " UNION ALL SELECT 'model', count(*),"
                    " count(*) FILTER (WHERE status = 'Completed'),"
                    " count(*) FILTER (WHERE status = 'Failed'), sum(rows_materialized)"
                    " FROM modeling_jobs WHERE team_id = :t"
                ),
                {"t": tenant.env_id},
            )
        ).all()
    assert [tuple(r) for r in rolled] == [tuple(r) for r in raw]


async def test_deleting_an_organization_removes_its_jobs_and_rollups(app, client):
    """Cascades through jobs fire the rollup triggers; they must not re-create rollup rows."""
    from sqlalchemy import text

    tenant = await create_tenant(client)
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    await p.import_job(tid, status="Completed", rows=5)
    await p.modeling_job(await p.saved_query(), status="Failed")
    async with app.state.sessionmaker() as s, s.begin():
        await s.execute(text("DELETE FROM organizations WHERE id = :id"), {"id": tenant.org_id})
    async with app.state.sessionmaker() as s:
        left = await s.scalar(
            text(
                "SELECT (SELECT count(*) FROM pipeline_job_rollups WHERE team_id = :t)"
                " + (SELECT count(*) FROM pipeline_daily_rows WHERE team_id = :t)"
                " + (SELECT count(*) FROM external_data_jobs WHERE team_id = :t)"
            ),
            {"t": tenant.env_id},
        )
    assert left == 0
