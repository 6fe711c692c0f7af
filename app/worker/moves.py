"""The worker's side of moves: the arq job that advances one, and its reconciler.

Every tick the reconciler re-sends the job of each unfinished move (a no-op while it is
queued) and releases a move job whose worker died: arq keeps such a job "in progress" until its
long timeout, but the warehouse's advisory lock died with the worker's connection.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import WarehouseMove
from app.services.fleet.move_jobs import ADVANCE_MOVE, move_job_id, move_of
from app.services.fleet.move_machine import MoveMachine
from app.services.warehouse.machine import LOCK_NAMESPACE, advisory_key

logger = logging.getLogger(__name__)
# A 1 GB copy takes minutes; the job may run this long.
MOVE_JOB_TIMEOUT_SECONDS = 3600
LOST_AFTER_SECONDS = 1.0


async def advance_move(ctx: dict[str, Any], move_id: str) -> str:
    machine: MoveMachine = ctx["move_machine"]
    try:
        outcome = await machine.advance(uuid.UUID(move_id))
    except Exception as exc:
        logger.warning(
            "move job interrupted",
            extra={"move_id": move_id, "error_class": type(exc).__name__},
        )
        raise Retry(defer=machine.backoff(ctx.get("job_try", 1))) from exc
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.result


class MoveReconciler:
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
        async with self.sessionmaker() as session:
            await self._release_orphans(session)
            rows = (
                await session.execute(
                    select(WarehouseMove.id).where(WarehouseMove.finished_at.is_(None))
                )
            ).all()
            await session.rollback()
        sent = 0
        for row in rows:
            job = await self.redis.enqueue_job(
                ADVANCE_MOVE,
                str(row.id),
                _job_id=move_job_id(row.id),
                _queue_name=self.queue_name,
            )
            if job is not None:
                sent += 1
        return sent

    async def _release_orphans(self, session: AsyncSession) -> None:
        raw_ids = await self.redis.zrangebyscore(self.queue_name, "-inf", "+inf")
        for raw in raw_ids:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            move_id = move_of(job_id)
            if move_id is None:
                continue
            key = in_progress_key_prefix + job_id
            ttl_ms = await self.redis.pttl(key)
            if ttl_ms is None or ttl_ms <= 0:
                continue
            if self.in_progress_timeout_s - ttl_ms / 1000 < LOST_AFTER_SECONDS:
                continue
            warehouse_id = await session.scalar(
                select(WarehouseMove.warehouse_id).where(WarehouseMove.id == move_id)
            )
            if warehouse_id is None:
                continue
            try:
                free = await session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                    {"ns": LOCK_NAMESPACE, "key": advisory_key(warehouse_id)},
                )
            finally:
                await session.rollback()
            if free:
                await self.redis.delete(key)
                logger.warning("move job lost its worker; released it", extra={"job_id": job_id})
