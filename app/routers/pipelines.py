"""Pipeline activity, stats and health actions (API.md §4.3).

Query parameters are taken as strings and checked here, so the messages are exactly the
contract's and no input (non-integers, huge integers, unknown words) can reach the database.
"""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

from fastapi import Query

from app.core.errors import ValidationFailed
from app.core.scopes import Scope
from app.pipeline.actions import ActionSet
from app.pipeline.auth import Context
from app.pipeline.query import IntQuery, parse_int
from app.pipeline.sessions import DbSession, Reads, ReadSession
from app.schemas.pipelines import (
    ActivityPage,
    DashboardRef,
    DataStatus,
    HealthIssues,
    JobStats,
    SourceSchemas,
    TotalRowsStats,
)
from app.services.pipelines.activity import MAX_LIMIT, ActivityKind, ActivityQuery, ActivityService
from app.services.pipelines.activity import Outcome as ActivityOutcome
from app.services.pipelines.health import PipelineHealthService
from app.services.pipelines.readiness import WarehouseReadinessService
from app.services.pipelines.stats import ALLOWED_DAYS, PipelineStatsService

actions = ActionSet()
READ = (Scope.WAREHOUSE_VIEW_READ,)
READ_SOURCES = (Scope.WAREHOUSE_VIEW_READ, Scope.EXTERNAL_DATA_SOURCE_READ)

E = TypeVar("E", ActivityKind, ActivityOutcome)
QueryStr = Annotated[str | None, Query(max_length=100)]


def parse_choice(raw: str | None, attr: str, enum: type[E], default: E) -> E:
    if raw is None:
        return default
    try:
        return enum(raw)
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise ValidationFailed(f"{attr} must be one of: {choices}", attr=attr) from None


def activity_query(
    *,
    limit: str | None,
    offset: str | None,
    cutoff_days: str | None,
    kind: str | None,
    outcome: str | None,
    running: bool,
) -> ActivityQuery:
    lim = parse_int(limit, "limit", 20)
    if lim < 1:
        raise ValidationFailed("limit must be at least 1", attr="limit")
    cutoff = parse_int(cutoff_days, "cutoff_days", 30)
    if cutoff < 1:
        raise ValidationFailed("cutoff_days must be at least 1", attr="cutoff_days")
    return ActivityQuery(
        limit=min(lim, MAX_LIMIT),
        offset=max(0, parse_int(offset, "offset", 0)),
        cutoff_days=cutoff,
        kind=parse_choice(kind, "kind", ActivityKind, ActivityKind.ALL),
        running=running,
        outcome=(
            ActivityOutcome.COMPLETED
            if running
            else parse_choice(outcome, "outcome", ActivityOutcome, ActivityOutcome.COMPLETED)
        ),
    )


@actions.action(
    name="running_activity",
    method="GET",
    scopes=READ,
    response_model=ActivityPage,
    summary="Import and model jobs still running, newest first",
    errors=(400,),
)
async def running_activity(
    ctx: Context,
    reads: Reads,
    limit: IntQuery = None,
    offset: IntQuery = None,
    cutoff_days: IntQuery = None,
    kind: QueryStr = None,
) -> ActivityPage:
    query = activity_query(
        limit=limit, offset=offset, cutoff_days=cutoff_days, kind=kind, outcome=None, running=True
    )
    return await ActivityService(reads).page(ctx.team.id, query)


@actions.action(
    name="completed_activity",
    method="GET",
    scopes=READ,
    response_model=ActivityPage,
    summary="Finished import and model jobs, newest first",
    errors=(400,),
)
async def completed_activity(
    ctx: Context,
    reads: Reads,
    limit: IntQuery = None,
    offset: IntQuery = None,
    cutoff_days: IntQuery = None,
    kind: QueryStr = None,
    outcome: QueryStr = None,
) -> ActivityPage:
    query = activity_query(
        limit=limit,
        offset=offset,
        cutoff_days=cutoff_days,
        kind=kind,
        outcome=outcome,
        running=False,
    )
    return await ActivityService(reads).page(ctx.team.id, query)


def parse_days(raw: str | None) -> int:
    days = parse_int(raw, "days", 7, message="Invalid days parameter")
    if days not in ALLOWED_DAYS:
        raise ValidationFailed("Invalid days parameter. Must be 1, 7, or 30.", attr="days")
    return days


@actions.action(
    name="job_stats",
    method="GET",
    scopes=READ,
    response_model=JobStats,
    summary="Job counts over the last 1, 7 or 30 days, bucketed in the environment's zone",
    errors=(400,),
)
async def job_stats(ctx: Context, reads: Reads, days: IntQuery = None) -> JobStats:
    return await PipelineStatsService(reads).job_stats(ctx.team, parse_days(days))


@actions.action(
    name="data_health_issues",
    method="GET",
    scopes=READ_SOURCES,
    response_model=HealthIssues,
    summary="Failing views, syncs, sources, destinations and transformations",
)
async def data_health_issues(ctx: Context, session: ReadSession) -> HealthIssues:
    return await PipelineHealthService(session).issues(ctx.team.id)


@actions.action(
    name="data_ops_dashboard",
    method="GET",
    scopes=(Scope.WAREHOUSE_VIEW_WRITE,),
    response_model=DashboardRef,
    summary="The environment's Data ops overview dashboard (created on first call)",
)
async def data_ops_dashboard(ctx: Context, session: DbSession) -> DashboardRef:
    dashboard_id = await PipelineHealthService(session).data_ops_dashboard(ctx.team.id)
    return DashboardRef(dashboard_id=dashboard_id)


@actions.action(
    name="total_rows_stats",
    method="GET",
    scopes=READ,
    response_model=TotalRowsStats,
    summary="Rows synced in the billing period: tracked, pending and by source",
)
async def total_rows_stats(ctx: Context, reads: Reads) -> TotalRowsStats:
    return await PipelineStatsService(reads).total_rows(ctx.team, ctx.organization_id)


@actions.action(
    name="managed-warehouse-data-status",
    method="GET",
    scopes=READ_SOURCES,
    response_model=DataStatus,
    summary="Readiness of events, persons and imported sources in the warehouse",
)
async def managed_warehouse_data_status(ctx: Context, session: ReadSession) -> DataStatus:
    return await WarehouseReadinessService(session).data_status(ctx.team.id)


@actions.action(
    name="managed-warehouse-source-schemas",
    method="GET",
    scopes=READ_SOURCES,
    response_model=SourceSchemas,
    summary="Readiness of each synced table of one source",
    errors=(400,),
)
async def managed_warehouse_source_schemas(
    ctx: Context, session: ReadSession, source_id: QueryStr = None
) -> SourceSchemas:
    if source_id is None or not source_id.strip():
        raise ValidationFailed("source_id is required", attr="source_id", code="required")
    try:
        parsed = uuid.UUID(source_id.strip())
    except ValueError:
        raise ValidationFailed("source_id must be a UUID", attr="source_id") from None
    return await WarehouseReadinessService(session).source_schemas(ctx.team.id, parsed)


ACTIONS = actions.actions
