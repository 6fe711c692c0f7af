"""Snapshot records: creating one, the organization's list, forgetting them all (API.md §9).

Only statements in the caller's session: nothing here commits or touches S3.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ManagedWarehouse
from app.models.storage import BucketDeletion, Snapshot, SnapshotKind, SnapshotStatus
from app.settings import Settings

__all__ = [
    "SnapshotKind",
    "SnapshotStatus",
    "forget_snapshots",
    "listed_snapshots",
    "new_snapshot",
    "request_bucket_deletion",
]

TAKE_SNAPSHOT = "take_snapshot"


def snapshot_job_id(snapshot_id: uuid.UUID | str) -> str:
    return f"snapshot:{snapshot_id}"


def now() -> datetime:
    return datetime.now(UTC)


def new_snapshot(
    settings: Settings,
    warehouse: ManagedWarehouse,
    kind: SnapshotKind,
    *,
    operation_id: uuid.UUID | None,
) -> Snapshot:
    """A `running` snapshot of the warehouse, expiring SNAPSHOT_RETENTION_DAYS after now."""
    created = now()
    return Snapshot(
        id=uuid.uuid4(),
        organization_id=warehouse.organization_id,
        warehouse_id=warehouse.id,
        kind=kind.value,
        status=SnapshotStatus.RUNNING.value,
        database_name=warehouse.database_name,
        created_at=created,
        expires_at=created + timedelta(days=settings.snapshot_retention_days),
        operation_id=operation_id,
        attempt=0,
    )


async def listed_snapshots(session: AsyncSession, organization_id: uuid.UUID) -> list[Snapshot]:
    """The organization's snapshots that have not expired, newest first."""
    rows = await session.scalars(
        select(Snapshot)
        .where(Snapshot.organization_id == organization_id, Snapshot.expires_at > now())
        .order_by(Snapshot.created_at.desc(), Snapshot.id.desc())
    )
    return list(rows)


async def request_bucket_deletion(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Ask the worker to delete the bucket once nothing of the organization needs it."""
    await session.execute(
        insert(BucketDeletion)
        .values(organization_id=organization_id)
        .on_conflict_do_nothing(index_elements=["organization_id"])
    )


async def forget_snapshots(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Delete every snapshot record of the organization now; the worker deletes the objects
    and the bucket (within a minute: its storage check runs every STORAGE_CHECK_SECONDS)."""
    await session.execute(delete(Snapshot).where(Snapshot.organization_id == organization_id))
    await request_bucket_deletion(session, organization_id)
