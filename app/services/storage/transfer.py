"""Moving warehouse data between a cluster and the organization's bucket (API.md §9).

`take` streams `pg_dump --format=custom` into `snapshots/<id>.dump` with a multipart upload,
hashing on the way; `restore` streams the object back into `pg_restore`, checking the sha256
before the restore may commit. Both hold at most a few parts in memory and nothing on disk.
`teardown_storage` empties the bucket but for the snapshots, and deletes it when no snapshot of
the organization is left. Every function is safe to run again after a crash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models.storage import Snapshot, SnapshotStatus, snapshot_key
from app.pgcluster.copy import DatabaseShape, database_shape, recreate_database
from app.pgcluster.dumps import dump_database, restore_database
from app.s3 import SNAPSHOT_PREFIX, S3Storage, Uploaded, download_stream, upload_stream


class SnapshotUnavailable(RuntimeError):
    """The snapshot to restore is not `ready` any more (expired, failed or deleted)."""


@dataclass(frozen=True)
class RestoreSource:
    organization_id: uuid.UUID
    snapshot_id: uuid.UUID
    sha256: str


def now() -> datetime:
    return datetime.now(UTC)


class StorageTransfer:
    def __init__(self, storage: S3Storage, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.storage = storage
        self.sessionmaker = sessionmaker

    # -- buckets ----------------------------------------------------------------------------

    async def ensure_bucket(self, organization_id: uuid.UUID) -> str:
        return await self.storage.ensure_bucket(organization_id)

    async def teardown_storage(self, organization_id: uuid.UUID) -> bool:
        """Remove every object but the snapshots; the bucket too when the organization has no
        snapshot left. Returns whether the bucket was deleted."""
        await self.storage.empty_bucket(organization_id, keep_prefix=SNAPSHOT_PREFIX)
        if await self.has_snapshots(organization_id):
            return False
        await self.storage.delete_bucket(organization_id)
        return True

    async def has_snapshots(self, organization_id: uuid.UUID) -> bool:
        async with self.sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Snapshot)
                .where(Snapshot.organization_id == organization_id)
            )
        return bool(count)

    # -- snapshots --------------------------------------------------------------------------

    async def take(
        self, *, admin_dsn: str, organization_id: uuid.UUID, snapshot_id: uuid.UUID, database: str
    ) -> Uploaded:
        # The bucket may have vanished (an in-memory S3 server restarted): make sure first.
        await self.storage.ensure_bucket(organization_id)
        return await upload_stream(
            self.storage,
            organization_id,
            snapshot_key(snapshot_id),
            dump_database(admin_dsn, database),
        )

    @staticmethod
    def record_ready(snapshot: Snapshot, uploaded: Uploaded) -> None:
        snapshot.status = SnapshotStatus.READY
        snapshot.size_bytes = uploaded.size_bytes
        snapshot.sha256 = uploaded.sha256
        snapshot.ready_at = now()
        snapshot.error = None
        snapshot.deadline_at = None

    @staticmethod
    def record_failed(snapshot: Snapshot, error: str) -> None:
        snapshot.status = SnapshotStatus.FAILED
        snapshot.error = error
        snapshot.deadline_at = None

    # -- restore ----------------------------------------------------------------------------

    async def restore_source(self, snapshot_id: uuid.UUID) -> RestoreSource:
        async with self.sessionmaker() as session:
            snap = await session.get(Snapshot, snapshot_id)
            if snap is None or snap.status != SnapshotStatus.READY or snap.sha256 is None:
                raise SnapshotUnavailable("the snapshot is no longer available")
            return RestoreSource(snap.organization_id, snap.id, snap.sha256)

    async def restore(
        self, *, admin_dsn: str, source: RestoreSource, database: str, role: str
    ) -> int:
        """Empty the database (an earlier attempt may have landed), then restore into it as
        `role`, so the new login role owns every table."""
        shape: DatabaseShape = await database_shape(admin_dsn, database)
        await recreate_database(admin_dsn, database, owner=role, shape=shape)
        return await restore_database(
            admin_dsn,
            database,
            role=role,
            chunks=download_stream(
                self.storage, source.organization_id, snapshot_key(source.snapshot_id)
            ),
            expected_sha256=source.sha256,
        )
