"""The job queue as services see it: 'look at warehouse X', sent only after commit.

Services never import arq; they call `JobQueue.enqueue_after_commit`, which registers the send
on the session so it happens once the request's transaction has committed. A lost send is
repaired by the worker's reconciler, which re-enqueues warehouses whose job went missing.
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import after_commit

logger = logging.getLogger(__name__)


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue(self, function: str, *args: Any, job_id: str) -> None:
        try:
            await self.redis.enqueue_job(function, *args, _job_id=job_id)
        except Exception:
            # State is already committed; the reconciler will pick the warehouse up.
            logger.warning("enqueue failed; reconciler will retry", extra={"job_id": job_id})

    def enqueue_after_commit(
        self, session: AsyncSession, function: str, *args: Any, job_id: str
    ) -> None:
        async def send() -> None:
            await self.enqueue(function, *args, job_id=job_id)

        after_commit(session, send)
