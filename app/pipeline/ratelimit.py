"""Per-API-key rate limiting in Redis (API.md §5, §10): a fixed one-minute window per key.

The window's count lives in Redis, shared by every process. A request far from its key's
limit does not wait on Redis: the process counts it locally, and a background flusher adds
every key's local count to Redis every `sync_interval`, all keys in one round trip (one
server-side script doing INCRBY and the window's expiry per key). A request waits on Redis
only when

- it is the first of its key in this window in this process (to learn the true count), or
- this process's view of the count is within `batch` of the limit (1% of the limit, at least
  1): near the limit every request is counted in Redis before it is answered, or
- `batch` requests of the key are unsynced in this process (pending or in flight).

Overshoot bound: a process never holds `batch` or more unsynced requests of a key, so what can
slip past the limit is fewer than `batch` requests per process serving that key (with a limit
below 200 a minute the batch is 1: exact). `sync_interval=0` syncs every request before it is
answered (exact counting, one Redis round trip per request).

When Redis does not answer, requests are let through (logged) and the count they carried is
kept for the next sync: an outage of the limiter must not become an outage of the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.core.errors import Throttled

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60
# KEYS: the window keys; ARGV: one increment per key, then the expiry. Returns the totals.
_ADD = """
local totals = {}
local ttl = ARGV[#ARGV]
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i])
  local count = redis.call('INCRBY', key, n)
  if count == n then redis.call('EXPIRE', key, ttl) end
  totals[i] = count
end
return totals
"""


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """What the answer tells the client about its budget (API.md §10 headers)."""

    limit: int
    remaining: int  # after this request
    reset: int  # whole seconds until the window resets


@dataclass(slots=True)
class _KeyCount:
    redis_key: str
    known: int = 0  # the window's count in Redis as this process last heard it
    pending: int = 0  # requests let through and not yet sent to Redis
    in_flight: int = 0  # sent to Redis, answer not back yet
    synced: bool = False  # this process has heard Redis's count in this window


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
        self._dirty: dict[int, _KeyCount] = {}
        self._flusher: asyncio.Task[None] | None = None

    def unspent(self) -> RateLimitStatus | None:
        """The budget an answer shows when no key was counted (no key, an invalid one, a body
        refused before authentication): the whole limit, and the current window's reset. None
        when limiting is off."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        reset = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        return RateLimitStatus(self.per_minute, self.per_minute, reset)

    async def hit(self, key_id: uuid.UUID) -> RateLimitStatus | None:
        """Count one request of `key_id`; raises Throttled beyond the limit. None when
        limiting is off."""
        if self.per_minute <= 0:
            return None
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            # A new window: what was counted for the old one no longer matters here (the
            # flusher still sends what it holds for the old window's keys).
            self._window, self._counts = window, {}
        count = self._counts.get(key_id)
        if count is None:
            count = self._counts[key_id] = _KeyCount(f"{self.prefix}:ratelimit:{key_id}:{window}")
        count.pending += 1
        seen = count.known + count.in_flight + count.pending
        if (
            not count.synced
            or self.sync_interval <= 0
            or seen + self.batch > self.per_minute
            or count.pending + count.in_flight >= self.batch
        ):
            total = await self._send([count])
            if total is not None:
                seen = total[0] + count.in_flight + count.pending
        else:
            self._dirty[id(count)] = count
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_periodically())
        reset = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        if seen > self.per_minute:
            raise Throttled(
                f"Request was throttled. Expected available in {reset} seconds.",
                headers={
                    "Retry-After": str(reset),
                    "X-RateLimit-Limit": str(self.per_minute),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(reset),
                },
            )
        return RateLimitStatus(self.per_minute, max(0, self.per_minute - seen), reset)

    async def _send(self, counts: list[_KeyCount]) -> list[int] | None:
        """Add the counts' pending requests to Redis in one round trip; the window totals, or
        None when Redis did not answer (the counts stay pending for the next sync)."""
        amounts = [c.pending for c in counts]
        for c in counts:
            c.in_flight += c.pending
            c.pending = 0
        try:
            raw = await self._add(
                keys=[c.redis_key for c in counts], args=[*amounts, WINDOW_SECONDS * 2]
            )
        except Exception:
            for c, n in zip(counts, amounts, strict=True):
                c.in_flight -= n
                c.pending += n
            logger.warning("rate limiter unavailable; request allowed")
            return None
        totals = [int(t) for t in raw]
        for c, n, total in zip(counts, amounts, totals, strict=True):
            c.in_flight -= n
            c.known = max(c.known, total)
            c.synced = True
        return totals

    async def flush(self) -> None:
        """Send every key's pending count now."""
        dirty = [c for c in self._dirty.values() if c.pending]
        self._dirty = {}
        if dirty:
            await self._send(dirty)

    async def _flush_periodically(self) -> None:
        while self._dirty:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.flush()
            except Exception:  # never let the flusher die with counts in hand
                logger.warning("rate limiter flush failed", exc_info=True)

    async def drain(self) -> None:
        """Send what is pending and stop the flusher (shutdown, tests)."""
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
