"""Ingest benchmark: the internal `warehouse/rows` endpoint against asyncpg COPY, in one run.

    .venv/bin/python bench/ingest.py [--batches 40] [--batch-size 1000] [--concurrency 4]
                                     [--repeat 3] [--warmup 8]

Starts what bench/load.py starts (a scratch service database, a password-checking warehouse
cluster, the service as production runs it (`warehouse serve --workers 2`), a worker for the
provision), provisions a
warehouse with an environment's tables, then, with the same generated event rows:
- the service: `--concurrency` clients POST batches of `--batch-size` rows to
  `/internal/environments/{id}/warehouse/rows` (a fresh uuid per row, so every row is stored);
- the limit: `--concurrency` asyncpg connections COPY the same batches (binary COPY,
  `copy_records_to_table`) into an identical table in the same warehouse database.
Both are repeated `--repeat` times, interleaved, after `--warmup` unmeasured batches of each;
it prints rows/s for each, the ratio, and writes bench/results/ingest-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3  # noqa: E402
from app.settings import with_database  # noqa: E402
from bench.load import REDIS_URL, SERVER_DSN, TOKEN, _admin, seed, served  # noqa: E402


def make_batches(count: int, size: int) -> list[list[dict[str, Any]]]:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    batches = []
    for b in range(count):
        rows = []
        for i in range(size):
            n = b * size + i
            rows.append(
                {
                    "uuid": str(uuid.uuid4()),
                    "event": "$pageview" if n % 3 else "signed_up",
                    "distinct_id": f"user-{n % 5000}",
                    "properties": {
                        "$current_url": f"https://example.com/p/{n % 97}",
                        "plan": "pro",
                    },
                    "timestamp": (start + timedelta(seconds=n)).isoformat(),
                }
            )
        batches.append(rows)
    return batches


async def post_batches(
    base: str, env_id: str, batches: list[list[dict[str, Any]]], workers: int
) -> float:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/internal/environments/{env_id}/warehouse/rows"
    stored = 0

    async def client() -> None:
        nonlocal stored
        async with httpx.AsyncClient(headers=headers, timeout=60) as c:
            while not queue.empty():
                rows = queue.get_nowait()
                r = await c.post(url, json={"table": "events", "rows": rows})
                r.raise_for_status()
                stored += r.json()["inserted"]

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(workers)))
    elapsed = time.perf_counter() - began
    assert stored == sum(len(b) for b in batches), stored
    return stored / elapsed


async def copy_batches(
    dsn: str, table: str, batches: list[list[dict[str, Any]]], workers: int
) -> float:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    columns = ["uuid", "event", "distinct_id", "properties", "timestamp"]

    async def client() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while not queue.empty():
                rows = queue.get_nowait()
                records = [
                    (
                        uuid.UUID(r["uuid"]),
                        r["event"],
                        r["distinct_id"],
                        json.dumps(r["properties"]),
                        datetime.fromisoformat(r["timestamp"]),
                    )
                    for r in rows
                ]
                await conn.copy_records_to_table(table, records=records, columns=columns)
        finally:
            await conn.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(workers)))
    return sum(len(b) for b in batches) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=8, help="batches sent first, unmeasured")
    args = parser.parse_args()

    dbname = "wh_bench_" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    asyncio.run(_admin(f'CREATE DATABASE "{dbname}"'))
    cluster = PasswordCheckingCluster(tmp / "cluster").start()
    s3 = EmbeddedS3().start()
    env = {
        **os.environ,
        "DATABASE_URL": with_database(SERVER_DSN, dbname),
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAME": f"arq:warehouse:bench:{dbname}",
        "SECRET_KEY": uuid.uuid4().hex,
        "INTERNAL_API_TOKEN": TOKEN,
        "WAREHOUSE_ADMIN_URL": cluster.admin_dsn,
        "WAREHOUSE_PUBLIC_PORT": str(cluster.port),
        "ENVIRONMENT": "test",
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_ACCESS_KEY_ID": EMBEDDED_S3_ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": EMBEDDED_S3_SECRET,
    }
    service: list[float] = []
    limit: list[float] = []
    try:
        import subprocess

        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, cwd=ROOT, check=True)
        with contextlib.ExitStack() as servers:
            service_env = {**env, "LOG_FORMAT": "json"}
            base = servers.enter_context(served(service_env, log=tmp / "service.log"))
            ids = asyncio.run(seed(base, env, jobs=False, keys=0))
            database = asyncio.run(_warehouse_database(ids["env_id"], base, ids["key"]))
            warehouse_dsn = with_database(cluster.admin_dsn, database)
            asyncio.run(
                _admin_on(
                    warehouse_dsn,
                    "CREATE TABLE copy_limit (LIKE events_bench INCLUDING ALL)",
                )
            )
            # Not measured: each server worker opens its pools and builds its routing tables on
            # its first requests, which a long-running service has long done.
            warm = make_batches(args.warmup, args.batch_size)
            asyncio.run(post_batches(base, ids["env_id"], warm, args.concurrency))
            asyncio.run(copy_batches(warehouse_dsn, "copy_limit", warm, args.concurrency))
            for _ in range(args.repeat):
                batches = make_batches(args.batches, args.batch_size)
                service.append(
                    asyncio.run(post_batches(base, ids["env_id"], batches, args.concurrency))
                )
                limit.append(
                    asyncio.run(
                        copy_batches(warehouse_dsn, "copy_limit", batches, args.concurrency)
                    )
                )
                print(
                    f"round: service {service[-1]:,.0f} rows/s, COPY {limit[-1]:,.0f} rows/s",
                    flush=True,
                )
    finally:
        cluster.stop("immediate")
        s3.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)
    ratios = [s / c for s, c in zip(service, limit, strict=True)]
    summary = {
        "batches": args.batches,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "service_rows_per_s": statistics.median(service),
        "copy_rows_per_s": statistics.median(limit),
        "ratio": statistics.median(ratios),
        "rounds": {"service": service, "copy": limit},
    }
    print(
        f"\nwarehouse/rows: {summary['service_rows_per_s']:,.0f} rows/s; asyncpg COPY: "
        f"{summary['copy_rows_per_s']:,.0f} rows/s; ratio {summary['ratio']:.0%} (median of rounds)"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(summary, indent=2))
    print(f"results written to {path}")


async def _warehouse_database(env_id: str, base: str, key: str) -> str:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        r = await c.get(
            f"/api/environments/{env_id}/data_warehouse/warehouse_status/",
            headers={"Authorization": f"Bearer {key}"},
        )
        r.raise_for_status()
        return str(r.json()["connection"]["database"])


async def _admin_on(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
