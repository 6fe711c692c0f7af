"""Webhook burst benchmark (issue 12 target): 1,000 events reach a local receiver within 10 s.

Starts what it needs and removes it afterwards: a scratch service database on DATABASE_URL's
server (migrated), a throwaway warehouse cluster (the worker checks one at start-up), ONE worker
process (`python -m app.worker`) and an HTTP receiver on 127.0.0.1 in another process. It
registers one endpoint through the internal API (in-process ASGI), waits for the worker to idle,
then writes the burst with `emit_event`, `--batch` events per transaction, back to back.

Each event's latency runs from the commit of its transaction to its arrival at the receiver.
Every signature is checked with hmac (Standard Webhooks), and every event must arrive once.

    .venv/bin/python bench/webhooks.py [--events 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.db import build_engine, build_sessionmaker  # noqa: E402
from app.core.migrate import migrate_database  # noqa: E402
from app.devtools.embedded import PasswordCheckingCluster  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.events.outbox import emit_event  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench.support import bench_settings, stop_processes, worker_env  # noqa: E402

TOKEN = "bench-internal-" + uuid.uuid4().hex
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return expected in headers["webhook-signature"].split(" ")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(events: int, batch: int) -> None:
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
    worker: asyncio.subprocess.Process | None = None
    arrivals_file = tmp / "arrivals.jsonl"
    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.events.receiver",
        str(arrivals_file),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
    )
    assert receiver.stdout is not None
    receiver_url = (await receiver.stdout.readline()).decode().strip()
    try:
        await asyncio.to_thread(migrate_database, with_database(server, dbname))
        settings = bench_settings(
            server=server,
            dbname=dbname,
            run_id=run_id,
            redis_url=redis_url,
            token=TOKEN,
            cluster=cluster,
            s3=None,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                r = await c.post("/internal/webhooks", json={"url": receiver_url}, headers=HEADERS)
                assert r.status_code == 201, r.text
                secret = r.json()["secret"]
        env = worker_env(settings)
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.worker", cwd=str(ROOT), env=env
        )
        await asyncio.sleep(3)  # the worker is up and polling an empty outbox

        engine = build_engine(settings)
        sessionmaker = build_sessionmaker(engine)
        committed_at: dict[str, float] = {}
        worker_cpu = cpu_seconds(worker.pid)
        started = time.time()
        for first in range(0, events, batch):
            orgs = [str(uuid.uuid4()) for _ in range(min(batch, events - first))]
            async with sessionmaker() as session, session.begin():
                for org in orgs:
                    await emit_event(session, "warehouse.ready", org_id=org, state="ready")
            now = time.time()
            committed_at.update(dict.fromkeys(orgs, now))
        written = time.time() - started
        deadline = time.time() + 60
        async with engine.connect() as conn:
            while True:  # every delivery recorded as done (the receiver answered 2xx)
                pending = await conn.scalar(
                    text("SELECT count(*) FROM webhook_deliveries WHERE NOT done")
                )
                await conn.rollback()
                if pending == 0 or time.time() > deadline:
                    break
                await asyncio.sleep(0.05)
        worker_cpu = cpu_seconds(worker.pid) - worker_cpu
        await engine.dispose()
        receiver.send_signal(signal.SIGTERM)
        await receiver.wait()
        got = [json.loads(line) for line in arrivals_file.read_text().splitlines()]
        arrivals: dict[str, float] = {}
        for x in got:
            body = x["body"].encode()
            assert signature_ok(secret, x["headers"], body), "bad signature"
            org = json.loads(body)["data"]["org_id"]
            arrivals.setdefault(org, x["at"])
        assert set(arrivals) == set(committed_at), "an event did not arrive"
        latencies = [arrivals[o] - committed_at[o] for o in committed_at]
        last = max(arrivals.values()) - started
        ids = {x["headers"]["webhook-id"] for x in got}
        print(
            f"{events} events ({batch} per transaction, written in {written:.2f} s): "
            f"all received {last:.2f} s after the first write began; "
            f"{len(got)} requests, {len(ids)} distinct webhook-ids, signatures valid"
        )
        print(
            "event commit -> receipt: "
            f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.0f} ms"
        )
        load = os.getloadavg()[0]
        print(f"worker CPU during the burst: {worker_cpu:.2f} s; 1-minute load average {load:.1f}")
    finally:
        if receiver.returncode is None:
            receiver.kill()
            await receiver.wait()
        await stop_processes(worker)
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch))
