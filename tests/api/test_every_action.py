"""Behaviour every public action shares, checked for each one (so new actions are covered too):
per-key rate limiting (429 + Retry-After) and Idempotency-Key conflicts on POST/DELETE."""

from __future__ import annotations

import uuid

import httpx
import pytest

from app.routers import all_actions
from app.settings import Settings
from tests.support.harness import Tenant, create_tenant, make_app
from tests.support.status_recorder import expect

ACTIONS = all_actions()
MUTATING = [a for a in ACTIONS if a.method in ("POST", "DELETE")]
PREFIXES = ["environments", "projects"]


def _url(tenant: Tenant, prefix: str, action: str) -> str:
    return tenant.env_url(action) if prefix == "environments" else tenant.project_url(action)


@pytest.fixture(scope="module")
async def limited_app(settings: Settings):
    app = make_app(settings.model_copy(update={"rate_limit_per_minute": 1}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
async def test_second_request_in_a_minute_is_throttled(limited_app, action, prefix) -> None:
    transport = httpx.ASGITransport(app=limited_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        tenant = await create_tenant(client)
        url = _url(tenant, prefix, action.name)
        await client.request(action.method, url, headers=tenant.headers)
        r = await client.request(action.method, url, headers=tenant.headers)
    expect(r, 429)
    assert r.json()["type"] == "throttled_error"
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("action", MUTATING, ids=lambda a: a.name)
async def test_idempotency_key_reused_with_another_body_conflicts(client, action, prefix) -> None:
    tenant = await create_tenant(client)
    url = _url(tenant, prefix, action.name)
    headers = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
    first = await client.request(action.method, url, headers=headers, json={"a": 1})
    replay = await client.request(action.method, url, headers=headers, json={"a": 1})
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    other = await client.request(action.method, url, headers=headers, json={"a": 2})
    expect(other, 409)
    assert other.json()["code"] == "conflict"
    assert "different request" in other.json()["detail"]
