"""How long does a property_values lookup take on a big events table?

Creates a scratch database on the given PostgreSQL server, an environment's tables there (the
real DDL), fills `events_bench` with N rows, times the real query builder for a few keys with
and without a filter, then drops the database.

    .venv/bin/python bench/property_values.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        --rows 200000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg

from app.pgcluster.sql import database_dsn
from app.pgcluster.team_tables import TeamTables, ensure_team_tables
from app.services.pipelines.property_values import MAX_RESULTS, TableRef, build_query

CASES = [
    ("event", "event", "text", [], None),
    ("event ~ 'page'", "event", "text", [], "page"),
    ("properties.plan", "properties", "jsonb", ["plan"], None),
    ("properties.plan ~ 'PRO'", "properties", "jsonb", ["plan"], "PRO"),
    ("properties.tags (list)", "properties", "jsonb", ["tags"], None),
    ("properties.user.country", "properties", "jsonb", ["user", "country"], None),
]


async def main(dsn: str, rows: int, repeat: int) -> None:
    name = f"bench_pv_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(database_dsn(dsn, name))
        try:
            user = await conn.fetchval("SELECT current_user")
            tables = TeamTables.for_layout(table_suffix="bench", schema_name=None)
            await ensure_team_tables(conn, owner_role=user, tables=tables)
            started = time.perf_counter()
            await conn.execute(
                "INSERT INTO events_bench (uuid, event, distinct_id, properties, timestamp) "
                "SELECT gen_random_uuid(), (ARRAY['pageview','signup','purchase','$autocapture'])"
                "[1 + i % 4] || CASE WHEN i % 50 = 0 THEN '_' || (i % 1000)::text ELSE '' END, "
                "'user-' || (i % 5000), jsonb_build_object('plan', "
                "(ARRAY['pro','free','Professional','team'])[1 + i % 4], 'beta', i % 2 = 0, "
                "'tags', jsonb_build_array('t' || (i % 7), 't' || (i % 11)), "
                "'user', jsonb_build_object('country', 'C' || (i % 40))), now() "
                "FROM generate_series(1, $1) AS i",
                rows,
            )
            await conn.execute("ANALYZE events_bench")
            print(f"loaded {rows} rows in {time.perf_counter() - started:.1f}s")
            table = TableRef("public", "events_bench")
            for label, column, data_type, path, value in CASES:
                sql, args = build_query(table, column, data_type, path, value)
                timings = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    result = await conn.fetch(sql, *args)
                    timings.append((time.perf_counter() - t0) * 1000)
                assert len(result) <= MAX_RESULTS
                print(
                    f"{label:28s} median {statistics.median(timings):7.1f} ms  "
                    f"max {max(timings):7.1f} ms  ({len(result)} values)"
                )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.rows, args.repeat))
