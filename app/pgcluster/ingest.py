"""Storing a batch of rows in a warehouse table: COPY into a staging table, then one INSERT.

Binary COPY is the cheapest way to move rows into PostgreSQL, but a COPY into the table itself
would fail the whole batch on the first row already stored. So the batch is copied into a
session-local staging table (created once per connection, emptied at commit) and moved with
`INSERT ... SELECT ... ON CONFLICT DO NOTHING`: a row pushed twice (same uuid/id, in two
batches or twice in one) is stored once, and the INSERT's row count is exactly the rows newly
stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_STAGING = {
    "events": (
        "_ingest_events",
        "uuid uuid, event text, distinct_id text, properties jsonb, timestamp timestamptz",
        ("uuid", "event", "distinct_id", "properties", "timestamp"),
    ),
    "persons": (
        "_ingest_persons",
        "id uuid, distinct_ids text[], properties jsonb, created_at timestamptz",
        ("id", "distinct_ids", "properties", "created_at"),
    ),
}


async def copy_rows(
    conn: Any, qualified_table: str, table: str, records: Sequence[tuple[Any, ...]]
) -> int:
    """Store `records` (columns as in `_STAGING[table]`) in `qualified_table` (already quoted);
    returns how many were new. `conn` is an asyncpg connection to the warehouse database."""
    staging, definition, columns = _STAGING[table]
    listed = ", ".join(columns)
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({definition}) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(staging, records=records, columns=columns)
        status: str = await conn.execute(
            # `qualified_table` comes from the membership's validated names, quoted.
            f"INSERT INTO {qualified_table} ({listed}) SELECT {listed} FROM {staging} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
    # "INSERT 0 <n>"
    return int(status.rsplit(" ", 1)[-1])
