"""The worker's periodic storage check (every STORAGE_CHECK_SECONDS): retention, drift, buckets.

- Retention: a snapshot past `expires_at` loses its object, then its record.
- Drift: a live warehouse whose bucket has disappeared (an in-memory S3 server restarted, an
  operator deleted it) gets it back; a `ready` snapshot whose object has disappeared becomes
  `failed`, saying so.
- Buckets: an organization queued in `bucket_deletions` (its snapshots expired, or `delete-org`)
  loses its bucket, objects first, unless it needs one again (a warehouse that is not
  `deleted`, or a snapshot).
Every part survives S3 being down: what fails is tried again on the next tick.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import ManagedWarehouse, WarehouseState
from app.models.storage import BucketDeletion, Snapshot, SnapshotStatus, snapshot_key
from app.s3 import S3Storage
from app.services.storage.records import now, request_bucket_deletion
from app.services.storage.runner import record_settled
from app.services.storage.transfer import StorageTransfer

logger = logging.getLogger(__name__)
MISSING_OBJECT = "The snapshot's object is missing from storage"


@dataclass
class CheckReport:
    expired: int = 0
    buckets_repaired: int = 0
    snapshots_lost: int = 0
    buckets_deleted: int = 0


class StorageMaintenance:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], storage: S3Storage) -> None:
        self.sessionmaker = sessionmaker
        self.storage = storage

    async def run_once(self) -> CheckReport:
        report = CheckReport()
        for part in (self.expire, self.repair_drift, self.delete_buckets):
            try:
                await part(report)
            except Exception as exc:
                logger.warning(
                    "storage check failed",
                    extra={"part": part.__name__, "error_class": type(exc).__name__},
                )
        return report

    async def expire(self, report: CheckReport) -> None:
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Snapshot.id, Snapshot.organization_id).where(
                        Snapshot.expires_at <= now(), Snapshot.status != SnapshotStatus.RUNNING
                    )
                )
            ).all()
        for snapshot_id, org_id in rows:
            await self.storage.delete_object(org_id, snapshot_key(snapshot_id))
            async with self.sessionmaker() as session, session.begin():
                await session.execute(delete(Snapshot).where(Snapshot.id == snapshot_id))
                await request_bucket_deletion(session, org_id)
            report.expired += 1

    async def repair_drift(self, report: CheckReport) -> None:
        async with self.sessionmaker() as session:
            orgs = (
                await session.scalars(
                    select(ManagedWarehouse.organization_id).where(
                        ManagedWarehouse.state == WarehouseState.READY,
                        ManagedWarehouse.s3_state == WarehouseState.READY,
                    )
                )
            ).all()
            ready = (
                await session.execute(
                    select(Snapshot.id, Snapshot.organization_id).where(
                        Snapshot.status == SnapshotStatus.READY, Snapshot.expires_at > now()
                    )
                )
            ).all()
        for org_id in orgs:
            if not await self.storage.bucket_exists(org_id):
                await self.storage.ensure_bucket(org_id)
                report.buckets_repaired += 1
                logger.warning("re-created a missing bucket", extra={"org_id": str(org_id)})
        for snapshot_id, org_id in ready:
            if await self.storage.exists(org_id, snapshot_key(snapshot_id)):
                continue
            async with self.sessionmaker() as session, session.begin():
                snap = await session.get(Snapshot, snapshot_id, with_for_update=True)
                if snap is None or snap.status != SnapshotStatus.READY:
                    continue
                StorageTransfer.record_failed(snap, MISSING_OBJECT)
                await record_settled(session, snap)
            report.snapshots_lost += 1

    async def delete_buckets(self, report: CheckReport) -> None:
        async with self.sessionmaker() as session:
            orgs = (await session.scalars(select(BucketDeletion.organization_id))).all()
        for org_id in orgs:
            if not await self._needs_bucket(org_id) and await self.storage.delete_bucket(org_id):
                report.buckets_deleted += 1
            async with self.sessionmaker() as session, session.begin():
                await session.execute(
                    delete(BucketDeletion).where(BucketDeletion.organization_id == org_id)
                )

    async def _needs_bucket(self, org_id: uuid.UUID) -> bool:
        async with self.sessionmaker() as session:
            live = await session.scalar(
                select(
                    exists().where(
                        ManagedWarehouse.organization_id == org_id,
                        ManagedWarehouse.state != WarehouseState.DELETED,
                    )
                )
            )
            kept = await session.scalar(select(exists().where(Snapshot.organization_id == org_id)))
        return bool(live or kept)
