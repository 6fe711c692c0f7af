"""Latency of an authenticated request through a real uvicorn process.

    .venv/bin/python bench/auth_latency.py [--seconds 10] [--concurrency 8] [--keys 100000]

Creates its own database on the machine's PostgreSQL (`--server`, default
postgresql://postgres@127.0.0.1:5432/postgres), migrates it, adds one tenant plus `--keys`
unrelated personal API keys (so the key lookup runs against a realistic table), starts
`uvicorn app.main:create_app --factory` on a free port, and times
`GET /api/projects/<id>/data_warehouse/check-database-name/?name=acme` with a `*` key:
first one request at a time, then `--concurrency` clients at once, each phase bounded by
`--seconds`. Then it shows the plan of the key lookup (EXPLAIN ANALYZE) and, from
pg_stat_user_tables after the server has exited, how many index scans and updates the
personal_api_keys table saw per request. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.core.db import build_engine, build_sessionmaker
from app.core.migrate import migrate_database
from app.devtools.embedded import free_port
from app.models import MembershipLevel
from app.pipeline.auth import TEAM_BY_PROJECT, auth_query
from app.services.identity.keys import hash_key
from app.services.identity.service import IdentityService
from app.settings import Settings, to_plain_dsn, with_database

ROOT = Path(__file__).resolve().parent.parent


async def admin(server: str, statement: str) -> None:
    conn = await asyncpg.connect(with_database(to_plain_dsn(server), "postgres"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_tenant(settings: Settings, extra_keys: int) -> tuple[int, str]:
    engine = build_engine(settings, pool_size=1)
    try:
        async with build_sessionmaker(engine)() as session:
            svc = IdentityService(session)
            org = (await svc.create_organization("Bench")).obj
            project, _team = await svc.create_project(org.id, "Bench project")
            user = (await svc.create_user("bench@example.com", org.id, MembershipLevel.ADMIN)).obj
            issued = await svc.create_key(user.id, ["*"], label="bench")
            await session.commit()
            project_id, key, user_id = project.id, issued.plaintext, user.id
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        await conn.execute(
            """
            INSERT INTO personal_api_keys (id, user_id, label, secure_value, mask_value, scopes)
            SELECT gen_random_uuid(), $1, 'filler',
                   'sha256$' || encode(sha256(convert_to('filler' || i, 'UTF8')), 'hex'),
                   'phx_...fill', ARRAY['*']
            FROM generate_series(1, $2) AS i
            """,
            user_id,
            extra_keys,
        )
        await conn.execute("ANALYZE personal_api_keys")
    finally:
        await conn.close()
    return project_id, key


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "QUEUE_NAME": settings.queue_name,
        "RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
    )


async def wait_ready(base: str, deadline: float = 30.0) -> None:
    start = time.monotonic()
    async with httpx.AsyncClient() as c:
        while time.monotonic() - start < deadline:
            try:
                if (await c.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def load(url: str, key: str, seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                r = await client.get(url, headers=headers)
                elapsed = time.perf_counter() - t0
                if r.status_code == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.monotonic() - started
    latencies.sort()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / wall, 1),
        "median_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


async def key_table_stats(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(to_plain_dsn(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT seq_scan, idx_scan, n_tup_upd FROM pg_stat_user_tables "
            "WHERE relname = 'personal_api_keys'"
        )
        assert row is not None
        return {"seq_scan": row["seq_scan"], "idx_scan": row["idx_scan"], "upd": row["n_tup_upd"]}
    finally:
        await conn.close()


async def explain_key_lookup(database_url: str, key: str, project_id: int) -> str:
    # The statement the projects prefix runs: key, primary environment and membership at once.
    conn = await asyncpg.connect(to_plain_dsn(database_url))
    try:
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + auth_query(TEAM_BY_PROJECT),
            hash_key(key),
            project_id,
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    dbname = f"bench_auth_{run}"
    await admin(args.server, f'CREATE DATABASE "{dbname}"')
    server: subprocess.Popen[bytes] | None = None
    try:
        settings = Settings(
            environment="test",
            database_url=with_database(to_plain_dsn(args.server), dbname),
            redis_url=args.redis,
            queue_name=f"arq:warehouse:bench:{run}",
            _env_file=None,
        )
        await asyncio.to_thread(migrate_database, settings.database_url)
        project_id, key = await create_tenant(settings, args.keys)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/api/projects/{project_id}/data_warehouse/check-database-name/?name=acme"
        server = start_server(settings, port)
        await wait_ready(base)
        await load(url, key, 1.0, 1)  # warm-up: connections, first last_used_at write
        before = await key_table_stats(settings.database_url)
        sequential = await load(url, key, args.seconds, 1)
        concurrent = await load(url, key, args.seconds, args.concurrency)
        server.terminate()
        server.wait(30)
        server = None
        await asyncio.sleep(1.5)  # the server's backends flush their statistics on exit
        after = await key_table_stats(settings.database_url)
        requests = sequential["requests"] + concurrent["requests"]
        per_request = {
            "key_index_scans_per_request": round(
                (after["idx_scan"] - before["idx_scan"]) / requests, 3
            ),
            "key_seq_scans": after["seq_scan"] - before["seq_scan"],
            "key_updates_during_load": after["upd"] - before["upd"],
            # Every update the table ever saw: the warm-up's first last_used_at write only.
            "key_updates_total": after["upd"],
        }
        plan = await explain_key_lookup(settings.database_url, key, project_id)
        result = {
            "keys_in_table": args.keys + 1,
            "sequential": sequential,
            "concurrent": concurrent,
            **per_request,
            "plan": plan,
        }
        print(json.dumps({k: v for k, v in result.items() if k != "plan"}, indent=2))
        print("key lookup plan:\n" + plan)
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / f"auth_latency-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
            json.dumps(result, indent=2)
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        await admin(args.server, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
