"""The FastAPI application: lifespan-owned resources, routers, error handlers, OpenAPI."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import __version__
from app.core.db import (
    build_engine,
    build_read_engine,
    build_read_sessionmaker,
    build_sessionmaker,
)
from app.core.queue import JobQueue
from app.core.read_pool import ReadPool
from app.pgcluster import build_secret_box
from app.pgcluster.tenant_connection import TenantPools
from app.pipeline.auth import environment_resolver, project_resolver
from app.pipeline.errors import install_error_handlers
from app.pipeline.metrics import HttpMetrics
from app.pipeline.observability import ObservedApp
from app.pipeline.ratelimit import RateLimiter
from app.pipeline.router import add_data_warehouse_actions
from app.routers import (
    all_actions,
    health,
    internal_clusters,
    internal_identity,
    internal_pipelines,
    internal_warehouse,
    internal_webhooks,
    metrics,
    moves,
)
from app.services.fleet.backends import ClusterBackends
from app.services.fleet.bootstrap import bootstrap_default_cluster
from app.settings import Settings

DESCRIPTION = """
Managed data warehouses for every organization, and the health of the pipelines that feed
them. Compatible with the PostHog data warehouse API: every action is served under both
`/api/environments/{environment_id}/data_warehouse/` and
`/api/projects/{project_id}/data_warehouse/`.

Authenticate with a personal API key: `Authorization: Bearer phx_...` (a `personal_api_key`
field of a JSON body or query parameter also works). Errors always have the shape
`{"type", "code", "detail", "attr"}`.

- Every POST/DELETE accepts an `Idempotency-Key` header: the first response is replayed for
  24 h; the same key with another body answers 409.
- Requests are limited per API key (`RATE_LIMIT_PER_MINUTE`); beyond it: 429 with `Retry-After`.
- When the database or Redis does not answer, any operation may answer 503 `unavailable` with
  `Retry-After`; retry then.
- `/internal/` operations are for other services, with the internal token.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = build_engine(settings)
    redis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), default_queue_name=settings.queue_name
    )
    app.state.engine = engine
    app.state.sessionmaker = build_sessionmaker(engine)
    app.state.read_engine = read_engine = build_read_engine(settings)
    app.state.read_sessionmaker = build_read_sessionmaker(read_engine)
    app.state.read_pool = read_pool = await ReadPool.open(settings)
    app.state.redis = redis
    app.state.queue = JobQueue(redis)
    app.state.rate_limiter = RateLimiter(
        redis,
        per_minute=settings.rate_limit_per_minute,
        prefix=settings.queue_name,
        sync_interval=settings.rate_limit_sync_ms / 1000,
    )
    await bootstrap_default_cluster(app.state.sessionmaker, settings)
    backends = ClusterBackends(settings, pool_max_size=5)
    app.state.cluster_backends = backends
    app.state.secret_box = build_secret_box(settings)
    app.state.tenant_pools = tenant_pools = TenantPools()
    configured = backends.guard(settings.warehouse_admin_dsn)
    app.state.readiness_problem = await configured.problem_at_startup()
    # What start-up built (routes, validators, schemas, pools) lives as long as the process.
    # Freeze it out of the cyclic collector's reach: a full collection then walks only what
    # requests allocate, instead of ~150k long-lived objects (about 130 ms per full
    # collection on this 2-core box, a pause every request in flight waits out).
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        await app.state.rate_limiter.drain()
        await tenant_pools.close()
        await backends.close()
        await read_pool.close()
        await redis.aclose()
        await read_engine.dispose()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = ObservedApp(
        title="warehouse-api",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Observability is the service's own (Prometheus metrics, JSON logs, request ids:
        # app/pipeline/observability.py). FastAPI's native OpenTelemetry would look up the
        # global providers on every request and find none configured.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.http_metrics = HttpMetrics()
    install_error_handlers(app)

    actions = all_actions()
    add_data_warehouse_actions(
        app.router,
        environment_resolver,
        prefix="/api/environments/{environment_id}/data_warehouse",
        operation_prefix="environments_",
        actions=actions,
    )
    add_data_warehouse_actions(
        app.router,
        project_resolver,
        prefix="/api/projects/{project_id}/data_warehouse",
        operation_prefix="",
        actions=actions,
    )
    app.include_router(internal_identity.router)
    app.include_router(internal_warehouse.router)
    app.include_router(internal_clusters.router)
    app.include_router(moves.router)
    app.include_router(internal_webhooks.router)
    app.include_router(internal_pipelines.router)
    app.include_router(health.router)
    app.include_router(metrics.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _documentation_last(app)
    return app


def _documentation_last(app: FastAPI) -> None:
    """Match the documentation pages after the API: FastAPI registers them first, and the
    router tries routes in order, so every API request would try (and miss) them first."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    routes = app.router.routes
    routes.sort(key=lambda route: getattr(route, "path", None) in docs)  # stable


def _build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        "PersonalAPIKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API key, `phx_...`.",
        },
        "InternalToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The INTERNAL_API_TOKEN for service-to-service calls.",
        },
    }
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            if "parameters" in op:  # path parameters first, as FastAPI lists declared ones
                op["parameters"].sort(key=lambda parameter: parameter.get("in") != "path")
            if path.startswith("/internal/"):
                op["security"] = [{"InternalToken": []}]
            elif path.startswith("/api/"):
                op["security"] = [{"PersonalAPIKey": []}]
            # FastAPI documents a 422 for every validated input; we answer those as 400.
            responses = op.setdefault("responses", {})
            # Public actions declare their own errors (app/routers/actions.py); elsewhere any
            # validated input can be refused with a 400.
            validated = responses.pop("422", None) is not None
            if validated and not path.startswith("/api/") and "400" not in responses:
                responses["400"] = {
                    "description": "Invalid input",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                    },
                }
    for name in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(name, None)
    return schema
