"""How ready an environment's data is in its managed warehouse: events, persons, sources.

States roll up by severity: needs_attention > backfilling > waiting > sync_paused > up_to_date
> not_configured (the highest-ranked state present wins; nothing present -> not_configured).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.models import ExternalDataSchema, ExternalDataSource, WarehouseTeamMembership
from app.schemas.pipelines import (
    DatasetReadiness,
    DataStatus,
    ReadinessState,
    SchemaReadiness,
    SourceReadiness,
    SourceSchemas,
    SourcesReadiness,
)

RANK: dict[ReadinessState, int] = {
    "not_configured": 0,
    "up_to_date": 1,
    "sync_paused": 2,
    "waiting": 3,
    "backfilling": 4,
    "needs_attention": 5,
}
DATASETS = ("events", "persons")

_PARTITIONS = """
    SELECT dataset,
           count(*) FILTER (WHERE state = 'completed') AS completed,
           count(*) FILTER (WHERE state = 'failed') AS failed,
           (array_agg(partition_key ORDER BY updated_at DESC, partition_key)
               FILTER (WHERE state = 'failed'))[1] AS failed_key,
           (array_agg(partition_key ORDER BY updated_at DESC, partition_key)
               FILTER (WHERE state = 'running'))[1] AS running_key,
           (array_agg(total_partitions ORDER BY updated_at DESC)
               FILTER (WHERE total_partitions IS NOT NULL))[1] AS total,
           max(updated_at) AS last_updated_at
    FROM backfill_partitions
    WHERE team_id = :team_id
    GROUP BY dataset
"""


def rollup(states: Iterable[ReadinessState]) -> ReadinessState:
    return max(states, key=RANK.__getitem__, default="not_configured")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def source_name(source: ExternalDataSource) -> str:
    return source.prefix or source.source_type


def table_readiness(table: ExternalDataSchema) -> tuple[ReadinessState, str]:
    if not table.should_sync:
        return "sync_paused", "Syncing is paused for this table."
    if table.status == "Failed":
        return "needs_attention", table.latest_error or "The last sync of this table failed."
    if table.status == "Running" and table.last_synced_at is None:
        return "backfilling", "The first sync of this table is running."
    return "up_to_date", "This table is up to date."


def dataset_readiness(dataset: str, configured: bool, row: Any | None) -> DatasetReadiness:
    completed = int(row.completed) if row is not None else 0
    total = int(row.total) if row is not None and row.total is not None else None
    current = row.running_key if row is not None else None
    state: ReadinessState
    if not configured:
        state, detail = "not_configured", f"No {dataset} backfill is set up for this environment."
    elif row is not None and row.failed:
        state = "needs_attention"
        detail = f"Backfill of {dataset} partition {row.failed_key} failed."
    elif current is not None:
        state = "backfilling"
        detail = f"Backfilling {dataset} partition {current}."
    elif total is None or completed == 0:
        state, detail = "waiting", f"Waiting for the {dataset} backfill to start."
    elif completed < total:
        state = "backfilling"
        detail = f"{completed} of {total} {dataset} partitions backfilled."
    else:
        state, detail = "up_to_date", f"All {total} {dataset} partitions are backfilled."
    return DatasetReadiness(
        dataset=dataset,
        readiness_state=state,
        detail=detail,
        completed_partitions=completed,
        total_partitions=total,
        current_partition=current if configured else None,
        last_updated_at=_iso(row.last_updated_at) if row is not None else None,
    )


def _source_readiness(
    source: ExternalDataSource, tables: list[ExternalDataSchema]
) -> SourceReadiness:
    states = [table_readiness(t)[0] for t in tables]
    state = rollup(states)
    synced = [t.last_synced_at for t in tables if t.last_synced_at is not None]
    if not tables:
        detail = "No tables of this source are set up to sync."
    else:
        detail = f"{len(synced)} of {len(tables)} tables synced at least once."
    return SourceReadiness(
        source_id=str(source.id),
        source_name=source_name(source),
        source_type=source.source_type,
        readiness_state=state,
        detail=detail,
        total_schemas=len(tables),
        backfilled_schemas=len(synced),
        last_synced_at=_iso(max(synced)) if synced else None,
    )


class WarehouseReadinessService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def data_status(self, team_id: int) -> DataStatus:
        configured = (
            await self.session.scalar(
                select(WarehouseTeamMembership.id).where(
                    WarehouseTeamMembership.team_id == team_id,
                    WarehouseTeamMembership.backfill_enabled,
                )
            )
        ) is not None
        rows = {
            r.dataset: r
            for r in await self.session.execute(text(_PARTITIONS), {"team_id": team_id})
        }
        events = dataset_readiness("events", configured, rows.get("events"))
        persons = dataset_readiness("persons", configured, rows.get("persons"))
        sources = await self._sources(team_id)
        return DataStatus(
            overall_readiness_state=rollup(
                [events.readiness_state, persons.readiness_state, sources.readiness_state]
            ),
            events=events,
            persons=persons,
            sources=sources,
            generated_at=datetime.now(UTC).isoformat(),
        )

    async def _sources(self, team_id: int) -> SourcesReadiness:
        sources = (
            await self.session.scalars(
                select(ExternalDataSource).where(
                    ExternalDataSource.team_id == team_id, ExternalDataSource.deleted.is_(False)
                )
            )
        ).all()
        tables_by_source: dict[uuid.UUID, list[ExternalDataSchema]] = {s.id: [] for s in sources}
        for table in await self.session.scalars(
            select(ExternalDataSchema).where(
                ExternalDataSchema.team_id == team_id, ExternalDataSchema.deleted.is_(False)
            )
        ):
            tables_by_source.get(table.source_id, []).append(table)
        items = [_source_readiness(s, tables_by_source[s.id]) for s in sources]
        items.sort(key=lambda s: (-RANK[s.readiness_state], s.source_name, s.source_id))
        state = rollup(s.readiness_state for s in items)
        if not items:
            detail = "No sources are connected to this environment."
        else:
            ready = sum(s.readiness_state == "up_to_date" for s in items)
            detail = f"{ready} of {len(items)} sources are up to date."
        return SourcesReadiness(readiness_state=state, detail=detail, sources=items)

    async def source_schemas(self, team_id: int, source_id: uuid.UUID) -> SourceSchemas:
        source = (
            await self.session.scalars(
                select(ExternalDataSource).where(
                    ExternalDataSource.id == source_id,
                    ExternalDataSource.team_id == team_id,
                    ExternalDataSource.deleted.is_(False),
                )
            )
        ).one_or_none()
        if source is None:
            raise NotFound("Source not found.")
        tables = await self.session.scalars(
            select(ExternalDataSchema)
            .where(ExternalDataSchema.source_id == source.id, ExternalDataSchema.deleted.is_(False))
            .order_by(ExternalDataSchema.name, ExternalDataSchema.id)
        )
        schemas = []
        for t in tables:
            state, detail = table_readiness(t)
            schemas.append(
                SchemaReadiness(
                    schema_id=str(t.id),
                    source_id=str(source.id),
                    source_name=source_name(source),
                    source_type=source.source_type,
                    table_name=t.name,
                    readiness_state=state,
                    detail=detail,
                    last_synced_at=_iso(t.last_synced_at),
                )
            )
        return SourceSchemas(schemas=schemas)
