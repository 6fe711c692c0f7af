"""The tables an environment writes into inside its organization's warehouse database.

Two layouts (API.md §4.2): `events_<suffix>` / `persons_<suffix>` in `public`, or `events` /
`persons` inside the environment's own schema. Same columns either way; the warehouse's login
role owns them. Every statement is idempotent, so calling this again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.pgcluster.sql import quote_ident


@dataclass(frozen=True)
class TeamTables:
    schema: str
    events: str
    persons: str

    @classmethod
    def for_layout(cls, *, table_suffix: str | None, schema_name: str | None) -> TeamTables:
        if schema_name:
            return cls(schema=schema_name, events="events", persons="persons")
        if table_suffix:
            return cls(
                schema="public", events=f"events_{table_suffix}", persons=f"persons_{table_suffix}"
            )
        raise ValueError("a membership needs a table suffix or a schema name")

    @property
    def qualified_events(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.events)}"

    @property
    def qualified_persons(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.persons)}"

    def by_visible_name(self) -> dict[str, str]:
        """Table names as the environment sees them -> qualified names."""
        if self.schema == "public":
            return {self.events: self.qualified_events, self.persons: self.qualified_persons}
        return {
            self.events: self.qualified_events,
            self.persons: self.qualified_persons,
            f"{self.schema}.{self.events}": self.qualified_events,
            f"{self.schema}.{self.persons}": self.qualified_persons,
        }


async def ensure_team_tables(conn: Any, *, owner_role: str, tables: TeamTables) -> None:
    """Create the environment's schema/tables, owned by `owner_role`.

    `conn` is an asyncpg connection to the warehouse database as the cluster admin.
    """
    owner = quote_ident(owner_role)
    async with conn.transaction():
        if tables.schema != "public":
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quote_ident(tables.schema)} AUTHORIZATION {owner}"
            )
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {tables.qualified_events} ("
            "uuid uuid PRIMARY KEY, event text NOT NULL, distinct_id text NOT NULL, "
            "properties jsonb NOT NULL DEFAULT '{}', timestamp timestamptz NOT NULL)"
        )
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {tables.qualified_persons} ("
            "id uuid PRIMARY KEY, distinct_ids text[] NOT NULL, "
            "properties jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL)"
        )
        await conn.execute(f"ALTER TABLE {tables.qualified_events} OWNER TO {owner}")
        await conn.execute(f"ALTER TABLE {tables.qualified_persons} OWNER TO {owner}")
