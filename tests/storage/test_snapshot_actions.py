"""The snapshot, snapshots and restore actions on both prefixes: answers, messages and the check
order of API.md §3/§9 (body → snapshot → live warehouse → name)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.models.storage import Snapshot
from tests.support.harness import Tenant
from tests.support.lifecycle import run_burst_worker
from tests.support.status_recorder import expect
from tests.support.warehouses import Warehouses

PREFIXES = ["environments", "projects"]


def url(tenant: Tenant, prefix: str, action: str) -> str:
    return tenant.env_url(action) if prefix == "environments" else tenant.project_url(action)


async def ready_snapshot_row(app, tenant: Tenant, *, name: str = "gone-db", **values) -> str:
    """A snapshot record as the worker leaves it (no object: for checks that never read it)."""
    now = datetime.now(UTC)
    row = Snapshot(
        id=uuid.uuid4(),
        organization_id=uuid.UUID(tenant.org_id),
        warehouse_id=uuid.uuid4(),
        kind="final",
        status="ready",
        database_name=name,
        size_bytes=10,
        sha256="a" * 64,
        created_at=now,
        ready_at=now,
        expires_at=now + timedelta(days=7),
        attempt=0,
    )
    for key, value in values.items():
        setattr(row, key, value)
    async with app.state.sessionmaker() as session:
        session.add(row)
        await session.commit()
    return str(row.id)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_snapshot_answers(client, tenant, warehouses: Warehouses, settings, prefix):
    r = await client.post(url(tenant, prefix, "snapshot"), headers=tenant.headers)
    expect(r, 404)
    assert r.json()["detail"] == "No managed warehouse exists for this organization"

    member = await tenant.add_user(level=1)
    r = await client.post(
        url(tenant, prefix, "snapshot"), headers={"Authorization": f"Bearer {member}"}
    )
    expect(r, 403)
    assert r.json()["detail"] == (
        "Only organization admins can take a snapshot of the managed warehouse"
    )

    await warehouses.ready(tenant)
    r = await client.post(url(tenant, prefix, "snapshot"), headers=tenant.headers)
    expect(r, 202)
    r = await client.get(url(tenant, prefix, "snapshots"), headers=tenant.headers)
    expect(r, 200)
    assert [s["status"] for s in r.json()["results"]] == ["running"]
    await run_burst_worker(settings)
    await warehouses.set_state(tenant, "failed")
    r = await client.post(url(tenant, prefix, "snapshot"), headers=tenant.headers)
    expect(r, 409)
    assert "only be taken while the managed warehouse is ready" in r.json()["detail"]


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_restore_check_order(
    client, app, tenant, other_tenant, warehouses: Warehouses, prefix
):
    restore = url(tenant, prefix, "restore")
    member = await tenant.add_user(level=1)
    r = await client.post(restore, json={}, headers={"Authorization": f"Bearer {member}"})
    expect(r, 403)
    assert r.json()["detail"] == "Only organization admins can restore the managed warehouse"

    for body, detail in (
        ({}, "snapshot_id is required"),
        ({"snapshot_id": "not-a-uuid"}, "snapshot_id must be a uuid"),
        ({"snapshot_id": 5}, None),
        ({"snapshot_id": str(uuid.uuid4()), "database_name": "Bad_Name"}, None),
    ):
        r = await client.post(restore, json=body, headers=tenant.headers)
        expect(r, 400)
        assert r.json()["type"] == "validation_error"
        if detail:
            assert r.json() == {
                "type": "validation_error",
                "code": r.json()["code"],
                "detail": detail,
                "attr": "snapshot_id",
            }

    # 404: unknown, another organization's, failed, expired — even with a live warehouse.
    await warehouses.record(tenant, state="ready")
    other_org = await ready_snapshot_row(app, other_tenant)
    failed = await ready_snapshot_row(app, tenant, status="failed")
    expired = await ready_snapshot_row(
        app, tenant, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    for snapshot_id in (str(uuid.uuid4()), other_org, failed, expired):
        r = await client.post(restore, json={"snapshot_id": snapshot_id}, headers=tenant.headers)
        expect(r, 404)

    # 409: a live warehouse comes before the name.
    good = await ready_snapshot_row(app, tenant, name="postgres")
    r = await client.post(restore, json={"snapshot_id": good}, headers=tenant.headers)
    expect(r, 409)
    assert "already has a managed warehouse" in r.json()["detail"]
    # Without a live warehouse, the name: reserved by the cluster.
    await warehouses.set_state(tenant, "deleted")
    r = await client.post(restore, json={"snapshot_id": good}, headers=tenant.headers)
    expect(r, 409)
    assert "reserved" in r.json()["detail"]
