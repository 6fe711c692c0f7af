"""enable_backfill (API.md §4.2): rules, messages, real tables in the warehouse."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.harness import Tenant, create_tenant
from tests.support.status_recorder import expect
from tests.support.warehouses import Warehouses

NO_WAREHOUSE = "No managed warehouse is provisioned for this organization. Provision one first."


async def enable(
    client: httpx.AsyncClient, tenant: Tenant, env_id: int, body: object
) -> httpx.Response:
    return await client.post(
        f"/api/environments/{env_id}/data_warehouse/enable_backfill/",
        json=body,
        headers=tenant.headers,
    )


async def table_columns(
    warehouses: Warehouses, database: str, schema: str, table: str
) -> dict[str, str]:
    conn = await warehouses.admin(database)
    try:
        rows = await conn.fetch(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull "
            "FROM information_schema.columns c JOIN pg_attribute a "
            "ON a.attrelid = format('%I.%I', c.table_schema, c.table_name)::regclass "
            "AND a.attname = c.column_name "
            "WHERE table_schema = $1 AND table_name = $2",
            schema,
            table,
        )
        return {
            r["column_name"]: r["type"] + (" not null" if r["attnotnull"] else "") for r in rows
        }
    finally:
        await conn.close()


async def table_owner(warehouses: Warehouses, database: str, schema: str, table: str) -> str | None:
    conn = await warehouses.admin(database)
    try:
        owner: str | None = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
            schema,
            table,
        )
        return owner
    finally:
        await conn.close()


EVENTS_COLUMNS = {
    "uuid": "uuid not null",
    "event": "text not null",
    "distinct_id": "text not null",
    "properties": "jsonb not null",
    "timestamp": "timestamp with time zone not null",
}
PERSONS_COLUMNS = {
    "id": "uuid not null",
    "distinct_ids": "text[] not null",
    "properties": "jsonb not null",
    "created_at": "timestamp with time zone not null",
}


async def test_without_a_warehouse_answers_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await enable(client, tenant, tenant.env_id, {"table_name": "web"})
    expect(r, 400)
    assert r.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": NO_WAREHOUSE,
        "attr": None,
    }


async def test_deleted_warehouse_counts_as_none(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.record(tenant, state="deleted", table_name=None)
    r = await enable(client, tenant, tenant.env_id, {"table_name": "web"})
    expect(r, 400)
    assert r.json()["detail"] == NO_WAREHOUSE


async def test_deleting_warehouse_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.record(tenant, state="deleting", table_name=None)
    r = await enable(client, tenant, tenant.env_id, {"table_name": "web"})
    expect(r, 409)
    assert "being deleted" in r.json()["detail"]
    assert await warehouses.membership(tenant.env_id) is None


@pytest.mark.parametrize(
    ("body", "detail", "attr"),
    [
        ({}, "table_name is required", "table_name"),
        ({"table_name": ""}, "table_name is required", "table_name"),
        ({"table_name": "a" * 56}, "Table name must be at most 55 characters", "table_name"),
        (
            {"table_name": "9lives"},
            "Table name must use only lowercase letters, numbers, and underscores, "
            "and must not start with a number",
            "table_name",
        ),
        (
            {"table_name": 'x"; DROP TABLE y; --'},
            "Table name must use only lowercase letters, numbers, and underscores, "
            "and must not start with a number",
            "table_name",
        ),
    ],
)
async def test_invalid_names_answer_400(
    client: httpx.AsyncClient, tenant: Tenant, body: object, detail: str, attr: str
) -> None:
    r = await enable(client, tenant, tenant.env_id, body)
    expect(r, 400)
    assert r.json()["detail"] == detail
    assert r.json()["attr"] == attr


async def test_missing_body_names_the_field(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(tenant.env_url("enable_backfill"), headers=tenant.headers)
    expect(r, 400)
    assert (r.json()["detail"], r.json()["attr"]) == ("table_name is required", "table_name")
    r = await client.post(tenant.env_url("onboard-team"), headers=tenant.headers)
    assert (r.json()["detail"], r.json()["attr"]) == ("schema_name is required", "schema_name")
    r = await enable(client, tenant, tenant.env_id, {"table_name": 5})
    expect(r, 400)
    assert r.json()["attr"] == "table_name"


async def test_non_json_body_answers_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(
        tenant.env_url("enable_backfill"),
        content=b"{not json",
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    expect(r, 400)
    assert r.json()["code"] == "parse_error"


async def test_creates_tables_owned_by_the_login_role(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    staging = await tenant.add_environment("staging")

    r = await enable(client, tenant, staging, {"table_name": "staging_web"})
    expect(r, 200)
    assert r.json() == {"enabled": True, "table_suffix": "staging_web"}

    db = wh.database_name
    assert await table_columns(warehouses, db, "public", "events_staging_web") == EVENTS_COLUMNS
    assert await table_columns(warehouses, db, "public", "persons_staging_web") == PERSONS_COLUMNS
    assert await table_owner(warehouses, db, "public", "events_staging_web") == wh.login_role
    assert await table_owner(warehouses, db, "public", "persons_staging_web") == wh.login_role

    # The login role, with its password, can write and read them; defaults apply.
    conn = await wh.login()
    try:
        event_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO events_staging_web (uuid, event, distinct_id, timestamp) "
            "VALUES ($1, 'signup', 'u1', now())",
            event_id,
        )
        row = await conn.fetchrow("SELECT event, properties FROM events_staging_web")
        assert (row["event"], row["properties"]) == ("signup", "{}")
        await conn.execute(
            "INSERT INTO persons_staging_web (id, distinct_ids, created_at) "
            "VALUES ($1, ARRAY['u1','u2'], now())",
            uuid.uuid4(),
        )
        assert await conn.fetchval("SELECT distinct_ids FROM persons_staging_web") == ["u1", "u2"]
    finally:
        await conn.close()

    m = await warehouses.membership(staging)
    assert m is not None and m.table_suffix == "staging_web" and m.tables_created_at is not None


async def test_project_prefix_acts_on_primary_environment(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name=None)
    r = await client.post(
        tenant.project_url("enable_backfill").rstrip("/"),
        json={"table_name": "prod"},
        headers=tenant.headers,
    )
    expect(r, 200)
    m = await warehouses.membership(tenant.env_id)
    assert m is not None and m.table_suffix == "prod"


async def test_write_once_per_environment(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name="main")
    # provision recorded `main` for the primary environment: repeating it is idempotent.
    r = await enable(client, tenant, tenant.env_id, {"table_name": "main"})
    expect(r, 200)
    assert r.json() == {"enabled": True, "table_suffix": "main"}

    r = await enable(client, tenant, tenant.env_id, {"table_name": "other"})
    expect(r, 400)
    assert r.json()["detail"] == (
        "This environment already writes to events_main, and its warehouse tables can't be changed"
    )
    assert r.json()["attr"] == "table_name"
    m = await warehouses.membership(tenant.env_id)
    assert m is not None and m.table_suffix == "main"


async def test_name_of_another_environment_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name="main")
    staging = await tenant.add_environment("staging")
    dev = await tenant.add_environment("dev")

    r = await enable(client, tenant, staging, {"table_name": "main"})
    expect(r, 409)
    assert r.json()["code"] == "conflict"
    assert r.json()["detail"] == (
        "The name 'main' is already used by another environment of this organization"
    )

    # A name another environment uses as its schema is taken too.
    r = await client.post(
        f"/api/environments/{dev}/data_warehouse/onboard-team/",
        json={"schema_name": "dev_space"},
        headers=tenant.headers,
    )
    expect(r, 200)
    r = await enable(client, tenant, staging, {"table_name": "dev_space"})
    expect(r, 409)
    assert await warehouses.membership(staging) is None


async def test_names_are_per_organization(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name="main")
    await warehouses.ready(other_tenant, table_name=None)
    r = await enable(client, other_tenant, other_tenant.env_id, {"table_name": "main"})
    expect(r, 200)


async def test_before_ready_records_membership_without_tables(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.record(tenant, state="provisioning", table_name="main")
    staging = await tenant.add_environment("staging")
    r = await enable(client, tenant, staging, {"table_name": "staging"})
    expect(r, 200)
    m = await warehouses.membership(staging)
    assert m is not None and m.table_suffix == "staging" and m.tables_created_at is None


async def test_concurrent_claims_of_one_name_one_wins(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name="main")
    envs = [await tenant.add_environment(f"env{i}") for i in range(4)]
    responses = await asyncio.gather(
        *(enable(client, tenant, env, {"table_name": "shared"}) for env in envs)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409, 409], [r.text for r in responses]
    owners = [env for env in envs if await warehouses.membership(env) is not None]
    assert len(owners) == 1


async def test_concurrent_different_names_for_one_environment(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name=None)
    responses = await asyncio.gather(
        *(enable(client, tenant, tenant.env_id, {"table_name": f"n{i}"}) for i in range(3))
    )
    assert sorted(r.status_code for r in responses) == [200, 400, 400]


async def test_member_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    key = await tenant.add_user(level=1)
    r = await client.post(
        tenant.env_url("enable_backfill"),
        json={"table_name": "web"},
        headers={"Authorization": f"Bearer {key}"},
    )
    expect(r, 403)
    assert r.json()["detail"] == (
        "Only organization admins can enable backfill for the managed warehouse"
    )


async def test_read_scope_is_not_enough(client: httpx.AsyncClient) -> None:
    tenant = await create_tenant(client, scopes=["warehouse_view:read"])
    r = await enable(client, tenant, tenant.env_id, {"table_name": "web"})
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'warehouse_view:write'"
