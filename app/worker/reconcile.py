"""The reconciler: re-sends the job of every warehouse still on its way somewhere.

Jobs get lost: Redis can be flushed or restarted, an enqueue after commit can fail, a worker
can die holding a job. Every tick:
- a queued warehouse job marked in progress for a while whose warehouse advisory lock nobody
  holds has lost its worker (the lock died with the worker's connection): clear arq's
  in-progress mark so a live worker runs it now rather than after the job timeout;
- for each `pending`/`provisioning`/`deleting` warehouse, enqueue the job under its
  (warehouse, generation) id: a no-op when it is already queued;
- likewise for each `running` manual snapshot (`snapshot:<id>`), so a snapshot whose worker
  died is taken again (or fails at its deadline), never left `running`.
"""

from __future__ import annotations

import logging
import uuid

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import ManagedWarehouse, WarehouseState
from app.models.storage import Snapshot, SnapshotKind, SnapshotStatus
from app.services.storage.records import TAKE_SNAPSHOT, snapshot_job_id
from app.services.storage.runner import SNAPSHOT_LOCK_NAMESPACE, snapshot_lock_key
from app.services.warehouse.jobs import ADVANCE_WAREHOUSE, advance_job_id
from app.services.warehouse.machine import LOCK_NAMESPACE, advisory_key

logger = logging.getLogger(__name__)
S = WarehouseState
NON_TERMINAL = (S.PENDING, S.PROVISIONING, S.DELETING)
# A job in progress this long without its lock held has lost its worker.
LOST_AFTER_SECONDS = 1.0


class Reconciler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: ArqRedis,
        *,
        queue_name: str,
        in_progress_timeout_s: float,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.queue_name = queue_name
        self.in_progress_timeout_s = in_progress_timeout_s

    async def run_once(self) -> int:
        """Returns how many jobs were (re)sent."""
        sent = 0
        async with self.sessionmaker() as session:
            await self._release_orphans(session)
            rows = (
                await session.execute(
                    select(ManagedWarehouse.id, ManagedWarehouse.generation).where(
                        ManagedWarehouse.state.in_(NON_TERMINAL)
                    )
                )
            ).all()
            snapshots = (
                await session.scalars(
                    select(Snapshot.id).where(
                        Snapshot.status == SnapshotStatus.RUNNING,
                        Snapshot.kind == SnapshotKind.MANUAL,
                    )
                )
            ).all()
            await session.rollback()
        for snapshot_id in snapshots:
            snapshot_job = await self.redis.enqueue_job(
                TAKE_SNAPSHOT,
                str(snapshot_id),
                _job_id=snapshot_job_id(snapshot_id),
                _queue_name=self.queue_name,
            )
            if snapshot_job is not None:
                sent += 1
        for row in rows:
            job_id = advance_job_id(row.id, row.generation)
            job = await self.redis.enqueue_job(
                ADVANCE_WAREHOUSE,
                str(row.id),
                row.generation,
                _job_id=job_id,
                _queue_name=self.queue_name,
            )
            if job is not None:
                sent += 1
                logger.info("re-sent warehouse job", extra={"job_id": job_id})
        return sent

    async def _release_orphans(self, session: AsyncSession) -> None:
        """Clear the in-progress mark of queued warehouse jobs whose worker is gone.

        Older generations count too: their job must run (and see it was superseded) before
        the queue drains.
        """
        raw_ids = await self.redis.zrangebyscore(self.queue_name, "-inf", "+inf")
        for raw in raw_ids:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            lock = lock_of(job_id)
            if lock is None:
                continue
            key = in_progress_key_prefix + job_id
            ttl_ms = await self.redis.pttl(key)
            if ttl_ms is None or ttl_ms <= 0:
                continue
            if self.in_progress_timeout_s - ttl_ms / 1000 < LOST_AFTER_SECONDS:
                continue
            try:
                free = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                    {"ns": lock[0], "key": lock[1]},
                )
            finally:
                await session.rollback()
            if free:
                await self.redis.delete(key)
                logger.warning(
                    "warehouse job lost its worker; released it", extra={"job_id": job_id}
                )


def lock_of(job_id: str) -> tuple[int, int] | None:
    """The advisory lock (namespace, key) a job's worker holds while it runs it."""
    warehouse_id = warehouse_of(job_id)
    if warehouse_id is not None:
        return LOCK_NAMESPACE, advisory_key(warehouse_id)
    prefix, _, rest = job_id.partition(":")
    if prefix != "snapshot":
        return None
    try:
        return SNAPSHOT_LOCK_NAMESPACE, snapshot_lock_key(uuid.UUID(rest))
    except ValueError:
        return None


def warehouse_of(job_id: str) -> uuid.UUID | None:
    prefix, _, rest = job_id.partition(":")
    if prefix != "warehouse":
        return None
    try:
        return uuid.UUID(rest.rpartition(":")[0])
    except ValueError:
        return None
