"""Helpers shared by the foundation's tests: route discovery, a test-only app, direct SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import httpx
from fastapi import Body, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.core.scopes import Scope
from app.main import create_app
from app.pipeline.actions import Action
from app.pipeline.auth import Context, environment_resolver
from app.pipeline.router import add_data_warehouse_actions
from app.pipeline.sessions import DbSession
from app.routers import all_actions
from app.services.identity.keys import hash_key
from app.settings import Settings, to_plain_dsn
from tests.support.status_recorder import expect

ERROR_KEYS = {"type", "code", "detail", "attr"}


@dataclass(frozen=True)
class PublicRoute:
    """One registered public route: an action under one prefix, with or without the slash."""

    action: Action
    method: str
    path: str  # with `{environment_id}` or `{project_id}`

    @property
    def prefix(self) -> str:
        return "environments" if "{environment_id}" in self.path else "projects"

    def url(self, team_or_project: object) -> str:
        return self.path.replace("{environment_id}", str(team_or_project)).replace(
            "{project_id}", str(team_or_project)
        )

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def public_routes(app: FastAPI | None = None) -> list[PublicRoute]:
    """Every `/api/` path the app serves, found by walking `app.routes` (so routes other
    branches add are covered without touching the tests): a route's path, and the path without
    its trailing slash when the route's pattern takes that too."""
    app = app or create_app(Settings(_env_file=None))
    actions = {a.name: a for a in all_actions()}
    found = []
    for route in _flat_routes(app):
        if not isinstance(route.original, APIRoute) or not route.path.startswith("/api/"):
            continue
        name = route.path.split("/data_warehouse/", 1)[1].rstrip("/")
        paths = [route.path]
        bare = route.path.rstrip("/")
        if bare != route.path and route.original.path_regex.match(bare):
            paths.append(bare)
        for path in paths:
            for method in sorted(route.methods):
                found.append(PublicRoute(actions[name], method, path))
    return found


@dataclass(frozen=True)
class _Flat:
    original: Any
    path: str
    methods: set[str]


def _flat_routes(app: FastAPI) -> list[_Flat]:
    """`app.routes` with included routers expanded (FastAPI >= 0.16x keeps them nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are already flat
        return [
            _Flat(r, r.path, set(r.methods or ())) for r in app.routes if isinstance(r, APIRoute)
        ]
    return [
        _Flat(rc.original_route, rc.path, set(rc.methods or ()))
        for rc in iter_route_contexts(app.routes)
        if rc.path is not None
    ]


def assert_error(r: httpx.Response, status: int, code: str, detail: str | None = None) -> None:
    expect(r, status)
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert body["code"] == code, body
    if detail is not None:
        assert body["detail"] == detail, body


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    key: str | None = None,
    **kw: Any,
) -> httpx.Response:
    headers = dict(kw.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if method in ("POST", "DELETE") and "json" not in kw and "content" not in kw:
        kw["json"] = {}
    return await client.request(method, url, headers=headers, **kw)


async def sql(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the test's service database, outside the app."""
    conn = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def key_id_of(settings: Settings, key: str) -> str:
    """A key's id, found as an operator would: by its hash."""
    rows = await sql(
        settings, "SELECT id FROM personal_api_keys WHERE secure_value = $1", hash_key(key)
    )
    return str(rows[0]["id"])


# ----------------------------------------------------------------------------- test-only app


class EchoIn(BaseModel):
    note: Annotated[str, Field(max_length=50)] = ""
    count: int = 0


class EchoOut(BaseModel):
    team_id: int
    note: str
    count: int


async def echo(ctx: Context, body: Annotated[EchoIn, Body()]) -> EchoOut:
    return EchoOut(team_id=ctx.team.id, note=body.note, count=body.count)


ECHO_ACTION = Action(
    name="test-echo",
    method="POST",
    endpoint=echo,
    scopes=(Scope.WAREHOUSE_VIEW_WRITE,),
    response_model=EchoOut,
    summary="Test-only POST action",
    errors=(400,),
)
CRASH_MESSAGE = "boom: password=hunter2 at /secret/path"


@asynccontextmanager
async def extended_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app plus a POST action built by the real router factory and a crashing route.

    Production code never gets these; they let the suite exercise a JSON-body action and the
    unhandled-exception handler whatever actions exist on this branch.
    """
    app = create_app(settings)
    add_data_warehouse_actions(
        app.router,
        environment_resolver,
        prefix="/api/environments/{environment_id}/data_warehouse",
        operation_prefix="test_",
        actions=[ECHO_ACTION],
    )

    @app.get("/test-only/crash")
    async def crash() -> None:
        raise RuntimeError(CRASH_MESSAGE)

    @app.get("/test-only/store")
    async def store(value: str, session: DbSession) -> None:
        # Hands the input to PostgreSQL unchecked, as a route missing a validator would.
        await session.execute(text("SELECT CAST(:v AS text)"), {"v": value})

    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
