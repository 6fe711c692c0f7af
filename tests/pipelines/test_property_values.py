"""property_values (API.md §4.3): distinct values of a warehouse table's column or JSON path."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.status_recorder import expect
from tests.support.warehouses import ReadyWarehouse, Warehouses


def ev(
    event: str, properties: dict[str, Any] | None = None, distinct_id: str = "d"
) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "event": event,
        "distinct_id": distinct_id,
        "properties": properties or {},
        "timestamp": "2026-11-26T10:00:00Z",
    }


async def push(client: httpx.AsyncClient, team_id: int, table: str, rows: list[Any]) -> None:
    r = await client.post(
        f"/internal/environments/{team_id}/warehouse/rows",
        json={"table": table, "rows": rows},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 200)


async def values(client: httpx.AsyncClient, tenant: Tenant, **params: str) -> httpx.Response:
    return await client.get(
        tenant.env_url("property_values"), params=params, headers=tenant.headers
    )


def names(r: httpx.Response) -> list[str]:
    expect(r, 200)
    return [item["name"] for item in r.json()["results"]]


@dataclass
class Loaded:
    tenant: Tenant
    warehouse: ReadyWarehouse


@pytest.fixture(scope="module")
async def loaded(
    app: FastAPI, warehouse_cluster: PasswordCheckingCluster, settings: Settings
) -> AsyncIterator[Loaded]:
    """One tenant for the module, whose `events_main`/`persons_main` hold a known set of rows.

    Tests using it only read (or add things no other test looks at), so it is built once.
    """
    transport = httpx.ASGITransport(app=app)
    helper = Warehouses(app, warehouse_cluster, settings)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        tenant = await create_tenant(client)
        try:
            wh = await helper.ready(tenant, table_name="main")
            rows = [
                ev(
                    "pageview",
                    {"plan": "pro", "beta": True, "tags": ["a", "b"], "user": {"country": "FR"}},
                ),
                ev("pageview", {"plan": "Professional", "beta": False, "tags": ["b", "c"]}),
                ev("signup", {"plan": None, "beta": True, "tags": [], "user": {"country": "DE"}}),
                ev("Purchase", {"plan": "free", "count": 3, "nested": {"x": {"y": "deep"}}}),
                ev("$autocapture", {"url": "https://x.test/a'b"}),
            ]
            await push(client, tenant.env_id, "events", rows)
            created = "2026-01-01T00:00:00Z"
            await push(
                client,
                tenant.env_id,
                "persons",
                [
                    {"id": str(uuid.uuid4()), "distinct_ids": ["u1", "u2"], "created_at": created},
                    {"id": str(uuid.uuid4()), "distinct_ids": ["u2", "u3"], "created_at": created},
                ],
            )
            yield Loaded(tenant, wh)
        finally:
            await helper.cleanup()


async def test_distinct_values_of_a_column(client: httpx.AsyncClient, loaded: Loaded) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="events_main", key="event")
    assert sorted(names(r)) == ["$autocapture", "Purchase", "pageview", "signup"]
    assert r.json()["refreshing"] is False
    assert r.headers["cache-control"] == "max-age=10"


async def test_substring_filter_is_case_insensitive_shortest_first(
    client: httpx.AsyncClient, loaded: Loaded
) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="events_main", key="properties.plan", value="PRO")
    assert names(r) == ["pro", "Professional"]
    r = await values(client, tenant, table_name="events_main", key="event", value="a")
    assert names(r) == ["Purchase", "pageview", "$autocapture"]
    # `%` and `_` are plain characters, not patterns.
    r = await values(client, tenant, table_name="events_main", key="event", value="%")
    assert names(r) == []


async def test_json_values_booleans_lists_and_nulls(
    client: httpx.AsyncClient, loaded: Loaded
) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="events_main", key="properties.beta")
    assert sorted(names(r)) == ["false", "true"]
    r = await values(client, tenant, table_name="events_main", key="properties.tags")
    assert sorted(names(r)) == ["a", "b", "c"]
    # JSON null and missing keys contribute nothing.
    r = await values(client, tenant, table_name="events_main", key="properties.plan")
    assert sorted(names(r)) == ["Professional", "free", "pro"]
    r = await values(client, tenant, table_name="events_main", key="properties.count")
    assert names(r) == ["3"]
    r = await values(client, tenant, table_name="events_main", key="properties.missing")
    assert names(r) == []


async def test_dotted_keys_read_nested_json(client: httpx.AsyncClient, loaded: Loaded) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="events_main", key="properties.user.country")
    assert sorted(names(r)) == ["DE", "FR"]
    r = await values(client, tenant, table_name="events_main", key="properties.nested.x.y")
    assert names(r) == ["deep"]


async def test_array_columns_are_flattened(client: httpx.AsyncClient, loaded: Loaded) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="persons_main", key="distinct_ids")
    assert names(r) == ["u1", "u2", "u3"]


async def test_at_most_ten_results(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name="main")
    await push(client, tenant.env_id, "events", [ev(f"event_{i:02}") for i in range(25)])
    r = await values(client, tenant, table_name="events_main", key="event")
    assert len(names(r)) == 10
    r = await values(client, tenant, table_name="events_main", key="event", value="event_1")
    assert names(r) == [f"event_1{i}" for i in range(10)]


async def test_onboarded_schema_tables(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name=None)
    r = await client.post(
        tenant.env_url("onboard-team"), json={"schema_name": "crm"}, headers=tenant.headers
    )
    expect(r, 200)
    await push(client, tenant.env_id, "events", [ev("login")])
    for table in ("events", "crm.events"):
        assert names(await values(client, tenant, table_name=table, key="event")) == ["login"]
    r = await values(client, tenant, table_name="events_crm", key="event")
    expect(r, 404)


@pytest.mark.parametrize(
    ("params", "status", "detail", "attr"),
    [
        ({"table_name": "events_main"}, 400, "You must provide a key", "key"),
        ({"table_name": "events_main", "key": ""}, 400, "You must provide a key", "key"),
        ({"key": "event"}, 400, "You must provide a table name", "table_name"),
        ({"table_name": "events_other", "key": "event"}, 404, None, None),
        ({"table_name": "persons", "key": "id"}, 404, None, None),
        (
            {"table_name": "events_main", "key": "colour"},
            400,
            "The provided key does not exist on this table",
            "key",
        ),
        (
            {"table_name": "events_main", "key": "event.sub"},
            400,
            "The provided key does not exist on this table",
            "key",
        ),
        (
            {"table_name": "events_main", "key": "Event"},
            400,
            "The provided key does not exist on this table",
            "key",
        ),
    ],
)
async def test_errors(
    client: httpx.AsyncClient,
    loaded: Loaded,
    params: dict[str, str],
    status: int,
    detail: str | None,
    attr: str | None,
) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, **params)
    expect(r, status)
    if detail is not None:
        assert r.json()["detail"] == detail
        assert r.json()["attr"] == attr
    if status == 404:
        assert r.json()["code"] == "not_found"


async def test_environment_without_warehouse_tables_answers_404(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    r = await values(client, tenant, table_name="events_main", key="event")
    expect(r, 404)
    await warehouses.record(tenant, state="provisioning", table_name="main")
    r = await values(client, tenant, table_name="events_main", key="event")
    expect(r, 404)


async def test_another_environments_tables_are_not_visible(
    client: httpx.AsyncClient, loaded: Loaded
) -> None:
    tenant = loaded.tenant
    staging = await tenant.add_environment("staging")
    r = await client.post(
        f"/api/environments/{staging}/data_warehouse/enable_backfill/",
        json={"table_name": "staging"},
        headers=tenant.headers,
    )
    expect(r, 200)
    r = await client.get(
        f"/api/environments/{staging}/data_warehouse/property_values/",
        params={"table_name": "events_main", "key": "event"},
        headers=tenant.headers,
    )
    expect(r, 404)


@pytest.mark.parametrize(
    "params",
    [
        {"table_name": "events_main", "key": 'event"; DROP TABLE events_main; --'},
        {
            "table_name": "events_main",
            "key": 'event"::text FROM events_main; DROP TABLE events_main; --',
        },
        {"table_name": "events_main; DROP TABLE events_main; --", "key": "event"},
        {"table_name": 'events_main"; DROP TABLE events_main; --', "key": "event"},
        {"table_name": "events_main", "key": "properties.x'); DROP TABLE events_main; --"},
        {"table_name": "events_main", "key": "event", "value": "'; DROP TABLE events_main; --"},
        {"table_name": "events_main", "key": "event", "value": "$1"},
        {"table_name": "events_main", "key": "properties.url", "value": "a'b"},
        {"table_name": "../events_main", "key": "event"},
        {"table_name": "events_main", "key": "event\x00"},
    ],
)
async def test_injection_attempts_are_never_executed(
    client: httpx.AsyncClient, warehouses: Warehouses, loaded: Loaded, params: dict[str, str]
) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, **params)
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code == 200 and params["key"] == "event":
        assert names(r) == []
    admin = await warehouses.admin(loaded.warehouse.database_name)
    try:
        assert await admin.fetchval("SELECT to_regclass('public.events_main') IS NOT NULL")
        assert await admin.fetchval("SELECT count(*) FROM events_main") == 5
    finally:
        await admin.close()


async def test_quoted_json_values_are_returned_as_data(
    client: httpx.AsyncClient, loaded: Loaded
) -> None:
    tenant = loaded.tenant
    r = await values(client, tenant, table_name="events_main", key="properties.url", value="A'B")
    assert names(r) == ["https://x.test/a'b"]


async def test_query_read_scope_is_required(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client, scopes=["warehouse_view:write"])
    r = await values(client, tenant, table_name="events_main", key="event")
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'query:read'"


async def test_members_may_read_values(client: httpx.AsyncClient, loaded: Loaded) -> None:
    tenant = loaded.tenant
    key = await tenant.add_user(level=1, scopes=["query:read"])
    r = await client.get(
        tenant.project_url("property_values").rstrip("/"),
        params={"table_name": "events_main", "key": "properties.plan", "value": "fre"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert names(r) == ["free"]
