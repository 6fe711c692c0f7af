"""Bad input anywhere answers 400 in the error shape, never 500; unknown routes and methods too.

Operations are read from the app's own OpenAPI document, so inputs of routes added later
(public actions and internal PUTs alike) are exercised without editing this file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.http import CRASH_MESSAGE, ERROR_KEYS, assert_error, client_for, extended_app
from tests.support.status_recorder import expect

HUGE = "x" * 100_000
HUGE_QUERY = "x" * 60_000  # httpx refuses query strings over 64 KiB
BAD_QUERY_VALUES = [HUGE_QUERY, "", "-1", "abc", "1e309", "9" * 40, "a\x00b", "ünï", "%%", "[]"]
MALFORMED_JSON = [b"{", b'{"a": ', b"\xff\xfe", b"nul", b'{"a": 1}}']
NOT_AN_OBJECT = [b"[]", b'"text"', b"null", b"42"]
WRONG_VALUES: list[Any] = [HUGE, "", -1, 2**70, 1.5, True, None, [], {}, ["x"], "a\x00b"]


@pytest.fixture(scope="module")
async def mclient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture(scope="module")
async def owner(mclient: httpx.AsyncClient) -> Tenant:
    return await create_tenant(mclient)


@pytest.fixture(scope="module")
async def openapi(mclient: httpx.AsyncClient) -> dict[str, Any]:
    r = await mclient.get("/openapi.json")
    expect(r, 200)
    doc: dict[str, Any] = r.json()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method.upper(), op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


def fill_path(path: str, tenant: Tenant) -> str:
    """Concrete ids for a path template: the tenant's own where it names one."""
    values = {
        "environment_id": tenant.env_id,
        "team_id": tenant.env_id,
        "project_id": tenant.project_id,
        "org_id": tenant.org_id,
        "organization_id": tenant.org_id,
    }
    out = path
    while "{" in out:
        start = out.index("{")
        name = out[start + 1 : out.index("}", start)]
        out = out.replace("{" + name + "}", str(values.get(name, uuid.uuid4())), 1)
    return out


def headers_for(path: str, tenant: Tenant) -> dict[str, str]:
    return dict(INTERNAL_HEADERS) if path.startswith("/internal/") else tenant.headers


def body_properties(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = schema.get("schema", {})
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    props: dict[str, Any] = schema.get("properties", {})
    return props


def assert_client_error(r: httpx.Response, *, exact_400: bool = False) -> None:
    where = f"{r.request.method} {str(r.request.url)[:150]}"
    assert r.status_code < 500, (where, r.status_code, r.text[:300])
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == ERROR_KEYS, (where, body)
    if exact_400:
        expect(r, 400)


async def test_bad_query_values_never_500(
    mclient: httpx.AsyncClient, owner: Tenant, openapi: dict[str, Any]
):
    for path, method, op in operations(openapi):
        url, headers = fill_path(path, owner), headers_for(path, owner)
        params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        for name in [*params, "unknown_param"]:
            for value in BAD_QUERY_VALUES:
                kwargs: dict[str, Any] = {"params": {name: value}}
                if method in ("POST", "PUT", "PATCH"):
                    kwargs["json"] = {}
                r = await mclient.request(method, url, headers=headers, **kwargs)
                assert_client_error(r)


async def test_bad_json_bodies_answer_400(
    mclient: httpx.AsyncClient, owner: Tenant, openapi: dict[str, Any]
):
    posted = 0
    for path, method, op in operations(openapi):
        if "requestBody" not in op:
            continue
        posted += 1
        url, headers = fill_path(path, owner), headers_for(path, owner)
        headers = {**headers, "Content-Type": "application/json"}
        for raw in MALFORMED_JSON:
            r = await mclient.request(method, url, headers=headers, content=raw)
            assert_client_error(r, exact_400=True)
            assert r.json()["code"] == "parse_error", r.text
        for raw in NOT_AN_OBJECT:
            r = await mclient.request(method, url, headers=headers, content=raw)
            # `null` is no body, which an optional body may be (then the path decides).
            optional = raw == b"null" and not op["requestBody"].get("required")
            assert_client_error(r, exact_400=not optional)
        r = await mclient.request(
            method, url, headers=headers, content=b"x" * 60_000
        )  # under 64 KiB: 413 beyond
        assert_client_error(r, exact_400=True)
        # Each property set to each wrong value, the others left out.
        for prop in body_properties(openapi, op):
            for value in WRONG_VALUES:
                r = await mclient.request(method, url, headers=headers, json={prop: value})
                assert_client_error(r)
        r = await mclient.request(method, url, headers=headers, json={"no_such_field": 1})
        assert_client_error(r, exact_400=True)
    assert posted >= 5  # at least the internal identity POSTs


async def test_bad_input_to_internal_identity_names_the_field(
    mclient: httpx.AsyncClient, owner: Tenant
):
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/internal/organizations", {"name": HUGE}, "name"),
        ("/internal/organizations", {"name": "a\x00b"}, "name"),
        ("/internal/organizations", {"name": "Acme", "id": "not-a-uuid"}, "id"),
        ("/internal/projects", {"organization_id": owner.org_id, "name": 5}, "name"),
        (
            "/internal/projects",
            {"organization_id": owner.org_id, "name": "p", "timezone": "Mars/Base"},
            "timezone",
        ),
        ("/internal/environments", {"project_id": "one", "name": "e"}, "project_id"),
        ("/internal/environments", {"project_id": 2**70, "name": "e"}, "project_id"),
        (
            "/internal/users",
            {"email": "nope", "organization_id": owner.org_id, "level": 8},
            "email",
        ),
        (
            "/internal/users",
            {"email": "a@b.c", "organization_id": owner.org_id, "level": "x"},
            "level",
        ),
        ("/internal/personal_api_keys", {"user_id": owner.user_id, "scopes": ["bad"]}, "scopes.0"),
        ("/internal/personal_api_keys", {"user_id": owner.user_id, "scopes": []}, "scopes"),
        ("/internal/personal_api_keys", {"scopes": ["*"]}, "user_id"),
    ]
    for path, body, attr in cases:
        r = await mclient.post(path, json=body, headers=INTERNAL_HEADERS)
        assert_error(r, 400, r.json().get("code", "?"))
        assert r.json()["type"] == "validation_error", r.text
        assert r.json()["attr"] == attr, (path, body, r.text)
    r = await mclient.post(
        "/internal/users",
        json={"email": "x@example.com", "organization_id": owner.org_id, "level": 3},
        headers=INTERNAL_HEADERS,
    )
    assert_error(r, 400, "invalid_input")
    assert r.json()["attr"] == "level"


async def test_an_internal_write_without_a_body_names_its_first_required_field(
    mclient: httpx.AsyncClient, owner: Tenant
):
    """API.md §3: the 400 has `attr` set; §6: bodies are validated like the public API (whose
    `provision` without a body answers `database_name is required`)."""
    source = uuid.uuid4()
    cases = [
        ("POST", "/internal/organizations", "name"),
        ("POST", "/internal/projects", "organization_id"),
        ("POST", "/internal/users", "email"),
        ("POST", "/internal/personal_api_keys", "user_id"),
        ("PUT", f"/internal/environments/{owner.env_id}/sources/{source}", "source_type"),
        ("POST", f"/internal/warehouses/{owner.org_id}/move", "cluster"),
        ("POST", "/internal/webhooks", "url"),
    ]
    json_null = {**INTERNAL_HEADERS, "Content-Type": "application/json"}
    for method, path, attr in cases:
        # No body at all, and a JSON `null` body: both answer as an empty object would.
        for content, headers in ((None, INTERNAL_HEADERS), (b"null", json_null)):
            r = await mclient.request(method, path, content=content, headers=headers)
            assert_error(r, 400, "required", f"{attr} is required")
            assert r.json() == {
                "type": "validation_error",
                "code": "required",
                "detail": f"{attr} is required",
                "attr": attr,
            }, (method, path, content)
    # A PATCH whose fields are all optional: no body (or `null`) is an empty change, as `{}`.
    before = await mclient.get("/internal/clusters/default", headers=INTERNAL_HEADERS)
    expect(before, 200)
    for content, headers in ((None, INTERNAL_HEADERS), (b"null", json_null)):
        r = await mclient.patch("/internal/clusters/default", content=content, headers=headers)
        expect(r, 200)
        assert r.json() == before.json()
    r = await mclient.post(owner.env_url("provision"), headers=owner.headers)
    assert_error(r, 400, "required", "database_name is required")
    assert r.json()["attr"] == "database_name"


async def test_check_database_name_rejects_bad_names_with_400(
    mclient: httpx.AsyncClient, owner: Tenant
):
    url = owner.env_url("check-database-name")
    for name in (HUGE_QUERY, "A" * 64, "bad_name", "a\x00b", "1abc", "ab"):
        r = await mclient.get(url, params={"name": name}, headers=owner.headers)
        assert_error(r, 400, "invalid_input")
        assert r.json()["attr"] == "name"
        assert len(r.text) < 2000  # the detail never echoes a 100 KB input
    r = await mclient.get(url, headers=owner.headers)
    assert_error(r, 400, "required", "database_name is required")


async def test_unknown_route_and_wrong_method(mclient: httpx.AsyncClient, owner: Tenant):
    for path in ("/nope", "/api/", "/api/environments/1/data_warehouse/no-such-action/"):
        assert_error(await mclient.get(path, headers=owner.headers), 404, "not_found")
    url = owner.env_url("check-database-name")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = await mclient.request(method, url, headers=owner.headers)
        assert_error(r, 405, "method_not_allowed")
        assert r.json()["type"] == "invalid_request"
    r = await mclient.get("/internal/organizations", headers=INTERNAL_HEADERS)
    assert_error(r, 405, "method_not_allowed")


async def test_malformed_json_to_public_post_comes_after_auth(settings: Settings):
    async with extended_app(settings) as ext, client_for(ext) as c:
        tenant = await create_tenant(c)
        url = tenant.env_url("test-echo")
        r = await c.post(url, content=b"{", headers={"Content-Type": "application/json"})
        assert_error(r, 401, "not_authenticated")
        r = await c.post(
            url, content=b"{", headers={**tenant.headers, "Content-Type": "application/json"}
        )
        assert_error(r, 400, "parse_error")
        r = await c.post(url, json={"note": "x" * 60_000}, headers=tenant.headers)
        assert_error(r, 400, "invalid_input")
        assert r.json()["attr"] == "note"
        assert len(r.text) < 2000


async def test_unhandled_exception_is_a_generic_500(settings: Settings):
    async with extended_app(settings) as ext, client_for(ext) as c:
        r = await c.get("/test-only/crash", headers={"X-Request-ID": "req-123"})
    expect(r, 500)
    body = r.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == "server_error" and body["code"] == "error"
    assert body["detail"] == "A server error occurred. Request id: req-123."
    text = r.text + json.dumps(dict(r.headers))
    for leak in (CRASH_MESSAGE, "hunter2", "Traceback", "RuntimeError", "test_only", ".py"):
        assert leak not in text


async def test_value_the_database_cannot_store_is_400_not_500(settings: Settings):
    # The backstop for routes without their own check: SQLSTATE class 22 -> 400.
    async with extended_app(settings) as ext, client_for(ext) as c:
        r = await c.get("/test-only/store", params={"value": "a\x00b"})
        assert_error(r, 400, "invalid_input")
        assert r.json()["type"] == "validation_error"
        assert "0x00" not in r.text and "SELECT" not in r.text
        expect(await c.get("/test-only/store", params={"value": "ok"}), 200)
