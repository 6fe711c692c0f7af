"""Data pipelines that feed an environment: imports, models, exports, functions, billing.

Other services keep these rows true through the internal API (ids are theirs). The public
activity, stats and health actions read them; every list or aggregate they run has an index
here (see the `ix_*` names), so the answers stay fast with millions of job rows.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin


class ImportJobStatus(enum.StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    BILLING_LIMIT_REACHED = "BillingLimitReached"
    BILLING_LIMIT_TOO_LOW = "BillingLimitTooLow"


class ModelingJobStatus(enum.StrEnum):
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class BatchExportRunStatus(enum.StrEnum):
    STARTING = "Starting"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    FAILED = "Failed"
    FAILED_RETRYABLE = "FailedRetryable"
    FAILED_BILLING = "FailedBilling"
    TERMINATED = "Terminated"
    TIMED_OUT = "TimedOut"
    CONTINUED_AS_NEW = "ContinuedAsNew"


class FunctionType(enum.StrEnum):
    DESTINATION = "destination"
    SITE_DESTINATION = "site_destination"
    TRANSFORMATION = "transformation"


class BackfillState(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


BILLING_STATUSES = (
    ImportJobStatus.BILLING_LIMIT_REACHED.value,
    ImportJobStatus.BILLING_LIMIT_TOO_LOW.value,
)
FAILED_IMPORT_STATUSES = (ImportJobStatus.FAILED.value, *BILLING_STATUSES)
FAILED_EXPORT_RUN_STATUSES = ("Failed", "FailedRetryable", "TimedOut", "Terminated")
DATA_OPS_DASHBOARD_NAME = "Data ops overview"

_failed_import_sql = "status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow')"


def _updated_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _team_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), nullable=False)


class ExternalDataSource(CreatedAtMixin, Base):
    __tablename__ = "external_data_sources"
    __table_args__ = (Index("ix_external_data_sources_team_id", "team_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    source_type: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    prefix: Mapped[str | None] = mapped_column(String(100))
    latest_error: Mapped[str | None] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = _updated_at()


class ExternalDataSchema(CreatedAtMixin, Base):
    """A synced table of a source."""

    __tablename__ = "external_data_schemas"
    __table_args__ = (
        Index("ix_external_data_schemas_team_id", "team_id"),
        Index("ix_external_data_schemas_source_id", "source_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_data_sources.id", ondelete="CASCADE"), nullable=False
    )
    team_id: Mapped[int] = _team_fk()
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    should_sync: Mapped[bool] = mapped_column(Boolean, nullable=False)
    sync_type: Mapped[str | None] = mapped_column(String(64))
    latest_error: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = _updated_at()


class ExternalDataJob(Base):
    """One import (sync) run of a synced table. The table that grows to millions of rows."""

    __tablename__ = "external_data_jobs"
    __table_args__ = (
        # Activity (kind=import, any outcome) and outcome=completed/all pages.
        Index(
            "ix_external_data_jobs_team_created",
            "team_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "ix_external_data_jobs_team_created_running",
            "team_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'Running'"),
        ),
        Index(
            "ix_external_data_jobs_team_created_failed",
            "team_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text(_failed_import_sql),
        ),
        # job_stats and total_rows_stats: index-only scans over billable jobs.
        Index(
            "ix_external_data_jobs_billable_team_created",
            "team_id",
            "created_at",
            postgresql_include=["status", "rows_synced", "source_id"],
            postgresql_where=text("billable"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    schema_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_data_schemas.id", ondelete="CASCADE"), nullable=False
    )
    # Copied from the schema so activity and billing never need the join to filter.
    source_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("external_data_sources.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    rows_synced: Mapped[int] = mapped_column(BigInteger, nullable=False)
    billable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_error: Mapped[str | None] = mapped_column(Text)
    workflow_run_id: Mapped[str | None] = mapped_column(String(200))


class SavedQuery(CreatedAtMixin, Base):
    """A saved query; materialized ones are views refreshed by modeling jobs."""

    __tablename__ = "saved_queries"
    __table_args__ = (Index("ix_saved_queries_team_id", "team_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    is_materialized: Mapped[bool] = mapped_column(Boolean, nullable=False)
    origin: Mapped[str | None] = mapped_column(String(64))
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = _updated_at()


class ModelingJob(Base):
    """One materialization run of a saved query."""

    __tablename__ = "modeling_jobs"
    __table_args__ = (
        Index(
            "ix_modeling_jobs_team_created_running",
            "team_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'Running'"),
        ),
        Index(
            "ix_modeling_jobs_team_created_failed",
            "team_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("status = 'Failed'"),
        ),
        # Activity (read backwards), job_stats and materialized rows (index-only scans).
        Index(
            "ix_modeling_jobs_team_created_stats",
            "team_id",
            "created_at",
            "id",
            postgresql_include=["status", "rows_materialized"],
        ),
        # The newest run of a view (data_health_issues).
        Index(
            "ix_modeling_jobs_query_created",
            "saved_query_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    saved_query_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("saved_queries.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    rows_materialized: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    workflow_run_id: Mapped[str | None] = mapped_column(String(200))


class BatchExport(CreatedAtMixin, Base):
    __tablename__ = "batch_exports"
    __table_args__ = (Index("ix_batch_exports_team_id", "team_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = _updated_at()


class BatchExportRun(Base):
    __tablename__ = "batch_export_runs"
    __table_args__ = (
        # The latest run of an export (data_health_issues).
        Index(
            "ix_batch_export_runs_export_created",
            "batch_export_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    batch_export_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("batch_exports.id", ondelete="CASCADE"), nullable=False
    )
    team_id: Mapped[int] = _team_fk()
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latest_error: Mapped[str | None] = mapped_column(Text)


class PipelineFunction(CreatedAtMixin, Base):
    """A destination or transformation function with its health `state` (1 healthy, ...)."""

    __tablename__ = "pipeline_functions"
    __table_args__ = (
        Index(
            "ix_pipeline_functions_team_unhealthy",
            "team_id",
            postgresql_where=text("state IN (2, 3, 11, 12) AND enabled AND NOT deleted"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    state: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    updated_at: Mapped[datetime] = _updated_at()


class Dashboard(CreatedAtMixin, Base):
    __tablename__ = "dashboards"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    name: Mapped[str] = mapped_column(String(400), nullable=False)


class BillingRecord(Base):
    """The organization's current billing period and the rows billing already counted."""

    __tablename__ = "billing_records"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    interval: Mapped[str] = mapped_column(String(16), nullable=False)
    tracked_rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = _updated_at()


class BackfillPartition(Base):
    """One partition of the warehouse backfill of an environment's `events` or `persons`."""

    __tablename__ = "backfill_partitions"
    __table_args__ = (UniqueConstraint("team_id", "dataset", "partition_key"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    team_id: Mapped[int] = _team_fk()
    dataset: Mapped[str] = mapped_column(String(16), nullable=False)
    partition_key: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    total_partitions: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = _updated_at()


NIL_UUID = uuid.UUID(int=0)
ROLLUP_SECONDS = 900
DAY_SECONDS = 86_400


class PipelineJobRollup(Base):
    """Job counts per environment, 15-minute UTC bucket and kind (`import` billable only).

    Kept by row triggers on `external_data_jobs` and `modeling_jobs` (migration 0003), so
    every writer keeps it exact. Every current time zone's hour and day boundaries fall on
    15-minute UTC marks, so job_stats sums at most 96 rows per day and kind instead of every
    job; a window off those marks is read from the job tables instead.
    """

    __tablename__ = "pipeline_job_rollups"
    # Counters in the key's index make job_stats an index-only scan (rollup rows of many
    # environments share heap pages, so heap visits would dominate).
    __table_args__ = (
        PrimaryKeyConstraint(
            "team_id",
            "bucket_start",
            "kind",
            postgresql_include=["jobs", "running", "successful", "failed"],
        ),
    )

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    running: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    successful: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class PipelineDailyRows(Base):
    """Rows synced (billable imports, per source) or materialized (models, nil source) per
    environment and UTC day, kept by the same triggers; total_rows_stats sums these for the
    whole days of a billing period and reads the partial days at its edges from the jobs."""

    __tablename__ = "pipeline_daily_rows"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    day_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
