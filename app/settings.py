"""Typed settings, read from the environment (and an optional `.env` file).

Every setting has a dev default; secrets that still hold their placeholder stop start-up unless
`ENVIRONMENT=dev` (or `test`), so a forgotten variable never reaches production silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "dev-insecure-secret-key-change-me"  # noqa: S105
PLACEHOLDER_INTERNAL_TOKEN = "dev-insecure-internal-token"  # noqa: S105


class PlaceholderSecretError(RuntimeError):
    """A secret setting still holds its development placeholder outside dev."""


def to_async_dsn(url: str) -> str:
    """`postgresql://u@h:p/db` (the form people write) -> the asyncpg SQLAlchemy URL."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")


def to_plain_dsn(url: str) -> str:
    """Any accepted form -> `postgresql://...` as asyncpg.connect() wants it."""
    return "postgresql://" + to_async_dsn(url)[len("postgresql+asyncpg://") :]


def with_database(dsn: str, database: str) -> str:
    """The same server and credentials, another database (a query string is kept)."""
    base, sep, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}{sep}{query}"


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """`"5,30,120"` -> (5.0, 30.0, 120.0); empty = no retries. Negative or not a number: error."""
    delays = []
    for part in value.split(","):
        if not part.strip():
            continue
        delay = float(part)
        if not 0 <= delay < 10**7:
            raise ValueError("WEBHOOK_RETRY_SCHEDULE: each delay must be 0 or more seconds")
        delays.append(delay)
    return tuple(delays)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "production"] = "dev"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/warehouse_api"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # arq queue; also the prefix of every other Redis key this service writes.
    queue_name: str = "arq:warehouse"
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    internal_api_token: SecretStr = SecretStr(PLACEHOLDER_INTERNAL_TOKEN)

    # Service-database connections. An API process opens at most DB_POOL_SIZE +
    # DB_MAX_OVERFLOW (writes) + DB_POOL_SIZE (ORM reads) + DB_POOL_SIZE (hot reads); a worker
    # at most 2 x WORKER_MAX_JOBS + 4 (a job holds its lock connection and one step at a time).
    # Keep the sum over all processes under the server's max_connections (PostgreSQL's
    # default is 100): the defaults give 40 + 24.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # Jobs one worker process runs at once.
    worker_max_jobs: int = Field(default=10, ge=1)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)

    rate_limit_per_minute: int = Field(default=600, ge=0)
    # How stale a process's view of a key's count may get before it syncs with Redis
    # (app/pipeline/ratelimit.py); 0 = one Redis call per request, exact counting.
    rate_limit_sync_ms: int = Field(default=100, ge=0)
    # An Idempotency-Key claim whose request never answered (its process died) is taken over
    # by a retry after this long (app/pipeline/idempotency.py).
    idempotency_stale_claim_seconds: float = Field(default=120.0, gt=0)

    # The managed-warehouse cluster. None = the server that holds the service database.
    warehouse_admin_url: str | None = None
    warehouse_public_host: str = "127.0.0.1"
    warehouse_public_port: int | None = None
    warehouse_allow_trust_auth: bool = False

    # Storage speaks the S3 API (API.md §9). No endpoint = AWS S3 itself, or, under `warehouse
    # dev` and the tests, a local S3-compatible server (app/devtools/s3server.py). No keys =
    # botocore's usual credential chain (instance role, ~/.aws, AWS_* variables).
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_bucket_prefix: str = Field(
        default="warehouse", min_length=1, max_length=30, pattern=r"^[a-z0-9][a-z0-9-]*$"
    )
    snapshot_retention_days: float = Field(default=7, gt=0)
    # A snapshot still not taken this long after it started fails (retried until then).
    snapshot_deadline_seconds: float = Field(default=1800, gt=0)
    # How often the worker checks buckets and snapshot objects and applies retention.
    storage_check_seconds: int = Field(default=30, ge=1)

    provision_deadline_seconds: float = Field(default=120.0, gt=0)
    job_retry_base_seconds: float = Field(default=0.5, gt=0)
    reconcile_interval_seconds: int = Field(default=30, ge=1)
    # How often the worker probes every registered warehouse cluster (API.md §8).
    cluster_check_seconds: int = Field(default=30, ge=1)

    # Webhooks (API.md §10): back-off between delivery attempts, in seconds, comma-separated;
    # an attempt a worker took but never finished (it died) is taken again after the lease.
    webhook_retry_schedule: str = "5,30,120,600,1800,3600,7200,14400,28800,43200"
    webhook_lease_seconds: float = Field(default=30.0, gt=0)
    # Delivery attempts and finished events older than this are deleted (hourly, by the worker).
    webhook_retention_days: int = Field(default=30, ge=1)

    log_level: str = "INFO"
    # `json` or `text`; unset: json when ENVIRONMENT=production, else text (app/logging_setup.py).
    log_format: Literal["json", "text"] | None = None
    # Largest accepted body of an /internal/ request (public requests: 64 KiB, API.md §10).
    max_internal_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    # The worker's own Prometheus endpoint (no auth: a private port); port 0 turns it off.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)

    @model_validator(mode="after")
    def _no_placeholders_outside_dev(self) -> Settings:
        if self.environment == "production":
            if self.secret_key.get_secret_value() == PLACEHOLDER_SECRET:
                raise PlaceholderSecretError("SECRET_KEY must be set outside dev")
            if self.internal_api_token.get_secret_value() == PLACEHOLDER_INTERNAL_TOKEN:
                raise PlaceholderSecretError("INTERNAL_API_TOKEN must be set outside dev")
        return self

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    def as_environment(self) -> dict[str, str]:
        """These settings as the environment variables that reproduce them, for a process
        started from this one (a worker, uvicorn, the CLI) that must act on the same
        databases, queue and secrets. Unset (None) settings are left out."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[name.upper()] = str(value)
        return env

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return parse_retry_schedule(self.webhook_retry_schedule)

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "text"

    @property
    def async_database_url(self) -> str:
        return to_async_dsn(self.database_url)

    @property
    def warehouse_admin_dsn(self) -> str:
        """Plain libpq DSN of the warehouse cluster's admin connection."""
        if self.warehouse_admin_url:
            return to_plain_dsn(self.warehouse_admin_url)
        return with_database(to_plain_dsn(self.database_url), "postgres")
