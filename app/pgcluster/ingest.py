"""Storing a batch of rows in a warehouse table, each row written once when it can be.

Binary COPY is the cheapest way to move rows into PostgreSQL (multi-row heap inserts, a WAL
record per page instead of per row), and most batches hold only new rows. So a batch whose keys
are distinct, and whose first and last keys are not stored yet (one indexed probe; a batch sent
again fails it), is COPYed straight into the table, as one statement: it either stores every
row (then every row was new: `inserted` is the batch's size) or fails as a whole on the first
key already present — stored earlier, or by a concurrent batch that committed first (the COPY
waits for it) — and leaves nothing behind (but the dead rows it wrote before the conflict).

Otherwise, or when that COPY is refused, the rows go the exact way: COPY into a
session-local staging table (created once per connection, emptied at commit) and
`INSERT ... SELECT ... ORDER BY <key> ON CONFLICT DO NOTHING`, whose row count is exactly the
rows newly stored. Inserting in key order makes concurrent batches that go this way wait for
each other in one order, so they cannot deadlock one another; one that deadlocks with a COPY
(in the batch's order) was rolled back whole and runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from app.pgcluster.sql import quote_ident

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
# A key already stored (or stored meanwhile by a concurrent batch), or two batches that wait on
# each other's keys: the COPY changed nothing, and the exact way decides.
_COPY_REFUSED = (asyncpg.exceptions.UniqueViolationError, asyncpg.exceptions.DeadlockDetectedError)
_EXACT_ATTEMPTS = 3


async def copy_rows(
    conn: Any,
    schema: str,
    name: str,
    table: str,
    records: Sequence[tuple[Any, ...]],
    *,
    distinct_keys: bool,
) -> int:
    """Store `records` (columns as in `_STAGING[table]`, the key first) in `schema`.`name`
    (validated names); returns how many were new. `distinct_keys`: no key repeats within
    `records`. `conn` is an asyncpg connection to the warehouse database, not in a
    transaction."""
    columns = _STAGING[table][2]
    qualified = f"{quote_ident(schema)}.{quote_ident(name)}"
    if distinct_keys and not await conn.fetchval(
        # A batch sent again (a retry after a timeout) starts or ends with a stored key: it goes
        # the exact way at once instead of through a COPY that fails after writing rows.
        f"SELECT EXISTS (SELECT FROM {qualified} WHERE {columns[0]} = ANY($1::uuid[]))",  # noqa: S608
        [records[0][0], records[-1][0]],
    ):
        try:
            status: str = await conn.copy_records_to_table(
                name, schema_name=schema, records=records, columns=columns
            )
        except _COPY_REFUSED:
            pass
        else:
            # "COPY <n>"
            return int(status.rsplit(" ", 1)[-1])
    for attempt in range(_EXACT_ATTEMPTS):
        try:
            return await _insert_new(conn, qualified, table, records)
        except asyncpg.exceptions.DeadlockDetectedError:
            # Against a COPY (unordered) that waits on a key this batch holds: the batch was
            # rolled back as a whole, so it can simply run again.
            if attempt == _EXACT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _insert_new(
    conn: Any, qualified: str, table: str, records: Sequence[tuple[Any, ...]]
) -> int:
    staging, definition, columns = _STAGING[table]
    listed = ", ".join(columns)
    async with conn.transaction():
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ({definition}) ON COMMIT DELETE ROWS"
        )
        await conn.copy_records_to_table(staging, records=records, columns=columns)
        status: str = await conn.execute(
            # `qualified` is built from validated names, quoted.
            f"INSERT INTO {qualified} ({listed}) SELECT {listed} FROM {staging} "  # noqa: S608
            f"ORDER BY {columns[0]} ON CONFLICT DO NOTHING"
        )
    # "INSERT 0 <n>"
    return int(status.rsplit(" ", 1)[-1])
