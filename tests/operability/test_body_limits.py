"""Body limits and parsing (API.md §10) on EVERY POST, PUT and PATCH route the app serves.

Routes are read from the app's own OpenAPI document, so routes other parts add are covered
without editing this file. Each shape of bad body gets a 4xx in the one error shape: too
deep, huge (declared and chunked), invalid UTF-8, NaN, NUL, a lone surrogate.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.http import ERROR_KEYS, client_for, extended_app
from tests.support.status_recorder import expect

PUBLIC_LIMIT = 65_536
INTERNAL_LIMIT = 16 * 1024 * 1024
JSON = {"Content-Type": "application/json"}


def nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "65 levels": (nested(65), "parse_error"),
    "60,000 open brackets": (b"[" * 60_000, "parse_error"),
    "deep and closed": (b"[" * 30_000 + b"]" * 30_000, "parse_error"),
    "invalid UTF-8": (b'{"name": "\xff\xfe"}', "parse_error"),
    "NaN": (b'{"name": NaN}', "parse_error"),
    "Infinity": (b'{"rows_synced": Infinity}', "parse_error"),
    "escaped NUL": (b'{"name": "a\\u0000b"}', "invalid_input"),
    "raw NUL": (b'{"name": "a\x00b"}', "invalid_input"),
    "NUL in a key": (b'{"a\\u0000": 1}', "invalid_input"),
    "lone surrogate": (b'{"name": "x\\ud800y"}', "invalid_input"),
    "lone low surrogate deep inside": (b'{"rows": [{"a": ["\\udc00"]}]}', "invalid_input"),
    "lone surrogate beside a big number": (
        b'{"n": 123456789012345678901234567890, "name": "\\udc00"}',
        "invalid_input",
    ),
    "65 levels beside wide ones": (
        b'{"rows": [' + b'{"p": {"q": 1}}, ' * 200 + nested(63) + b"]}",
        "parse_error",
    ),
}


@pytest.fixture(scope="module")
async def ext(settings: Settings) -> AsyncIterator[FastAPI]:
    async with extended_app(settings) as app:  # adds a public POST action with a body model
        yield app


@pytest.fixture(scope="module")
async def mclient(ext: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(ext) as c:
        yield c


@pytest.fixture(scope="module")
async def owner(mclient: httpx.AsyncClient) -> Tenant:
    return await create_tenant(mclient)


@pytest.fixture(scope="module")
async def routes(mclient: httpx.AsyncClient, owner: Tenant) -> list[tuple[str, str]]:
    doc = (await mclient.get("/openapi.json")).json()
    found = []
    for path, item in doc["paths"].items():
        for method in item:
            if method.upper() in ("POST", "PUT", "PATCH"):
                found.append((method.upper(), fill_path(path, owner)))
    assert sum(1 for m, p in found if m == "POST" and p.startswith("/api/")) >= 10
    assert sum(1 for m, p in found if m == "PUT" and p.startswith("/internal/")) >= 8
    return found


def fill_path(path: str, tenant: Tenant) -> str:
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


def auth(path: str, tenant: Tenant) -> dict[str, str]:
    return dict(INTERNAL_HEADERS) if path.startswith("/internal/") else tenant.headers


def assert_error(r: httpx.Response, status: int, code: str, what: str) -> None:
    where = (what, r.request.method, r.request.url.path, r.status_code, r.text[:300])
    expect(r, status)
    body = r.json()
    assert set(body) == ERROR_KEYS, where
    assert body["code"] == code, where


async def test_bad_bodies_answer_400_on_every_route(
    mclient: httpx.AsyncClient, owner: Tenant, routes: list[tuple[str, str]]
):
    for method, url in routes:
        headers = {**auth(url, owner), **JSON}
        for what, (raw, code) in BAD_BODIES.items():
            r = await mclient.request(method, url, content=raw, headers=headers)
            assert_error(r, 400, code, what)
            if code == "invalid_input":
                assert r.json()["type"] == "validation_error"
        # 64 levels are still JSON: whatever the route says about it, not parse_error.
        r = await mclient.request(method, url, content=nested(64), headers=headers)
        assert r.status_code < 500, (url, r.text[:300])
        assert r.status_code < 400 or r.json()["code"] != "parse_error", (url, r.text[:300])


async def test_checks_come_after_authentication(
    mclient: httpx.AsyncClient, routes: list[tuple[str, str]]
):
    wrong_token = {"Authorization": "Bearer nope", **JSON}
    for method, url in routes:
        for raw, _ in BAD_BODIES.values():
            r = await mclient.request(method, url, content=raw, headers=JSON)
            assert_error(r, 401, "not_authenticated", "no key")
            r = await mclient.request(method, url, content=raw, headers=wrong_token)
            assert_error(r, 401, "authentication_failed", "wrong key")


async def test_bodies_over_the_limit_are_413_before_authentication(
    mclient: httpx.AsyncClient, owner: Tenant, routes: list[tuple[str, str]]
):
    public_over, public_at = padded(PUBLIC_LIMIT + 1), padded(PUBLIC_LIMIT)
    internal_over = padded(INTERNAL_LIMIT + 1)
    for method, url in routes:
        internal = url.startswith("/internal/")
        over = internal_over if internal else public_over
        for headers in ({**auth(url, owner), **JSON}, JSON):  # with and without credentials
            r = await mclient.request(method, url, content=over, headers=headers)
            assert_error(r, 413, "payload_too_large", "declared")
            assert r.json()["type"] == "invalid_request"
        if not internal:
            r = await mclient.request(method, url, content=public_at, headers=auth(url, owner))
            assert r.status_code != 413 and r.status_code < 500, (url, r.text[:300])


async def test_a_chunked_body_is_counted_and_never_read_past_the_limit(
    mclient: httpx.AsyncClient, owner: Tenant, routes: list[tuple[str, str]]
):
    for method, url in routes:
        internal = url.startswith("/internal/")
        chunk = b"x" * (1024 * 1024 if internal else 8 * 1024)
        limit = INTERNAL_LIMIT if internal else PUBLIC_LIMIT
        pulled = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(limit // len(chunk) + 50):
                pulled += 1
                yield chunk

        r = await mclient.request(method, url, content=body(), headers=auth(url, owner))
        assert "content-length" not in r.request.headers  # sent chunked
        assert_error(r, 413, "payload_too_large", "chunked")
        assert pulled <= limit // len(chunk) + 2, (url, pulled)  # stopped at the limit


async def test_internal_limit_is_a_setting(settings: Settings):
    small = settings.model_copy(update={"max_internal_body_bytes": 1000})
    async with extended_app(small) as app, client_for(app) as c:
        url = "/internal/organizations"
        r = await c.post(url, content=padded(1001), headers={**INTERNAL_HEADERS, **JSON})
        assert_error(r, 413, "payload_too_large", "setting")
        r = await c.post(
            url,
            content=b'{"name": "' + b"y" * 200 + b'"}' + b" " * 700,
            headers={**INTERNAL_HEADERS, **JSON},
        )
        expect(r, 201)


async def test_nul_or_lone_surrogate_in_a_query_is_400_after_auth(
    mclient: httpx.AsyncClient, owner: Tenant
):
    url = owner.env_url("check-database-name")
    for raw in ("name=a%00b", "name=x%ED%A0%80", "other=%00&name=acme", "name=ok&x%00=1"):
        r = await mclient.get(f"{url}?{raw}", headers=owner.headers)
        assert_error(r, 400, "invalid_input", raw)
        r = await mclient.get(f"{url}?{raw}")
        assert_error(r, 401, "not_authenticated", raw)
    r = await mclient.get(f"{url}?name=a%00b", headers=owner.headers)
    assert r.json()["attr"] == "name"
    r = await mclient.get(f"{url}?name=caf%C3%A9-ok%F0%9F%98%80", headers=owner.headers)
    expect(r, 400)
    assert r.json()["code"] == "invalid_input"  # a name rule, not NUL


async def test_a_paired_surrogate_is_fine(mclient: httpx.AsyncClient, owner: Tenant):
    url = owner.env_url("test-echo")
    body = b'{"note": "\\ud83d\\ude00"}'
    r = await mclient.post(url, content=body, headers={**owner.headers, **JSON})
    expect(r, 200)
    assert r.json()["note"] == "\U0001f600"
