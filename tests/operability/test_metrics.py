"""GET /metrics (API.md §10) in one process: the token, route templates, database gauges.

Figures across two uvicorn workers are checked in test_serve.py."""

from __future__ import annotations

import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant
from tests.support.http import assert_error, sql
from tests.support.status_recorder import expect


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]


def value(figures: Figures, name: str, **labels: str) -> float:
    return float(figures.get((name, frozenset(labels.items())), 0.0))


async def scrape(client: httpx.AsyncClient) -> Figures:
    r = await client.get("/metrics", headers=INTERNAL_HEADERS)
    expect(r, 200)
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_needs_the_internal_token(client: httpx.AsyncClient, tenant: Tenant):
    assert_error(await client.get("/metrics"), 401, "not_authenticated")
    r = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert_error(r, 401, "authentication_failed")
    r = await client.get("/metrics", headers=tenant.headers)  # a personal key is not enough
    assert_error(r, 401, "authentication_failed")


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient, tenant: Tenant):
    route = "/api/environments/{environment_id}/data_warehouse/check-database-name/"
    before = await scrape(client)
    for name in ("acme-one", "acme-two", "acme-three"):
        r = await client.get(
            tenant.env_url("check-database-name"), params={"name": name}, headers=tenant.headers
        )
        expect(r, 200)
    await client.get(tenant.env_url("check-database-name"))  # 400 without the name? 401 first
    await client.get(f"/nothing-here/{uuid.uuid4()}")
    text = (await client.get("/metrics", headers=INTERNAL_HEADERS)).text
    after = samples(text)
    total = "warehouse_http_requests_total"
    assert (
        value(after, total, method="GET", route=route, status="200")
        - value(before, total, method="GET", route=route, status="200")
        == 3
    )
    assert value(after, total, method="GET", route=route, status="401") >= 1
    assert value(after, total, method="GET", route="unmatched", status="404") >= 1
    count = "warehouse_http_request_duration_seconds_count"
    assert (
        value(after, count, method="GET", route=route)
        - value(before, count, method="GET", route=route)
        >= 4
    )
    # Templates only: no raw id, name or path appears in any label.
    for raw in (f"/api/environments/{tenant.env_id}/", "acme-one", "nothing-here"):
        assert raw not in text


async def test_gauges_reflect_the_database(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    r = await client.post(
        tenant.env_url("provision"),
        json={"database_name": "gauge" + uuid.uuid4().hex[:8], "table_name": "events"},
        headers=tenant.headers,
    )
    expect(r, 202)
    figures = await scrape(client)
    rows = await sql(
        settings,
        "SELECT state, coalesce(cluster, '') AS cluster, count(*) AS n "
        "FROM managed_warehouses GROUP BY 1, 2",
    )
    assert rows
    for row in rows:
        got = value(figures, "warehouse_warehouses", state=row["state"], cluster=row["cluster"])
        assert got == row["n"], (row, got)
    assert any(row["state"] == "pending" for row in rows)
    for action in ("provision", "deprovision", "move", "snapshot", "restore"):
        assert ("warehouse_operations_running", frozenset({("action", action)})) in figures
    clusters = {row["cluster"] for row in rows if row["cluster"]}
    for cluster in clusters:
        placed = await sql(
            settings,
            "SELECT count(*) AS n FROM managed_warehouses "
            "WHERE cluster = $1 AND state <> 'deleted'",
            cluster,
        )
        assert value(figures, "warehouse_cluster_warehouses", cluster=cluster) == placed[0]["n"]


async def test_a_request_without_its_trailing_slash_counts_under_the_route_template(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """API.md §1: `/job_stats` and `/job_stats/` both answer; §10: route = the route template."""
    route = "/api/environments/{environment_id}/data_warehouse/job_stats/"
    before = await scrape(client)
    r = await client.get(tenant.env_url("job_stats").rstrip("/"), headers=tenant.headers)
    expect(r, 200)
    after = await scrape(client)
    total = "warehouse_http_requests_total"
    labels = {"method": "GET", "route": route, "status": "200"}
    assert value(after, total, **labels) == value(before, total, **labels) + 1
    assert value(after, total, method="GET", route="unmatched", status="200") == 0
