"""Helpers for the warehouse lifecycle tests: workers, the cluster's catalogs, API calls."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings, with_database
from app.worker.main import build_worker
from tests.support.harness import ROOT, Tenant, settings_env
from tests.support.status_recorder import expect


def new_name(prefix: str = "wh") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def derive_settings(settings: Settings, **changes: Any) -> Settings:
    """A fresh Settings (no cached DSNs carried over) with some fields changed."""
    data = settings.model_dump()
    data.update(changes)
    return Settings(**data, _env_file=None)


async def run_burst_worker(settings: Settings, within: float = 60) -> None:
    worker = build_worker(settings, burst=True, handle_signals=False)
    try:
        await asyncio.wait_for(worker.async_run(), within)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """A long-running (non-burst) worker with its cron reconciler, in this event loop."""
    worker = build_worker(settings, burst=False, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment of a subprocess worker: the test settings, no inherited failpoint."""
    env = settings_env(settings)
    env["LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


async def run_subprocess_worker(
    settings: Settings, *, failpoint: str | None = None, within: float = 60
) -> int:
    """`python -m app.worker --burst` in a child process; returns its exit code."""
    extra = {"WAREHOUSE_FAILPOINT": failpoint} if failpoint else {}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.worker",
        "--burst",
        cwd=str(ROOT),
        env=worker_env(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    if proc.returncode not in (0, -9):
        raise AssertionError(f"worker exited {proc.returncode}: {stderr.decode()[-2000:]}")
    return proc.returncode


class Cluster:
    """Looks at the warehouse cluster's catalogs as its admin."""

    def __init__(self, cluster: PasswordCheckingCluster) -> None:
        self.cluster = cluster

    async def _val(self, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.cluster.admin_dsn)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def database_exists(self, name: str) -> bool:
        return bool(await self._val("SELECT 1 FROM pg_database WHERE datname = $1", name))

    async def role_exists(self, name: str) -> bool:
        return bool(await self._val("SELECT 1 FROM pg_roles WHERE rolname = $1", name))

    async def count_like(self, pattern: str) -> tuple[int, int]:
        dbs = await self._val("SELECT count(*) FROM pg_database WHERE datname LIKE $1", pattern)
        roles = await self._val("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", pattern)
        return int(dbs), int(roles)

    async def rolpassword(self, role: str) -> str | None:
        value: str | None = await self._val(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role
        )
        return value

    async def execute(self, statement: str, database: str = "postgres") -> None:
        conn = await asyncpg.connect(with_database(self.cluster.admin_dsn, database))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    async def fetchval_in(self, database: str, query: str, *args: Any) -> Any:
        conn = await asyncpg.connect(with_database(self.cluster.admin_dsn, database))
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    async def login(self, database: str, user: str, password: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1",
            port=self.cluster.port,
            user=user,
            password=password,
            database=database,
            timeout=5,
        )


async def provision(
    client: httpx.AsyncClient, tenant: Tenant, name: str, table: str = "main", **kw: Any
) -> httpx.Response:
    headers = kw.pop("headers", tenant.headers)
    return await client.post(
        tenant.env_url("provision"),
        json={"database_name": name, "table_name": table},
        headers=headers,
    )


async def status(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    r = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
    expect(r, 200)
    body: dict[str, Any] = r.json()
    return body


async def wait_for_state(
    client: httpx.AsyncClient, tenant: Tenant, states: set[str], within: float = 30
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        body = await status(client, tenant)
        if body["state"] in states:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {body['state']}: {body['status_message']}")
        await asyncio.sleep(0.1)


async def bucket_objects(settings: Settings, org_id: str) -> list[str] | None:
    """The keys in the organization's bucket, asked of the S3 server itself (not the service);
    None when the bucket does not exist."""
    bucket = f"{settings.s3_bucket_prefix}-{uuid.UUID(org_id).hex}"
    secret = settings.s3_secret_access_key
    async with get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    ) as s3:
        try:
            await s3.head_bucket(Bucket=bucket)
        except ClientError:
            return None
        keys: list[str] = []
        async for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)


async def only_snapshots_left(settings: Settings, org_id: str) -> bool:
    """After teardown: no bucket, or one holding nothing but `snapshots/`."""
    keys = await bucket_objects(settings, org_id)
    return keys is None or all(k.startswith("snapshots/") for k in keys)
