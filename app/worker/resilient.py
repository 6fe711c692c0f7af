"""An arq `Worker` that rides out a Redis outage instead of exiting.

arq's poll loop lets any Redis error escape `Worker.main()`: a Redis restart would end a
long-running worker. Here a poll iteration that fails on Redis is logged once, the worker waits
a little and polls again; redis-py reconnects on the next command. Jobs lost with Redis's data
are re-sent by the reconciler (app/worker/reconcile.py).

`start_jobs` is arq's own, with one change: when Redis fails between taking a job slot and
starting the job's task, the slot is given back (arq would leak it, and after `max_jobs` such
failures the worker would never start a job again).
"""

from __future__ import annotations

import asyncio
import logging
import time

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.exceptions import RedisError, ResponseError, WatchError

logger = logging.getLogger(__name__)
# Errors of a Redis that is down or restarting (connection refused/reset/timed out).
REDIS_ERRORS = (RedisError, OSError)
REDIS_RETRY_SECONDS = 0.5


class ResilientWorker(Worker):
    _redis_down_since: float | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_ERRORS as exc:
            if self._redis_down_since is None:
                self._redis_down_since = time.monotonic()
                logger.warning(
                    "redis unavailable; the worker keeps trying",
                    extra={"error_class": type(exc).__name__},
                )
            await asyncio.sleep(REDIS_RETRY_SECONDS)
            return
        if self._redis_down_since is not None:
            down = time.monotonic() - self._redis_down_since
            self._redis_down_since = None
            logger.warning("redis reachable again", extra={"down_seconds": round(down, 1)})

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id_b in job_ids:
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter = self.job_counter + 1
            started = False
            try:
                started = await self._start_job(job_id_b.decode())
            finally:
                if not started:
                    self.job_counter = self.job_counter - 1
                    self.sem.release()

    async def _start_job(self, job_id: str) -> bool:
        """Mark the job in progress and start its task; False if another worker has it."""
        in_progress_key = in_progress_key_prefix + job_id
        async with self.pool.pipeline(transaction=True) as pipe:
            await pipe.watch(in_progress_key)
            ongoing_exists = await pipe.exists(in_progress_key)
            score = await pipe.zscore(self.queue_name, job_id)
            if ongoing_exists or not score or score > timestamp_ms():
                logger.debug("job %s already running elsewhere", job_id)
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.psetex(in_progress_key, int(self.in_progress_timeout_s * 1000), b"1")
            try:
                await pipe.execute()
            except (ResponseError, WatchError):
                logger.debug("multi-exec error, job %s already started elsewhere", job_id)
                return False
        task = self.loop.create_task(self.run_job(job_id, int(score)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True
