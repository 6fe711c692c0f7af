"""Per-key rate limiting (API.md §5): 429 throttled_error with Retry-After; internal calls free."""

from __future__ import annotations

import httpx
import pytest

from app.settings import Settings
from tests.conftest import INTERNAL_HEADERS, create_tenant, make_app


@pytest.fixture
async def limited_client(settings: Settings):
    app = make_app(settings.model_copy(update={"rate_limit_per_minute": 3}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
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
    assert r.status_code == 429
    assert r.json()["type"] == "throttled_error"
    assert r.json()["code"] == "throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= 60


async def test_limit_is_per_key(limited_client):
    tenant = await create_tenant(limited_client)
    url = tenant.env_url("check-database-name") + "?name=acme"
    for _ in range(4):
        await limited_client.get(url, headers=tenant.headers)
    other_key = await tenant.add_key(tenant.user_id, ["*"])
    r = await limited_client.get(url, headers={"Authorization": f"Bearer {other_key}"})
    assert r.status_code == 200


async def test_internal_calls_are_not_limited(limited_client):
    for _ in range(6):
        r = await limited_client.post(
            "/internal/organizations", json={"name": "x"}, headers=INTERNAL_HEADERS
        )
        assert r.status_code == 201
