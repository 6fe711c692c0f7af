"""Bad names, taken names and callers who may not act: clear 400/403/409, nothing half-made."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.pgcluster.scram import scram_verifier
from app.services.warehouse.names import WAREHOUSE_SHAPE_MESSAGE
from tests.support.lifecycle import Cluster, new_name, provision, run_burst_worker
from tests.support.status_recorder import expect

TABLE_SHAPE = (
    "Table name must use only lowercase letters, numbers, and underscores, "
    "and must not start with a number"
)


@pytest.fixture(scope="session")
def cluster(warehouse_cluster) -> Cluster:
    return Cluster(warehouse_cluster)


@pytest.mark.parametrize(
    ("body", "attr", "detail"),
    [
        ({}, "database_name", "database_name is required"),
        ({"database_name": "", "table_name": "t"}, "database_name", "database_name is required"),
        (
            {"database_name": "ab", "table_name": "t"},
            "database_name",
            "Warehouse name must be 3-63 characters",
        ),
        (
            {"database_name": "a" * 64, "table_name": "t"},
            "database_name",
            "Warehouse name must be 3-63 characters",
        ),
        (
            {"database_name": "a" * 5000, "table_name": "t"},
            "database_name",
            "Warehouse name must be 3-63 characters",
        ),
        ({"database_name": "Acme", "table_name": "t"}, "database_name", WAREHOUSE_SHAPE_MESSAGE),
        ({"database_name": "my_wh", "table_name": "t"}, "database_name", WAREHOUSE_SHAPE_MESSAGE),
        ({"database_name": "abc-", "table_name": "t"}, "database_name", WAREHOUSE_SHAPE_MESSAGE),
        ({"database_name": "9abc", "table_name": "t"}, "database_name", WAREHOUSE_SHAPE_MESSAGE),
        (
            {"database_name": '"; DROP DATABASE x; --', "table_name": "t"},
            "database_name",
            WAREHOUSE_SHAPE_MESSAGE,
        ),
        ({"database_name": "café-wh", "table_name": "t"}, "database_name", WAREHOUSE_SHAPE_MESSAGE),
        (
            {"database_name": "\uff57\uff48-full", "table_name": "t"},
            "database_name",
            WAREHOUSE_SHAPE_MESSAGE,
        ),
        ({"database_name": "good-name"}, "table_name", "table_name is required"),
        ({"database_name": "good-name", "table_name": "Bad-Name"}, "table_name", TABLE_SHAPE),
        ({"database_name": "good-name", "table_name": "x; drop"}, "table_name", TABLE_SHAPE),
        (
            {"database_name": "good-name", "table_name": "a" * 56},
            "table_name",
            "Table name must be at most 55 characters",
        ),
    ],
)
async def test_bad_names_answer_400_and_create_nothing(client, tenant, body, attr, detail):
    r = await client.post(tenant.env_url("provision"), json=body, headers=tenant.headers)
    expect(r, 400)
    assert r.json() == {
        "type": "validation_error",
        "code": r.json()["code"],
        "detail": detail,
        "attr": attr,
    }
    r = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
    expect(r, 404)


async def test_wrong_types_and_broken_json(client, tenant):
    r = await client.post(
        tenant.env_url("provision"),
        json={"database_name": 123, "table_name": "t"},
        headers=tenant.headers,
    )
    expect(r, 400)
    assert r.json()["attr"] == "database_name"
    bodies: list[Any] = [[], "acme", None, {"database_name": None}, {"database_name": ["acme"]}]
    for body in bodies:
        r = await client.post(tenant.env_url("provision"), json=body, headers=tenant.headers)
        expect(r, 400)
        assert r.json()["type"] == "validation_error"
    r = await client.post(
        tenant.env_url("provision"),
        content=b"{not json",
        headers={**tenant.headers, "content-type": "application/json"},
    )
    expect(r, 400)
    assert r.json()["code"] == "parse_error"


@pytest.mark.parametrize("name", ["postgres", "template1", "pgdata", "pg-warehouse"])
async def test_reserved_names_conflict(client, tenant, name):
    r = await provision(client, tenant, name)
    expect(r, 409)
    assert r.json()["detail"] == f"'{name}' is reserved by the warehouse cluster"
    r = await client.get(
        tenant.env_url("check-database-name") + f"?name={name}", headers=tenant.headers
    )
    assert r.json()["available"] is False


async def test_names_held_by_the_cluster_or_another_org(
    client, tenant, other_tenant, cluster, settings
):
    held = new_name("held")
    await cluster.execute(f'CREATE ROLE "{held}"')
    try:
        r = await client.get(
            tenant.env_url("check-database-name") + f"?name={held}", headers=tenant.headers
        )
        reason = f"A database or role named '{held}' already exists in the cluster"
        assert r.json() == {"name": held, "available": False, "reason": reason}
        r = await provision(client, tenant, held)
        expect(r, 409)
        assert r.json()["detail"] == reason
    finally:
        await cluster.execute(f'DROP ROLE "{held}"')

    name = new_name()
    expect(await provision(client, other_tenant, name), 202)
    r = await provision(client, tenant, name)
    expect(r, 409)
    assert r.json()["detail"] == f"The name '{name}' is already in use"
    r = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
    assert r.status_code == 404  # nothing was created for the loser
    await run_burst_worker(settings)
    r = await client.post(other_tenant.env_url("deprovision"), headers=other_tenant.headers)
    expect(r, 202)
    await run_burst_worker(settings)


async def test_table_names_are_write_once_and_unique_in_the_org(client, tenant, settings):
    second_env = await tenant.add_environment("staging")
    r = await client.post(
        f"/api/environments/{second_env}/data_warehouse/provision/",
        json={"database_name": new_name(), "table_name": "shared"},
        headers=tenant.headers,
    )
    expect(r, 202)
    await run_burst_worker(settings)
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)

    r = await provision(client, tenant, new_name(), "shared")  # the other environment's suffix
    expect(r, 409)
    assert "already used by another environment" in r.json()["detail"]

    r = await client.post(
        f"/api/environments/{second_env}/data_warehouse/provision/",
        json={"database_name": new_name(), "table_name": "other"},
        headers=tenant.headers,
    )
    expect(r, 400)
    assert r.json()["detail"] == (
        "This environment already writes to events_shared, and its warehouse tables "
        "can't be changed"
    )


ADMIN_ACTIONS = [
    ("post", "provision", "provision"),
    ("post", "reset-password", "reset the root password for"),
    ("post", "deprovision", "deprovision"),
    ("delete", "delete-org", "delete the provisioning record for"),
]


@pytest.mark.parametrize(("method", "action", "verb"), ADMIN_ACTIONS)
async def test_members_cannot_run_admin_actions(client, tenant, method, action, verb):
    member_key = await tenant.add_user(level=1, scopes=["*"])
    kwargs = (
        {"json": {"database_name": new_name(), "table_name": "t"}} if action == "provision" else {}
    )
    r = await getattr(client, method)(
        tenant.env_url(action), headers={"Authorization": f"Bearer {member_key}"}, **kwargs
    )
    expect(r, 403)
    assert r.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": f"Only organization admins can {verb} the managed warehouse",
        "attr": None,
    }


async def test_scopes_are_checked_before_admin_and_members_can_read(client, tenant):
    read_key = await tenant.add_key(tenant.user_id, ["warehouse_view:read"])
    r = await provision(client, tenant, new_name(), headers={"Authorization": f"Bearer {read_key}"})
    expect(r, 403)
    assert r.json()["detail"] == "API key missing required scope 'warehouse_view:write'"
    member_key = await tenant.add_user(level=1, scopes=["warehouse_view:read"])
    r = await client.get(
        tenant.env_url("warehouse_status"), headers={"Authorization": f"Bearer {member_key}"}
    )
    expect(r, 404)
    assert r.json()["detail"] == "No managed warehouse exists for this organization"


async def test_scram_verifier_matches_postgres(cluster):
    """Our verifier for a password equals the one PostgreSQL computes with the same salt."""
    role = new_name("scram")
    await cluster.execute(f"CREATE ROLE \"{role}\" PASSWORD 'correct horse battery staple'")
    try:
        stored = await cluster.rolpassword(role)
        assert stored is not None

        iterations, salt = stored.split("$")[1].split(":")
        mine = scram_verifier(
            "correct horse battery staple", salt=base64.b64decode(salt), iterations=int(iterations)
        )
        assert mine == stored
    finally:
        await cluster.execute(f'DROP ROLE "{role}"')
