"""`warehouse dev --clusters 2`: two password-checking clusters, registered, across restarts."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.devtools.embedded import free_port
from app.settings import Settings
from tests.support.harness import settings_env
from tests.support.scratch import scratch_database
from tests.support.status_recorder import expect

SCRIPT = Path(sys.executable).parent / "warehouse"


@pytest.fixture
async def dev_database(settings: Settings) -> AsyncIterator[str]:
    async with scratch_database(settings, "wh_dev", migrated=False) as url:
        yield url


async def run_dev_until_registered(env: dict[str, str], data_dir: Path, port: int) -> list[Any]:
    log = data_dir.parent / "dev.log"
    """Start `warehouse dev --clusters 2`, wait for the registration lines, list the clusters,
    stop it with Ctrl-C; returns the cluster objects."""
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "dev",
        "--clusters",
        "2",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("ab"),
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not any(line.startswith("  cluster dev-2:") for line in lines):
            raw = await asyncio.wait_for(proc.stdout.readline(), 120)
            assert raw, f"warehouse dev ended early: {log.read_text()[-3000:]}"
            lines.append(raw.decode().rstrip("\n"))
        assert lines[-1].endswith("(registered)"), lines[-3:]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.get(
                "/internal/clusters",
                headers={"Authorization": f"Bearer {env['INTERNAL_API_TOKEN']}"},
            )
        expect(r, 200)
        results: list[Any] = r.json()["results"]
        return results
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_dev_starts_and_registers_two_clusters(
    settings: Settings, dev_database: str, tmp_path: Path
) -> None:
    env = settings_env(settings)
    env.update(DATABASE_URL=dev_database, QUEUE_NAME=f"arq:warehouse:dev:{uuid.uuid4().hex[:8]}")
    env.pop("WAREHOUSE_ADMIN_URL", None)
    env.pop("WAREHOUSE_PUBLIC_PORT", None)
    data_dir = tmp_path / "data"
    first = await run_dev_until_registered(env, data_dir, free_port())
    assert [(c["name"], c["state"], c["healthy"]) for c in first] == [
        ("default", "active", True),
        ("dev-2", "active", True),
    ]
    # A second run finds the same clusters on the same ports: the registrations still hold.
    again = await run_dev_until_registered(env, data_dir, free_port())
    assert [(c["name"], c["public_port"]) for c in again] == [
        (c["name"], c["public_port"]) for c in first
    ]
