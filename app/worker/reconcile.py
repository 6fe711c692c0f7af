"""The reconciler: re-sends the job of every warehouse still on its way somewhere.

Jobs get lost: Redis can be flushed or restarted, an enqueue after commit can fail, a worker
can die holding a job. Every tick, for each `pending`/`provisioning`/`deleting` warehouse:
- if its job is marked in progress for a while but nobody holds the warehouse's advisory lock,
  the worker that took it is gone (its connection, and so its lock, died with it): clear arq's
  in-progress mark so a live worker picks the job up now rather than after the job timeout;
- enqueue the job under its (warehouse, generation) id: a no-op when it is already queued.
"""

from __future__ import annotations

import logging

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import ManagedWarehouse, WarehouseState
from app.services.warehouse_jobs import ADVANCE_WAREHOUSE, advance_job_id
from app.worker.machine import LOCK_NAMESPACE, advisory_key

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
            rows = (
                await session.execute(
                    select(ManagedWarehouse.id, ManagedWarehouse.generation).where(
                        ManagedWarehouse.state.in_(NON_TERMINAL)
                    )
                )
            ).all()
            await session.rollback()
            for row in rows:
                job_id = advance_job_id(row.id, row.generation)
                await self._release_if_orphaned(session, row.id, job_id)
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

    async def _release_if_orphaned(
        self, session: AsyncSession, warehouse_id: object, job_id: str
    ) -> None:
        key = in_progress_key_prefix + job_id
        ttl_ms = await self.redis.pttl(key)
        if ttl_ms is None or ttl_ms <= 0:
            return
        running_for = self.in_progress_timeout_s - ttl_ms / 1000
        if running_for < LOST_AFTER_SECONDS:
            return
        try:
            free = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                {"ns": LOCK_NAMESPACE, "key": advisory_key(warehouse_id)},  # type: ignore[arg-type]
            )
        finally:
            await session.rollback()
        if free:
            await self.redis.delete(key)
            logger.warning("warehouse job lost its worker; released it", extra={"job_id": job_id})
