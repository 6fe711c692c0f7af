"""X-RateLimit-* headers on every public answer while limiting is on (API.md §10)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, create_tenant, make_app
from tests.support.status_recorder import expect

LIMIT = 5
HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(settings.model_copy(update={"rate_limit_per_minute": LIMIT}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def budget(r: httpx.Response) -> tuple[int, int, int]:
    limit, remaining, reset = (int(r.headers[h]) for h in HEADERS)
    return limit, remaining, reset


async def test_remaining_counts_down_then_429_with_retry_after(limited: httpx.AsyncClient):
    tenant = await create_tenant(limited)
    url = tenant.env_url("check-database-name")
    answers = [
        await limited.get(url, params={"name": "acme"}, headers=tenant.headers),  # 200
        await limited.get(url, params={"name": "A"}, headers=tenant.headers),  # 400
        await limited.get(tenant.env_url("warehouse_status"), headers=tenant.headers),  # hot path
        await limited.post(tenant.env_url("deprovision"), headers=tenant.headers),  # 4xx
        await limited.get(
            f"/api/environments/{tenant.env_id + 10_000}/data_warehouse/job_stats",
            headers=tenant.headers,
        ),  # 404: counted, after the key
    ]
    assert [r.status_code for r in answers][:2] == [200, 400]
    expect(answers[4], 404)
    for expected_remaining, r in zip(range(LIMIT - 1, -1, -1), answers, strict=True):
        limit, remaining, reset = budget(r)
        assert (limit, remaining) == (LIMIT, expected_remaining), (r.status_code, r.headers)
        assert 1 <= reset <= 60
    throttled = await limited.get(url, params={"name": "acme"}, headers=tenant.headers)
    expect(throttled, 429)
    assert throttled.json()["code"] == "throttled"
    limit, remaining, reset = budget(throttled)
    assert (limit, remaining) == (LIMIT, 0)
    retry_after = throttled.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert int(retry_after) == reset
    assert len(throttled.headers.get_list("x-ratelimit-limit")) == 1


async def test_no_budget_headers_without_limiting_or_on_internal_calls(
    limited: httpx.AsyncClient, client: httpx.AsyncClient
):
    r = await limited.post("/internal/organizations", json={"name": "x"}, headers=INTERNAL_HEADERS)
    expect(r, 201)
    assert not any(h in r.headers for h in HEADERS)
    tenant = await create_tenant(client)  # the suite's app: limiting off
    r = await client.get(
        tenant.env_url("check-database-name"), params={"name": "acme"}, headers=tenant.headers
    )
    expect(r, 200)
    assert not any(h in r.headers for h in HEADERS)


async def test_answers_before_any_key_is_counted_show_the_whole_budget(
    limited: httpx.AsyncClient,
):
    tenant = await create_tenant(limited)
    url = tenant.env_url("warehouse_status")
    no_key = await limited.get(url)
    bad_key = await limited.get(url, headers={"Authorization": "Bearer phx_not_a_real_key"})
    too_big = await limited.post(
        tenant.env_url("provision"),
        content=b"{" + b" " * 70_000 + b"}",
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    expect(no_key, 401)
    expect(bad_key, 401)
    expect(too_big, 413)
    for r in (no_key, bad_key, too_big):
        limit, remaining, reset = budget(r)
        assert (limit, remaining) == (LIMIT, LIMIT), (r.status_code, r.headers)
        assert 1 <= reset <= 60
    # Nothing was counted against the tenant's key: its first counted answer shows limit - 1.
    counted = await limited.get(url, headers=tenant.headers)
    assert budget(counted)[:2] == (LIMIT, LIMIT - 1)
