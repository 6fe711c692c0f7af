"""Provisioning benchmark: provision -> ready latency, and 50 organizations at once.

Starts everything it needs and removes it afterwards: a scratch service database on
DATABASE_URL's server (migrated), a throwaway password-checking warehouse cluster, a storage
directory, and ONE worker process (`python -m app.worker`). The API runs in-process; requests go
through httpx's ASGI transport, so the numbers are the worker's, not the network's.

    .venv/bin/python bench/provision.py [--runs 10] [--orgs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.migrate import migrate_database  # noqa: E402
from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.devtools.s3server import EmbeddedS3  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench.support import bench_settings, stop_processes, worker_env  # noqa: E402

TOKEN = "bench-internal-" + uuid.uuid4().hex
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


async def new_tenant(c: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    org = (await c.post("/internal/organizations", json={"name": "Bench"}, headers=HEADERS)).json()
    project = (
        await c.post(
            "/internal/projects",
            json={"organization_id": org["id"], "name": "p"},
            headers=HEADERS,
        )
    ).json()
    user = (
        await c.post(
            "/internal/users",
            json={
                "email": f"{uuid.uuid4().hex}@bench.test",
                "organization_id": org["id"],
                "level": 8,
            },
            headers=HEADERS,
        )
    ).json()
    key = (
        await c.post(
            "/internal/personal_api_keys",
            json={"user_id": user["id"], "scopes": ["*"]},
            headers=HEADERS,
        )
    ).json()["key"]
    return project["environment_id"], {"Authorization": f"Bearer {key}"}


async def provision_and_wait(
    c: httpx.AsyncClient, env: int, headers: dict[str, str], poll: float = 0.02
) -> tuple[float, str]:
    base = f"/api/environments/{env}/data_warehouse"
    started = time.perf_counter()
    r = await c.post(
        f"{base}/provision/",
        json={"database_name": f"b-{uuid.uuid4().hex[:12]}", "table_name": "main"},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    while True:
        state = (await c.get(f"{base}/warehouse_status/", headers=headers)).json()["state"]
        if state in ("ready", "failed"):
            return time.perf_counter() - started, state
        if time.perf_counter() - started > 300:
            return time.perf_counter() - started, state
        await asyncio.sleep(poll)


async def main(runs: int, orgs: int) -> None:
    server = to_plain_dsn(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:8]
    dbname = f"wh_bench_{run_id}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    cluster = PasswordCheckingCluster(tmp / "cluster").start()
    s3 = EmbeddedS3().start()
    worker: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(migrate_database, with_database(server, dbname))
        settings = bench_settings(
            server=server,
            dbname=dbname,
            run_id=run_id,
            redis_url=redis_url,
            token=TOKEN,
            cluster=cluster,
            s3=s3,
            reconcile_interval_seconds=5,
        )
        env = worker_env(settings)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.worker", cwd=str(ROOT), env=env
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                await asyncio.sleep(2)  # let the worker start
                latencies = []
                for _ in range(runs):
                    env_id, headers = await new_tenant(c)
                    seconds, state = await provision_and_wait(c, env_id, headers)
                    assert state == "ready", state
                    latencies.append(seconds)
                median = statistics.median(latencies)
                print(
                    f"provision -> ready, {runs} sequential runs: median {median:.3f} s, "
                    f"min {min(latencies):.3f} s, max {max(latencies):.3f} s"
                )
                tenants = [await new_tenant(c) for _ in range(orgs)]
                started = time.perf_counter()
                results = await asyncio.gather(
                    *(provision_and_wait(c, e, h, poll=0.25) for e, h in tenants)
                )
                total = time.perf_counter() - started
                failed = sum(1 for _, s in results if s != "ready")
                per = sorted(s for s, _ in results)
                print(
                    f"{orgs} orgs at once, one worker: all done in {total:.2f} s, "
                    f"ready {orgs - failed}, failed {failed}, "
                    f"median {statistics.median(per):.2f} s, slowest {per[-1]:.2f} s"
                )
    finally:
        await stop_processes(worker)
        cluster.stop("immediate")
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--orgs", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.orgs))
