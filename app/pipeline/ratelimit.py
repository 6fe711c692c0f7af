"""Per-API-key rate limiting in Redis (API.md §5): a fixed one-minute window per key.

The window's count lives in Redis, shared by every process. A process does not pay a Redis
round trip for every request of a busy key: it counts locally and adds its count to Redis
(INCRBY, through a server-side script that also sets the window's expiry) when

- it has counted `batch` requests since its last sync (1% of the limit, at least 1), or
- `sync_interval` has passed since its last sync for that key, or
- the key is within `batch` requests of the limit, by what this process knows.

So a key far below its limit costs one Redis call per `batch` requests or per interval, and a
key near its limit is counted exactly, on every request. What can slip past the limit is what
the other processes counted but have not synced yet: fewer than `batch` requests each, plus
what they took in during one interval. With a limit below 200 a minute the batch is 1 and
every request is synced. `sync_interval=0` syncs every request (exact counting).

When Redis does not answer, requests are let through (logged): an outage of the limiter must
not become an outage of the API.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.core.errors import Throttled

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60
_ADD = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""


@dataclass(slots=True)
class _KeyCount:
    known: int = 0  # the window's count in Redis when this process last synced
    pending: int = 0  # requests this process let through and has not added yet
    synced_at: float = 0.0


class RateLimiter:
    def __init__(
        self,
        redis: Redis,
        *,
        per_minute: int,
        prefix: str,
        sync_interval: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.prefix = prefix
        self.sync_interval = sync_interval
        self.batch = max(1, per_minute // 100)
        self.clock = clock
        self._add = redis.register_script(_ADD)
        self._window = -1
        self._counts: dict[uuid.UUID, _KeyCount] = {}

    async def hit(self, key_id: uuid.UUID) -> None:
        if self.per_minute <= 0:
            return
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            # A new window: what was counted for the old one no longer matters.
            self._window, self._counts = window, {}
        count = self._counts.get(key_id)
        if count is None:
            count = self._counts[key_id] = _KeyCount()
        count.pending += 1
        seen = count.known + count.pending
        if (
            count.pending >= self.batch
            or seen + self.batch > self.per_minute
            or now - count.synced_at >= self.sync_interval
        ):
            total = await self._sync(key_id, window, count, now)
            if total is None:
                return
            seen = total
        if seen > self.per_minute:
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
            raise Throttled(
                f"Request was throttled. Expected available in {retry_after} seconds.",
                headers={"Retry-After": str(retry_after)},
            )

    async def _sync(
        self, key_id: uuid.UUID, window: int, count: _KeyCount, now: float
    ) -> int | None:
        """Add this process's pending count to Redis; the window's total, or None if Redis
        did not answer (the request is let through)."""
        pending, count.pending, count.synced_at = count.pending, 0, now
        redis_key = f"{self.prefix}:ratelimit:{key_id}:{window}"
        try:
            total = int(await self._add(keys=[redis_key], args=[pending, WINDOW_SECONDS * 2]))
        except Exception:
            logger.warning("rate limiter unavailable; request allowed")
            return None
        # Requests counted locally while the call was in flight stay pending.
        count.known = max(count.known, total)
        return total
