"""deploy/grafana/warehouse-api.json is a Grafana dashboard built from the metric names the
service and the worker really expose (API.md §10)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.worker.metrics import REGISTRY as WORKER_REGISTRY
from tests.support.harness import INTERNAL_HEADERS

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "warehouse-api.json"
METRIC = re.compile(r"\bwarehouse_[a-z_]+")


async def test_dashboard_uses_only_exposed_metrics(client: httpx.AsyncClient):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "warehouse-api" and dashboard["panels"]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    await client.get("/healthz")  # so the request metrics have samples
    r = await client.get("/metrics", headers=INTERNAL_HEADERS)
    exposed = set()
    for family in text_string_to_metric_families(r.text):  # families without samples too
        exposed |= {family.name, *(s.name for s in family.samples)}
    for family in WORKER_REGISTRY.collect():
        exposed |= {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    assert used <= exposed, used - exposed
    for name in (
        "warehouse_http_requests_total",
        "warehouse_http_request_duration_seconds_bucket",
        "warehouse_warehouses",
        "warehouse_cluster_capacity",
        "warehouse_cluster_warehouses",
        "warehouse_cluster_healthy",
        "warehouse_operations_running",
        "warehouse_worker_jobs_total",
        "warehouse_state_transitions_total",
        "warehouse_provision_seconds_bucket",
    ):
        assert name in used, name
