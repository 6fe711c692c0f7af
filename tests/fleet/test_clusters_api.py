"""The internal cluster registry (API.md §8): register, list, read, update, remove — with the
admin DSN checked for real and never shown."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import update

from app.devtools.embedded import free_port
from app.models import WarehouseCluster
from app.services.fleet.backends import ClusterBackends
from app.settings import Settings, to_plain_dsn, with_database
from tests.fleet.conftest import FleetApp
from tests.support.harness import INTERNAL_HEADERS, create_tenant
from tests.support.lifecycle import new_name, provision
from tests.support.status_recorder import expect

FIELDS = {
    "name",
    "state",
    "public_host",
    "public_port",
    "max_warehouses",
    "warehouses",
    "healthy",
    "last_checked_at",
    "labels",
}


def refused(r: httpx.Response, detail: str) -> None:
    expect(r, 400)
    assert r.json() == {
        "type": "validation_error",
        "code": "invalid_input",
        "detail": detail,
        "attr": "admin_url",
    }


async def test_default_is_bootstrapped_from_the_configured_cluster(fleet_app: FleetApp) -> None:
    clusters = await fleet_app.clusters_by_name()
    default = clusters["default"]
    assert set(default) == FIELDS
    assert default["public_port"] == fleet_app.clusters[0].port
    assert default["public_host"] == fleet_app.settings.warehouse_public_host
    assert default["state"] == "active" and default["healthy"] is True
    assert default["max_warehouses"] == 500 and default["labels"] == {}
    assert default["warehouses"] == 0


async def test_register_read_update_remove(
    fleet_app: FleetApp, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c1, c2 = fleet_app.clusters[1], fleet_app.clusters[2]
    seen: list[httpx.Response] = []

    r = await fleet_app.register("east-one", c1, labels={"region": "eu"}, max_warehouses=3)
    seen.append(r)
    expect(r, 201)
    body = r.json()
    assert set(body) == FIELDS
    assert body["name"] == "east-one" and body["state"] == "active"
    assert body["public_port"] == c1.port and body["max_warehouses"] == 3
    assert body["labels"] == {"region": "eu"} and body["warehouses"] == 0
    assert body["healthy"] is True and body["last_checked_at"] is not None

    again = await fleet_app.register("east-one", c1, labels={"region": "eu"}, max_warehouses=3)
    seen.append(again)
    expect(again, 200)
    assert again.json() == body
    other = await fleet_app.register("east-one", c2)
    seen.append(other)
    expect(other, 409)
    assert other.json()["code"] == "conflict"

    r = await fleet_app.client.get("/internal/clusters/east-one", headers=INTERNAL_HEADERS)
    seen.append(r)
    expect(r, 200)
    assert r.json() == body
    listed = await fleet_app.client.get("/internal/clusters", headers=INTERNAL_HEADERS)
    seen.append(listed)
    names = [c["name"] for c in listed.json()["results"]]
    assert names == sorted(names) and {"default", "east-one"} <= set(names)

    r = await fleet_app.patch(
        "east-one", state="paused", max_warehouses=9, public_host="db.example.com", labels={}
    )
    seen.append(r)
    expect(r, 200)
    assert r.json()["state"] == "paused" and r.json()["max_warehouses"] == 9
    assert r.json()["public_host"] == "db.example.com" and r.json()["labels"] == {}
    r = await fleet_app.patch("east-one", state="active", public_port=c1.port + 0)
    expect(r, 200)
    assert r.json()["state"] == "active"
    for bad in ({"state": "draining"}, {"max_warehouses": 0}, {"admin_url": c2.admin_dsn}):
        r = await fleet_app.patch("east-one", **bad)
        expect(r, 400)
        assert r.json()["type"] == "validation_error"
    expect(await fleet_app.patch("nowhere", state="paused"), 404)
    # A draining cluster's state belongs to its drain.
    async with fleet_app.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(WarehouseCluster)
            .where(WarehouseCluster.name == "east-one")
            .values(state="draining")
        )
    r = await fleet_app.patch("east-one", state="active")
    expect(r, 409)
    assert r.json()["code"] == "conflict"
    r = await fleet_app.patch("east-one", max_warehouses=4)
    expect(r, 200)
    assert r.json()["state"] == "draining"
    async with fleet_app.app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(WarehouseCluster)
            .where(WarehouseCluster.name == "east-one")
            .values(state="drained")
        )
    r = await fleet_app.patch("east-one", state="active")
    expect(r, 200)
    assert r.json()["state"] == "active"

    r = await fleet_app.client.delete("/internal/clusters/east-one", headers=INTERNAL_HEADERS)
    expect(r, 204)
    assert r.content == b""
    r = await fleet_app.client.get("/internal/clusters/east-one", headers=INTERNAL_HEADERS)
    expect(r, 404)
    assert r.json()["code"] == "not_found"
    r = await fleet_app.client.delete("/internal/clusters/east-one", headers=INTERNAL_HEADERS)
    expect(r, 404)

    # The admin DSN (its password above all) is in no answer and no log line.
    for cluster in (c1, c2):
        for response in seen:
            assert cluster.admin_password not in response.text
        for record in caplog.records:
            assert cluster.admin_password not in record.getMessage()
            assert cluster.admin_password not in repr(vars(record))


async def test_registration_checks_the_admin_url_for_real(
    fleet_app: FleetApp, settings: Settings
) -> None:
    c1 = fleet_app.clusters[1]
    closed = f"postgresql://postgres:{c1.admin_password}@127.0.0.1:{free_port()}/postgres"
    r = await fleet_app.register("closed", c1, admin_url=closed)
    refused(r, "Could not connect to the cluster: connection refused")
    assert c1.admin_password not in r.text

    wrong = f"postgresql://postgres:not-the-password@127.0.0.1:{c1.port}/postgres"
    refused(
        await fleet_app.register("wrong", c1, admin_url=wrong),
        "Could not connect to the cluster: password authentication failed",
    )

    # A role that can log in but is no superuser (it may reach only its namesake database).
    plain = f"plain_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(c1.admin_dsn)
    try:
        await conn.execute(f"CREATE ROLE {plain} LOGIN PASSWORD 'plain-secret-pw'")
        await conn.execute(f"CREATE DATABASE {plain} OWNER {plain}")
    finally:
        await conn.close()
    try:
        url = f"postgresql://{plain}:plain-secret-pw@127.0.0.1:{c1.port}/{plain}"
        refused(
            await fleet_app.register("plain", c1, admin_url=url),
            "The cluster's admin role must be a superuser",
        )
    finally:
        conn = await asyncpg.connect(c1.admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE {plain}")
            await conn.execute(f"DROP ROLE {plain}")
        finally:
            await conn.close()

    # The machine's PostgreSQL trusts host logins: any password would do there.
    trusting = with_database(to_plain_dsn(settings.database_url), "postgres")
    refused(
        await fleet_app.register("trusting", c1, admin_url=trusting),
        "The cluster trusts host logins, so passwords would not be checked",
    )
    names = await fleet_app.clusters_by_name()
    assert not {"closed", "wrong", "plain", "trusting"} & set(names)


@pytest.mark.parametrize(
    ("change", "attr"),
    [
        ({"name": None}, "name"),
        ({"name": "Bad_Name"}, "name"),
        ({"name": "ab"}, "name"),
        ({"admin_url": None}, "admin_url"),
        ({"admin_url": "mysql://root@localhost/x"}, "admin_url"),
        ({"public_host": None}, "public_host"),
        ({"public_port": None}, "public_port"),
        ({"public_port": 70000}, "public_port"),
        ({"max_warehouses": 0}, "max_warehouses"),
        ({"labels": {"region": 1}}, "labels.region"),
        ({"labels": {"nested": {"a": "b"}}}, "labels.nested"),
    ],
)
async def test_register_validates_the_body(
    fleet_app: FleetApp, change: dict[str, Any], attr: str
) -> None:
    body = {
        "name": "valid-name",
        "admin_url": fleet_app.clusters[1].admin_dsn,
        "public_host": "127.0.0.1",
        "public_port": fleet_app.clusters[1].port,
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None}
    r = await fleet_app.client.post("/internal/clusters", json=body, headers=INTERNAL_HEADERS)
    expect(r, 400)
    assert r.json()["type"] == "validation_error" and r.json()["attr"] == attr, r.json()
    if attr == "admin_url" and "admin_url" in body:
        # Not a PostgreSQL URL: one of §8's refusal details, as for any URL it cannot use.
        assert r.json()["detail"] == "Could not connect to the cluster: invalid connection URL"


async def test_internal_token_required(fleet_app: FleetApp) -> None:
    for method, path in (
        ("GET", "/internal/clusters"),
        ("POST", "/internal/clusters"),
        ("GET", "/internal/clusters/default"),
        ("PATCH", "/internal/clusters/default"),
        ("DELETE", "/internal/clusters/default"),
        ("GET", f"/internal/warehouses/{uuid.uuid4()}"),
    ):
        r = await fleet_app.client.request(method, path)
        expect(r, 401)
    r = await fleet_app.client.get(f"/internal/warehouses/{uuid.uuid4()}", headers=INTERNAL_HEADERS)
    expect(r, 404)
    r = await fleet_app.client.get("/internal/warehouses/not-a-uuid", headers=INTERNAL_HEADERS)
    expect(r, 404)


async def test_placement_bootstraps_default_when_no_cluster_is_registered(
    fleet_app: FleetApp,
) -> None:
    for name in await fleet_app.clusters_by_name():
        r = await fleet_app.client.delete(f"/internal/clusters/{name}", headers=INTERNAL_HEADERS)
        expect(r, 204)
    assert await fleet_app.clusters_by_name() == {}
    tenant = await create_tenant(fleet_app.client)
    r = await provision(fleet_app.client, tenant, new_name())
    expect(r, 202)
    assert (await fleet_app.placement(tenant.org_id))["cluster"] == "default"
    default = (await fleet_app.clusters_by_name())["default"]
    assert default["public_port"] == fleet_app.clusters[0].port and default["warehouses"] == 1


async def test_admin_pools_are_per_cluster_and_closed_when_idle(fleet_app: FleetApp) -> None:
    c1, c2 = fleet_app.clusters[1], fleet_app.clusters[2]
    backends = ClusterBackends(fleet_app.settings, pool_max_size=1, idle_seconds=0.2)
    try:
        first = backends.for_dsn(c1.admin_dsn)
        assert backends.for_dsn(c1.admin_dsn) is first
        assert not await first.name_exists("no-such-name")
        assert first._pool is not None
        await asyncio.sleep(0.3)
        second = backends.for_dsn(c2.admin_dsn)  # sweeps the idle one
        assert second is not first and second.port == c2.port
        await asyncio.sleep(0.05)
        assert first._pool is None
        assert backends.for_dsn(c1.admin_dsn) is not first  # reopened lazily
    finally:
        await backends.close()
