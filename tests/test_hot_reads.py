"""The status poll's fast path (app/hot_reads.py): it answers exactly as the routed path
does, only the ordinary successful case, and hands everything else on untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.middleware import Middleware

from app.settings import Settings
from tests.conftest import Tenant, create_tenant, make_app
from tests.support import key_id_of
from tests.warehouse_fixtures import Warehouses


class ReachedRouter:
    """Innermost middleware: records the requests the fast path handed on to routing."""

    def __init__(self, app: Any, seen: list[str]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


class RouteNamed:
    """Outermost middleware: the route the request was attributed to, however it was served."""

    def __init__(self, app: Any, routes: list[str | None]) -> None:
        self.app, self.routes = app, routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.routes.append(getattr(scope.get("route"), "operation_id", None))


def _probed(settings: Settings) -> tuple[FastAPI, list[str], list[str | None]]:
    app = make_app(settings)
    reached: list[str] = []
    routes: list[str | None] = []
    app.user_middleware.append(Middleware(ReachedRouter, seen=reached))
    app.add_middleware(RouteNamed, routes=routes)
    return app, reached, routes


@pytest.fixture
async def routed(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same service with the fast path turned off."""
    app = make_app(settings.model_copy(update={"hot_reads": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
async def probed(settings: Settings):
    app, reached, routes = _probed(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, reached, routes


def _urls(tenant: Tenant) -> list[str]:
    env = tenant.env_url("warehouse_status")
    return [env, env.rstrip("/"), tenant.project_url("warehouse_status")]


async def _same(
    hot: httpx.AsyncClient, routed: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> httpx.Response:
    a, b = await hot.get(url, headers=headers), await routed.get(url, headers=headers)
    assert (a.status_code, a.content) == (b.status_code, b.content), url
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers["content-length"] == b.headers["content-length"]
    return a


async def test_polls_in_every_state_match_the_routed_path_byte_for_byte(
    probed, routed: httpx.AsyncClient, warehouses: Warehouses
):
    hot, reached, routes = probed
    tenant = await create_tenant(hot)
    reached.clear()
    for url in _urls(tenant):  # no warehouse yet: 404, answered by the routed path
        r = await _same(hot, routed, url, tenant.headers)
        assert r.status_code == 404
    assert len(reached) == 3
    await warehouses.ready(tenant)
    # Ends on `ready`: a warehouse left mid-way would be picked up by the next worker.
    for state in ("provisioning", "deleting", "failed", "ready"):
        await warehouses.set_state(tenant, state)
        reached.clear()
        for url in _urls(tenant):
            r = await _same(hot, routed, url, tenant.headers)
            assert r.status_code == 200 and r.json()["state"] == state
            assert (r.json()["connection"] is not None) == (state == "ready")
        assert reached == [], "ordinary polls must not reach the router"
    # Attributed to their operations all the same (telemetry, logs, the status recorder).
    assert "environments_data_warehouse_warehouse_status_retrieve" in routes
    assert "environments_data_warehouse_warehouse_status_retrieve_no_slash" in routes
    assert "data_warehouse_warehouse_status_retrieve" in routes


async def test_everything_but_the_ordinary_poll_is_answered_by_the_routed_path(
    probed, routed: httpx.AsyncClient, warehouses: Warehouses
):
    hot, reached, _ = probed
    tenant = await create_tenant(hot)
    other = await create_tenant(hot)
    await warehouses.ready(tenant)
    url = tenant.env_url("warehouse_status")
    read_only = await tenant.add_user(scopes=["warehouse_view:read"])
    no_scope = await tenant.add_user(scopes=["query:read"])
    other_team = await tenant.add_user(scopes=["*"], scoped_teams=[tenant.env_id + 10_000])
    cases: list[tuple[str, dict[str, str], int]] = [
        (url, {}, 401),
        (url, {"Authorization": "Bearer phx_nope"}, 401),
        (url, {"Authorization": "Basic abc"}, 401),
        (url, {"Authorization": f"Bearer {other.key}"}, 404),
        (url.replace(str(tenant.env_id), "99999999"), tenant.headers, 404),
        (url.replace(str(tenant.env_id), "nope"), tenant.headers, 404),
        (url, {"Authorization": f"Bearer {no_scope}"}, 403),
        (url, {"Authorization": f"Bearer {other_team}"}, 403),
        (f"{url}?personal_api_key={tenant.key}", {}, 200),
    ]
    for case_url, headers, status in cases:
        reached.clear()
        r = await _same(hot, routed, case_url, headers)
        assert r.status_code == status, (case_url, headers, r.text)
        assert reached, f"{case_url} {headers} should have been handed on"
    reached.clear()
    r = await _same(hot, routed, url, {"Authorization": f"Bearer {read_only}"})
    assert r.status_code == 200 and reached == []


async def test_throttled_poll_is_refused_and_counted_once(
    settings: Settings, warehouses: Warehouses, client: httpx.AsyncClient
):
    tenant = await create_tenant(client)
    await warehouses.ready(tenant)
    key = await tenant.add_key(tenant.user_id, ["*"])  # only the polls below count against it
    headers = {"Authorization": f"Bearer {key}"}
    app, reached, _ = _probed(settings.model_copy(update={"rate_limit_per_minute": 3}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as hot:
            url = tenant.env_url("warehouse_status")
            statuses = [(await hot.get(url, headers=headers)).status_code for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            r = await hot.get(url, headers=headers)
    assert r.status_code == 429
    assert r.json() == {
        "type": "throttled_error",
        "code": "throttled",
        "detail": r.json()["detail"],
        "attr": None,
    }
    assert r.json()["detail"].startswith("Request was throttled.")
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert reached == [], "a throttled poll is answered by the fast path, not routed again"
    key_id = await key_id_of(settings, key)
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"{settings.queue_name}:ratelimit:{key_id}:*")]
        counted = sum([int(await redis.get(k)) for k in keys])
    finally:
        await redis.aclose()
    assert counted == 5, "each of the five polls counted exactly once"
