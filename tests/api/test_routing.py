"""The action route's own shortcuts give exactly what Starlette's general code gives: the query
string parse, the route match, and the metrics route template."""

from typing import Any

import httpx
import pytest
from starlette.datastructures import QueryParams
from starlette.routing import Match

from app.core.errors import PermissionDenied
from app.main import create_app
from app.pipeline.metrics import RouteTemplates
from app.pipeline.router import ActionRequest, ActionRoute
from app.pipeline.solver import direct_solver


def _scope(path: str = "/", query: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [],
        **extra,
    }


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"days=7",
        b"a=1&a=2&b=3",
        b"a=&b",
        b"=x",
        b"&&a=1&&",
        b"a=b=c",
        b"personal_api_key=phx_abc123",
        b"name=caf\xe9",
        b"a=%41%42",
        b"a=b+c",
        b"a=1;b=2",
        b"a=%zz",
    ],
)
def test_query_params_equal_starlettes_parse(raw: bytes) -> None:
    fast = ActionRequest(_scope(query=raw)).query_params
    assert list(fast.multi_items()) == list(QueryParams(raw).multi_items())


def _routes() -> list[ActionRoute]:
    return [r for r in create_app().routes if isinstance(r, ActionRoute)]


def test_action_routes_match_as_their_patterns_do() -> None:
    routes = _routes()
    assert routes
    paths = [
        "/api/environments/1/data_warehouse/job_stats",
        "/api/environments/1/data_warehouse/job_stats/",
        "/api/projects/77/data_warehouse/running_activity/",
        "/api/projects/x/data_warehouse/job_stats/",
        "/api/projects/1/data_warehouse/",
        "/api/environments/1/data_warehouse/nope/",
        "/healthz",
        "/",
    ]
    for route in routes:
        for path in paths:
            scope = _scope(path)
            got, _ = route.matches(scope)
            expected, _ = super(ActionRoute, route).matches(_scope(path))
            assert got == expected, (route.path, path)
    # Each path above that names an action matches at least one route fully.
    full = [
        path
        for path in paths
        if any(route.matches(_scope(path))[0] == Match.FULL for route in routes)
    ]
    assert "/api/environments/1/data_warehouse/job_stats/" in full
    assert "/api/projects/77/data_warehouse/running_activity/" in full
    assert "/healthz" not in full


def test_route_template_of_a_routed_request_is_its_path() -> None:
    app = create_app()
    templates = RouteTemplates()
    route = next(
        r for r in app.routes if isinstance(r, ActionRoute) and r.path.endswith("/job_stats/")
    )
    scope = _scope("/api/environments/5/data_warehouse/job_stats/", app=app, route=route)
    assert templates(scope) == route.path
    # Not routed (404s, the trailing-slash redirect): the template still comes from the path.
    unrouted = _scope("/api/environments/5/data_warehouse/job_stats", app=app)
    assert templates(unrouted) == route.path


def test_simple_dependency_trees_skip_the_general_solver() -> None:
    """Reads whose dependencies are plain `async def`s with query parameters at most are
    solved directly; a session (a generator) or a body keeps FastAPI's solver."""
    direct = {
        r.path.split("/data_warehouse/")[1]
        for r in _routes()
        if r.path.startswith("/api/environments/")
        and r.body_field is None
        and direct_solver(r.dependant) is not None
    }
    assert {"warehouse_status/", "job_stats/", "running_activity/"} <= direct
    assert not {"provision/", "reset-password/", "check-database-name/"} & direct


async def test_dependency_overrides_still_apply() -> None:
    """With overrides set, the route goes through FastAPI's solver, which applies them."""
    app = create_app()
    route = next(
        r
        for r in app.routes
        if isinstance(r, ActionRoute)
        and r.path == "/api/environments/{environment_id}/data_warehouse/warehouse_status/"
    )
    guard = route.dependant.dependencies[0].call
    assert guard is not None

    async def refuse() -> None:
        raise PermissionDenied("overridden")

    app.dependency_overrides[guard] = refuse
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/api/environments/1/data_warehouse/warehouse_status/")
    assert r.status_code == 403 and r.json()["detail"] == "overridden", r.text
