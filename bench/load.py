"""Load benchmark: the service against the framework's limits, in one run (issues 5, 9).

    .venv/bin/python bench/load.py [--duration 10] [--concurrency 16,64] [--repeat 3]

On this machine's PostgreSQL and Redis (BENCH_DATABASE_URL / BENCH_REDIS_URL) it starts a
scratch service database, a password-checking warehouse cluster, the service as production runs
it (`warehouse serve --workers 2`: JSON access lines, here to a file, and multi-process
Prometheus figures) with its default settings (the rate limiter on, 600 a minute per key), and
the limits under plain uvicorn with as many workers:
- bench/bare_app.py: one pooled asyncpg SELECT per request, as raw ASGI and as plain Starlette;
- bench/same_work_app.py: plain Starlette + asyncpg running the very statements
  `running_activity` and `job_stats` run (the key's auth statement, then the action's) and
  JSON-encoding the rows.
It seeds a tenant with a ready warehouse (provisioned through the API by a real worker), 1,000
personal API keys and a few thousand pipeline jobs, then drives each target with wrk
(`apt-get install wrk`), every request presenting the next of the 1,000 keys
(bench/rotate_keys.lua) as real clients would: `warehouse_status` with the key in the
Authorization header and in the query string, `running_activity`, `job_stats?days=7`,
`/healthz`, and the limits, at each concurrency, every target in turn, `--repeat` rounds. It
prints medians of req/s, p50 and p99, non-2xx counts, and the median of the per-round
service/limit ratios; it writes bench/results/load-<time>.json. Everything it starts, it
stops; the scratch database is dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.devtools.embedded import PasswordCheckingCluster, free_port  # noqa: E402
from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3  # noqa: E402
from app.settings import to_plain_dsn, with_database  # noqa: E402
from bench import observability  # noqa: E402

SERVER_DSN = to_plain_dsn(
    os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "bench-internal-" + uuid.uuid4().hex
# The limits (bench/bare_app.py): raw ASGI, and plain Starlette; both do one pooled SELECT.
BARES = {"bare": "bench.bare_app:app", "bare_starlette": "bench.bare_app:starlette_app"}
SAME_WORK = "bench.same_work_app:app"
ROTATE = ROOT / "bench" / "rotate_keys.lua"
KEYS = 1000
# Which limit each service target is compared with (besides the trivial bares).
SAME_WORK_OF = {
    "running_activity": "same_work_running_activity",
    "job_stats": "same_work_job_stats",
}


@contextlib.contextmanager
def uvicorn(
    target: str, env: dict[str, str], *, factory: bool, workers: int = 2, log: Path | None = None
) -> Iterator[str]:
    """A limit (or a variant of the app) under plain uvicorn, on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    if factory:
        cmd.append("--factory")
    with _server(cmd, env, port, target, log) as base:
        yield base


@contextlib.contextmanager
def served(env: dict[str, str], *, log: Path, workers: int = 2) -> Iterator[str]:
    """The service as production runs it: `warehouse serve` (its logging config, so every
    request's access line is written, here to `log`; Prometheus figures in a multi-process
    directory), on a free port."""
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    with _server(cmd, env, port, "warehouse serve", log) as base:
        yield base


@contextlib.contextmanager
def _server(
    cmd: list[str], env: dict[str, str], port: int, name: str, log: Path | None
) -> Iterator[str]:
    sink = log.open("ab") if log is not None else None
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=sink)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=1).status_code < 500:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if sink is not None:
            sink.close()


def wrk(
    url: str, *, concurrency: int, duration: int, keys: str | None, key_in: str = "header"
) -> dict[str, float]:
    """wrk against `url`; with `keys` (a file), every request presents the next key."""
    cmd = ["wrk", "-t2", f"-c{concurrency}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    env = dict(os.environ)
    if keys is not None:
        cmd += ["-s", str(ROTATE)]
        env |= {"WRK_KEYS_FILE": keys, "WRK_KEY_IN": key_in}
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, env=env).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _latency(out, "50%"),
        "p90_ms": _latency(out, "90%"),
        "p99_ms": _latency(out, "99%"),
        "max_ms": _max_latency(out),
        "non_2xx": float(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }


def _max_latency(out: str) -> float:
    m = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", out)
    return _ms(float(m.group(1)), m.group(2)) if m else float("nan")


def _ms(value: float, unit: str) -> float:
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _latency(out: str, pct: str) -> float:
    m = re.search(rf"{re.escape(pct)}\s+([\d.]+)(us|ms|s)\b", out)
    if m is None:
        return float("nan")
    return _ms(float(m.group(1)), m.group(2))


async def seed(base: str, env: dict[str, str], *, jobs: bool, keys: int = KEYS) -> dict[str, str]:
    internal = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=internal, timeout=30) as c:
        org = (await c.post("/internal/organizations", json={"name": "Bench"})).json()
        project = (
            await c.post("/internal/projects", json={"organization_id": org["id"], "name": "Bench"})
        ).json()
        env_id = project["environment_id"]
        user = (
            await c.post(
                "/internal/users",
                json={"email": "bench@example.com", "organization_id": org["id"], "level": 15},
            )
        ).json()
        key = (
            await c.post(
                "/internal/personal_api_keys", json={"user_id": user["id"], "scopes": ["*"]}
            )
        ).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        r = await c.post(
            f"/api/environments/{env_id}/data_warehouse/provision/",
            json={"database_name": "bench-" + uuid.uuid4().hex[:8], "table_name": "bench"},
            headers=auth,
        )
        r.raise_for_status()
        worker = subprocess.Popen([sys.executable, "-m", "app.worker"], env=env, cwd=ROOT)
        try:
            for _ in range(300):
                status = (
                    await c.get(
                        f"/api/environments/{env_id}/data_warehouse/warehouse_status/", headers=auth
                    )
                ).json()
                if status["state"] in ("ready", "failed"):
                    break
                await asyncio.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        if status["state"] != "ready":
            raise RuntimeError(f"warehouse did not become ready: {status}")
        if jobs:
            await _seed_jobs(c, env_id)
        sem = asyncio.Semaphore(16)

        async def new_key() -> str:
            async with sem:
                r = await c.post(
                    "/internal/personal_api_keys", json={"user_id": user["id"], "scopes": ["*"]}
                )
                r.raise_for_status()
                return str(r.json()["key"])

        issued = await asyncio.gather(*(new_key() for _ in range(keys)))
    return {"env_id": str(env_id), "key": key, "keys": "\n".join(issued)}


async def _seed_jobs(c: httpx.AsyncClient, env_id: int) -> None:
    source_id, schema_id, query_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    base = f"/internal/environments/{env_id}"
    (
        await c.put(
            f"{base}/sources/{source_id}", json={"source_type": "Stripe", "status": "Running"}
        )
    ).raise_for_status()
    (
        await c.put(
            f"{base}/sources/{source_id}/schemas/{schema_id}",
            json={"name": "charges", "status": "Completed", "should_sync": True},
        )
    ).raise_for_status()
    (
        await c.put(
            f"{base}/saved_queries/{query_id}", json={"name": "mv", "is_materialized": True}
        )
    ).raise_for_status()
    now = datetime.now(UTC)
    statuses = ["Completed", "Completed", "Completed", "Failed", "Running"]
    sem = asyncio.Semaphore(16)

    async def put(path: str, body: dict[str, object]) -> None:
        async with sem:
            (await c.put(path, json=body)).raise_for_status()

    tasks = []
    for i in range(2000):
        created = (now - timedelta(minutes=7 * i)).isoformat()
        tasks.append(
            put(
                f"{base}/import_jobs/{uuid.uuid4()}",
                {
                    "schema_id": str(schema_id),
                    "status": statuses[i % 5],
                    "rows_synced": i,
                    "billable": True,
                    "created_at": created,
                },
            )
        )
        if i % 4 == 0:
            tasks.append(
                put(
                    f"{base}/modeling_jobs/{uuid.uuid4()}",
                    {
                        "saved_query_id": str(query_id),
                        "status": statuses[i % 5],
                        "rows_materialized": i,
                        "created_at": created,
                    },
                )
            )
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over every target")
    parser.add_argument(
        "--targets",
        default="warehouse_status,running_activity,job_stats,healthz",
        help="comma-separated subset of the service targets",
    )
    parser.add_argument(
        "--observability",
        action="store_true",
        help="also compare warehouse_status with the request pipeline on and off (bench/observability.py)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/load.py needs wrk: apt-get install wrk")
    levels = [int(x) for x in args.concurrency.split(",")]

    dbname = "wh_bench_" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="wh-bench-"))
    asyncio.run(_admin(f'CREATE DATABASE "{dbname}"'))
    cluster = PasswordCheckingCluster(tmp / "cluster").start()
    s3 = EmbeddedS3().start()
    database_url = with_database(SERVER_DSN, dbname)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
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
    runs: dict[str, list[dict[str, float]]] = {}
    cpu: dict[str, float] = {}
    try:
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env, cwd=ROOT, check=True)
        with contextlib.ExitStack() as servers:
            # Access lines as production writes them (one JSON object each), to a file.
            service_env = {**env, "LOG_FORMAT": "json"}
            base = servers.enter_context(served(service_env, log=tmp / "service.log"))
            wanted = args.targets.split(",")
            jobs = bool({"running_activity", "job_stats"} & set(wanted))
            ids = asyncio.run(seed(base, env, jobs=jobs))
            # Vacuum and analyze now, so autovacuum does not wake up mid-measurement.
            asyncio.run(_admin("VACUUM (ANALYZE)", database=dbname))
            keys_file = tmp / "keys.txt"
            keys_file.write_text(ids["keys"] + "\n")
            keys = str(keys_file)
            prefix = f"{base}/api/environments/{ids['env_id']}/data_warehouse"
            # name -> (url, keys file or None, where the key goes)
            service = {
                "warehouse_status": (f"{prefix}/warehouse_status/", keys, "header"),
                "warehouse_status_query": (f"{prefix}/warehouse_status/", keys, "query"),
                "running_activity": (f"{prefix}/running_activity/", keys, "header"),
                "job_stats": (f"{prefix}/job_stats/?days=7", keys, "header"),
                # The framework's floor in this app: no auth, no database.
                "healthz": (f"{base}/healthz", None, "header"),
            }
            targets = {k: v for k, v in service.items() if k.split("_query")[0] in wanted}
            bare_env = {**env, "BARE_DATABASE_URL": database_url, "BARE_TEAM_ID": ids["env_id"]}
            if args.observability:
                path = f"/api/environments/{ids['env_id']}/data_warehouse/warehouse_status/"
                for name, factory in observability.FACTORIES.items():
                    prom = tmp / f"prom-{name}"
                    prom.mkdir()
                    obs_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(prom)}
                    server = servers.enter_context(
                        uvicorn(factory, obs_env, factory=True, log=Path(os.devnull))
                    )
                    targets[name] = (server + path, keys, "header")
                cpu = observability.cpu_per_request(env, path, keys)
            for bare_name, app in BARES.items():
                bare = servers.enter_context(uvicorn(app, bare_env, factory=False))
                targets[bare_name] = (bare + "/", None, "header")
            if jobs:
                same = servers.enter_context(uvicorn(SAME_WORK, bare_env, factory=False))
                targets["same_work_running_activity"] = (f"{same}/running_activity", keys, "header")
                targets["same_work_job_stats"] = (f"{same}/job_stats", keys, "header")
            # Every target in turn, `--repeat` times: a drift of the machine (other load,
            # CPU frequency) then touches the service and the limits alike.
            # Each measurement follows a 1 s warm-up of its own target (pools filled, caches hot).
            for level in levels:
                for _ in range(args.repeat):
                    for name, (url, key_file, key_in) in targets.items():
                        wrk(url, concurrency=level, duration=1, keys=key_file, key_in=key_in)
                        runs.setdefault(f"{name}@{level}", []).append(
                            wrk(
                                url,
                                concurrency=level,
                                duration=args.duration,
                                keys=key_file,
                                key_in=key_in,
                            )
                        )
    finally:
        cluster.stop("immediate")
        s3.stop()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)
    extra = {**observability.report(runs, levels), **cpu} if args.observability else {}
    _report(runs, levels, extra)


def _report(
    runs: dict[str, list[dict[str, float]]], levels: list[int], extra: dict[str, float]
) -> None:
    """Medians over the repeats; a ratio is the median of the per-round ratios."""
    print(
        f"\n{'target (median of runs)':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
        f"{'non-2xx':>10}{'vs bare':>10}{'vs starl.':>10}"
    )

    def ratio(a: str, b: str, field: str) -> float | None:
        if a not in runs or b not in runs:
            return None
        return statistics.median(x[field] / y[field] for x, y in zip(runs[a], runs[b], strict=True))

    summary: dict[str, dict[str, float | None]] = {}
    for key, measured in runs.items():
        name, level = key.split("@")
        row: dict[str, float | None] = {
            field: statistics.median(m[field] for m in measured)
            for field in ("rps", "p50_ms", "p99_ms")
        }
        row["non_2xx"] = sum(m["non_2xx"] for m in measured)
        cells = ""
        for bare_name in BARES:
            r = None if name in BARES else ratio(key, f"{bare_name}@{level}", "rps")
            if name in SAME_WORK_OF.values():
                r = None
            row[f"rps_vs_{bare_name}"] = r
            row[f"p99_vs_{bare_name}"] = (
                None if name in BARES else ratio(key, f"{bare_name}@{level}", "p99_ms")
            )
            cells += f"{r:>10.0%}" if r is not None else f"{'':>10}"
        summary[key] = row
        print(
            f"{key:<28}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['non_2xx']:>10.0f}{cells}"
        )
    for key in list(summary):
        name, level = key.split("@")
        same = SAME_WORK_OF.get(name)
        if same is not None and f"{same}@{level}" in runs:
            rps = ratio(key, f"{same}@{level}", "rps")
            p99 = ratio(key, f"{same}@{level}", "p99_ms")
            summary[key]["rps_vs_same_work"], summary[key]["p99_vs_same_work"] = rps, p99
            print(f"{key}: {rps:.0%} of its same-work limit's req/s, p99 {p99:.2f}x its p99")
    for concurrency in levels:
        for name in ("warehouse_status", "warehouse_status_query"):
            ws = summary.get(f"{name}@{concurrency}")
            if ws and ws.get("rps_vs_bare_starlette") is not None:
                print(
                    f"{name}@{concurrency}: {ws['rps_vs_bare_starlette']:.0%} of bare Starlette "
                    f"req/s, p99 {ws['p99_vs_bare_starlette']:.2f}x its p99"
                )
    for concurrency in levels:
        ws = summary.get(f"warehouse_status@{concurrency}")
        for bare_name in BARES:
            if ws and ws[f"rps_vs_{bare_name}"] is not None:
                print(
                    f"warehouse_status@{concurrency}: {ws[f'rps_vs_{bare_name}']:.0%} of {bare_name} "
                    f"req/s, p99 {ws[f'p99_vs_{bare_name}']:.2f}x {bare_name} p99"
                )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"load-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps({"summary": summary, "runs": runs, **extra}, indent=2))
    print(f"results written to {path}")


async def _admin(sql: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(with_database(SERVER_DSN, database))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
