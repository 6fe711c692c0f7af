"""Response bodies of the pipeline activity, stats and health actions (API.md §4.3)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ReadinessState = Literal[
    "not_configured", "waiting", "backfilling", "up_to_date", "needs_attention", "sync_paused"
]


class ActivityRow(BaseModel):
    id: str
    type: str = Field(description="The source type for imports, `Materialized view` for models.")
    name: str | None = Field(description="The synced table name, or the view name.")
    status: str
    rows: int
    created_at: str
    finished_at: str | None
    latest_error: str | None
    workflow_run_id: str | None
    origin: str | None
    source_id: str | None


class ActivityPage(BaseModel):
    results: list[ActivityRow]
    next: str | None = Field(description="Query string of the next page, or null.")
    previous: str | None = Field(description="Query string of the previous page, or null.")


class JobGroupStats(BaseModel):
    total: int
    running: int
    successful: int
    failed: int


class BucketStats(BaseModel):
    successful: int
    failed: int


class JobStats(BaseModel):
    days: int
    cutoff_time: str
    total_jobs: int
    successful_jobs: int
    failed_jobs: int
    external_data_jobs: JobGroupStats
    modeling_jobs: JobGroupStats
    breakdown: dict[str, BucketStats]


class HealthIssue(BaseModel):
    id: str
    name: str
    type: Literal[
        "materialized_view", "external_data_sync", "source", "destination", "transformation"
    ]
    status: Literal["failed", "billing_limit", "degraded", "disabled"]
    error: str | None
    failed_at: str | None
    url: str


class SyncHealthIssue(HealthIssue):
    """A failing synced table also names its source type and sync type."""

    source_type: str | None
    sync_type: str | None


class HealthIssues(BaseModel):
    results: list[SyncHealthIssue | HealthIssue]
    count: int


class DashboardRef(BaseModel):
    dashboard_id: int


class TotalRowsStats(BaseModel):
    billing_available: bool
    billing_interval: str
    billing_period_start: str
    billing_period_end: str
    breakdown_of_rows_by_source: dict[str, int]
    materialized_rows_in_billing_period: int
    total_rows: int
    tracked_billing_rows: int
    pending_billing_rows: int


class DatasetReadiness(BaseModel):
    dataset: Literal["events", "persons"]
    readiness_state: ReadinessState
    detail: str
    completed_partitions: int
    total_partitions: int | None
    current_partition: str | None
    last_updated_at: str | None


class SourceReadiness(BaseModel):
    source_id: str
    source_name: str
    source_type: str
    readiness_state: ReadinessState
    detail: str
    total_schemas: int
    backfilled_schemas: int
    last_synced_at: str | None


class SourcesReadiness(BaseModel):
    readiness_state: ReadinessState
    detail: str
    sources: list[SourceReadiness]


class DataStatus(BaseModel):
    overall_readiness_state: ReadinessState
    events: DatasetReadiness
    persons: DatasetReadiness
    sources: SourcesReadiness
    generated_at: str


class SchemaReadiness(BaseModel):
    schema_id: str
    source_id: str
    source_name: str
    source_type: str
    table_name: str
    readiness_state: ReadinessState
    detail: str
    last_synced_at: str | None


class SourceSchemas(BaseModel):
    schemas: list[SchemaReadiness]
