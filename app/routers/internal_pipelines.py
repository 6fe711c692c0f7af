"""Internal service-to-service API, pipeline part (API.md §6): idempotent PUT upserts."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import RowMapping

from app.core.errors import ErrorBody, NotFound
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.pipeline_records import (
    BackfillPartitionOut,
    BackfillPartitionPut,
    BatchExportOut,
    BatchExportPut,
    BatchExportRunOut,
    BatchExportRunPut,
    BillingOut,
    BillingPut,
    FunctionOut,
    FunctionPut,
    ImportJobOut,
    ImportJobPut,
    ModelingJobOut,
    ModelingJobPut,
    SavedQueryOut,
    SavedQueryPut,
    SchemaOut,
    SchemaPut,
    SourceOut,
    SourcePut,
)
from app.services.pipelines.records import PipelineRecordService

OutT = TypeVar("OutT", bound=BaseModel)


def _out(model: type[OutT], row: RowMapping) -> OutT:
    return model.model_validate({name: row[name] for name in model.model_fields})


router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)

# A string, parsed here: an id that is not a positive 64-bit integer names no environment (404).
TeamId = Annotated[str, Path(description="Environment (team) id.")]


def _team(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) < 2**63:
        raise NotFound("Environment not found.")
    return int(raw)


ENV = "/environments/{team_id}"
_DESCRIPTIONS = {
    400: "Invalid body or path",
    401: "Missing or wrong internal token",
    404: "Unknown environment, organization or parent",
    409: "The id belongs to another environment",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d} for s, d in _DESCRIPTIONS.items()
}
# Keyed by (organization) or by (environment, dataset, key): nothing to clash with.
NO_CONFLICT = {s: r for s, r in RESPONSES.items() if s != 409}


@router.put(f"{ENV}/sources/{{source_id}}", response_model=SourceOut, responses=RESPONSES)
async def put_source(
    team_id: TeamId, source_id: uuid.UUID, body: SourcePut, session: DbSession
) -> SourceOut:
    return _out(
        SourceOut, await PipelineRecordService(session).put_source(_team(team_id), source_id, body)
    )


@router.put(
    f"{ENV}/sources/{{source_id}}/schemas/{{schema_id}}",
    response_model=SchemaOut,
    responses=RESPONSES,
)
async def put_schema(
    team_id: TeamId,
    source_id: uuid.UUID,
    schema_id: uuid.UUID,
    body: SchemaPut,
    session: DbSession,
) -> SchemaOut:
    return _out(
        SchemaOut,
        await PipelineRecordService(session).put_schema(_team(team_id), source_id, schema_id, body),
    )


@router.put(f"{ENV}/import_jobs/{{job_id}}", response_model=ImportJobOut, responses=RESPONSES)
async def put_import_job(
    team_id: TeamId, job_id: uuid.UUID, body: ImportJobPut, session: DbSession
) -> ImportJobOut:
    return _out(
        ImportJobOut,
        await PipelineRecordService(session).put_import_job(_team(team_id), job_id, body),
    )


@router.put(f"{ENV}/saved_queries/{{query_id}}", response_model=SavedQueryOut, responses=RESPONSES)
async def put_saved_query(
    team_id: TeamId, query_id: uuid.UUID, body: SavedQueryPut, session: DbSession
) -> SavedQueryOut:
    return _out(
        SavedQueryOut,
        await PipelineRecordService(session).put_saved_query(_team(team_id), query_id, body),
    )


@router.put(f"{ENV}/modeling_jobs/{{job_id}}", response_model=ModelingJobOut, responses=RESPONSES)
async def put_modeling_job(
    team_id: TeamId, job_id: uuid.UUID, body: ModelingJobPut, session: DbSession
) -> ModelingJobOut:
    return _out(
        ModelingJobOut,
        await PipelineRecordService(session).put_modeling_job(_team(team_id), job_id, body),
    )


@router.put(
    f"{ENV}/batch_exports/{{export_id}}", response_model=BatchExportOut, responses=RESPONSES
)
async def put_batch_export(
    team_id: TeamId, export_id: uuid.UUID, body: BatchExportPut, session: DbSession
) -> BatchExportOut:
    return _out(
        BatchExportOut,
        await PipelineRecordService(session).put_batch_export(_team(team_id), export_id, body),
    )


@router.put(
    f"{ENV}/batch_exports/{{export_id}}/runs/{{run_id}}",
    response_model=BatchExportRunOut,
    responses=RESPONSES,
)
async def put_batch_export_run(
    team_id: TeamId,
    export_id: uuid.UUID,
    run_id: uuid.UUID,
    body: BatchExportRunPut,
    session: DbSession,
) -> BatchExportRunOut:
    return _out(
        BatchExportRunOut,
        await PipelineRecordService(session).put_batch_export_run(
            _team(team_id), export_id, run_id, body
        ),
    )


@router.put(f"{ENV}/functions/{{function_id}}", response_model=FunctionOut, responses=RESPONSES)
async def put_function(
    team_id: TeamId, function_id: uuid.UUID, body: FunctionPut, session: DbSession
) -> FunctionOut:
    return _out(
        FunctionOut,
        await PipelineRecordService(session).put_function(_team(team_id), function_id, body),
    )


@router.put("/organizations/{org_id}/billing", response_model=BillingOut, responses=NO_CONFLICT)
async def put_billing(org_id: uuid.UUID, body: BillingPut, session: DbSession) -> BillingOut:
    return _out(BillingOut, await PipelineRecordService(session).put_billing(org_id, body))


@router.put(
    f"{ENV}/backfill_partitions/{{dataset}}/{{partition_key}}",
    response_model=BackfillPartitionOut,
    responses=NO_CONFLICT,
)
async def put_backfill_partition(
    team_id: TeamId,
    dataset: Literal["events", "persons"],
    partition_key: Annotated[str, Path(min_length=1, max_length=200)],
    body: BackfillPartitionPut,
    session: DbSession,
) -> BackfillPartitionOut:
    return _out(
        BackfillPartitionOut,
        await PipelineRecordService(session).put_backfill_partition(
            _team(team_id), dataset, partition_key, body
        ),
    )
