"""Contract fuzzing with schemathesis over the whole OpenAPI document (API.md, issue 5).

A real uvicorn process serves the app; every operation is exercised with generated valid and
invalid inputs, with a working `*` key (path ids pinned to its environment/project) and without
credentials. No response may be a 5xx, and every response must match its documented status
codes, content type and schema. `FUZZ_MAX_EXAMPLES` sets the depth (`make fuzz` goes deeper).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.migrate import migrate_database
from app.devtools.embedded import free_port
from app.settings import Settings, to_plain_dsn, with_database
from tests.support.harness import INTERNAL_HEADERS, settings_env
from tests.support.lifecycle import run_burst_worker

pytestmark = pytest.mark.fuzz
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
EXCLUDED_CHECKS = [
    # Valid-by-schema requests legitimately answer 404 (no warehouse yet) or 409 (wrong state).
    "positive_data_acceptance",
]


@pytest.fixture(scope="session")
def fuzz_database(settings: Settings) -> Iterator[str]:
    """A migrated service database of the fuzz server's own: what the fuzzer changes (the
    cluster registry's `default` included) never reaches the other tests' database."""
    server = to_plain_dsn(settings.database_url)
    name = f"wh_fuzz_{uuid.uuid4().hex[:10]}"

    async def execute(statement: str) -> None:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = with_database(server, name)
    migrate_database(url)
    try:
        yield url
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def live_server(settings: Settings, fuzz_database: str) -> Iterator[str]:
    port = free_port()
    env = settings_env(settings)
    env.update(
        DATABASE_URL=fuzz_database, QUEUE_NAME=f"{settings.queue_name}:fuzz:{uuid.uuid4().hex[:8]}"
    )
    proc = subprocess.Popen(
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
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def no_jobs_left_behind(settings: Settings) -> Iterator[None]:
    """The fuzzer provisions for real; finish its jobs here, so no later test's worker meets
    them (and, say, sends their webhooks to that test's receiver)."""
    yield
    asyncio.run(run_burst_worker(settings, within=120))


@pytest.fixture(scope="session")
def fuzz_identity(live_server: str) -> dict[str, str]:
    with httpx.Client(base_url=live_server, headers=INTERNAL_HEADERS) as c:
        org = c.post("/internal/organizations", json={"name": "Fuzz"}).json()
        project = c.post(
            "/internal/projects", json={"organization_id": org["id"], "name": "Fuzz"}
        ).json()
        user = c.post(
            "/internal/users",
            json={
                "email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com",
                "organization_id": org["id"],
                "level": 15,
            },
        ).json()
        key = c.post("/internal/personal_api_keys", json={"user_id": user["id"], "scopes": ["*"]})
    return {
        "organization_id": org["id"],
        "project_id": str(project["id"]),
        "environment_id": str(project["environment_id"]),
        "user_id": str(user["id"]),
        "key": key.json()["key"],
    }


def _run_schemathesis(
    live_server: str,
    tmp_path: Path,
    *,
    headers: dict[str, str],
    path_regex: str,
    parameters: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    lines = ["[parameters]"] + [f'"path.{k}" = "{v}"' for k, v in (parameters or {}).items()]
    config.write_text("\n".join(lines) + "\n")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        live_server + "/openapi.json",
        "--url",
        live_server,
        "--include-path-regex",
        path_regex,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--exclude-checks",
        ",".join(EXCLUDED_CHECKS),
        "--generation-deterministic",
        "--phases",
        "examples,coverage,fuzzing",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "10",
        "--no-color",
        "--warnings",
        "off",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    tail = "\n".join(result.stdout.splitlines()[-80:])
    assert result.returncode == 0, tail + result.stderr[-2000:]


def test_public_api_with_valid_credentials(
    live_server: str, fuzz_identity: dict[str, str], tmp_path: Path
) -> None:
    result = _run_schemathesis(
        live_server,
        tmp_path,
        headers={"Authorization": f"Bearer {fuzz_identity['key']}"},
        path_regex="^/api/",
        parameters={
            "environment_id": fuzz_identity["environment_id"],
            "project_id": fuzz_identity["project_id"],
        },
    )
    _assert_clean(result)


def test_internal_api_with_internal_token(
    live_server: str, fuzz_identity: dict[str, str], tmp_path: Path
) -> None:
    result = _run_schemathesis(
        live_server,
        tmp_path,
        headers=dict(INTERNAL_HEADERS),
        path_regex="^/internal/",
        parameters={
            "team_id": fuzz_identity["environment_id"],
            "org_id": fuzz_identity["organization_id"],
        },
    )
    _assert_clean(result)


def test_whole_api_without_credentials(live_server: str, tmp_path: Path) -> None:
    result = _run_schemathesis(live_server, tmp_path, headers={}, path_regex="^/")
    _assert_clean(result)
