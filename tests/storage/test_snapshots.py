"""Snapshots, the final snapshot, restore, retention and delete-org (API.md §9), against the real
embedded S3 server and the password-checking warehouse cluster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.models.storage import Snapshot
from app.s3 import S3Storage
from app.services.storage.maintenance import StorageMaintenance
from tests.storage.support import (
    contents,
    login,
    object_digest,
    operation,
    put_object,
    ready_warehouse,
    snapshots,
)
from tests.support.lifecycle import (
    bucket_objects,
    new_name,
    only_snapshots_left,
    run_burst_worker,
    status,
)
from tests.support.status_recorder import expect

SNAPSHOT_FIELDS = {
    "id",
    "kind",
    "status",
    "database_name",
    "size_bytes",
    "sha256",
    "created_at",
    "ready_at",
    "expires_at",
}


async def storage_check(app, settings) -> None:
    storage = S3Storage.from_settings(settings)
    try:
        await StorageMaintenance(app.state.sessionmaker, storage).run_once()
    finally:
        await storage.close()


async def test_bucket_is_made_at_provision(client, tenant, settings):
    assert await bucket_objects(settings, tenant.org_id) is None
    await ready_warehouse(client, tenant, settings, rows=1)
    # The bucket exists (asked of the S3 server) and the storage check left nothing behind.
    assert await bucket_objects(settings, tenant.org_id) == []
    assert (await status(client, tenant))["s3_state"] == "ready"


async def test_snapshot_is_a_verified_dump_in_the_bucket(client, app, tenant, settings):
    wh = await ready_warehouse(client, tenant, settings)
    r = await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    expect(r, 202)
    body = r.json()
    assert set(body) == {"snapshot_id", "operation_id"}
    # Written before the answer: listed `running`, its operation running, warehouse ready.
    [listed] = await snapshots(client, tenant)
    assert set(listed) == SNAPSHOT_FIELDS
    assert listed["id"] == body["snapshot_id"] and listed["status"] == "running"
    assert listed["kind"] == "manual" and listed["database_name"] == wh["name"]
    assert listed["sha256"] is None and listed["ready_at"] is None
    assert (await operation(client, tenant, body["operation_id"]))["action"] == "snapshot"
    assert (await status(client, tenant))["state"] == "ready"
    r = await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    assert r.status_code == 409  # one at a time
    assert r.json()["detail"].endswith(f"(operation {body['operation_id']} is running)")

    await run_burst_worker(settings)
    [done] = await snapshots(client, tenant)
    assert done["status"] == "ready", done
    size, digest = await object_digest(settings, tenant.org_id, f"snapshots/{done['id']}.dump")
    assert done["sha256"] == digest and len(digest) == 64
    assert done["size_bytes"] == size > 0
    created = datetime.fromisoformat(done["created_at"])
    assert datetime.fromisoformat(done["expires_at"]) - created == timedelta(days=7)
    op = await operation(client, tenant, body["operation_id"])
    assert op["status"] == "succeeded" and op["finished_at"] is not None
    assert await bucket_objects(settings, tenant.org_id) == [f"snapshots/{done['id']}.dump"]


async def test_deprovision_keeps_only_snapshots_and_restore_brings_everything_back(
    client, app, tenant, settings
):
    wh = await ready_warehouse(client, tenant, settings, rows=2000)
    before = await contents(settings, wh["name"], wh["username"], wh["password"])
    await put_object(settings, tenant.org_id, "exports/leftover.csv", b"a,b\n")

    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    [final] = await snapshots(client, tenant)
    assert final["kind"] == "final" and final["status"] == "running"
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"
    [final] = await snapshots(client, tenant)
    assert final["status"] == "ready"
    assert await bucket_objects(settings, tenant.org_id) == [f"snapshots/{final['id']}.dump"]
    assert await only_snapshots_left(settings, tenant.org_id)

    # Restore under a new name: every row is back, owned by the new role, new password works.
    name = new_name("back")
    r = await client.post(
        tenant.env_url("restore"),
        json={"snapshot_id": final["id"], "database_name": name},
        headers=tenant.headers,
    )
    expect(r, 202)
    answer = r.json()
    assert set(answer) == {"status", "org", "username", "password", "operation_id"}
    assert answer["status"] == "restore started" and answer["org"] == tenant.org_id
    assert answer["username"] == name and answer["password"] != wh["password"]
    assert (await status(client, tenant))["state"] == "pending"
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    assert body["connection"]["database"] == name
    after = await contents(settings, name, name, answer["password"])
    assert after == {**before, "owners": [name]}
    op = await operation(client, tenant, answer["operation_id"])
    assert op["action"] == "restore" and op["status"] == "succeeded"
    # The old name's data is gone; the new warehouse takes new rows.
    conn = await login(settings, name, name, answer["password"])
    await conn.execute("INSERT INTO mine VALUES (1000, 'new')")
    await conn.close()


async def test_skip_final_snapshot_and_failed_warehouses_take_none(client, tenant, settings):
    await ready_warehouse(client, tenant, settings, rows=1)
    r = await client.post(
        tenant.env_url("deprovision"), json={"skip_final_snapshot": True}, headers=tenant.headers
    )
    expect(r, 202)
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"
    assert await snapshots(client, tenant) == []
    assert await bucket_objects(settings, tenant.org_id) is None  # no snapshot: no bucket


async def test_expired_snapshots_disappear(client, app, tenant, settings):
    await ready_warehouse(client, tenant, settings, rows=10)
    await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    await run_burst_worker(settings)
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)
    listed = await snapshots(client, tenant)
    assert {s["kind"] for s in listed} == {"manual", "final"}
    assert len(await bucket_objects(settings, tenant.org_id) or []) == 2

    # Time travel through the database: both expired a second ago.
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot)
            .where(Snapshot.organization_id == uuid.UUID(tenant.org_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert await snapshots(client, tenant) == []  # expired: no longer listed
    await storage_check(app, settings)
    assert await bucket_objects(settings, tenant.org_id) is None  # objects, then bucket
    async with app.state.sessionmaker() as session:
        left = await session.scalar(
            Snapshot.__table__.select()
            .with_only_columns(Snapshot.id)
            .where(Snapshot.organization_id == uuid.UUID(tenant.org_id))
        )
    assert left is None


async def test_delete_org_empties_everything(client, app, tenant, settings):
    await ready_warehouse(client, tenant, settings, rows=10)
    await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    await run_burst_worker(settings)
    await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    await run_burst_worker(settings)
    assert len(await snapshots(client, tenant)) == 2

    r = await client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
    expect(r, 200)
    assert await snapshots(client, tenant) == []  # the records at once
    await storage_check(app, settings)
    assert await bucket_objects(settings, tenant.org_id) is None


async def test_drift_repair(client, app, tenant, settings):
    await ready_warehouse(client, tenant, settings, rows=10)
    await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    await run_burst_worker(settings)
    [snap] = await snapshots(client, tenant)
    storage = S3Storage.from_settings(settings)
    try:
        await storage.delete_bucket(uuid.UUID(tenant.org_id))  # as a restarted moto would
    finally:
        await storage.close()
    await storage_check(app, settings)
    assert await bucket_objects(settings, tenant.org_id) == []
    [lost] = await snapshots(client, tenant)
    assert lost["id"] == snap["id"] and lost["status"] == "failed"
    async with app.state.sessionmaker() as session:
        row = await session.get(Snapshot, uuid.UUID(snap["id"]))
        assert row is not None and row.error == "The snapshot's object is missing from storage"
    r = await client.post(
        tenant.env_url("restore"), json={"snapshot_id": snap["id"]}, headers=tenant.headers
    )
    assert r.status_code == 404  # a failed snapshot cannot be restored


async def test_digest_mismatch_fails_the_restore(client, app, tenant, settings):
    await ready_warehouse(client, tenant, settings, rows=10)
    await client.post(tenant.env_url("snapshot"), headers=tenant.headers)
    await run_burst_worker(settings)
    [snap] = await snapshots(client, tenant)
    await client.post(
        tenant.env_url("deprovision"), json={"skip_final_snapshot": True}, headers=tenant.headers
    )
    await run_burst_worker(settings)
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot).where(Snapshot.id == uuid.UUID(snap["id"])).values(sha256="0" * 64)
        )
        await session.commit()
    r = await client.post(
        tenant.project_url("restore"), json={"snapshot_id": snap["id"]}, headers=tenant.headers
    )
    expect(r, 202)
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "failed", body
    assert "sha256 check" in body["status_message"]
    op = await operation(client, tenant, r.json()["operation_id"])
    assert op["status"] == "failed"
