"""Move benchmark: a warehouse of ~100 MB, then ~1 GB, moved between two clusters.

Starts everything it needs and removes it afterwards: a scratch service database on
DATABASE_URL's server (migrated), two throwaway password-checking clusters, and ONE worker
process (`python -m app.worker`) that runs the moves. The API runs in-process (httpx ASGI).

For each size it reports:
- the move's wall time (the 202 until `warehouse_status` reads `ready` on the target) and its
  throughput (database size / wall time);
- a raw `pg_dump --format=custom | pg_restore` of the same database between the same clusters,
  in the same run (default compression, and `--compress=0` as the move uses), and the ratio
  raw time / move time (target: >= 0.8, i.e. the move keeps 80 % of the raw pipe's speed);
- the frozen time: how long logins with the warehouse's password are refused, measured by a
  prober that logs in every 100 ms (first refusal -> first success on the target).

    .venv/bin/python bench/move.py [--sizes 100,1000]   (MB)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench.provision as provision_bench  # noqa: E402
from app.core.migrate import migrate_database  # noqa: E402
from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.devtools.s3server import EmbeddedS3  # noqa: E402
from app.main import create_app  # noqa: E402
from app.pgcluster.binaries import find_binary, libpq_env  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench.support import bench_settings, stop_processes, worker_env  # noqa: E402

# The same internal token as bench/provision.py, whose tenant helper this bench uses.
TOKEN = provision_bench.TOKEN
HEADERS = provision_bench.HEADERS
MB = 1024 * 1024
# ~1 KB per row: the usual shape of an event with a few properties.
FILL = (
    "INSERT INTO events_main SELECT gen_random_uuid(), 'pageview', 'user-' || (i % 5000),"
    " jsonb_build_object('path', '/page/' || i, 'ref', md5(i::text), 'pad', repeat(md5(i::text), 24)),"
    " now() - (i || ' seconds')::interval FROM generate_series(1, $1::int) i"
)


class Prober:
    """Logs in with the warehouse's password every 100 ms; records when it could not."""

    def __init__(self, name: str, password: str, ports: list[int]) -> None:
        self.name, self.password, self.ports = name, password, ports
        self.refused: list[float] = []
        self.accepted: list[float] = []
        self.stop = False

    async def _try(self, port: int) -> bool:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1",
                port=port,
                user=self.name,
                password=self.password,
                database=self.name,
                timeout=2,
            )
        except Exception:
            return False
        await conn.close()
        return True

    async def run(self) -> None:
        while not self.stop:
            now = time.perf_counter()
            ok = False
            for port in self.ports:
                if await self._try(port):
                    ok = True
                    break
            (self.accepted if ok else self.refused).append(now)
            await asyncio.sleep(0.1)

    def frozen_seconds(self) -> float:
        if not self.refused:
            return 0.0
        first = self.refused[0]
        after = [t for t in self.accepted if t > first]
        return (after[0] if after else self.refused[-1]) - first


async def database_size(dsn: str, name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT pg_database_size($1)", name))
    finally:
        await conn.close()


async def fill_to(cluster: PasswordCheckingCluster, name: str, password: str, size: int) -> int:
    conn = await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user=name, password=password, database=name
    )
    try:
        while (current := await database_size(cluster.admin_dsn, name)) < size:
            rows = max(1000, min(200_000, (size - current) // 1100))
            await conn.execute(FILL, rows)
        await conn.execute("ANALYZE")
        return current
    finally:
        await conn.close()


async def raw_pipe(
    source: PasswordCheckingCluster, target: PasswordCheckingCluster, name: str, compress: bool
) -> float:
    """`pg_dump -Fc | pg_restore` of the database into a scratch database on the target."""
    scratch = f"raw_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(target.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    major = int(await admin.fetchval("SHOW server_version_num")) // 10000
    dump = [str(find_binary("pg_dump", major)), "--format=custom", "--no-owner", "--no-acl"]
    if not compress:
        dump.append("--compress=0")
    restore = [
        str(find_binary("pg_restore", major)),
        "--no-owner",
        "--no-acl",
        "--single-transaction",
        f"--dbname={scratch}",
    ]
    started = time.perf_counter()
    producer = subprocess.Popen(
        dump, stdout=subprocess.PIPE, env=libpq_env(source.admin_dsn, database=name)
    )
    consumer = subprocess.Popen(restore, stdin=producer.stdout, env=libpq_env(target.admin_dsn))
    assert producer.stdout is not None
    producer.stdout.close()
    await asyncio.to_thread(consumer.wait)
    await asyncio.to_thread(producer.wait)
    elapsed = time.perf_counter() - started
    assert producer.returncode == 0 and consumer.returncode == 0
    await admin.execute(f'DROP DATABASE "{scratch}" WITH (FORCE)')
    await admin.close()
    return elapsed


async def register(
    c: httpx.AsyncClient, app: Any, name: str, cluster: PasswordCheckingCluster
) -> None:
    r = await c.post(
        "/internal/clusters",
        json={
            "name": name,
            "admin_url": cluster.admin_dsn,
            "public_host": "127.0.0.1",
            "public_port": cluster.port,
        },
        headers=HEADERS,
    )
    if r.status_code in (200, 201):
        return
    assert r.status_code in (404, 405), r.text
    # No registry API on this build: write the row as the registry would.
    from app.models import WarehouseCluster
    from app.services.fleet.bootstrap import admin_url_box

    async with app.state.sessionmaker() as session:
        session.add(
            WarehouseCluster(
                name=name,
                admin_url_ciphertext=admin_url_box(app.state.settings).encrypt(
                    cluster.admin_dsn.encode()
                ),
                public_host="127.0.0.1",
                public_port=cluster.port,
                labels={},
            )
        )
        await session.commit()


async def timed_move(
    c: httpx.AsyncClient,
    org: str,
    env: int,
    headers: dict[str, str],
    target: str,
    prober: Prober,
) -> float:
    probe = asyncio.create_task(prober.run())
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    r = await c.post(f"/internal/warehouses/{org}/move", json={"cluster": target}, headers=HEADERS)
    assert r.status_code == 202, r.text
    base = f"/api/environments/{env}/data_warehouse"
    while True:
        state = (await c.get(f"{base}/warehouse_status/", headers=headers)).json()["state"]
        if state == "ready":
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.3)
    prober.stop = True
    await probe
    op = (await c.get(f"{base}/operations/{r.json()['operation_id']}/", headers=headers)).json()
    assert op["status"] == "succeeded", op
    return elapsed


async def main(sizes: list[int]) -> None:
    server = to_plain_dsn(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:8]
    dbname = f"wh_bench_{run_id}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-move-"))
    clusters = {
        "default": PasswordCheckingCluster(tmp / "a").start(),
        "bench-b": PasswordCheckingCluster(tmp / "b").start(),
    }
    s3 = EmbeddedS3().start()
    worker: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(migrate_database, with_database(server, dbname))
        source = clusters["default"]
        settings = bench_settings(
            server=server,
            dbname=dbname,
            run_id=run_id,
            redis_url=redis_url,
            token=TOKEN,
            cluster=source,
            s3=s3,
            reconcile_interval_seconds=5,
        )
        env = worker_env(settings, LOG_LEVEL=os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"))
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.worker", cwd=str(ROOT), env=env
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=60
            ) as c:
                await asyncio.sleep(2)
                await register(c, app, "bench-b", clusters["bench-b"])
                env_id, headers = await provision_bench.new_tenant(c)
                name = f"mv-{uuid.uuid4().hex[:10]}"
                base = f"/api/environments/{env_id}/data_warehouse"
                r = await c.post(
                    f"{base}/provision/",
                    json={"database_name": name, "table_name": "main"},
                    headers=headers,
                )
                assert r.status_code == 202, r.text
                password, org = r.json()["password"], r.json()["org"]
                while (await c.get(f"{base}/warehouse_status/", headers=headers)).json()[
                    "state"
                ] != "ready":
                    await asyncio.sleep(0.1)
                # Wherever placement put it (ties go by name), moved back and forth from there.
                r = await c.get(f"/internal/warehouses/{org}", headers=HEADERS)
                here = r.json()["cluster"]
                there = "default" if here == "bench-b" else "bench-b"
                results = []
                for size_mb in sizes:
                    size = await fill_to(clusters[here], name, password, size_mb * MB)
                    raw_z = await raw_pipe(clusters[here], clusters[there], name, compress=True)
                    raw_0 = await raw_pipe(clusters[here], clusters[there], name, compress=False)
                    prober = Prober(name, password, [clusters[here].port, clusters[there].port])
                    moved = await timed_move(c, org, env_id, headers, there, prober)
                    frozen = prober.frozen_seconds()
                    results.append((size, moved, raw_z, raw_0, frozen))
                    print(
                        f"{size / MB:7.0f} MB {here} -> {there}: move {moved:6.2f} s "
                        f"({size / MB / moved:5.1f} MB/s), frozen {frozen:5.2f} s; "
                        f"raw pg_dump -Fc | pg_restore {raw_z:6.2f} s "
                        f"(ratio raw/move {raw_z / moved:4.2f}), "
                        f"raw with --compress=0 {raw_0:6.2f} s (ratio {raw_0 / moved:4.2f})",
                        flush=True,
                    )
                    here, there = there, here
                if len(results) > 1:
                    (s0, m0, *_), (s1, m1, *_) = results[0], results[-1]
                    print(
                        f"growth: {s1 / s0:.1f}x the data took {m1 / m0:.1f}x the move time "
                        f"({m0:.2f} s -> {m1:.2f} s)"
                    )
    finally:
        await stop_processes(worker)
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
    parser.add_argument("--sizes", default="100,1000", help="Sizes in MB, comma-separated.")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
