"""Distinct values of one column (or one JSON path) of an environment's warehouse table
(API.md §4.3 `property_values`).

Nothing the caller sends is ever spliced into SQL as-is:
- the table name is looked up among the environment's own tables (as it sees them) and the
  table must exist in the warehouse catalog, else 404;
- the key's column must be one of that table's columns in `information_schema`, else 400; only
  then is it quoted and used;
- JSON path parts and the filter are bind parameters.
The lookup runs in a read-only transaction with a statement timeout and a LIMIT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import TeamRef
from app.core.errors import NotFound, ServiceUnavailable, ValidationFailed
from app.models import ManagedWarehouse, WarehouseState, WarehouseTeamMembership
from app.pgcluster.sql import quote_ident
from app.pgcluster.tenant_connection import WarehouseDatabaseMissing, tenant_database
from app.services.fleet.backends import admin_dsn_of
from app.services.warehouse.membership import tables_of
from app.settings import Settings

MAX_RESULTS = 10
STATEMENT_TIMEOUT_MS = 5_000
JSON_TYPES = frozenset({"json", "jsonb"})

KEY_REQUIRED = "You must provide a key"
TABLE_REQUIRED = "You must provide a table name"
TABLE_NOT_FOUND = "Table not found in this environment's warehouse tables"
KEY_NOT_FOUND = "The provided key does not exist on this table"
TOO_SLOW = "Looking up property values took too long. Try a more specific filter."


@dataclass(frozen=True)
class TableRef:
    schema: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def visible_tables(membership: WarehouseTeamMembership) -> dict[str, TableRef]:
    """The environment's table names as it sees them (cf. `TeamTables.by_visible_name`)."""
    t = tables_of(membership)
    refs = {t.events: TableRef(t.schema, t.events), t.persons: TableRef(t.schema, t.persons)}
    if t.schema != "public":
        refs[f"{t.schema}.{t.events}"] = refs[t.events]
        refs[f"{t.schema}.{t.persons}"] = refs[t.persons]
    return refs


def _quote_catalog_ident(name: str) -> str:
    """Quote a name read back from the catalog (the login role may add columns of any name)."""
    return '"' + name.replace('"', '""') + '"'


def build_query(
    table: TableRef, column: str, data_type: str, path: list[str], value: str | None
) -> tuple[str, list[Any]]:
    """SQL and arguments; `column` and `table` are already known to exist in the catalog.

    (The S608 suppressions below: the only interpolated parts are those quoted identifiers.)
    """
    col = f"t.{_quote_catalog_ident(column)}"
    args: list[Any] = []
    if data_type in JSON_TYPES:
        args.append(path)
        node = f"({col}::jsonb #> $1::text[])"
        # A list contributes each element; a scalar contributes itself; objects their JSON.
        inner = (
            "SELECT DISTINCT CASE jsonb_typeof(x.e) WHEN 'object' THEN x.e::text "  # noqa: S608
            "ELSE x.e #>> '{}' END AS v "
            f"FROM {table.qualified} AS t CROSS JOIN LATERAL jsonb_array_elements("
            f"CASE WHEN jsonb_typeof({node}) = 'array' THEN {node} "
            f"ELSE jsonb_build_array({node}) END) AS x(e)"
        )
    elif data_type == "ARRAY":
        inner = (
            f"SELECT DISTINCT x.e::text AS v FROM {table.qualified} AS t "  # noqa: S608
            f"CROSS JOIN LATERAL unnest({col}) AS x(e)"
        )
    else:
        # boolean::text is 'true'/'false'.
        inner = f"SELECT DISTINCT {col}::text AS v FROM {table.qualified} AS t"  # noqa: S608
    sql = f"SELECT v FROM ({inner}) AS s WHERE v IS NOT NULL"  # noqa: S608
    if value:
        args.append(value)
        sql += f" AND strpos(lower(v), lower(${len(args)}::text)) > 0 ORDER BY length(v), v"
    else:
        sql += " ORDER BY v"
    return sql + f" LIMIT {MAX_RESULTS}", args


class PropertyValuesService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def values(
        self, team: TeamRef, *, table_name: str | None, key: str | None, value: str | None
    ) -> list[str]:
        if not key:
            raise ValidationFailed(KEY_REQUIRED, attr="key", code="required")
        if not table_name:
            raise ValidationFailed(TABLE_REQUIRED, attr="table_name", code="required")
        for attr, given in (("key", key), ("table_name", table_name), ("value", value)):
            if given and "\x00" in given:
                raise ValidationFailed(f"{attr} must not contain NUL characters", attr=attr)
        found = (
            await self.session.execute(
                select(WarehouseTeamMembership, ManagedWarehouse)
                .join(
                    ManagedWarehouse,
                    ManagedWarehouse.organization_id == WarehouseTeamMembership.organization_id,
                )
                .where(WarehouseTeamMembership.team_id == team.id)
            )
        ).one_or_none()
        if found is None or found.ManagedWarehouse.state != WarehouseState.READY:
            raise NotFound(TABLE_NOT_FOUND)
        table = visible_tables(found.WarehouseTeamMembership).get(table_name)
        if table is None:
            raise NotFound(TABLE_NOT_FOUND)

        try:
            async with tenant_database(
                await admin_dsn_of(self.session, self.settings, found.ManagedWarehouse.cluster),
                found.ManagedWarehouse.database_name,
            ) as conn:
                return await self._lookup(conn, table, key, value)
        except WarehouseDatabaseMissing as exc:
            raise NotFound(TABLE_NOT_FOUND) from exc

    async def _lookup(self, conn: Any, table: TableRef, key: str, value: str | None) -> list[str]:
        column, *path = key.split(".")
        try:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                types = {
                    r["column_name"]: r["data_type"]
                    for r in await conn.fetch(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = $1 AND table_name = $2",
                        table.schema,
                        table.name,
                    )
                }
                if not types:
                    raise NotFound(TABLE_NOT_FOUND)
                data_type = types.get(column)
                if data_type is None or (path and data_type not in JSON_TYPES):
                    raise ValidationFailed(KEY_NOT_FOUND, attr="key")
                sql, args = build_query(table, column, data_type, path, value)
                rows = await conn.fetch(sql, *args)
        except asyncpg.exceptions.QueryCanceledError as exc:
            raise ServiceUnavailable(TOO_SLOW, headers={"Retry-After": "1"}) from exc
        return [str(r["v"]) for r in rows]
