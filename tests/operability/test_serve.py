"""The real processes: `warehouse serve --workers 2` with LOG_FORMAT=json, and `warehouse
worker`'s own metrics port (API.md §10)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.devtools.embedded import free_port
from app.settings import Settings
from tests.operability.test_metrics import samples, value
from tests.support.harness import INTERNAL_HEADERS, create_tenant, settings_env
from tests.support.http import client_for
from tests.support.lifecycle import provision, wait_for_state
from tests.support.status_recorder import expect

WAREHOUSE = str(Path(sys.executable).parent / "warehouse")
ROOT = Path(__file__).resolve().parents[2]


def wait_until_up(url: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up (exit {proc.poll()})")
        time.sleep(0.2)


def pids_in(metrics_dir: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("*.db")}


@contextmanager
def running(args: list[str], env: dict[str, str], out: Path, health: str) -> Iterator[None]:
    with out.open("wb") as sink:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until_up(health, proc)
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_two_workers_json_logs_and_metrics(settings: Settings, tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = {
        **settings_env(settings),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    log = tmp_path / "serve.log"
    args = [WAREHOUSE, "serve", "--port", str(port), "--workers", "2"]
    with running(args, env, log, f"{base}/healthz"):
        assert not (metrics_dir / "counter_999999.db").exists()  # wiped at start-up
        # New connections, many at once, so both workers take some.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as c:
            await asyncio.sleep(0.5)  # the start-up polls' figures are written
            before = samples((await c.get("/metrics", headers=INTERNAL_HEADERS)).text)
            requests = (
                [c.get("/healthz") for _ in range(40)]
                + [
                    c.get("/api/environments/987/data_warehouse/warehouse_status/")
                    for _ in range(30)
                ]
                + [c.get(f"/nope/{uuid.uuid4()}") for _ in range(10)]
                + [
                    c.post(
                        "/internal/organizations", json={"name": "Serve"}, headers=INTERNAL_HEADERS
                    )
                    for _ in range(5)
                ]
            )
            answers = await asyncio.gather(*requests)
            assert sorted({r.status_code for r in answers}) == [200, 201, 401, 404]
            # Until both workers have answered some (the kernel picks who accepts).
            healthz = 40
            deadline = time.monotonic() + 60
            while len(pids_in(metrics_dir)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                batch = await asyncio.gather(*(c.get("/healthz") for _ in range(20)))
                assert all(r.status_code == 200 for r in batch)
                healthz += len(batch)
            await asyncio.sleep(0.5)  # each worker writes its figures within 0.1 s
            assert len(pids_in(metrics_dir)) >= 2  # both worker processes wrote figures
            r = await c.get("/metrics", headers=INTERNAL_HEADERS)
            expect(r, 200)
            after = samples(r.text)

    def delta(route: str, status: str, method: str = "GET") -> float:
        name = "warehouse_http_requests_total"
        labels = {"method": method, "route": route, "status": status}
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("/healthz", "200") == healthz
    assert delta("/api/environments/{environment_id}/data_warehouse/warehouse_status/", "401") == 30
    assert delta("unmatched", "404") == 10
    assert delta("/internal/organizations", "201", "POST") == 5
    assert delta("/metrics", "200") == 1  # the first scrape, counted once it was answered
    duration = "warehouse_http_request_duration_seconds_count"
    assert (
        value(after, duration, method="GET", route="/healthz")
        - value(before, duration, method="GET", route="/healthz")
        == healthz
    )
    assert "/environments/987/" not in r.text and "environments/987" not in r.text

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(rec, dict) for rec in records)
    loggers = {rec["logger"] for rec in records}
    assert "uvicorn.error" in loggers  # uvicorn's own lines, in JSON too
    assert "uvicorn.access" not in loggers  # replaced by ours
    access = [rec for rec in records if rec["logger"] == "app.access"]
    assert len([rec for rec in access if rec["route"] != "/healthz"]) == 30 + 10 + 5 + 2
    assert len([rec for rec in access if rec["route"] == "/healthz"]) >= healthz  # + start-up
    assert all(len(rec["request_id"]) == 32 for rec in access)
    assert {rec["status"] for rec in access} == {200, 201, 401, 404}
    assert any("Started server process" in rec["message"] for rec in records)
    assert settings.internal_api_token.get_secret_value() not in log.read_text()


async def test_worker_serves_its_own_metrics(settings: Settings, app, tmp_path: Path):
    port = free_port()
    env = {**settings_env(settings), "WORKER_METRICS_PORT": str(port), "LOG_LEVEL": "INFO"}
    url = f"http://127.0.0.1:{port}/metrics"
    async with client_for(app) as client:
        tenant = await create_tenant(client)
        with running([WAREHOUSE, "worker"], env, tmp_path / "worker.log", url):
            r = await provision(client, tenant, "wm" + uuid.uuid4().hex[:10])
            expect(r, 202)
            await wait_for_state(client, tenant, {"ready"})
            r = await c_get(url)
    expect(r, 200)
    figures = samples(r.text)
    assert (
        value(figures, "warehouse_worker_jobs_total", function="advance_warehouse", outcome="ok")
        >= 1
    )
    transitions = "warehouse_state_transitions_total"
    assert value(figures, transitions, from_state="pending", to_state="provisioning") >= 1
    assert value(figures, transitions, from_state="provisioning", to_state="ready") >= 1
    assert value(figures, "warehouse_provision_seconds_count") >= 1
    assert 0 < value(figures, "warehouse_provision_seconds_sum") < 60


async def c_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as c:
        return await c.get(url)


def test_worker_metrics_port_zero_is_off(settings: Settings, tmp_path: Path):
    env = {**settings_env(settings), "WORKER_METRICS_PORT": "0", "LOG_LEVEL": "INFO"}
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [WAREHOUSE, "worker", "--burst"], env=env, cwd=ROOT, stdout=sink, stderr=sink
        )
        assert proc.wait(timeout=60) == 0
    assert "worker metrics listening" not in log.read_text()
