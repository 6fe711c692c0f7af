"""The worker's Prometheus metrics, served on its own private port (API.md §10).

`warehouse worker` serves `GET /metrics` on `WORKER_METRICS_HOST`:`WORKER_METRICS_PORT`
(default 127.0.0.1:9101, no auth; port 0 turns it off; a port already taken is logged and
the worker runs on without it) with

- `warehouse_worker_jobs_total{function,outcome}`: jobs run, by arq function and outcome
  (`ok`, `retry`, `error`);
- `warehouse_state_transitions_total{from_state,to_state}`: warehouse state changes the worker
  made (counted when the change is written);
- `warehouse_provision_seconds`: a histogram of the time from the worker's first provisioning
  step to `ready`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from arq import Retry
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

logger = logging.getLogger(__name__)
REGISTRY = CollectorRegistry(auto_describe=True)
JOBS = Counter(
    "warehouse_worker_jobs",
    "Worker jobs run, by function and outcome (ok, retry, error).",
    ["function", "outcome"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "warehouse_state_transitions",
    "Warehouse state changes made by the worker.",
    ["from_state", "to_state"],
    registry=REGISTRY,
)
PROVISION_SECONDS = Histogram(
    "warehouse_provision_seconds",
    "Seconds from the worker's first provisioning step to ready.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=REGISTRY,
)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def counted(function: str) -> Callable[[F], F]:
    """Count every run of an arq job function by its outcome."""

    def decorate(job: F) -> F:
        @functools.wraps(job)
        async def run(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await job(*args, **kwargs)
            except Retry:
                JOBS.labels(function, "retry").inc()
                raise
            except BaseException:
                JOBS.labels(function, "error").inc()
                raise
            JOBS.labels(function, "ok").inc()
            return result

        return run  # type: ignore[return-value]

    return decorate


def transition(from_state: str, to_state: str) -> None:
    TRANSITIONS.labels(from_state, to_state).inc()


def provisioned_in(seconds: float) -> None:
    PROVISION_SECONDS.observe(max(0.0, seconds))


def serve(host: str, port: int) -> Any:
    """Start the metrics endpoint in a background thread; None when port is 0."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:  # the port is taken: the jobs matter more than their figures
        logger.error(
            "worker metrics not served",
            extra={"address": f"{host}:{port}", "error_class": type(exc).__name__},
        )
        return None
    logger.info("worker metrics listening", extra={"address": f"{host}:{port}"})
    return server
