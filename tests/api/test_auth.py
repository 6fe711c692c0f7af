"""Authentication and authorization on every public route, found from the app itself.

Each registered `/api/` route (both prefixes, with and without the trailing slash) goes through
the same matrix, so actions that other branches add are covered automatically.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.core.logging import RedactKeys
from app.core.scopes import Scope
from app.routers import all_actions
from app.services.identity.keys import generate_key
from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.http import (
    PublicRoute,
    assert_error,
    client_for,
    extended_app,
    key_id_of,
    public_routes,
    send,
    sql,
)
from tests.support.status_recorder import expect

ROUTES = public_routes()
INVALID = "Personal API key found in request {} is invalid."
READ_ONLY_SCOPES = sorted({f"{s.value.split(':')[0]}:read" for s in Scope})


@dataclass
class World:
    a: Tenant  # the caller's organization; its admin holds a `*` key
    b: Tenant  # another organization
    a_env2: int  # a second environment in a's project
    member: str  # level 1 in a, scopes *
    no_scope: str  # admin in a, an unrelated scope only
    read_only: str  # admin in a, every scope's :read
    team_scoped: str  # admin in a, `*`, scoped_teams = [a_env2]
    org_scoped: str  # admin in a, `*`, scoped_organizations = [b's org]
    revoked: str
    b_no_scope: str  # b's admin with an unrelated scope


@pytest.fixture(scope="module")
async def mclient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture(scope="module")
async def world(mclient: httpx.AsyncClient, settings: Settings) -> World:
    a = await create_tenant(mclient)
    b = await create_tenant(mclient)
    a_env2 = await a.add_environment("second")
    revoked_key = await a.add_user(8, ["*"])
    key_id = await key_id_of(settings, revoked_key)
    r = await mclient.delete(f"/internal/personal_api_keys/{key_id}", headers=INTERNAL_HEADERS)
    expect(r, 204)
    return World(
        a=a,
        b=b,
        a_env2=a_env2,
        member=await a.add_user(1, ["*"]),
        no_scope=await a.add_user(8, ["dashboard:read"]),
        read_only=await a.add_user(8, READ_ONLY_SCOPES),
        team_scoped=await a.add_user(8, ["*"], scoped_teams=[a_env2]),
        org_scoped=await a.add_user(8, ["*"], scoped_organizations=[b.org_id]),
        revoked=revoked_key,
        b_no_scope=await b.add_user(8, ["dashboard:read"]),
    )


def test_every_action_is_served_four_ways():
    # Both prefixes x with/without trailing slash, for every action the factory knows.
    assert len(ROUTES) == 4 * len(all_actions())
    for action in all_actions():
        paths = {r.path for r in ROUTES if r.action.name == action.name}
        assert paths == {
            f"/api/environments/{{environment_id}}/data_warehouse/{action.name}/",
            f"/api/environments/{{environment_id}}/data_warehouse/{action.name}",
            f"/api/projects/{{project_id}}/data_warehouse/{action.name}/",
            f"/api/projects/{{project_id}}/data_warehouse/{action.name}",
        }


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_auth_matrix(mclient: httpx.AsyncClient, world: World, route: PublicRoute):
    a, m = world.a, route.method
    own = route.url(a.env_id if route.prefix == "environments" else a.project_id)
    action = route.action

    # 401: no key, unknown key, revoked key (also with an unknown team: 401 comes first).
    assert_error(await send(mclient, m, own), 401, "not_authenticated")
    for bad in (generate_key(), world.revoked, "phx_short", "not-a-key"):
        r = await send(mclient, m, own, bad)
        assert_error(r, 401, "authentication_failed", INVALID.format("Authorization header"))
    r = await send(mclient, m, route.url(987654321), world.revoked)
    assert_error(r, 401, "authentication_failed", INVALID.format("Authorization header"))

    # 404: unknown or malformed id, another organization's team (even for a key lacking
    # scopes: the team check comes before the scope check).
    for raw in ("987654321", "-1", "abc", "1.5", "9" * 30):
        assert_error(await send(mclient, m, route.url(raw), a.key), 404, "not_found")
    other = route.url(world.b.env_id if route.prefix == "environments" else world.b.project_id)
    assert_error(await send(mclient, m, own, world.b_no_scope), 404, "not_found")
    assert_error(await send(mclient, m, other, a.key), 404, "not_found")

    # 403: scopes.
    missing = f"API key missing required scope '{action.scopes[0]}'"
    assert_error(await send(mclient, m, own, world.no_scope), 403, "permission_denied", missing)
    first_write = next((s for s in action.scopes if s.endswith(":write")), None)
    r = await send(mclient, m, own, world.read_only)
    if first_write:
        msg = f"API key missing required scope '{first_write}'"
        assert_error(r, 403, "permission_denied", msg)
    else:
        assert_allowed(r)

    # 403: key restricted to other teams / organizations. The id is the environment the
    # request resolved to (the project's primary environment under /projects/).
    msg = f"API key does not have access to the requested project: ID {a.env_id}."
    assert_error(await send(mclient, m, own, world.team_scoped), 403, "permission_denied", msg)
    msg = f"API key does not have access to the requested organization: ID {a.org_id}."
    assert_error(await send(mclient, m, own, world.org_scoped), 403, "permission_denied", msg)

    # 403: organization admin.
    r = await send(mclient, m, own, world.member)
    if action.admin_verb:
        msg = f"Only organization admins can {action.admin_verb} the managed warehouse"
        assert_error(r, 403, "permission_denied", msg)
    else:
        assert_allowed(r)

    # Allowed: a `*` key of an admin.
    assert_allowed(await send(mclient, m, own, a.key))


def assert_allowed(r: httpx.Response) -> None:
    """Past every access check: the action itself answered (maybe 400/404/409 on its own)."""
    assert r.status_code not in (401, 403) and r.status_code < 500, r.text
    if r.status_code == 404:  # the action's own 404 ("No managed warehouse ..."), not the team's
        assert r.json()["detail"] != "Not found.", r.text


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.path.endswith("/") and r.prefix == "projects"], ids=str
)
async def test_both_prefixes_answer_the_same(
    mclient: httpx.AsyncClient, world: World, route: PublicRoute
):
    env_route = route.path.replace("/projects/{project_id}/", "/environments/{environment_id}/")
    env_url = env_route.replace("{environment_id}", str(world.a.env_id))
    proj_url = route.url(world.a.project_id)
    for key in (world.a.key, world.member, world.no_scope, world.team_scoped, None):
        r_env = await send(mclient, route.method, env_url, key)
        r_proj = await send(mclient, route.method, proj_url, key)
        assert (r_env.status_code, _timeless(r_env.json())) == (
            r_proj.status_code,
            _timeless(r_proj.json()),
        )


def _timeless(body: object) -> object:
    """A body without the moment it was generated (managed-warehouse-data-status)."""
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k != "generated_at"}
    return body


async def test_key_in_query_string_and_body(app: FastAPI, settings: Settings, world: World):
    a = world.a
    get_url = a.env_url("check-database-name")
    async with extended_app(settings) as ext, client_for(ext) as c:
        r = await c.get(get_url, params={"name": "acme", "personal_api_key": a.key})
        expect(r, 200)
        r = await c.get(get_url, params={"name": "acme", "personal_api_key": generate_key()})
        assert_error(r, 401, "authentication_failed", INVALID.format("query string"))

        post_url = a.env_url("test-echo")
        r = await c.post(post_url, json={"note": "hi", "personal_api_key": a.key})
        expect(r, 200)
        assert r.json() == {"team_id": a.env_id, "note": "hi", "count": 0}
        r = await c.post(post_url, json={"personal_api_key": world.revoked})
        assert_error(r, 401, "authentication_failed", INVALID.format("body"))
        # The header wins over the body, the body over the query string.
        r = await c.post(
            post_url,
            json={"personal_api_key": a.key},
            headers={"Authorization": f"Bearer {generate_key()}"},
        )
        assert_error(r, 401, "authentication_failed", INVALID.format("Authorization header"))
        r = await c.post(
            post_url, params={"personal_api_key": a.key}, json={"personal_api_key": "phx_x"}
        )
        assert_error(r, 401, "authentication_failed", INVALID.format("body"))
        # Auth is checked before the body is validated.
        r = await c.post(post_url, json={"count": "many"})
        assert_error(r, 401, "not_authenticated")
        r = await c.post(post_url, json={"count": "many"}, headers=a.headers)
        assert_error(r, 400, "invalid_input")
        assert r.json()["attr"] == "count"


async def test_keys_are_stored_hashed_and_never_logged(
    client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)  # every logger: the app, FastAPI, asyncpg, ...
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # (it pins itself to WARNING) SQL + params
    tenant = await create_tenant(client)
    member = await tenant.add_user(1, ["warehouse_view:read"])
    url = tenant.env_url("check-database-name")
    plaintexts = [tenant.key, member]
    await client.get(url + "?name=acme", headers=tenant.headers)
    await client.get(url, params={"name": "acme", "personal_api_key": member})
    await client.get(url + "?name=acme", headers={"Authorization": f"Bearer {member}x"})
    await client.get(url + "?name=acme", headers={"Authorization": f"Bearer {member[:-1]}"})
    await client.get(
        "/api/environments/abc/data_warehouse/check-database-name/", headers=tenant.headers
    )
    # The test's own httpx client logs the URLs it sends; everything else is the service.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("sqlalchemy") for r in records), "expected SQL at DEBUG"
    for key in plaintexts:
        body = key[4:]
        for record in records:
            assert body not in record.getMessage()
            assert body not in repr(vars(record))

    rows = await sql(
        settings,
        "SELECT secure_value, mask_value FROM personal_api_keys WHERE user_id = ANY($1::bigint[])",
        [tenant.user_id],
    )
    assert rows
    for row in await sql(settings, "SELECT secure_value, mask_value FROM personal_api_keys"):
        assert re.fullmatch(r"sha256\$[0-9a-f]{64}", row["secure_value"])
        assert re.fullmatch(r"phx_\.\.\.[A-Za-z0-9]{4}", row["mask_value"])
    # No column of any table holds a plaintext key.
    tables = [
        r["tablename"]
        for r in await sql(settings, "SELECT tablename FROM pg_tables WHERE schemaname='public'")
    ]
    for table in tables:
        for key in plaintexts:
            hits = await sql(
                settings, f'SELECT 1 FROM "{table}" t WHERE t::text LIKE $1', f"%{key[4:]}%"
            )
            assert not hits, table


def test_access_log_lines_never_show_a_key():
    # uvicorn's access log prints the query string, where a key may travel.
    key = generate_key()
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/x/?name=a&personal_api_key={key}", "1.1", 200),
        None,
    )
    assert RedactKeys().filter(record)
    assert key[4:] not in record.getMessage()
    assert "personal_api_key=phx_[redacted]" in record.getMessage()
