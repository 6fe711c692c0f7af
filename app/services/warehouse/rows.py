"""Appending rows to an environment's warehouse tables (internal API, API.md §6).

Rows are validated per table, sent as typed arrays (one INSERT ... SELECT FROM unnest(...) per
batch) and stored with ON CONFLICT DO NOTHING, so a row pushed twice (same uuid/id) is stored
once and `inserted` counts only new rows.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.models import ManagedWarehouse, Team, WarehouseState, WarehouseTeamMembership
from app.pgcluster.tenant_connection import tenant_database
from app.schemas.membership import EventRow, PersonRow
from app.services.warehouse.membership import WarehouseMembershipService, tables_of
from app.settings import Settings

NO_MEMBERSHIP = (
    "This environment has no warehouse backfill or onboarding yet: call enable_backfill or "
    "onboard-team first"
)

_EVENT_ROWS = TypeAdapter(list[EventRow])
_PERSON_ROWS = TypeAdapter(list[PersonRow])


def _not_ready(state: str | None) -> str:
    if state is None:
        return "The environment's warehouse tables do not exist yet: no managed warehouse"
    return f"The environment's warehouse tables do not exist yet: the managed warehouse is {state}"


def _parse_rows(table: str, raw: list[dict[str, Any]]) -> list[EventRow] | list[PersonRow]:
    adapter: TypeAdapter[Any] = _EVENT_ROWS if table == "events" else _PERSON_ROWS
    try:
        rows: list[EventRow] | list[PersonRow] = adapter.validate_python(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        attr = ".".join(["rows", *(str(p) for p in first["loc"])])
        raise ValidationFailed(f"{attr}: {first['msg']}"[:500], attr=attr) from exc
    for i, row in enumerate(rows):
        _reject_unstorable(row, i)
    return rows


def _reject_unstorable(row: BaseModel, index: int) -> None:
    """PostgreSQL text and jsonb cannot hold NUL; JSON cannot hold NaN/Infinity."""
    for name, value in row:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ValidationFailed(
                f"rows.{index}.{name}: must not contain NUL characters", attr=f"rows.{index}.{name}"
            )
    properties = getattr(row, "properties", {})
    try:
        encoded = json.dumps(properties, allow_nan=False)
    except ValueError as exc:
        attr = f"rows.{index}.properties"
        raise ValidationFailed(
            f"{attr}: must be valid JSON (no NaN or Infinity)", attr=attr
        ) from exc
    if "\\u0000" in encoded:
        attr = f"rows.{index}.properties"
        raise ValidationFailed(f"{attr}: must not contain NUL characters", attr=attr)


async def _insert(conn: Any, qualified: str, table: str, rows: list[Any]) -> int:
    if table == "events":
        status: str = await conn.execute(
            # `qualified` comes from the membership's validated names, quoted.
            f"INSERT INTO {qualified} (uuid, event, distinct_id, properties, timestamp) "  # noqa: S608
            "SELECT u, e, d, p::jsonb, ts FROM unnest($1::uuid[], $2::text[], $3::text[], "
            "$4::text[], $5::timestamptz[]) AS r(u, e, d, p, ts) ON CONFLICT DO NOTHING",
            [r.uuid for r in rows],
            [r.event for r in rows],
            [r.distinct_id for r in rows],
            [json.dumps(r.properties) for r in rows],
            [r.timestamp for r in rows],
        )
    else:
        status = await conn.execute(
            f"INSERT INTO {qualified} (id, distinct_ids, properties, created_at) "  # noqa: S608
            "SELECT i, ARRAY(SELECT jsonb_array_elements_text(di::jsonb)), p::jsonb, c "
            "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS r(i, di, p, c) "
            "ON CONFLICT DO NOTHING",
            [r.id for r in rows],
            [json.dumps(r.distinct_ids) for r in rows],
            [json.dumps(r.properties) for r in rows],
            [r.created_at for r in rows],
        )
    # "INSERT 0 <n>"
    return int(status.rsplit(" ", 1)[-1])


class WarehouseRowsService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def append(self, team_id: int, table: str, raw_rows: list[dict[str, Any]]) -> int:
        team = await self.session.get(Team, team_id)
        if team is None:
            raise NotFound("Environment not found")
        rows = _parse_rows(table, raw_rows)
        membership = (
            await self.session.execute(
                select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == team_id)
            )
        ).scalar_one_or_none()
        if membership is None:
            raise Conflict(NO_MEMBERSHIP)
        warehouse = (
            await self.session.execute(
                select(ManagedWarehouse).where(
                    ManagedWarehouse.organization_id == membership.organization_id
                )
            )
        ).scalar_one_or_none()
        if warehouse is None or warehouse.state != WarehouseState.READY:
            raise Conflict(_not_ready(warehouse.state if warehouse else None))
        if not rows:
            return 0

        memberships = WarehouseMembershipService(self.session, self.settings)
        if membership.tables_created_at is None:
            await memberships.ensure_tables(warehouse, membership)
        tables = tables_of(membership)
        qualified = tables.qualified_events if table == "events" else tables.qualified_persons
        async with tenant_database(self.settings, warehouse.database_name) as conn:
            try:
                return await _insert(conn, qualified, table, rows)
            except (
                asyncpg.exceptions.UndefinedTableError,
                asyncpg.exceptions.InvalidSchemaNameError,
            ):
                pass
        # The tables were dropped behind our back (e.g. the warehouse was rebuilt): recreate.
        await memberships.ensure_tables(warehouse, membership)
        async with tenant_database(self.settings, warehouse.database_name) as conn:
            return await _insert(conn, qualified, table, rows)
