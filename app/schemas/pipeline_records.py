"""Bodies of the internal pipeline PUTs (API.md §6) and what they answer.

Timestamps must carry a zone (`AwareDatetime`): a naive one is refused with 400, never guessed.
Booleans and counts are strict: `0` is not `false`, `"5"` is not `5`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, StrictBool, StrictInt, StringConstraints

from app.models.pipelines import (
    BackfillState,
    BatchExportRunStatus,
    FunctionType,
    ImportJobStatus,
    ModelingJobStatus,
)
from app.schemas.identity import StrictBody

MAX_ROWS = 2**63 - 1


def _not_a_number(value: object) -> object:
    # pydantic would read a bare number as Unix time; the contract wants ISO-8601 with a zone.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO-8601 timestamp with a time zone")
    return value


def _int_only(value: object) -> object:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
LongName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]
StatusText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ErrorText = Annotated[str, StringConstraints(max_length=10_000)]
RunId = Annotated[str, StringConstraints(max_length=200)]
RowCount = Annotated[StrictInt, Field(ge=0, le=MAX_ROWS)]


class SourcePut(StrictBody):
    source_type: Label
    status: StatusText
    prefix: Annotated[str, StringConstraints(max_length=100)] | None = None
    latest_error: ErrorText | None = Field(
        default=None, description="The source's latest error text, shown by data_health_issues."
    )
    deleted: StrictBool = False


class SchemaPut(StrictBody):
    name: LongName
    status: StatusText
    should_sync: StrictBool
    sync_type: Annotated[str, StringConstraints(max_length=64)] | None = None
    latest_error: ErrorText | None = None
    last_synced_at: Timestamp | None = None
    deleted: StrictBool = False


class ImportJobPut(StrictBody):
    schema_id: uuid.UUID
    status: ImportJobStatus
    rows_synced: RowCount
    billable: StrictBool
    created_at: Timestamp
    finished_at: Timestamp | None = None
    latest_error: ErrorText | None = None
    workflow_run_id: RunId | None = None


class SavedQueryPut(StrictBody):
    name: LongName
    is_materialized: StrictBool
    origin: Annotated[str, StringConstraints(max_length=64)] | None = None
    deleted: StrictBool = False


class ModelingJobPut(StrictBody):
    saved_query_id: uuid.UUID
    status: ModelingJobStatus
    rows_materialized: RowCount
    created_at: Timestamp
    last_run_at: Timestamp | None = None
    error: ErrorText | None = None
    workflow_run_id: RunId | None = None


class BatchExportPut(StrictBody):
    name: LongName
    paused: StrictBool
    deleted: StrictBool = False


class BatchExportRunPut(StrictBody):
    status: BatchExportRunStatus
    created_at: Timestamp
    finished_at: Timestamp | None = None
    latest_error: ErrorText | None = None


class FunctionPut(StrictBody):
    name: LongName
    type: FunctionType
    enabled: StrictBool
    state: Annotated[Literal[0, 1, 2, 3, 11, 12], BeforeValidator(_int_only)] = Field(
        description="0 unknown, 1 healthy, 2 degraded, 3 disabled, "
        "11 forcefully degraded, 12 forcefully disabled"
    )
    error: ErrorText | None = None
    deleted: StrictBool = False


class BillingPut(StrictBody):
    period_start: Timestamp
    period_end: Timestamp
    interval: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]
    tracked_rows: RowCount


class BackfillPartitionPut(StrictBody):
    state: BackfillState
    total_partitions: Annotated[StrictInt, Field(ge=1, le=10_000_000)] | None = None


class SourceOut(SourcePut):
    id: uuid.UUID
    team_id: int
    updated_at: datetime


class SchemaOut(SchemaPut):
    id: uuid.UUID
    team_id: int
    source_id: uuid.UUID
    updated_at: datetime


class ImportJobOut(ImportJobPut):
    id: uuid.UUID
    team_id: int
    source_id: uuid.UUID


class SavedQueryOut(SavedQueryPut):
    id: uuid.UUID
    team_id: int
    updated_at: datetime


class ModelingJobOut(ModelingJobPut):
    id: uuid.UUID
    team_id: int


class BatchExportOut(BatchExportPut):
    id: uuid.UUID
    team_id: int
    updated_at: datetime


class BatchExportRunOut(BatchExportRunPut):
    id: uuid.UUID
    team_id: int
    batch_export_id: uuid.UUID


class FunctionOut(FunctionPut):
    id: uuid.UUID
    team_id: int
    updated_at: datetime


class BillingOut(BillingPut):
    organization_id: uuid.UUID


class BackfillPartitionOut(BackfillPartitionPut):
    team_id: int
    dataset: str
    partition_key: str
    updated_at: datetime
