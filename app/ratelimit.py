"""Per-API-key rate limiting in Redis (API.md §5): a fixed one-minute window per key.

One round trip per request: a server-side script increments the window's counter and sets its
expiry when the window opens. When Redis does not answer, requests are
let through (logged): an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import logging
import time
import uuid

from redis.asyncio import Redis

from app.errors import Throttled

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RateLimiter:
    def __init__(self, redis: Redis, *, per_minute: int, prefix: str) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.prefix = prefix
        self._increment = redis.register_script(_INCREMENT)

    async def hit(self, key_id: uuid.UUID) -> None:
        if self.per_minute <= 0:
            return
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        redis_key = f"{self.prefix}:ratelimit:{key_id}:{window}"
        try:
            count = await self._increment(keys=[redis_key], args=[WINDOW_SECONDS * 2])
        except Exception:
            logger.warning("rate limiter unavailable; request allowed")
            return
        if int(count) > self.per_minute:
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
            raise Throttled(
                f"Request was throttled. Expected available in {retry_after} seconds.",
                headers={"Retry-After": str(retry_after)},
            )
