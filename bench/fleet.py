"""Fleet benchmark: 300 concurrent provisions over 3 clusters with `max_warehouses` 100 each.

Starts everything it needs and removes it afterwards: a scratch service database on
DATABASE_URL's server (migrated), three throwaway password-checking clusters (`default`,
`fleet-b`, `fleet-c`, registered through the internal API with `max_warehouses` 100), and two
worker processes. The API runs in-process (httpx ASGI).

Checks and reports: every warehouse `ready`, none failed, no cluster over 100, each cluster
within +-2 of an even share, and the wall time from the first `provision` to the last `ready`.

    .venv/bin/python bench/fleet.py [--orgs 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.provision as provision_bench  # noqa: E402
from app.core.migrate import migrate_database  # noqa: E402
from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.devtools.s3server import EmbeddedS3  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench.support import bench_settings, stop_processes, worker_env  # noqa: E402

TOKEN = provision_bench.TOKEN
HEADERS = provision_bench.HEADERS
CLUSTERS = ("default", "fleet-b", "fleet-c")
MAX_PER_CLUSTER = 100


async def provision(
    c: httpx.AsyncClient, env: int, headers: dict[str, str], answered: list[float]
) -> tuple[str, str | None]:
    base = f"/api/environments/{env}/data_warehouse"
    sent = time.perf_counter()
    r = await c.post(
        f"{base}/provision/",
        json={"database_name": f"f-{uuid.uuid4().hex[:12]}", "table_name": "main"},
        headers=headers,
    )
    answered.append(time.perf_counter() - sent)
    if r.status_code != 202:
        return f"http {r.status_code}", None
    org: str = r.json()["org"]
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        state = (await c.get(f"{base}/warehouse_status/", headers=headers)).json()["state"]
        if state in ("ready", "failed"):
            return state, org
        await asyncio.sleep(0.5)
    return "timeout", org


async def _sample_connections(admin: asyncpg.Connection, dbname: str, peak: list[int]) -> None:
    """The most connections the service database had open, sampled every 50 ms."""
    while True:
        n = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", dbname)
        peak[0] = max(peak[0], int(n))
        await asyncio.sleep(0.05)


async def main(orgs: int, workers: int) -> None:
    server = to_plain_dsn(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:8]
    dbname = f"wh_bench_{run_id}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-fleet-"))
    clusters = {name: PasswordCheckingCluster(tmp / name).start() for name in CLUSTERS}
    s3 = EmbeddedS3().start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.to_thread(migrate_database, with_database(server, dbname))
        first = clusters["default"]
        # Pools as deployed (settings defaults): the server's stock max_connections (100)
        # must hold the API and both workers; the peak is measured and reported below.
        settings = bench_settings(
            server=server,
            dbname=dbname,
            run_id=run_id,
            redis_url=redis_url,
            token=TOKEN,
            cluster=first,
            s3=s3,
            reconcile_interval_seconds=5,
        )
        env = worker_env(settings)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=120
            ) as c:
                for name, cluster in clusters.items():
                    if name == "default":
                        continue
                    r = await c.post(
                        "/internal/clusters",
                        json={
                            "name": name,
                            "admin_url": cluster.admin_dsn,
                            "public_host": "127.0.0.1",
                            "public_port": cluster.port,
                            "max_warehouses": MAX_PER_CLUSTER,
                        },
                        headers=HEADERS,
                    )
                    assert r.status_code == 201, r.text
                r = await c.patch(
                    "/internal/clusters/default",
                    json={"max_warehouses": MAX_PER_CLUSTER},
                    headers=HEADERS,
                )
                assert r.status_code == 200, r.text
                for _ in range(workers):
                    procs.append(
                        await asyncio.create_subprocess_exec(
                            sys.executable, "-m", "app.worker", cwd=str(ROOT), env=env
                        )
                    )
                tenants = [await provision_bench.new_tenant(c) for _ in range(orgs)]
                await asyncio.sleep(2)  # the workers are up
                peak = [0]
                sampler = asyncio.create_task(_sample_connections(admin, dbname, peak))
                started = time.perf_counter()
                answered: list[float] = []
                results = await asyncio.gather(*(provision(c, e, h, answered) for e, h in tenants))
                wall = time.perf_counter() - started
                sampler.cancel()
                max_connections = await admin.fetchval("SHOW max_connections")
                states = Counter(state for state, _ in results)
                listing = (await c.get("/internal/clusters", headers=HEADERS)).json()["results"]
                per_cluster = {row["name"]: row["warehouses"] for row in listing}
                even = orgs / len(CLUSTERS)
                print(
                    f"{orgs} provisions over {len(CLUSTERS)} clusters (max {MAX_PER_CLUSTER} "
                    f"each), {workers} worker processes: wall time {wall:.1f} s"
                )
                answered.sort()
                print(
                    f"  provision answers: median {answered[len(answered) // 2]:.2f} s, "
                    f"slowest {answered[-1]:.2f} s"
                )
                print(f"  states: {dict(states)}")
                print(f"  per cluster: {per_cluster}")
                print(
                    f"  peak connections to the service database: {peak[0]} "
                    f"(server max_connections {max_connections})"
                )
                checks = {
                    "all ready": states.get("ready", 0) == orgs,
                    "none failed": states.get("failed", 0) == 0,
                    f"none over {MAX_PER_CLUSTER}": max(per_cluster.values()) <= MAX_PER_CLUSTER,
                    "each within +-2 of even": all(
                        abs(n - even) <= 2 for n in per_cluster.values()
                    ),
                }
                for label, ok in checks.items():
                    print(f"  {label}: {'yes' if ok else 'NO'}")
    finally:
        await stop_processes(*procs)
        for cluster in clusters.values():
            cluster.stop("immediate")
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orgs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main(args.orgs, args.workers))
