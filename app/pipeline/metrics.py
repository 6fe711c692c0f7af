"""Prometheus metrics of the HTTP API (API.md §10), right across every uvicorn worker.

`warehouse serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before the workers
start (app/cli.py); prometheus-client then keeps each process's figures in a file there, and a
scrape adds them up (`MultiProcessCollector`). Without that variable (tests, `warehouse dev`)
the figures live in the app's own registry.

- `warehouse_http_requests_total{method,route,status}` and
  `warehouse_http_request_duration_seconds{method,route}`: `route` is the route template
  (`/api/environments/{environment_id}/data_warehouse/warehouse_status/`), never a raw path;
  a request no route matches is counted under `UNMATCHED`.
- Gauges read from the service database at scrape time (`database_gauges`): warehouses by
  state and cluster, each cluster's capacity, warehouses and health, running operations.

`GET /metrics` needs the internal token (app/routers/metrics.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Scope

from app.core.logging import current_pid

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OPERATION_ACTIONS = ("provision", "deprovision", "move", "snapshot", "restore")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


if multiprocess_dir() is not None:
    # The same multiprocess values, but with the process id remembered: prometheus-client
    # asks for it on every increment, and getpid is a system call.
    values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)  # type: ignore[no-untyped-call]


class HttpMetrics:
    """The request counter and latency histogram of one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "warehouse_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "warehouse_http_request_duration_seconds",
            "Time from the request's arrival to its last response byte, by route template.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            label = method if method in METHODS else "OTHER"
            pair = self._children[key] = (
                self.requests.labels(label, route, str(status)),
                self.duration.labels(label, route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self, extra: Iterable[Metric] = ()) -> bytes:
        """Prometheus text: every process's figures (multiprocess mode) or this one's."""
        if multiprocess_dir() is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        families = list(extra)
        if families:
            registry = _Combined(registry, families)  # type: ignore[assignment]
        return generate_latest(registry)


class _Combined:
    """A registry's metrics followed by ready-made families (read at scrape time)."""

    def __init__(self, registry: CollectorRegistry, families: list[Metric]) -> None:
        self.registry = registry
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.families


class RouteTemplates:
    """The route template of a request: FastAPI's matched route when it was routed, else the
    template whose pattern the path (or the path with its optional trailing slash) matches
    (answered before routing: a 413, the fast path; a wrong method counts under the route
    too), else `UNMATCHED`."""

    def __init__(self) -> None:
        self._matcher: re.Pattern[str] | None = None
        self._templates: list[str] = []
        # id() of the app's own routes (not included ones; routes compare by value) -> template
        self._top: dict[int, str] = {}

    def __call__(self, scope: Scope) -> str:
        if self._matcher is None:
            self._build(scope.get("app"))
        assert self._matcher is not None
        # Routed by the app's router to one of its own routes (every public action).
        template = self._top.get(id(scope.get("route")))
        if template is not None:
            return template
        context = scope.get("fastapi", {}).get("effective_route_context")
        path = getattr(context, "path", None)
        if isinstance(path, str) and path:
            return path
        raw: str = scope["path"]
        match = self._matcher.fullmatch(raw)
        if match is None and not raw.endswith("/"):
            # The trailing slash is optional (API.md §1): `/job_stats` is the `/job_stats/` route.
            match = self._matcher.fullmatch(raw + "/")
        if match is None or match.lastgroup is None:
            return UNMATCHED
        return self._templates[int(match.lastgroup[1:])]

    def _build(self, app: Any) -> None:
        templates = sorted(set(_route_paths(app)))
        patterns = []
        for index, template in enumerate(templates):
            literal = "[^/]+".join(re.escape(part) for part in _PARAM.split(template))
            patterns.append(f"(?P<r{index}>{literal})")
        self._templates = templates
        self._top = {
            id(route): route.path
            for route in getattr(app, "routes", [])
            if isinstance(getattr(route, "path", None), str) and route.path
        }
        self._matcher = re.compile("|".join(patterns) or "(?!)")


_PARAM = re.compile(r"\{[^}]+\}")


def _route_paths(app: Any) -> list[str]:
    """Every route template of the app, with included routers' prefixes."""
    routes = getattr(app, "routes", [])
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are already flat
        return [r.path for r in routes if isinstance(getattr(r, "path", None), str)]
    return [rc.path for rc in iter_route_contexts(routes) if rc.path]


_TABLES = """
SELECT to_regclass('warehouse_clusters') IS NOT NULL, to_regclass('operations') IS NOT NULL
"""
_WAREHOUSES = """
SELECT state, coalesce(cluster, '') AS cluster, count(*) AS n
FROM managed_warehouses GROUP BY 1, 2
"""
_CLUSTERS = """
SELECT c.name, c.max_warehouses, c.healthy,
       count(w.id) FILTER (WHERE w.state <> 'deleted') AS warehouses
FROM warehouse_clusters c LEFT JOIN managed_warehouses w ON w.cluster = c.name
GROUP BY c.name, c.max_warehouses, c.healthy
"""
_CLUSTERS_FROM_WAREHOUSES = """
SELECT cluster AS name, count(*) FILTER (WHERE state <> 'deleted') AS warehouses
FROM managed_warehouses WHERE cluster IS NOT NULL GROUP BY 1
"""
_OPERATIONS = "SELECT action, count(*) AS n FROM operations WHERE status = 'running' GROUP BY 1"


async def database_gauges(engine: AsyncEngine) -> list[Metric]:
    """The gauges read from the service database now. Tables a build does not have yet
    (`warehouse_clusters`, `operations`) leave their gauges out or derive what they can."""
    warehouses = GaugeMetricFamily(
        "warehouse_warehouses",
        "Managed warehouses by state and cluster.",
        labels=["state", "cluster"],
    )
    capacity = GaugeMetricFamily(
        "warehouse_cluster_capacity",
        "Most warehouses a cluster takes (its max_warehouses).",
        labels=["cluster"],
    )
    placed = GaugeMetricFamily(
        "warehouse_cluster_warehouses",
        "Warehouses on a cluster that are not deleted.",
        labels=["cluster"],
    )
    healthy = GaugeMetricFamily(
        "warehouse_cluster_healthy",
        "1 when the cluster's last health check passed, else 0.",
        labels=["cluster"],
    )
    running = GaugeMetricFamily(
        "warehouse_operations_running", "Operations running, by action.", labels=["action"]
    )
    async with engine.connect() as conn:
        has_clusters, has_operations = (await conn.execute(text(_TABLES))).one()
        for row in await conn.execute(text(_WAREHOUSES)):
            warehouses.add_metric([row.state, row.cluster], row.n)
        if has_clusters:
            for row in await conn.execute(text(_CLUSTERS)):
                capacity.add_metric([row.name], row.max_warehouses)
                placed.add_metric([row.name], row.warehouses)
                healthy.add_metric([row.name], 1 if row.healthy else 0)
        else:
            for row in await conn.execute(text(_CLUSTERS_FROM_WAREHOUSES)):
                placed.add_metric([row.name], row.warehouses)
        counts: dict[str, int] = dict.fromkeys(OPERATION_ACTIONS, 0)
        if has_operations:
            for row in await conn.execute(text(_OPERATIONS)):
                counts[row.action] = row.n
        for action, n in counts.items():
            running.add_metric([action], n)
        await conn.rollback()
    return [warehouses, capacity, placed, healthy, running]
