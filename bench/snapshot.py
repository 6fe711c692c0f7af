"""Snapshot and restore benchmark (API.md §9): a warehouse of about `--gb` GB.

Starts what it needs and removes it afterwards: a scratch service database on DATABASE_URL's
server, a throwaway password-checking warehouse cluster, moto's S3 server, and ONE worker
process (`python -m app.worker`). In one run, on the same data:

1. raw `pg_dump --format=custom > /dev/null` (the floor for a snapshot), and raw `pg_dump` into a
   file followed by raw `pg_restore` of that file into a new database (the floor for a restore);
2. `snapshot` through the API until `ready` (pg_dump streamed into a multipart upload, hashed),
   with the worker's peak RSS (VmHWM of its process; pg_dump is a separate process);
3. `restore` of that snapshot through the API until `ready` (download, sha256, pg_restore).

Throughput = the database size (pg_database_size of the source) / wall time.

    .venv/bin/python bench/snapshot.py [--gb 1.0]
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
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.migrate import migrate_database  # noqa: E402
from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.devtools.s3server import EmbeddedS3  # noqa: E402
from app.main import create_app  # noqa: E402
from app.pgcluster.binaries import find_binary, libpq_env  # noqa: E402
from app.pgcluster.copy import server_major  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench.support import bench_settings, stop_processes, worker_env  # noqa: E402

TOKEN = "bench-internal-" + uuid.uuid4().hex
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
MB = 1024 * 1024


async def new_tenant(c: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    org = (await c.post("/internal/organizations", json={"name": "Bench"}, headers=HEADERS)).json()
    project = (
        await c.post(
            "/internal/projects", json={"organization_id": org["id"], "name": "p"}, headers=HEADERS
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


async def wait_state(c: httpx.AsyncClient, base: str, headers: dict[str, str]) -> str:
    while True:
        body = (await c.get(f"{base}/warehouse_status/", headers=headers)).json()
        if body["state"] in ("ready", "failed"):
            return str(body["state"])
        await asyncio.sleep(0.2)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fill(dsn: str, gb: float) -> None:
    """About `gb` GB of rows that compress like real events (text, json, timestamps)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, event text, distinct_id text,"
            " properties jsonb, ts timestamptz)"
        )
        rows = int(gb * 1024**3 / 330)  # ~330 bytes per row on disk, index included
        step = 500_000
        for start in range(0, rows, step):
            await conn.execute(
                "INSERT INTO big SELECT i, 'event_' || (i % 50), md5(i::text),"
                " jsonb_build_object('url', 'https://example.com/' || md5((i * 7)::text),"
                " 'n', i, 'ua', md5((i * 13)::text) || md5((i * 17)::text)),"
                " now() - i * interval '1 second'"
                " FROM generate_series($1::bigint, $2::bigint) AS i",
                start + 1,
                min(rows, start + step),
            )
        # Hint bits and visibility set now, so no measured read pays for the load's writes.
        await conn.execute("VACUUM (FREEZE, ANALYZE) big")
    finally:
        await conn.close()


async def run(*args: str, env: dict[str, str], stdout: int | None = None) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=stdout if stdout is not None else asyncio.subprocess.DEVNULL
    )
    assert await proc.wait() == 0, args
    return time.perf_counter() - started


async def main(gb: float) -> None:
    server = to_plain_dsn(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    run_id = uuid.uuid4().hex[:8]
    dbname = f"wh_bench_{run_id}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{dbname}"')
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-snap-"))
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
            provision_deadline_seconds=3600,
        )
        env = worker_env(settings)
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
                env_id, headers = await new_tenant(c)
                base = f"/api/environments/{env_id}/data_warehouse"
                name = f"snap-{run_id}"
                r = await c.post(
                    f"{base}/provision/",
                    json={"database_name": name, "table_name": "main"},
                    headers=headers,
                )
                assert r.status_code == 202, r.text
                assert await wait_state(c, base, headers) == "ready"

                source_dsn = with_database(cluster.admin_dsn, name)
                started = time.perf_counter()
                await fill(source_dsn, gb)
                size = await admin_size(cluster.admin_dsn, name)
                print(
                    f"warehouse database: {size / MB:.0f} MB (filled in {time.perf_counter() - started:.0f} s)"
                )

                major = await server_major(cluster.admin_dsn)
                pg_dump, pg_restore = (
                    find_binary("pg_dump", major),
                    find_binary("pg_restore", major),
                )
                dump_env = libpq_env(cluster.admin_dsn, database=name)
                raw_dump = await run(
                    str(pg_dump), "--format=custom", "--no-owner", "--no-acl", env=dump_env
                )
                dump_file = tmp / "raw.dump"
                with dump_file.open("wb") as out:
                    await run(
                        str(pg_dump),
                        "--format=custom",
                        "--no-owner",
                        "--no-acl",
                        env=dump_env,
                        stdout=out.fileno(),
                    )
                restore_db = f"raw_{run_id}"
                conn = await asyncpg.connect(cluster.admin_dsn)
                await conn.execute(f'CREATE DATABASE "{restore_db}"')
                await conn.close()
                raw_restore = await run(
                    str(pg_restore),
                    "--no-owner",
                    "--no-acl",
                    "--single-transaction",
                    "--exit-on-error",
                    f"--dbname={restore_db}",
                    str(dump_file),
                    env=libpq_env(cluster.admin_dsn, database=restore_db),
                )
                dump_mb = dump_file.stat().st_size / MB
                dump_file.unlink()
                conn = await asyncpg.connect(cluster.admin_dsn)
                await conn.execute(f'DROP DATABASE "{restore_db}"')
                await conn.close()

                assert worker.pid is not None
                rss_before = current_rss_mb(worker.pid)
                started = time.perf_counter()
                r = await c.post(f"{base}/snapshot/", headers=headers)
                assert r.status_code == 202, r.text
                while True:
                    [snap] = (await c.get(f"{base}/snapshots/", headers=headers)).json()["results"]
                    if snap["status"] != "running":
                        break
                    await asyncio.sleep(0.2)
                snapshot_s = time.perf_counter() - started
                assert snap["status"] == "ready", snap
                rss_peak = peak_rss_mb(worker.pid)

                r = await c.post(
                    f"{base}/deprovision/", json={"skip_final_snapshot": True}, headers=headers
                )
                assert r.status_code == 202, r.text
                while (await c.get(f"{base}/warehouse_status/", headers=headers)).json()[
                    "state"
                ] != "deleted":
                    await asyncio.sleep(0.2)
                started = time.perf_counter()
                r = await c.post(
                    f"{base}/restore/",
                    json={"snapshot_id": snap["id"], "database_name": f"back-{run_id}"},
                    headers=headers,
                )
                assert r.status_code == 202, r.text
                assert await wait_state(c, base, headers) == "ready"
                restore_s = time.perf_counter() - started
                rss_peak_all = peak_rss_mb(worker.pid)

                def mbps(seconds: float) -> str:
                    return f"{size / MB / seconds:.1f} MB/s"

                print(
                    f"dump object: {snap['size_bytes'] / MB:.0f} MB (raw pg_dump file {dump_mb:.0f} MB)"
                )
                print(f"raw pg_dump > /dev/null:     {raw_dump:7.2f} s  {mbps(raw_dump)}")
                print(
                    f"snapshot -> ready (API):     {snapshot_s:7.2f} s  {mbps(snapshot_s)}  = {raw_dump / snapshot_s:.2f}x raw"
                )
                print(f"raw pg_restore (from file):  {raw_restore:7.2f} s  {mbps(raw_restore)}")
                print(
                    f"restore -> ready (API):      {restore_s:7.2f} s  {mbps(restore_s)}  = {raw_restore / restore_s:.2f}x raw"
                    " (includes provisioning: bucket, database, role, probe)"
                )
                print(
                    f"worker RSS: {rss_before:.0f} MB before the snapshot, peak {rss_peak:.0f} MB through the snapshot,"
                    f" peak {rss_peak_all:.0f} MB through the restore"
                )
    finally:
        await stop_processes(worker)
        cluster.stop("immediate")
        s3.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


async def admin_size(admin_dsn: str, name: str) -> int:
    conn = await asyncpg.connect(admin_dsn)
    try:
        return int(await conn.fetchval("SELECT pg_database_size($1)", name))
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gb", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.gb))
