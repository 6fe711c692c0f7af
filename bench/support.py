"""What the benches share: the service's settings for a scratch run, and a worker's environment.

Every bench that starts the service in-process and a worker beside it builds the same
settings: a scratch service database on the machine's server, its own queue, secret and
internal token, the first cluster as the bootstrap `default`, the embedded S3 server, the rate
limiter off (the benches measure the work, not the limiter; `bench/load.py` runs the real
service with its defaults), the workers' metrics port off. The worker gets the very same
settings through its environment.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from app.devtools.embedded import PasswordCheckingCluster
from app.devtools.s3server import EMBEDDED_S3_ACCESS_KEY, EMBEDDED_S3_SECRET, EmbeddedS3
from app.settings import Settings, with_database


def bench_settings(
    *,
    server: str,
    dbname: str,
    run_id: str,
    redis_url: str,
    token: str,
    cluster: PasswordCheckingCluster,
    s3: EmbeddedS3 | None,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": with_database(server, dbname),
        "redis_url": redis_url,
        "queue_name": f"arq:warehouse:bench:{run_id}",
        "secret_key": "bench-secret-" + run_id,
        "internal_api_token": token,
        "warehouse_admin_url": cluster.admin_dsn,
        "warehouse_public_port": cluster.port,
        "rate_limit_per_minute": 0,
        "log_level": "WARNING",
        # Several workers on one machine would race for port 9101, and no bench scrapes them.
        "worker_metrics_port": 0,
    }
    if s3 is not None:
        values |= {
            "s3_endpoint_url": s3.endpoint_url,
            "s3_access_key_id": EMBEDDED_S3_ACCESS_KEY,
            "s3_secret_access_key": EMBEDDED_S3_SECRET,
        }
    return Settings(**(values | overrides), _env_file=None)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker process acting with `settings` (`extra` on top)."""
    return {**os.environ, **settings.as_environment(), **extra}


async def stop_processes(*procs: asyncio.subprocess.Process | None, timeout: float = 20) -> None:
    """SIGTERM each process started (None: never started), wait for all, kill what is left."""
    started = [p for p in procs if p is not None]
    for proc in started:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
