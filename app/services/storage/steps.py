"""The warehouse state machine's storage steps: `final-snapshot` (teardown) and `restore`
(provisioning), and what their records and failures look like (API.md §9).

The machine (`app.services.warehouse.machine`) plans and locks; these functions act and record.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ManagedWarehouse
from app.models.storage import Snapshot, SnapshotStatus
from app.pgcluster.dumps import DigestMismatch
from app.s3 import Uploaded
from app.services.storage.runner import record_settled
from app.services.storage.transfer import SnapshotUnavailable, StorageTransfer

STEPS = frozenset({"final-snapshot", "restore"})
# Failures that no retry can mend: the warehouse gives up at once.
HOPELESS = (DigestMismatch, SnapshotUnavailable)


def hopeless_message(exc: Exception) -> str | None:
    if isinstance(exc, DigestMismatch):
        return (
            "Restore failed: the snapshot object failed its sha256 check (it does not match "
            "the digest recorded when the snapshot was taken)"
        )
    if isinstance(exc, SnapshotUnavailable):
        return "Restore failed: the snapshot is no longer available"
    return None


async def final_snapshot_pending(session: AsyncSession, wh: ManagedWarehouse) -> bool:
    """Is there a final snapshot still to take? Clears the link once it is taken."""
    if wh.final_snapshot_id is None:
        return False
    final = await session.get(Snapshot, wh.final_snapshot_id)
    if final is None or final.status == SnapshotStatus.READY:
        wh.final_snapshot_id = None
        return False
    return True


async def act(step: str, transfer: StorageTransfer, admin_dsn: str, snap: Any) -> Any:
    """Run `final-snapshot` or `restore` for the machine's copy of the warehouse row."""
    if step == "final-snapshot":
        return await take_final(
            transfer,
            admin_dsn=admin_dsn,
            organization_id=snap.organization_id,
            snapshot_id=snap.final_snapshot_id,
            database=snap.database_name,
        )
    return await restore(
        transfer,
        admin_dsn=admin_dsn,
        snapshot_id=snap.restore_snapshot_id,
        database=snap.database_name,
        role=snap.login_role,
    )


async def take_final(
    transfer: StorageTransfer,
    *,
    admin_dsn: str,
    organization_id: uuid.UUID,
    snapshot_id: uuid.UUID | None,
    database: str,
) -> Uploaded:
    assert snapshot_id is not None
    return await transfer.take(
        admin_dsn=admin_dsn,
        organization_id=organization_id,
        snapshot_id=snapshot_id,
        database=database,
    )


async def restore(
    transfer: StorageTransfer,
    *,
    admin_dsn: str,
    snapshot_id: uuid.UUID | None,
    database: str,
    role: str,
) -> int:
    assert snapshot_id is not None
    source = await transfer.restore_source(snapshot_id)
    return await transfer.restore(admin_dsn=admin_dsn, source=source, database=database, role=role)


async def record_final(
    session: AsyncSession, snapshot_id: uuid.UUID | None, result: Any, *, error: str | None
) -> None:
    """The final snapshot is `ready` (error None, `result` the upload) or `failed`."""
    final = await session.get(Snapshot, snapshot_id, with_for_update=True) if snapshot_id else None
    if final is None:
        return
    if error is None:
        StorageTransfer.record_ready(final, result)
    else:
        StorageTransfer.record_failed(final, error)
    await record_settled(session, final)


async def abandon_final_snapshot(session: AsyncSession, wh: ManagedWarehouse, error: str) -> str:
    """No final snapshot, no teardown: the snapshot is `failed` and the warehouse is to go back
    to `ready`, untouched. Returns the status message (and the operation's error)."""
    await record_final(
        session,
        wh.final_snapshot_id,
        None,
        error=f"The final snapshot could not be taken ({error})",
    )
    wh.final_snapshot_id = None
    wh.deadline_at = None
    wh.attempt = 0
    return (
        f"Deprovisioning failed: the final snapshot could not be taken ({error}); "
        "the warehouse was kept as it was"
    )
