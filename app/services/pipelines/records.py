"""Idempotent upserts of pipeline records pushed by other services (internal API, API.md §6).

Every write is one `INSERT ... ON CONFLICT DO UPDATE` keyed by the caller's id. The update only
fires when a value really changed, so `updated_at` means "last changed" (data_health_issues
uses it as `failed_at`) and a repeated PUT is a no-op. A caller's id already stored under
another environment is a 409: ids never move between tenants.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import RowMapping, Table, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.models import (
    BackfillPartition,
    Base,
    BatchExport,
    BatchExportRun,
    BillingRecord,
    ExternalDataJob,
    ExternalDataSchema,
    ExternalDataSource,
    ModelingJob,
    Organization,
    PipelineFunction,
    SavedQuery,
    Team,
)
from app.schemas.pipeline_records import (
    BackfillPartitionPut,
    BatchExportPut,
    BatchExportRunPut,
    BillingPut,
    FunctionPut,
    ImportJobPut,
    ModelingJobPut,
    SavedQueryPut,
    SchemaPut,
    SourcePut,
)


class PipelineRecordService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _require_team(self, team_id: int) -> None:
        if await self.session.scalar(select(Team.id).where(Team.id == team_id)) is None:
            raise NotFound("Environment not found.")

    async def _upsert(
        self,
        model: type[Base],
        *,
        key: dict[str, Any],
        values: dict[str, Any],
        owner: str | None = "team_id",
        touch: bool = True,
        keep_when_null: Iterable[str] = (),
    ) -> RowMapping:
        table = cast(Table, model.__table__)
        stmt = insert(table).values(**key, **values)
        excluded = stmt.excluded
        keep = set(keep_when_null)
        set_: dict[str, Any] = {
            col: func.coalesce(excluded[col], table.c[col]) if col in keep else excluded[col]
            for col in values
        }
        changed = or_(*(table.c[col].is_distinct_from(set_[col]) for col in values))
        if touch:
            set_["updated_at"] = func.now()
        where = changed if owner is None else and_(table.c[owner] == excluded[owner], changed)
        stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=set_, where=where)
        row = (await self.session.execute(stmt.returning(*table.c))).mappings().one_or_none()
        if row is None:
            # Nothing changed, or the id belongs to another environment.
            lookup = select(*table.c).where(*(table.c[k] == v for k, v in key.items()))
            row = (await self.session.execute(lookup)).mappings().one()
            if owner is not None and row[owner] != values[owner]:
                raise Conflict("This id already belongs to another environment.")
        return row

    async def put_source(self, team_id: int, source_id: uuid.UUID, body: SourcePut) -> RowMapping:
        await self._require_team(team_id)
        return await self._upsert(
            ExternalDataSource,
            key={"id": source_id},
            values={"team_id": team_id, **body.model_dump()},
        )

    async def put_schema(
        self, team_id: int, source_id: uuid.UUID, schema_id: uuid.UUID, body: SchemaPut
    ) -> RowMapping:
        await self._require_team(team_id)
        found = await self.session.scalar(
            select(ExternalDataSource.id).where(
                ExternalDataSource.id == source_id, ExternalDataSource.team_id == team_id
            )
        )
        if found is None:
            raise NotFound("Source not found.")
        return await self._upsert(
            ExternalDataSchema,
            key={"id": schema_id},
            values={"team_id": team_id, "source_id": source_id, **body.model_dump()},
        )

    async def put_import_job(
        self, team_id: int, job_id: uuid.UUID, body: ImportJobPut
    ) -> RowMapping:
        await self._require_team(team_id)
        source_id = await self.session.scalar(
            select(ExternalDataSchema.source_id).where(
                ExternalDataSchema.id == body.schema_id, ExternalDataSchema.team_id == team_id
            )
        )
        if source_id is None:
            raise NotFound("Schema not found.", attr="schema_id")
        return await self._upsert(
            ExternalDataJob,
            key={"id": job_id},
            values={"team_id": team_id, "source_id": source_id, **body.model_dump()},
            touch=False,
        )

    async def put_saved_query(
        self, team_id: int, query_id: uuid.UUID, body: SavedQueryPut
    ) -> RowMapping:
        await self._require_team(team_id)
        return await self._upsert(
            SavedQuery,
            key={"id": query_id},
            values={"team_id": team_id, **body.model_dump()},
        )

    async def put_modeling_job(
        self, team_id: int, job_id: uuid.UUID, body: ModelingJobPut
    ) -> RowMapping:
        await self._require_team(team_id)
        found = await self.session.scalar(
            select(SavedQuery.id).where(
                SavedQuery.id == body.saved_query_id, SavedQuery.team_id == team_id
            )
        )
        if found is None:
            raise NotFound("Saved query not found.", attr="saved_query_id")
        return await self._upsert(
            ModelingJob,
            key={"id": job_id},
            values={"team_id": team_id, **body.model_dump()},
            touch=False,
        )

    async def put_batch_export(
        self, team_id: int, export_id: uuid.UUID, body: BatchExportPut
    ) -> RowMapping:
        await self._require_team(team_id)
        return await self._upsert(
            BatchExport,
            key={"id": export_id},
            values={"team_id": team_id, **body.model_dump()},
        )

    async def put_batch_export_run(
        self, team_id: int, export_id: uuid.UUID, run_id: uuid.UUID, body: BatchExportRunPut
    ) -> RowMapping:
        await self._require_team(team_id)
        found = await self.session.scalar(
            select(BatchExport.id).where(
                BatchExport.id == export_id, BatchExport.team_id == team_id
            )
        )
        if found is None:
            raise NotFound("Batch export not found.")
        return await self._upsert(
            BatchExportRun,
            key={"id": run_id},
            values={"team_id": team_id, "batch_export_id": export_id, **body.model_dump()},
            touch=False,
        )

    async def put_function(
        self, team_id: int, function_id: uuid.UUID, body: FunctionPut
    ) -> RowMapping:
        await self._require_team(team_id)
        return await self._upsert(
            PipelineFunction,
            key={"id": function_id},
            values={"team_id": team_id, **body.model_dump()},
        )

    async def put_billing(self, org_id: uuid.UUID, body: BillingPut) -> RowMapping:
        if body.period_end <= body.period_start:
            raise ValidationFailed("period_end must be after period_start", attr="period_end")
        if await self.session.get(Organization, org_id) is None:
            raise NotFound("Organization not found.")
        return await self._upsert(
            BillingRecord,
            key={"organization_id": org_id},
            values=body.model_dump(),
            owner=None,
        )

    async def put_backfill_partition(
        self, team_id: int, dataset: str, partition_key: str, body: BackfillPartitionPut
    ) -> RowMapping:
        await self._require_team(team_id)
        return await self._upsert(
            BackfillPartition,
            key={"team_id": team_id, "dataset": dataset, "partition_key": partition_key},
            values=body.model_dump(),
            owner=None,
            keep_when_null=("total_partitions",),
        )
