"""Latency of the pipeline actions for the large environment, with the plans behind them.

    .venv/bin/python bench/seed_pipelines.py            # once: 1M import jobs, 200k models
    .venv/bin/python bench/pipelines.py [--requests 200] [--db wh_bench_pipelines] [--keep]

Runs the real application (create_app + lifespan, httpx ASGITransport: routing, auth, the
session dependency, the services, serialization) against the seeded scratch database on
BENCH_DATABASE_URL's server and Redis on BENCH_REDIS_URL. For environment 1 it times
sequential requests of running_activity, completed_activity (offset 0 and 1000), job_stats
(1/7/30 days), data_health_issues and total_rows_stats, and internal PUTs of import jobs (new,
then a status change: upsert + rollup triggers), prints p50/p95/max, then captures the
SQL each action ran and prints its EXPLAIN (ANALYZE, BUFFERS), flagging sequential scans of the
job tables. The scratch database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.main import create_app  # noqa: E402
from app.services.identity.keys import generate_key, hash_key, mask_key  # noqa: E402
from app.settings import Settings, with_database  # noqa: E402
from bench.seed_pipelines import SERVER_DSN  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TEAM = 1
TOKEN = "bench-internal-" + uuid.uuid4().hex
CASES = [
    ("running_activity", "running_activity/"),
    ("completed_activity offset=0", "completed_activity/?offset=0"),
    ("completed_activity offset=1000", "completed_activity/?offset=1000"),
    ("completed_activity failed offset=1000", "completed_activity/?offset=1000&outcome=failed"),
    ("job_stats days=1", "job_stats/?days=1"),
    ("job_stats days=7", "job_stats/?days=7"),
    ("job_stats days=30", "job_stats/?days=30"),
    ("data_health_issues", "data_health_issues/"),
    ("total_rows_stats", "total_rows_stats/"),
]
PIPELINE_TABLES = ("external_data", "modeling_jobs", "saved_queries", "batch_export", "pipeline_")


async def create_key(dsn: str) -> str:
    key = generate_key()
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4().hex}@bench"
        )
        await conn.execute(
            "INSERT INTO organization_memberships (organization_id, user_id, level)"
            " SELECT organization_id, $1, 8 FROM teams WHERE id = $2",
            user_id,
            TEAM,
        )
        await conn.execute(
            "INSERT INTO personal_api_keys (id, user_id, secure_value, mask_value, scopes)"
            " VALUES ($1, $2, $3, $4, ARRAY['*'])",
            uuid.uuid4(),
            user_id,
            hash_key(key),
            mask_key(key),
        )
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM external_data_jobs) AS imports,"
            " (SELECT count(*) FROM external_data_jobs WHERE team_id = $1) AS team_imports,"
            " (SELECT count(*) FROM modeling_jobs) AS models,"
            " (SELECT count(*) FROM modeling_jobs WHERE team_id = $1) AS team_models",
            TEAM,
        )
        print(f"data: {dict(counts)}")
    finally:
        await conn.close()
    return key


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_case(client: httpx.AsyncClient, url: str, n: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        r = await client.get(url)
        assert r.status_code == 200, r.text
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        r = await client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(percentile(samples, 0.95), 2),
        "max_ms": round(max(samples), 2),
    }


async def time_writes(client: httpx.AsyncClient, n: int) -> dict[str, dict[str, Any]]:
    """Internal PUTs of import jobs into the large environment: new jobs, then status changes
    (each one an upsert plus the rollup triggers)."""
    schema_id = str(uuid.UUID(hashlib.md5(f"sch{TEAM}-0-0".encode()).hexdigest()))
    url = f"http://bench/internal/environments/{TEAM}/import_jobs/"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    ids = [uuid.uuid4() for _ in range(n)]
    out = {}
    for label, status in (
        ("PUT import_job (new)", "Running"),
        ("PUT import_job (update)", "Completed"),
    ):
        samples = []
        for job_id in ids:
            body = {
                "schema_id": schema_id,
                "status": status,
                "rows_synced": 10,
                "billable": True,
                "created_at": datetime.now(UTC).isoformat(),
            }
            started = time.perf_counter()
            r = await client.put(f"{url}{job_id}", json=body, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
        out[label] = {
            "p50_ms": round(statistics.median(samples), 2),
            "p95_ms": round(percentile(samples, 0.95), 2),
            "max_ms": round(max(samples), 2),
        }
    return out


async def explain_case(app: Any, client: httpx.AsyncClient, url: str) -> list[list[str]]:
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if any(t in statement for t in PIPELINE_TABLES) and "EXPLAIN" not in statement:
            captured.append((statement, params))

    engine = app.state.engine
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        r = await client.get(url)
        assert r.status_code == 200, r.text
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    plans = []
    async with engine.connect() as conn:
        for statement, params in captured:
            result = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            plans.append([row[0] for row in result])
    return plans


async def run(args: argparse.Namespace) -> None:
    dsn = with_database(SERVER_DSN, args.db)
    key = await create_key(dsn)
    settings = Settings(
        environment="test",
        database_url=dsn,
        redis_url=REDIS_URL,
        queue_name=f"arq:warehouse:bench:{uuid.uuid4().hex[:8]}",
        rate_limit_per_minute=0,
        warehouse_allow_trust_auth=True,  # nothing is provisioned here; keeps the log quiet
        internal_api_token=TOKEN,
        _env_file=None,
    )
    app = create_app(settings)
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=f"http://bench/api/environments/{TEAM}/data_warehouse/",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            print(f"\n{'action':40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for label, url in CASES:
                stats = await time_case(client, url, args.requests, args.warmup)
                results[label] = stats
                flag = "" if stats["p95_ms"] < 50 else "  <-- over 50 ms"
                print(
                    f"{label:40} {stats['p50_ms']:8.2f} {stats['p95_ms']:8.2f}"
                    f" {stats['max_ms']:8.2f}{flag}",
                    flush=True,
                )
            writes = await time_writes(client, args.requests)
            for label, stats in writes.items():
                results[label] = stats
                print(
                    f"{label:40} {stats['p50_ms']:8.2f} {stats['p95_ms']:8.2f}"
                    f" {stats['max_ms']:8.2f}",
                    flush=True,
                )
            if not args.no_explain:
                for label, url in CASES:
                    plans = await explain_case(app, client, url)
                    results[label]["plans"] = plans
                    print(f"\n===== {label}: {len(plans)} statement(s)")
                    for plan in plans:
                        text = "\n".join(plan)
                        seq = [
                            line.strip()
                            for line in plan
                            if "Seq Scan on external_data_jobs" in line
                            or "Seq Scan on modeling_jobs" in line
                        ]
                        print(text if args.full_plans else "\n".join(plan[: args.plan_lines]))
                        if seq:
                            print(f"!! sequential scan of a job table: {seq}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"pipelines-{args.db}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {path.relative_to(ROOT)}")


async def drop(db: str) -> None:
    admin = await asyncpg.connect(with_database(SERVER_DSN, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="wh_bench_pipelines")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--full-plans", action="store_true")
    parser.add_argument("--plan-lines", type=int, default=40)
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    finally:
        if not args.keep:
            asyncio.run(drop(args.db))


if __name__ == "__main__":
    main()
