"""Per-key rate limiting (API.md §5): 429 throttled_error with Retry-After; internal calls free."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, create_tenant, make_app
from tests.support.status_recorder import expect


@pytest.fixture
async def limited_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = make_app(settings.model_copy(update={"rate_limit_per_minute": 3}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def limited_client(limited_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=limited_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_fourth_request_in_a_minute_is_throttled(limited_client):
    tenant = await create_tenant(limited_client)
    url = tenant.env_url("check-database-name") + "?name=acme"
    statuses = [
        (await limited_client.get(url, headers=tenant.headers)).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    r = await limited_client.get(url, headers=tenant.headers)
    expect(r, 429)
    assert r.json()["type"] == "throttled_error"
    assert r.json()["code"] == "throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


async def test_limit_is_per_key(limited_app: FastAPI, limited_client: httpx.AsyncClient) -> None:
    # A fixed clock: the whole test runs inside one window, however slow the machine.
    limited_app.state.rate_limiter.clock = _Clock()
    tenant = await create_tenant(limited_client)
    stranger = await create_tenant(limited_client)
    url = tenant.env_url("check-database-name") + "?name=acme"

    async def statuses(headers: dict[str, str], n: int) -> list[int]:
        return [(await limited_client.get(url, headers=headers)).status_code for _ in range(n)]

    assert await statuses(tenant.headers, 4) == [200, 200, 200, 429]  # the first key is spent
    # Another key of the same user, on the same environment, has its own budget ...
    other = {"Authorization": f"Bearer {await tenant.add_key(tenant.user_id, ['*'])}"}
    assert await statuses(other, 4) == [200, 200, 200, 429]
    # ... which did not refill the first key's.
    assert await statuses(tenant.headers, 1) == [429]
    other_url = stranger.env_url("check-database-name") + "?name=acme"
    r = await limited_client.get(other_url, headers=stranger.headers)
    expect(r, 200)


async def test_internal_calls_are_not_limited(limited_client):
    for _ in range(6):
        r = await limited_client.post(
            "/internal/organizations", json={"name": "x"}, headers=INTERNAL_HEADERS
        )
        expect(r, 201)


class _Clock:
    """Mid-window, so a test never straddles two one-minute windows."""

    def __init__(self) -> None:
        self.now = (time.time() // 60 + 10) * 60 + 30

    def __call__(self) -> float:
        return self.now


async def _two_processes(
    settings: Settings, *, per_minute: int, sync_interval: float, clock: _Clock | None = None
):
    """Two limiters sharing one Redis, as two uvicorn workers would."""
    from redis.asyncio import Redis

    from app.pipeline.ratelimit import RateLimiter

    redis = Redis.from_url(settings.redis_url)
    prefix = f"{settings.queue_name}:{uuid.uuid4().hex}"
    limiters = [
        RateLimiter(
            redis,
            per_minute=per_minute,
            prefix=prefix,
            sync_interval=sync_interval,
            clock=clock or _Clock(),
        )
        for _ in range(2)
    ]
    return redis, prefix, limiters


async def _allowed(limiter, key_id) -> bool:
    from app.core.errors import Throttled

    try:
        await limiter.hit(key_id)
    except Throttled:
        return False
    return True


async def test_batched_counting_stops_at_the_limit_across_processes(settings: Settings):
    # 300 a minute: batch of 3. Far from the limit the processes batch; near it every request
    # is synced, so at most the other process's unsynced batch slips through.
    redis, _, limiters = await _two_processes(settings, per_minute=300, sync_interval=60)
    key_id = uuid.uuid4()
    try:
        allowed = [await _allowed(limiters[i % 2], key_id) for i in range(400)]
    finally:
        await redis.aclose()
    assert 300 <= sum(allowed) < 300 + limiters[0].batch
    assert not any(allowed[sum(allowed) + limiters[0].batch :])


async def test_busy_key_far_from_its_limit_does_not_call_redis_per_request(settings: Settings):
    clock = _Clock()
    redis, prefix, (limiter, _) = await _two_processes(
        settings, per_minute=1_000_000, sync_interval=0.2, clock=clock
    )
    key_id = uuid.uuid4()
    try:
        for _ in range(50):
            await limiter.hit(key_id)
        keys = [k async for k in redis.scan_iter(f"{prefix}:ratelimit:{key_id}:*")]
        assert len(keys) == 1
        # The first request synced; the next 49 were counted in the process.
        assert int(await redis.get(keys[0])) == 1
        assert 0 < await redis.ttl(keys[0]) <= 120
        clock.now += 0.25
        await limiter.hit(key_id)  # the interval passed: all 50 are synced (in the background)
        await limiter.drain()
        assert int(await redis.get(keys[0])) == 51
    finally:
        await redis.aclose()


async def test_sync_interval_zero_counts_every_request_in_redis(settings: Settings):
    redis, prefix, (limiter, _) = await _two_processes(
        settings, per_minute=1_000_000, sync_interval=0
    )
    key_id = uuid.uuid4()
    try:
        for _ in range(7):
            await limiter.hit(key_id)
        (key,) = [k async for k in redis.scan_iter(f"{prefix}:ratelimit:{key_id}:*")]
        assert int(await redis.get(key)) == 7
    finally:
        await redis.aclose()
