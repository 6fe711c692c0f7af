"""Job statistics (`job_stats`) and billing-period row usage (`total_rows_stats`).

Both are single indexed aggregates with the bucketing done in SQL, in the environment's time
zone. They read rollups kept exact by triggers: `pipeline_job_rollups` (15-minute UTC buckets)
for job_stats, `pipeline_daily_rows` (UTC days, per source) for billing-period rows, so a busy
environment's 30 days cost a few thousand rollup rows instead of every job. A billing period's
partial days, and a job_stats window off the 15-minute marks, are read from the job tables'
covering indexes.
"""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from app.core.context import TeamRef
from app.core.read_pool import ReadPool
from app.models.pipelines import DAY_SECONDS, ROLLUP_SECONDS
from app.schemas.pipelines import BucketStats, JobGroupStats, JobStats, TotalRowsStats

ALLOWED_DAYS = (1, 7, 30)


def _bucket_sql(column: str, hourly: bool) -> str:
    if hourly:
        return f"floor(extract(epoch FROM ({column} - CAST(:start AS timestamptz))) / 3600)::int"
    return f"(({column} AT TIME ZONE CAST(:tz AS text))::date - CAST(:first_day AS date))"


# From the 15-minute rollups (the usual path: every current zone's hours and days align).
_STATS_ROLLUP = """
    SELECT kind, {bucket} AS bucket, sum(jobs)::bigint AS total, sum(running)::bigint AS running,
           sum(successful)::bigint AS successful, sum(failed)::bigint AS failed
    FROM pipeline_job_rollups
    WHERE team_id = :team_id AND bucket_start >= :start AND bucket_start < :end
    GROUP BY 1, 2
"""

# From the job tables, for a window that does not fall on 15-minute marks.
_STATS_RAW = """
    SELECT 'import' AS kind, {bucket} AS bucket,
           count(*) AS total,
           count(*) FILTER (WHERE status = 'Running') AS running,
           count(*) FILTER (WHERE status = 'Completed') AS successful,
           count(*) FILTER (WHERE status IN ('Failed', 'BillingLimitReached',
                                             'BillingLimitTooLow')) AS failed
    FROM external_data_jobs
    WHERE team_id = :team_id AND billable AND created_at >= :start AND created_at < :end
    GROUP BY 2
    UNION ALL
    SELECT 'model', {bucket},
           count(*),
           count(*) FILTER (WHERE status = 'Running'),
           count(*) FILTER (WHERE status = 'Completed'),
           count(*) FILTER (WHERE status = 'Failed')
    FROM modeling_jobs
    WHERE team_id = :team_id AND created_at >= :start AND created_at < :end
    GROUP BY 2
"""

# Billing-period sums: whole UTC days from pipeline_daily_rows, the partial days at the edges,
# [start, inner_start) and [inner_end, end), from the jobs' covering indexes.
_ORG_BILLABLE_ROWS = """
    WITH org_teams AS (SELECT id FROM teams WHERE organization_id = :org_id)
    SELECT coalesce(sum(rows), 0)::bigint FROM (
        SELECT rows FROM pipeline_daily_rows
        WHERE team_id IN (SELECT id FROM org_teams) AND kind = 'import'
          AND day_start >= :inner_start AND day_start < :inner_end
        UNION ALL
        SELECT rows_synced FROM external_data_jobs
        WHERE team_id IN (SELECT id FROM org_teams) AND billable
          AND created_at >= :start AND created_at < :inner_start
        UNION ALL
        SELECT rows_synced FROM external_data_jobs
        WHERE team_id IN (SELECT id FROM org_teams) AND billable
          AND created_at >= :inner_end AND created_at < :end
    ) parts
"""

_ROWS_BY_SOURCE = """
    SELECT parts.source_id, sum(parts.rows)::bigint AS rows FROM (
        SELECT source_id, rows FROM pipeline_daily_rows
        WHERE team_id = :team_id AND kind = 'import'
          AND day_start >= :inner_start AND day_start < :inner_end
        UNION ALL
        SELECT source_id, rows_synced FROM external_data_jobs
        WHERE team_id = :team_id AND billable
          AND created_at >= :start AND created_at < :inner_start
        UNION ALL
        SELECT source_id, rows_synced FROM external_data_jobs
        WHERE team_id = :team_id AND billable
          AND created_at >= :inner_end AND created_at < :end
    ) parts
    JOIN external_data_sources src ON src.id = parts.source_id AND NOT src.deleted
    GROUP BY parts.source_id
    HAVING sum(parts.rows) <> 0
"""

_MATERIALIZED_ROWS = """
    SELECT coalesce(sum(rows), 0)::bigint FROM (
        SELECT rows FROM pipeline_daily_rows
        WHERE team_id = :team_id AND kind = 'model'
          AND day_start >= :inner_start AND day_start < :inner_end
        UNION ALL
        SELECT rows_materialized FROM modeling_jobs
        WHERE team_id = :team_id AND created_at >= :start AND created_at < :inner_start
        UNION ALL
        SELECT rows_materialized FROM modeling_jobs
        WHERE team_id = :team_id AND created_at >= :inner_end AND created_at < :end
    ) parts
"""


def _aligned(ts: datetime) -> bool:
    return ts.timestamp() % ROLLUP_SECONDS == 0


def rollup_bounds(
    start: datetime, end: datetime, step: int = ROLLUP_SECONDS
) -> tuple[datetime, datetime]:
    """The `step`-aligned interior of [start, end); empty (end, end) when there is none."""
    epoch_start, epoch_end = start.timestamp(), end.timestamp()
    inner_start = -(-epoch_start // step) * step
    inner_end = epoch_end // step * step
    if inner_start >= inner_end:
        return end, end
    return datetime.fromtimestamp(inner_start, UTC), datetime.fromtimestamp(inner_end, UTC)


def team_zone(team: TeamRef) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(team.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


@dataclass(frozen=True)
class StatsWindow:
    """Bucket keys in order, the window `[start, end)` in UTC, and how SQL numbers buckets."""

    keys: list[str]
    start: datetime
    end: datetime
    cutoff_time: str
    hourly: bool
    first_day: date | None = None


def stats_window(days: int, zone: tzinfo, now: datetime) -> StatsWindow:
    local_now = now.astimezone(zone)
    if days == 1:
        hour = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        starts = [hour - timedelta(hours=23 - i) for i in range(24)]
        keys = [s.astimezone(zone).isoformat() for s in starts]
        return StatsWindow(keys, starts[0], hour + timedelta(hours=1), keys[0], hourly=True)
    today = local_now.date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(0), tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)
    keys = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    return StatsWindow(keys, start, end, start.isoformat(), hourly=False, first_day=first)


def stats_statement(
    team: TeamRef, days: int, now: datetime
) -> tuple[StatsWindow, str, dict[str, object]]:
    """The window of `job_stats` and the one statement that counts it (rollups when the
    window is aligned to them, else the raw jobs)."""
    zone = team_zone(team)
    window = stats_window(days, zone, now)
    if _aligned(window.start) and _aligned(window.end):
        sql = _STATS_ROLLUP.format(bucket=_bucket_sql("bucket_start", window.hourly))
    else:
        sql = _STATS_RAW.format(bucket=_bucket_sql("created_at", window.hourly))
    params: dict[str, object] = {"team_id": team.id, "start": window.start, "end": window.end}
    if not window.hourly:
        params |= {"tz": _zone_name(zone), "first_day": window.first_day}
    return window, sql, params


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", "UTC")


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


_BILLING_RECORD = """
    SELECT period_start, period_end, interval, tracked_rows
    FROM billing_records WHERE organization_id = :org_id
"""


class PipelineStatsService:
    def __init__(self, reads: ReadPool) -> None:
        self.reads = reads

    async def job_stats(self, team: TeamRef, days: int) -> JobStats:
        window, sql, params = stats_statement(team, days, datetime.now(UTC))
        rows = await self.reads.rows(sql, params)

        groups = {
            kind: JobGroupStats(total=0, running=0, successful=0, failed=0)
            for kind in ("import", "model")
        }
        buckets = [BucketStats(successful=0, failed=0) for _ in window.keys]
        for r in rows:
            g = groups[r["kind"]]
            g.total += r["total"]
            g.running += r["running"]
            g.successful += r["successful"]
            g.failed += r["failed"]
            bucket = r["bucket"]
            if 0 <= bucket < len(buckets):
                buckets[bucket].successful += r["successful"]
                buckets[bucket].failed += r["failed"]
        imports, models = groups["import"], groups["model"]
        return JobStats(
            days=days,
            cutoff_time=window.cutoff_time,
            total_jobs=imports.total + models.total,
            successful_jobs=imports.successful + models.successful,
            failed_jobs=imports.failed + models.failed,
            external_data_jobs=imports,
            modeling_jobs=models,
            breakdown=dict(zip(window.keys, buckets, strict=True)),
        )

    async def total_rows(self, team: TeamRef, organization_id: uuid.UUID) -> TotalRowsStats:
        record = await self.reads.row(_BILLING_RECORD, {"org_id": organization_id})
        if record is not None:
            start, end = record["period_start"], record["period_end"]
            interval, tracked = record["interval"], record["tracked_rows"]
        else:
            start, end = _month_bounds(datetime.now(UTC))
            interval, tracked = "month", 0
        inner_start, inner_end = rollup_bounds(start, end, DAY_SECONDS)
        period = {"start": start, "end": end, "inner_start": inner_start, "inner_end": inner_end}
        synced = await self._scalar(_ORG_BILLABLE_ROWS, {"org_id": organization_id, **period})
        by_source = await self.reads.rows(_ROWS_BY_SOURCE, {"team_id": team.id, **period})
        materialized = await self._scalar(_MATERIALIZED_ROWS, {"team_id": team.id, **period})
        pending = max(0, synced - tracked)
        return TotalRowsStats(
            billing_available=record is not None,
            billing_interval=interval,
            billing_period_start=start.astimezone(UTC).isoformat(),
            billing_period_end=end.astimezone(UTC).isoformat(),
            breakdown_of_rows_by_source={str(r["source_id"]): int(r["rows"]) for r in by_source},
            materialized_rows_in_billing_period=materialized,
            total_rows=tracked + pending,
            tracked_billing_rows=tracked,
            pending_billing_rows=pending,
        )

    async def _scalar(self, sql: str, params: dict[str, object]) -> int:
        row = await self.reads.row(sql, params)
        return int(row[0] or 0) if row is not None else 0
