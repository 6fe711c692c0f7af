"""onboard-team and check-schema-name (API.md §4.2): own schema, shared name space."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.harness import Tenant, create_tenant
from tests.support.status_recorder import expect
from tests.support.warehouses import Warehouses

SHAPE = (
    "Schema name must use only lowercase letters, numbers, and underscores, "
    "and must not start with a number"
)


async def onboard(
    client: httpx.AsyncClient, tenant: Tenant, env_id: int, body: object
) -> httpx.Response:
    return await client.post(
        f"/api/environments/{env_id}/data_warehouse/onboard-team/",
        json=body,
        headers=tenant.headers,
    )


async def check(client: httpx.AsyncClient, tenant: Tenant, query: str) -> httpx.Response:
    return await client.get(
        f"/api/environments/{tenant.env_id}/data_warehouse/check-schema-name{query}",
        headers=tenant.headers,
    )


async def test_onboard_creates_own_schema_owned_by_login_role(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    analytics = await tenant.add_environment("analytics")

    r = await onboard(client, tenant, analytics, {"schema_name": "analytics"})
    expect(r, 200)
    assert r.json() == {"onboarded": True, "schema_name": "analytics"}

    admin = await warehouses.admin(wh.database_name)
    try:
        schema_owner = await admin.fetchval(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'analytics'"
        )
        tables = await admin.fetch(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'analytics' "
            "ORDER BY tablename"
        )
        pk = await admin.fetchval(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'analytics.persons'::regclass AND i.indisprimary"
        )
    finally:
        await admin.close()
    assert schema_owner == wh.login_role
    assert [(t["tablename"], t["tableowner"]) for t in tables] == [
        ("events", wh.login_role),
        ("persons", wh.login_role),
    ]
    assert pk == "id"

    conn = await wh.login()
    try:
        await conn.execute(
            "INSERT INTO analytics.events (uuid, event, distinct_id, properties, timestamp) "
            "VALUES ($1, 'pageview', 'd1', '{\"plan\": \"pro\"}', now())",
            uuid.uuid4(),
        )
        assert await conn.fetchval("SELECT properties->>'plan' FROM analytics.events") == "pro"
        # As the schema's owner the role may add its own tables there.
        await conn.execute("CREATE TABLE analytics.scratch (x int)")
    finally:
        await conn.close()

    m = await warehouses.membership(analytics)
    assert m is not None
    assert (m.schema_name, m.table_suffix) == ("analytics", None)
    assert m.tables_created_at is not None


async def test_onboard_is_write_once(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name=None)
    r = await onboard(client, tenant, tenant.env_id, {"schema_name": "space"})
    expect(r, 200)
    r = await onboard(client, tenant, tenant.env_id, {"schema_name": "space"})
    expect(r, 200)
    assert r.json() == {"onboarded": True, "schema_name": "space"}

    r = await onboard(client, tenant, tenant.env_id, {"schema_name": "elsewhere"})
    expect(r, 400)
    assert r.json()["detail"] == (
        "This environment already writes to the schema space, and its warehouse tables "
        "can't be changed"
    )
    # Switching layout is a change too.
    r = await client.post(
        tenant.env_url("enable_backfill"), json={"table_name": "space"}, headers=tenant.headers
    )
    expect(r, 400)
    assert "already writes to the schema space" in r.json()["detail"]


async def test_onboard_after_backfill_is_refused(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    # The environment that provisioned writes to events_main: it cannot move to a schema.
    await warehouses.ready(tenant, table_name="main")
    r = await onboard(client, tenant, tenant.env_id, {"schema_name": "main_schema"})
    expect(r, 400)
    assert r.json()["detail"] == (
        "This environment already writes to events_main, and its warehouse tables can't be changed"
    )
    assert r.json()["attr"] == "schema_name"
    m = await warehouses.membership(tenant.env_id)
    assert m is not None and m.schema_name is None


async def test_onboard_needs_a_warehouse(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await onboard(client, tenant, tenant.env_id, {"schema_name": "space"})
    expect(r, 400)
    assert r.json()["detail"] == (
        "No managed warehouse is provisioned for this organization. Provision one first."
    )


async def test_onboard_name_taken_or_reserved_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    env = await tenant.add_environment("other")
    r = await onboard(client, tenant, env, {"schema_name": "main"})
    expect(r, 409)
    assert r.json()["detail"] == (
        "The name 'main' is already used by another environment of this organization"
    )
    for reserved in ("public", "information_schema", "pg_space"):
        r = await onboard(client, tenant, env, {"schema_name": reserved})
        expect(r, 409)
        assert "reserved" in r.json()["detail"]
    assert await warehouses.membership(env) is None
    # Nothing was created for the refused names.
    admin = await warehouses.admin(wh.database_name)
    try:
        assert (
            await admin.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'events'") == 0
        )
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "schema_name is required"),
        ({"schema_name": "a" * 64}, "Schema name must be at most 63 characters"),
        ({"schema_name": "Analytics"}, SHAPE),
        ({"schema_name": "a-b"}, SHAPE),
    ],
)
async def test_onboard_validates_the_name(
    client: httpx.AsyncClient, tenant: Tenant, body: object, detail: str
) -> None:
    r = await onboard(client, tenant, tenant.env_id, body)
    expect(r, 400)
    assert (r.json()["detail"], r.json()["attr"]) == (detail, "schema_name")


async def test_sixty_three_character_schema_works(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name=None)
    name = "s" * 63
    r = await onboard(client, tenant, tenant.env_id, {"schema_name": name})
    expect(r, 200)
    conn = await wh.login()
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{name}".persons') == 0
    finally:
        await conn.close()


async def test_check_schema_name_available(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, warehouses: Warehouses
) -> None:
    # Without any warehouse the name is free.
    r = await check(client, tenant, "?name=space")
    expect(r, 200)
    assert r.json() == {"name": "space", "available": True}

    await warehouses.ready(tenant, table_name="main")
    analytics = await tenant.add_environment("analytics")
    r = await onboard(client, tenant, analytics, {"schema_name": "space"})
    expect(r, 200)
    for name in ("space", "main"):  # used as a schema / as a table suffix
        r = await check(client, tenant, f"?name={name}")
        assert r.json() == {"name": name, "available": False}
    r = await check(client, tenant, "?name=public")
    assert r.json()["available"] is False
    r = await check(client, tenant, "?name=fresh")
    assert r.json() == {"name": "fresh", "available": True}
    # Another organization's names do not matter.
    r = await check(client, other_tenant, "?name=space")
    assert r.json() == {"name": "space", "available": True}


async def test_check_schema_name_counts_memberships_without_warehouse(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.record(tenant, state="deleted", table_name="legacy")
    r = await check(client, tenant, "?name=legacy")
    assert r.json() == {"name": "legacy", "available": False}


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("", "schema_name is required"),
        ("?name=", "schema_name is required"),
        ("?name=" + "a" * 64, "Schema name must be at most 63 characters"),
        ("?name=9x", SHAPE),
        ("?name=x%22%3B%20DROP%20SCHEMA%20public", SHAPE),
    ],
)
async def test_check_schema_name_validation(
    client: httpx.AsyncClient, tenant: Tenant, query: str, detail: str
) -> None:
    r = await check(client, tenant, query)
    expect(r, 400)
    assert r.json()["type"] == "validation_error"
    assert r.json()["detail"] == detail
    assert r.json()["attr"] == "name"


async def test_project_prefix_without_slash(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get(
        f"/api/projects/{tenant.project_id}/data_warehouse/check-schema-name?name=abc",
        headers=tenant.headers,
    )
    expect(r, 200)
    assert r.json() == {"name": "abc", "available": True}


async def test_members_are_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    key = await tenant.add_user(level=1)
    headers = {"Authorization": f"Bearer {key}"}
    r = await client.post(
        tenant.env_url("onboard-team"), json={"schema_name": "x"}, headers=headers
    )
    expect(r, 403)
    assert r.json()["detail"] == (
        "Only organization admins can onboard this project for the managed warehouse"
    )
    r = await client.get(tenant.env_url("check-schema-name") + "?name=x", headers=headers)
    expect(r, 403)
    assert r.json()["detail"] == (
        "Only organization admins can check schema names for the managed warehouse"
    )


async def test_check_schema_name_scope(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client, scopes=["query:read"])
    r = await check(client, tenant, "?name=x")
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'warehouse_view:read'"
    reader = await create_tenant(client, scopes=["warehouse_view:read"])
    r = await check(client, reader, "?name=x")
    expect(r, 200)
    r = await onboard(client, reader, reader.env_id, {"schema_name": "x"})
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'warehouse_view:write'"
