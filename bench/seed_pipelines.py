"""Seed a scratch service database with pipeline jobs at scale, set-based (no row loops).

    .venv/bin/python bench/seed_pipelines.py [--scale 1.0] [--db wh_bench_pipelines]

At scale 1: 100 environments (one organization each), 1,000,000 import jobs over 90 days of
which 200,000 belong to environment 1 (the large one), and 200,000 modeling jobs (40,000 in
environment 1); per environment 5 sources x 4 synced tables, 20 materialized views, 3 batch
exports with 50 runs each, 5 functions, and a billing record. `--scale 0.1` seeds a tenth.
The database (on BENCH_DATABASE_URL's server) is dropped first if it exists, migrated with
Alembic, seeded with the rollup triggers off and the rollups built set-based, then VACUUM
ANALYZEd so index-only scans see an up-to-date visibility map.
`bench/pipelines.py` measures it and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.migrate import migrate_database  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402

SERVER_DSN = to_plain_dsn(
    os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
TEAMS = 100
BIG_TEAM = 1


IDENTITY = """
INSERT INTO organizations (id, name)
SELECT md5('org' || g)::uuid, 'Org ' || g FROM generate_series(1, :teams) g;
INSERT INTO projects (id, organization_id, name) OVERRIDING SYSTEM VALUE
SELECT g, md5('org' || g)::uuid, 'Project ' || g FROM generate_series(1, :teams) g;
INSERT INTO teams (id, project_id, organization_id, name, timezone, is_primary)
OVERRIDING SYSTEM VALUE
SELECT g, g, md5('org' || g)::uuid, 'Env ' || g,
       CASE WHEN g = 1 THEN 'Europe/Berlin' ELSE 'UTC' END, true
FROM generate_series(1, :teams) g;
SELECT setval(pg_get_serial_sequence('projects', 'id'), :teams);
SELECT setval(pg_get_serial_sequence('teams', 'id'), :teams);
INSERT INTO billing_records (organization_id, period_start, period_end, interval, tracked_rows)
SELECT md5('org' || g)::uuid, date_trunc('month', now()) + interval '7 hours 7 minutes',
       date_trunc('month', now()) + interval '1 month 7 hours 7 minutes', 'month', 1000
FROM generate_series(1, :teams) g;
"""

RECORDS = """
INSERT INTO external_data_sources (id, team_id, source_type, status, prefix)
SELECT md5('src' || t || '-' || s)::uuid, t,
       (ARRAY['Stripe', 'Hubspot', 'Postgres', 'Zendesk', 'Salesforce'])[s + 1],
       CASE WHEN s = 4 THEN 'Error' ELSE 'Completed' END, NULL
FROM generate_series(1, :teams) t, generate_series(0, 4) s;
INSERT INTO external_data_schemas
    (id, source_id, team_id, name, status, should_sync, sync_type, last_synced_at)
SELECT md5('sch' || t || '-' || s || '-' || k)::uuid, md5('src' || t || '-' || s)::uuid, t,
       'table_' || s || '_' || k,
       CASE WHEN k = 3 AND s = 0 THEN 'Failed' ELSE 'Completed' END,
       k <> 2 OR s <> 1, 'incremental', now() - interval '1 hour'
FROM generate_series(1, :teams) t, generate_series(0, 4) s, generate_series(0, 3) k;
INSERT INTO saved_queries (id, team_id, name, is_materialized, origin)
SELECT md5('sq' || t || '-' || v)::uuid, t, 'view_' || v, true, 'data_warehouse'
FROM generate_series(1, :teams) t, generate_series(0, 19) v;
INSERT INTO batch_exports (id, team_id, name, paused)
SELECT md5('be' || t || '-' || e)::uuid, t, 'export_' || e, e = 2
FROM generate_series(1, :teams) t, generate_series(0, 2) e;
INSERT INTO batch_export_runs (id, batch_export_id, team_id, status, created_at, finished_at)
SELECT gen_random_uuid(), md5('be' || t || '-' || e)::uuid, t,
       CASE WHEN e = 0 AND r = 49 THEN 'Failed' ELSE 'Completed' END,
       now() - (50 - r) * interval '1 hour', now() - (50 - r) * interval '1 hour' + interval '5 min'
FROM generate_series(1, :teams) t, generate_series(0, 2) e, generate_series(0, 49) r;
INSERT INTO pipeline_functions (id, team_id, name, type, enabled, state)
SELECT md5('fn' || t || '-' || f)::uuid, t, 'function_' || f,
       CASE WHEN f < 3 THEN 'destination' ELSE 'transformation' END, true,
       CASE WHEN f = 0 THEN 2 WHEN f = 3 THEN 3 ELSE 1 END
FROM generate_series(1, :teams) t, generate_series(0, 4) f;
"""

# Jobs: `g <= :big` go to the large environment, the rest round-robin over the others.
# The last two hours are still running; a few older ones are stuck in Running.
IMPORT_JOBS = """
INSERT INTO external_data_jobs (id, team_id, schema_id, source_id, status, rows_synced,
                                billable, created_at, finished_at, latest_error, workflow_run_id)
SELECT gen_random_uuid(), t,
       md5('sch' || t || '-' || (g % 5) || '-' || ((g / 5) % 4))::uuid,
       md5('src' || t || '-' || (g % 5))::uuid,
       status, (r * 10000)::bigint, r < 0.95, c,
       CASE WHEN status = 'Running' THEN NULL ELSE c + interval '3 min' END,
       CASE WHEN status IN ('Completed', 'Running') THEN NULL ELSE 'sync failed' END,
       'wf-' || g
FROM (
    SELECT g, t, r, c,
           CASE WHEN c > now() - interval '2 hours' OR r2 >= 0.995 THEN 'Running'
                WHEN r2 < 0.9 THEN 'Completed'
                WHEN r2 < 0.96 THEN 'Failed'
                WHEN r2 < 0.98 THEN 'BillingLimitReached'
                ELSE 'BillingLimitTooLow' END AS status
    FROM (
        SELECT g, CASE WHEN g <= :big THEN 1 ELSE 2 + (g % (:teams - 1)) END AS t,
               random() AS r, random() AS r2, now() - random() * interval '90 days' AS c
        FROM generate_series(1, :n) g
    ) raw
) jobs;
"""

MODELING_JOBS = """
INSERT INTO modeling_jobs (id, team_id, saved_query_id, status, rows_materialized, created_at,
                           last_run_at, error, workflow_run_id)
SELECT gen_random_uuid(), t, md5('sq' || t || '-' || (g % 20))::uuid, status,
       (r * 5000)::bigint, c, CASE WHEN status = 'Running' THEN NULL ELSE c + interval '1 min' END,
       CASE WHEN status = 'Failed' THEN 'model failed' END, 'mwf-' || g
FROM (
    SELECT g, t, r, c,
           CASE WHEN c > now() - interval '1 hour' THEN 'Running'
                WHEN r2 < 0.9 THEN 'Completed'
                WHEN r2 < 0.97 THEN 'Failed'
                ELSE 'Cancelled' END AS status
    FROM (
        SELECT g, CASE WHEN g <= :big THEN 1 ELSE 2 + (g % (:teams - 1)) END AS t,
               random() AS r, random() AS r2, now() - random() * interval '90 days' AS c
        FROM generate_series(1, :n) g
    ) raw
) jobs;
"""


# The row triggers would upsert a rollup per job; for a bulk seed they are switched off for this
# session and the rollups are built in one pass, exactly as the triggers would have.
ROLLUPS = """
INSERT INTO pipeline_job_rollups (team_id, bucket_start, kind, jobs, running, successful, failed)
SELECT team_id, to_timestamp(floor(extract(epoch FROM created_at) / 900) * 900), 'import',
       count(*), count(*) FILTER (WHERE status = 'Running'),
       count(*) FILTER (WHERE status = 'Completed'),
       count(*) FILTER (WHERE status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow'))
FROM external_data_jobs WHERE billable GROUP BY 1, 2;
INSERT INTO pipeline_job_rollups (team_id, bucket_start, kind, jobs, running, successful, failed)
SELECT team_id, to_timestamp(floor(extract(epoch FROM created_at) / 900) * 900), 'model',
       count(*), count(*) FILTER (WHERE status = 'Running'),
       count(*) FILTER (WHERE status = 'Completed'), count(*) FILTER (WHERE status = 'Failed')
FROM modeling_jobs GROUP BY 1, 2;
INSERT INTO pipeline_daily_rows (team_id, day_start, kind, source_id, rows)
SELECT team_id, to_timestamp(floor(extract(epoch FROM created_at) / 86400) * 86400), 'import',
       source_id, sum(rows_synced)
FROM external_data_jobs WHERE billable GROUP BY 1, 2, 4;
INSERT INTO pipeline_daily_rows (team_id, day_start, kind, source_id, rows)
SELECT team_id, to_timestamp(floor(extract(epoch FROM created_at) / 86400) * 86400), 'model',
       '00000000-0000-0000-0000-000000000000', sum(rows_materialized)
FROM modeling_jobs GROUP BY 1, 2;
"""


def render(sql: str, **params: int) -> str:
    """Inline integer parameters (`:name`, never the `::type` casts)."""
    return re.sub(r"(?<!:):([a-z_]+)\b", lambda m: str(int(params[m.group(1)])), sql)


async def seed(db: str, scale: float) -> None:
    admin = await asyncpg.connect(with_database(SERVER_DSN, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    dsn = with_database(SERVER_DSN, db)
    await asyncio.to_thread(migrate_database, dsn)
    imports, big_imports = int(1_000_000 * scale), int(200_000 * scale)
    models, big_models = int(200_000 * scale), int(40_000 * scale)
    conn = await asyncpg.connect(dsn)
    try:
        steps = [
            ("identity", render(IDENTITY, teams=TEAMS)),
            ("sources, tables, views, exports, functions", render(RECORDS, teams=TEAMS)),
            ("import jobs", render(IMPORT_JOBS, teams=TEAMS, n=imports, big=big_imports)),
            ("modeling jobs", render(MODELING_JOBS, teams=TEAMS, n=models, big=big_models)),
            ("rollups", ROLLUPS),
        ]
        await conn.execute("SET session_replication_role = replica")  # no row triggers
        for label, sql in steps:
            started = time.perf_counter()
            await conn.execute(sql)
            print(f"{label}: {time.perf_counter() - started:.1f}s", flush=True)
        started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        print(f"vacuum analyze: {time.perf_counter() - started:.1f}s")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM external_data_jobs) AS imports,"
            " (SELECT count(*) FROM external_data_jobs WHERE team_id = 1) AS big_imports,"
            " (SELECT count(*) FROM modeling_jobs) AS models,"
            " (SELECT count(*) FROM modeling_jobs WHERE team_id = 1) AS big_models,"
            " (SELECT count(*) FROM pipeline_job_rollups) AS rollup_rows,"
            " (SELECT count(*) FROM pipeline_job_rollups WHERE team_id = 1) AS big_rollup_rows,"
            " (SELECT count(*) FROM pipeline_daily_rows) AS daily_rows"
        )
        print(f"seeded {db}: {dict(counts)}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--db", default="wh_bench_pipelines")
    args = parser.parse_args()
    asyncio.run(seed(args.db, args.scale))


if __name__ == "__main__":
    main()
