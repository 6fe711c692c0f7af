"""Moving a warehouse between two real password-checking clusters (API.md §8 Move)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from app.models import AuditLog, WebhookEvent
from tests.fleet.conftest import DEFAULT, B, C, Fleet, new_name
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.lifecycle import run_burst_worker, status
from tests.support.status_recorder import expect


async def provision_on(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, cluster: str, rows: int = 300
) -> tuple[Tenant, str, str]:
    """A ready warehouse on `cluster` holding `rows` events and a table of the customer's own."""
    await fleet.only(cluster)
    tenant = await create_tenant(client)
    name = new_name()
    r = await client.post(
        tenant.env_url("provision"),
        json={"database_name": name, "table_name": "main"},
        headers=tenant.headers,
    )
    expect(r, 202)
    password = r.json()["password"]
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    assert (await fleet.where(tenant.org_id))["cluster"] == cluster
    conn = await fleet.login(cluster, name, password)
    try:
        await conn.execute(
            "INSERT INTO events_main SELECT gen_random_uuid(), 'pageview', 'u' || i, '{}', now()"
            " FROM generate_series(1, $1::int) i",
            rows,
        )
        await conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes (body) VALUES ('kept'), ('also kept')")
    finally:
        await conn.close()
    return tenant, name, password


async def move(client: httpx.AsyncClient, org_id: str, cluster: str) -> httpx.Response:
    return await client.post(
        f"/internal/warehouses/{org_id}/move", json={"cluster": cluster}, headers=INTERNAL_HEADERS
    )


async def operation(client: httpx.AsyncClient, tenant: Tenant, op_id: str) -> dict[str, Any]:
    r = await client.get(tenant.env_url(f"operations/{op_id}"), headers=tenant.headers)
    expect(r, 200)
    body: dict[str, Any] = r.json()
    return body


async def test_a_moved_warehouse_keeps_its_password_and_rows(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, app: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT)
    await fleet.only(DEFAULT, B)
    hook = await client.post(
        "/internal/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["warehouse.migrated"]},
        headers=INTERNAL_HEADERS,
    )
    expect(hook, 201)
    r = await move(client, tenant.org_id, B)
    expect(r, 202)
    assert list(r.json()) == ["operation_id"]
    op_id = r.json()["operation_id"]

    body = await status(client, tenant)
    assert body["state"] == "migrating"
    assert body["connection"] is None
    assert {body[k] for k in ("s3_state", "metadata_store_state", "identity_state")} == {"ready"}
    for action in ("reset-password", "deprovision"):
        refused = await client.post(tenant.env_url(action), headers=tenant.headers)
        expect(refused, 409)
        assert refused.json()["detail"].endswith(f"(operation {op_id} is running)")
    assert (await operation(client, tenant, op_id))["status"] == "running"

    await run_burst_worker(settings)

    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert body["connection"]["port"] == fleet.clusters[B].port
    assert (await fleet.where(tenant.org_id))["cluster"] == B
    done = await operation(client, tenant, op_id)
    assert done["action"] == "move" and done["status"] == "succeeded", done
    assert done["error"] is None and done["finished_at"] is not None

    conn = await fleet.login(B, name, password)  # the same password, on the target
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 300
        assert await conn.fetchval("SELECT string_agg(body, ',' ORDER BY id) FROM notes") == (
            "kept,also kept"
        )
        await conn.execute("INSERT INTO notes (body) VALUES ('written after the move')")
    finally:
        await conn.close()
    assert await fleet.holds(DEFAULT, name) == (False, False)
    assert await fleet.holds(B, name) == (True, True)

    async with app.state.sessionmaker() as session:
        trail = (
            await session.execute(
                select(AuditLog.from_state, AuditLog.to_state)
                .where(AuditLog.organization_id == uuid.UUID(tenant.org_id))
                .order_by(AuditLog.id)
            )
        ).all()
    assert [tuple(t) for t in trail][-2:] == [("ready", "migrating"), ("migrating", "ready")]
    async with app.state.sessionmaker() as session:
        events = (
            await session.scalars(
                select(WebhookEvent).where(
                    WebhookEvent.type == "warehouse.migrated",
                    WebhookEvent.payload["data"]["org_id"].astext == tenant.org_id,
                )
            )
        ).all()
    assert [e.payload["data"] for e in events] == [
        {"org_id": tenant.org_id, "operation_id": op_id, "state": "ready", "cluster": B}
    ]
    deleted = await client.delete(
        f"/internal/webhooks/{hook.json()['id']}", headers=INTERNAL_HEADERS
    )
    expect(deleted, 204)

    # reset-password acts on the warehouse's new cluster.
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 200)
    conn = await fleet.login(B, name, r.json()["password"])
    await conn.close()

    logged = caplog.text
    for secret in (password, r.json()["password"], fleet.clusters[B].admin_password):
        assert secret not in logged
    await fleet.drop_everywhere(name)


async def test_move_answers_404_before_409(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, warehouses: Any
) -> None:
    ready_tenant, name, _ = await provision_on(client, fleet, settings, DEFAULT, rows=1)
    await fleet.only(DEFAULT, B)
    unknown_org = str(uuid.uuid4())
    expect(await move(client, unknown_org, B), 404)
    expect(await move(client, "not-a-uuid", B), 404)
    empty = await create_tenant(client)
    expect(await move(client, empty.org_id, B), 404)
    r = await move(client, ready_tenant.org_id, "no-such-cluster")
    expect(r, 404)
    assert r.json()["type"] == "invalid_request", r.text

    pending = await create_tenant(client)
    await warehouses.record(pending, state="provisioning")
    expect(await move(client, pending.org_id, "no-such-cluster"), 404)
    r = await move(client, pending.org_id, B)
    expect(r, 409)
    assert "ready" in r.json()["detail"], r.text

    r = await move(client, ready_tenant.org_id, DEFAULT)
    expect(r, 409)
    assert "already" in r.json()["detail"], r.text
    await fleet.patch(C, state="paused")
    expect(await move(client, ready_tenant.org_id, C), 409)
    await fleet.patch(C, state="active")
    await fleet.set_healthy(C, False)  # as the worker's health check records it
    try:
        r = await move(client, ready_tenant.org_id, C)
        expect(r, 409)
        assert "not healthy" in r.json()["detail"], r.text
    finally:
        await fleet.set_healthy(C, True)
    await fleet.patch(C, state="paused")
    taken = await fleet.admin(B)
    try:
        await taken.execute(f'CREATE DATABASE "{name}"')
        expect(await move(client, ready_tenant.org_id, B), 409)
    finally:
        await taken.execute(f'DROP DATABASE "{name}"')
        await taken.close()
    full = (await fleet.get(B))["warehouses"]
    await fleet.patch(B, max_warehouses=max(full, 1))
    if full >= 1:
        expect(await move(client, ready_tenant.org_id, B), 409)
    await fleet.patch(B, max_warehouses=500)

    r = await client.post(
        f"/internal/warehouses/{ready_tenant.org_id}/move", json={}, headers=INTERNAL_HEADERS
    )
    expect(r, 400)
    assert r.json()["attr"] == "cluster", r.text
    r = await client.post(f"/internal/warehouses/{ready_tenant.org_id}/move", json={"cluster": B})
    expect(r, 401)
    assert (await status(client, ready_tenant))["state"] == "ready"  # nothing was started
    await fleet.drop_everywhere(name)


async def test_a_name_no_cluster_can_have_is_an_unknown_cluster_404(
    client: httpx.AsyncClient, warehouses: Any
) -> None:
    """API.md §8: an unknown cluster → 404, whatever the name's length (not a 400)."""
    unknown = "No warehouse cluster with this name is registered"
    pending = await create_tenant(client)
    await warehouses.record(pending, state="provisioning")
    for name in ("x" * 64, "y" * 300, "Not_A_Name"):
        r = await move(client, pending.org_id, name)
        expect(r, 404)
        assert r.json() == {
            "type": "invalid_request",
            "code": "not_found",
            "detail": unknown,
            "attr": None,
        }, r.text
        for method in ("GET", "PATCH", "DELETE"):
            body: dict[str, Any] | None = {} if method == "PATCH" else None
            r = await client.request(
                method, f"/internal/clusters/{name}", headers=INTERNAL_HEADERS, json=body
            )
            expect(r, 404)
            assert r.json()["detail"] == unknown, (method, r.text)
        r = await client.post(f"/internal/clusters/{name}/drain", headers=INTERNAL_HEADERS)
        expect(r, 404)
        assert r.json()["detail"] == unknown, r.text


async def test_a_move_that_fails_leaves_the_warehouse_on_its_source(
    client: httpx.AsyncClient,
    fleet: Fleet,
    settings: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.pgcluster import binaries

    tenant, name, password = await provision_on(client, fleet, settings, DEFAULT, rows=50)
    await fleet.only(DEFAULT, B)
    # A pg_restore of the right version that always fails: the copy step gives up.
    fake = tmp_path / "bin"
    fake.mkdir()
    major = await _target_major(fleet)
    (fake / "pg_restore").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "pg_restore (PostgreSQL) {major}.0"; exit 0; fi\n'
        "cat >/dev/null; echo 'simulated failure' >&2; exit 1\n"
    )
    (fake / "pg_restore").chmod(0o755)
    monkeypatch.setenv("PG_BIN_DIR", str(fake))
    binaries.clear_cache()
    try:
        r = await move(client, tenant.org_id, B)
        expect(r, 202)
        await run_burst_worker(settings, within=120)
    finally:
        binaries.clear_cache()

    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert body["connection"]["port"] == fleet.clusters[DEFAULT].port
    done = await operation(client, tenant, r.json()["operation_id"])
    assert done["status"] == "failed"
    assert done["error"] == "Move failed at step 'copy': pg_restore exited with status 1"
    assert await fleet.holds(B, name) == (False, False)  # nothing of it on the target
    conn = await fleet.login(DEFAULT, name, password)  # logins restored on the source
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_main") == 50
    finally:
        await conn.close()
    await fleet.drop_everywhere(name)


async def _target_major(fleet: Fleet) -> int:
    conn = await fleet.admin(B)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


async def test_a_target_that_does_not_answer_is_503(
    client: httpx.AsyncClient, fleet: Fleet, settings: Any, app: Any
) -> None:
    from sqlalchemy.dialects.postgresql import insert

    from app.devtools.embedded import free_port
    from app.models import WarehouseCluster
    from app.services.fleet.bootstrap import admin_url_box

    tenant, name, _ = await provision_on(client, fleet, settings, DEFAULT, rows=1)
    # Registered while it answered, gone since; no health check has noticed yet.
    dead = f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/postgres"
    async with app.state.sessionmaker() as session:
        await session.execute(
            insert(WarehouseCluster)
            .values(
                name="fleet-gone",
                admin_url_ciphertext=admin_url_box(settings).encrypt(dead.encode()),
                public_host="127.0.0.1",
                public_port=1,
                labels={},
            )
            .on_conflict_do_nothing()
        )
        await session.commit()
    try:
        r = await move(client, tenant.org_id, "fleet-gone")
        expect(r, 503)
        assert r.json()["type"] == "server_error"
        assert "secret-pw" not in r.text and "postgresql://" not in r.text
        assert (await status(client, tenant))["state"] == "ready"
    finally:
        async with app.state.sessionmaker() as session:
            await session.execute(
                delete(WarehouseCluster).where(WarehouseCluster.name == "fleet-gone")
            )
            await session.commit()
        await fleet.drop_everywhere(name)
