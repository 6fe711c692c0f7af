"""What is broken in an environment's pipelines (`data_health_issues`), and its ops dashboard.

Five small indexed lookups: views whose newest run failed and batch exports whose latest run
failed use a LATERAL "newest row" probe on `(parent_id, created_at DESC, id DESC)`; synced
tables, sources and functions are read by team. Paused, disabled, deleted and not-synced things
never appear.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    BatchExport,
    BatchExportRun,
    Dashboard,
    ExternalDataSchema,
    ExternalDataSource,
    ModelingJob,
    PipelineFunction,
    SavedQuery,
)
from app.models.pipelines import (
    BILLING_STATUSES,
    DATA_OPS_DASHBOARD_NAME,
    FAILED_EXPORT_RUN_STATUSES,
    FunctionType,
)
from app.schemas.pipelines import HealthIssue, HealthIssues, SyncHealthIssue

DEGRADED_STATES = (2, 11)
DISABLED_STATES = (3, 12)
DESTINATION_TYPES = (FunctionType.DESTINATION.value, FunctionType.SITE_DESTINATION.value)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _sort_key(issue: HealthIssue) -> tuple[bool, float, str]:
    # Newest failure first, unknown times last, then a stable order by id.
    ts = datetime.fromisoformat(issue.failed_at).timestamp() if issue.failed_at else 0.0
    return (issue.failed_at is None, -ts, issue.id)


class PipelineHealthService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issues(self, team_id: int) -> HealthIssues:
        found = [
            *await self._failed_views(team_id),
            *await self._failed_syncs(team_id),
            *await self._failed_sources(team_id),
            *await self._failed_batch_exports(team_id),
            *await self._unhealthy_functions(team_id),
        ]
        found.sort(key=_sort_key)
        return HealthIssues(results=found, count=len(found))

    async def _failed_views(self, team_id: int) -> list[HealthIssue]:
        newest = (
            select(ModelingJob.status, ModelingJob.last_run_at, ModelingJob.error)
            .where(ModelingJob.saved_query_id == SavedQuery.id)
            .order_by(ModelingJob.created_at.desc(), ModelingJob.id.desc())
            .limit(1)
            .lateral("newest")
        )
        rows = await self.session.execute(
            select(SavedQuery.id, SavedQuery.name, newest.c.last_run_at, newest.c.error)
            .join(newest, true())
            .where(
                SavedQuery.team_id == team_id,
                SavedQuery.is_materialized,
                SavedQuery.deleted.is_(False),
                newest.c.status == "Failed",
            )
        )
        return [
            HealthIssue(
                id=str(r.id),
                name=r.name,
                type="materialized_view",
                status="failed",
                error=r.error,
                failed_at=_iso(r.last_run_at),
                url=f"/data-warehouse/view/{r.id}",
            )
            for r in rows
        ]

    async def _failed_syncs(self, team_id: int) -> list[HealthIssue]:
        rows = await self.session.execute(
            select(ExternalDataSchema, ExternalDataSource.source_type)
            .join(ExternalDataSource, ExternalDataSource.id == ExternalDataSchema.source_id)
            .where(
                ExternalDataSchema.team_id == team_id,
                ExternalDataSchema.should_sync,
                ExternalDataSchema.deleted.is_(False),
                ExternalDataSource.deleted.is_(False),
                ExternalDataSchema.status.in_(("Failed", *BILLING_STATUSES)),
            )
        )
        issues: list[HealthIssue] = []
        for schema, source_type in rows:
            issues.append(
                SyncHealthIssue(
                    id=str(schema.id),
                    name=schema.name,
                    type="external_data_sync",
                    status="failed" if schema.status == "Failed" else "billing_limit",
                    error=schema.latest_error,
                    failed_at=_iso(schema.last_synced_at),
                    url=f"/data-warehouse/sources/managed-{schema.source_id}",
                    source_type=source_type,
                    sync_type=schema.sync_type,
                )
            )
        return issues

    async def _failed_sources(self, team_id: int) -> list[HealthIssue]:
        rows = await self.session.scalars(
            select(ExternalDataSource).where(
                ExternalDataSource.team_id == team_id,
                ExternalDataSource.status == "Error",
                ExternalDataSource.deleted.is_(False),
            )
        )
        return [
            HealthIssue(
                id=str(s.id),
                name=s.source_type,
                type="source",
                status="failed",
                error=s.latest_error,
                failed_at=_iso(s.updated_at),
                url=f"/data-warehouse/sources/managed-{s.id}",
            )
            for s in rows
        ]

    async def _failed_batch_exports(self, team_id: int) -> list[HealthIssue]:
        latest = (
            select(BatchExportRun.status, BatchExportRun.finished_at, BatchExportRun.latest_error)
            .where(BatchExportRun.batch_export_id == BatchExport.id)
            .order_by(BatchExportRun.created_at.desc(), BatchExportRun.id.desc())
            .limit(1)
            .lateral("latest")
        )
        rows = await self.session.execute(
            select(BatchExport.id, BatchExport.name, latest.c.finished_at, latest.c.latest_error)
            .join(latest, true())
            .where(
                BatchExport.team_id == team_id,
                BatchExport.paused.is_(False),
                BatchExport.deleted.is_(False),
                latest.c.status.in_(FAILED_EXPORT_RUN_STATUSES),
            )
        )
        return [
            HealthIssue(
                id=str(r.id),
                name=r.name,
                type="destination",
                status="failed",
                error=r.latest_error,
                failed_at=_iso(r.finished_at),
                url=f"/pipeline/batch-exports/{r.id}",
            )
            for r in rows
        ]

    async def _unhealthy_functions(self, team_id: int) -> list[HealthIssue]:
        rows = await self.session.scalars(
            select(PipelineFunction).where(
                and_(
                    PipelineFunction.team_id == team_id,
                    PipelineFunction.state.in_((*DEGRADED_STATES, *DISABLED_STATES)),
                    PipelineFunction.enabled,
                    PipelineFunction.deleted.is_(False),
                )
            )
        )
        issues = []
        for fn in rows:
            if fn.type in DESTINATION_TYPES:
                kind, fallback, page = (
                    "destination",
                    "Destination experiencing issues",
                    "destinations",
                )
            else:
                kind, fallback = "transformation", "Transformation experiencing issues"
                page = "transformations"
            issues.append(
                HealthIssue(
                    id=str(fn.id),
                    name=fn.name,
                    type=kind,
                    status="degraded" if fn.state in DEGRADED_STATES else "disabled",
                    error=fn.error or fallback,
                    failed_at=_iso(fn.updated_at),
                    url=f"/pipeline/{page}/hog-{fn.id}/configuration",
                )
            )
        return issues

    async def data_ops_dashboard(self, team_id: int) -> int:
        """The environment's one "Data ops overview" dashboard, created on first use.

        INSERT ... ON CONFLICT DO NOTHING waits for a concurrent inserter of the same key and
        then does nothing; the SELECT that follows (a new snapshot under READ COMMITTED) sees
        whichever row won, so concurrent first calls all answer the same id.
        """
        await self.session.execute(
            insert(Dashboard)
            .values(team_id=team_id, name=DATA_OPS_DASHBOARD_NAME)
            .on_conflict_do_nothing(index_elements=["team_id", "name"])
        )
        dashboard_id: int = (
            await self.session.execute(
                select(Dashboard.id).where(
                    Dashboard.team_id == team_id, Dashboard.name == DATA_OPS_DASHBOARD_NAME
                )
            )
        ).scalar_one()
        return dashboard_id
