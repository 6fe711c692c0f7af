"""POST /internal/environments/{team_id}/warehouse/rows (API.md §6)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.harness import INTERNAL_HEADERS, Tenant
from tests.support.status_recorder import expect
from tests.support.warehouses import Warehouses


def event(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "event": "pageview",
        "distinct_id": "user-1",
        "properties": {"plan": "pro"},
        "timestamp": "2026-11-26T10:00:00+01:00",
    }
    row.update(overrides)
    return row


def person(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "distinct_ids": ["a", "b"],
        "properties": {"email": "a@example.com"},
        "created_at": "2026-11-26T10:00:00Z",
    }
    row.update(overrides)
    return row


async def push(
    client: httpx.AsyncClient, team_id: int, table: str, rows: list[Any]
) -> httpx.Response:
    return await client.post(
        f"/internal/environments/{team_id}/warehouse/rows",
        json={"table": table, "rows": rows},
        headers=INTERNAL_HEADERS,
    )


async def test_rows_pushed_twice_are_stored_once(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    rows = [event(), event(event="signup"), event()]
    rows.append(dict(rows[0]))  # a duplicate inside the batch

    r = await push(client, tenant.env_id, "events", rows)
    expect(r, 200)
    assert r.json() == {"inserted": 3}
    r = await push(client, tenant.env_id, "events", [*rows, event(event="new")])
    assert r.json() == {"inserted": 1}

    conn = await wh.login()
    try:
        stored = await conn.fetch(
            "SELECT event, distinct_id, properties->>'plan' AS plan, timestamp "
            "FROM events_main ORDER BY event"
        )
    finally:
        await conn.close()
    assert [s["event"] for s in stored] == ["new", "pageview", "pageview", "signup"]
    assert {s["plan"] for s in stored} == {"pro"}
    assert stored[0]["timestamp"].isoformat() == "2026-11-26T09:00:00+00:00"


async def test_persons_and_the_schema_layout(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name=None)
    r = await client.post(
        tenant.env_url("onboard-team"), json={"schema_name": "crm"}, headers=tenant.headers
    )
    expect(r, 200)
    p = person(properties={})
    r = await push(client, tenant.env_id, "persons", [p, person(distinct_ids=[]), p])
    assert r.json() == {"inserted": 2}
    conn = await wh.login()
    try:
        ids = await conn.fetchval(
            "SELECT distinct_ids FROM crm.persons WHERE id = $1", uuid.UUID(p["id"])
        )
        assert ids == ["a", "b"]
        assert await conn.fetchval("SELECT count(*) FROM crm.persons") == 2
    finally:
        await conn.close()


async def test_unknown_environment_answers_404(client: httpx.AsyncClient) -> None:
    r = await push(client, 987654321, "events", [event()])
    expect(r, 404)
    assert r.json()["code"] == "not_found"


async def test_no_membership_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    await warehouses.ready(tenant, table_name=None)
    r = await push(client, tenant.env_id, "events", [event()])
    expect(r, 409)
    assert "no warehouse backfill or onboarding yet" in r.json()["detail"]


@pytest.mark.parametrize("state", ["pending", "provisioning", "failed", "deleting", "deleted"])
async def test_not_ready_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses, state: str
) -> None:
    await warehouses.record(tenant, state=state, table_name="main")
    r = await push(client, tenant.env_id, "events", [event()])
    expect(r, 409)
    assert r.json()["detail"] == (
        f"The environment's warehouse tables do not exist yet: the managed warehouse is {state}"
    )


async def test_membership_that_missed_the_worker_gets_its_tables_on_first_push(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    # enable_backfill ran while the worker was finishing: membership without tables.
    wh = await warehouses.ready(tenant, table_name="main")
    late = await tenant.add_environment("late")
    await warehouses.set_state(tenant, "provisioning")
    r = await client.post(
        f"/api/environments/{late}/data_warehouse/enable_backfill/",
        json={"table_name": "late"},
        headers=tenant.headers,
    )
    expect(r, 200)
    await warehouses.set_state(tenant, "ready")

    r = await push(client, late, "events", [event()])
    expect(r, 200)
    assert r.json() == {"inserted": 1}
    conn = await wh.login()
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_late") == 1
    finally:
        await conn.close()


async def test_dropped_tables_are_recreated(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    conn = await wh.login()
    try:
        await conn.execute("DROP TABLE events_main")
    finally:
        await conn.close()
    r = await push(client, tenant.env_id, "events", [event()])
    assert r.json() == {"inserted": 1}


@pytest.mark.parametrize(
    ("table", "rows", "attr"),
    [
        ("events", [event(), event(timestamp="2026-11-26T10:00:00")], "rows.1.timestamp"),
        ("events", [event(uuid="nope")], "rows.0.uuid"),
        ("events", [{k: v for k, v in event().items() if k != "event"}], "rows.0.event"),
        ("events", [event(event="")], "rows.0.event"),
        ("events", [event(extra=1)], "rows.0.extra"),
        ("events", [event(distinct_id="a\x00b")], "rows.0.distinct_id"),
        ("events", [event(properties={"x": "a\x00"})], "rows.0.properties.x"),
        ("events", [event(properties=[1, 2])], "rows.0.properties"),
        ("events", ["not an object"], "rows.0"),
        ("persons", [person(distinct_ids="a")], "rows.0.distinct_ids"),
        ("persons", [person(created_at="yesterday")], "rows.0.created_at"),
        ("persons", [event()], "rows.0.id"),
        ("sessions", [event()], "table"),
        ("events", [event() for _ in range(1001)], "rows"),
    ],
)
async def test_bad_rows_answer_400(
    client: httpx.AsyncClient, tenant: Tenant, table: str, rows: list[Any], attr: str
) -> None:
    # Rows are validated before the environment's warehouse is looked at (400 before 409).
    r = await push(client, tenant.env_id, table, rows)
    expect(r, 400)
    assert r.json()["type"] == "validation_error"
    assert r.json()["attr"] == attr


async def test_one_bad_row_stores_nothing(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    r = await push(client, tenant.env_id, "events", [event(), event(timestamp="soon")])
    expect(r, 400)
    assert r.json()["detail"].startswith("rows.1.timestamp: ")
    conn = await wh.login()
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
    finally:
        await conn.close()


async def test_nan_in_properties_answers_400(client: httpx.AsyncClient, tenant: Tenant) -> None:
    body = (
        '{"table": "events", "rows": [{"uuid": "UUID", "event": "e", "distinct_id": "d", '
        '"properties": {"x": NaN}, "timestamp": "2026-01-01T00:00:00Z"}]}'
    ).replace("UUID", str(uuid.uuid4()))
    r = await client.post(
        f"/internal/environments/{tenant.env_id}/warehouse/rows",
        content=body,
        headers={**INTERNAL_HEADERS, "Content-Type": "application/json"},
    )
    expect(r, 400)
    # NaN is not JSON (RFC 8259): the body is malformed (API.md §10, app/pipeline/body_limits.py).
    assert r.json()["code"] == "parse_error"


async def test_needs_the_internal_token(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(
        f"/internal/environments/{tenant.env_id}/warehouse/rows",
        json={"table": "events", "rows": []},
        headers=tenant.headers,
    )
    expect(r, 401)


async def test_documented_as_internal(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    op = spec["paths"]["/internal/environments/{team_id}/warehouse/rows"]["post"]
    assert op["tags"] == ["internal"]
    assert {"200", "400", "401", "404", "409"} <= set(op["responses"])


async def test_ready_record_without_database_answers_409(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    # The record still says ready while teardown has already dropped the database.
    await warehouses.record(tenant, state="ready", table_name="main", tables_created=True)
    r = await push(client, tenant.env_id, "events", [event()])
    expect(r, 409)
    assert "does not exist" in r.json()["detail"]
    r = await client.get(
        tenant.env_url("property_values"),
        params={"table_name": "events_main", "key": "event"},
        headers=tenant.headers,
    )
    expect(r, 404)
    staging = await tenant.add_environment("staging")
    r = await client.post(
        f"/api/environments/{staging}/data_warehouse/enable_backfill/",
        json={"table_name": "staging"},
        headers=tenant.headers,
    )
    expect(r, 409)
    assert await warehouses.membership(staging) is None


@pytest.mark.parametrize("team_id", ["abc", "0", str(2**63)])
async def test_bad_environment_ids_answer_400(client: httpx.AsyncClient, team_id: str) -> None:
    r = await client.post(
        f"/internal/environments/{team_id}/warehouse/rows",
        json={"table": "events", "rows": []},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 400)
    assert r.json()["attr"] == "team_id"


async def test_concurrent_batches_sharing_rows_store_each_once_and_count_exactly(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    # Batches arrive at once and share rows, in different orders (a retry racing the
    # original, two producers sending the same events): each row is stored once, and the
    # `inserted` answers add up to exactly the rows stored.
    wh = await warehouses.ready(tenant, table_name="main")
    stored = 0
    for _ in range(3):
        shared = [event(distinct_id=f"shared-{i}") for i in range(200)]
        batches = [
            [*shared, *(event() for _ in range(100))],
            [*reversed(shared), *(event() for _ in range(100))],
            [*(event() for _ in range(100)), *shared[50:], *shared[:50]],
            [*shared[::2], *(event() for _ in range(100)), *shared[1::2], shared[0]],
        ]
        answers = await asyncio.gather(*(push(client, tenant.env_id, "events", b) for b in batches))
        for r in answers:
            expect(r, 200)
        inserted = sum(r.json()["inserted"] for r in answers)
        assert inserted == 200 + 4 * 100
        stored += inserted
    conn = await wh.login()
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == stored
        assert await conn.fetchval("SELECT count(DISTINCT uuid) FROM events_main") == stored
    finally:
        await conn.close()


async def test_properties_are_stored_as_sent(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    properties = {
        "missing": None,
        "big": 2**70,
        "negative_big": -(2**64),
        "small": 1.5e-7,
        "large": 1e22,
        "exact": 0.1,
        "flag": True,
        "text": "naïve ☃ \\u0041 \U0001f600",
        "nested": {"list": [1, "two", None, {"three": 3.0}], "empty": {}},
    }
    rows = [event(properties=properties), event(properties={"plain": "pro"})]
    r = await push(client, tenant.env_id, "events", rows)
    assert r.json() == {"inserted": 2}
    conn = await wh.login()
    try:
        got = await conn.fetchval(
            "SELECT properties::text FROM events_main WHERE uuid = $1", uuid.UUID(rows[0]["uuid"])
        )
        expected = await conn.fetchval("SELECT $1::jsonb::text", json.dumps(properties))
    finally:
        await conn.close()
    assert got == expected
    assert json.loads(got)["big"] == 2**70


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # Forms `datetime.fromisoformat` takes and the row models refuse.
        ("timestamp", "2026-11-26T10:00:00+01"),
        ("timestamp", "2026-11-26T10:00:00,5+01"),
        ("timestamp", "2026-11-26T10:00:00+00:60"),
        ("timestamp", "2026-11-26T100000Z"),
        ("timestamp", "2026-11-26 10:00:00+01:00:30"),
        ("timestamp", "2026-11-26T10:00:00Z\n2026-11-26T10:00:00Z"),
        # Hyphens elsewhere than 8-4-4-4-12, which `uuid.UUID` and asyncpg skip.
        ("uuid", "0000000-00000-0000-0000-000000000000"),
        ("uuid", "00000000-0000-0000-0000-000000000000\n00000000-0000-0000-0000-000000000001"),
    ],
)
async def test_shapes_the_row_models_refuse_answer_400(
    client: httpx.AsyncClient, tenant: Tenant, warehouses: Warehouses, field: str, value: str
) -> None:
    wh = await warehouses.ready(tenant, table_name="main")
    r = await push(client, tenant.env_id, "events", [event(), event(**{field: value})])
    expect(r, 400)
    assert r.json()["attr"] == f"rows.1.{field}"
    conn = await wh.login()
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
    finally:
        await conn.close()
