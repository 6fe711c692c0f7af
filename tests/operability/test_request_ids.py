"""Request ids (API.md §10): kept when sane, else generated; on every response, on every log
line of the request, and quoted by a 500."""

from __future__ import annotations

import re

import httpx
import pytest

from app.settings import Settings
from tests.operability.logs import captured_logs
from tests.support.harness import INTERNAL_HEADERS, Tenant
from tests.support.http import client_for, extended_app, key_id_of
from tests.support.status_recorder import expect

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("sane", ["abc", "A-Z.a_z-0.9", "x" * 128, "1"])
async def test_a_sane_request_id_is_kept(client: httpx.AsyncClient, sane: str):
    r = await client.get("/healthz", headers={"X-Request-ID": sane})
    assert r.headers["x-request-id"] == sane


@pytest.mark.parametrize("bad", ["", "x" * 129, "has space", "semi;colon", "ünï", "a/b", "a\tb"])
async def test_an_insane_request_id_is_replaced(client: httpx.AsyncClient, bad: str):
    r = await client.get("/healthz", headers={b"X-Request-ID": bad.encode()})
    assert GENERATED.fullmatch(r.headers["x-request-id"]), r.headers


async def test_every_response_carries_a_fresh_id(client: httpx.AsyncClient, tenant: Tenant):
    responses = [
        await client.get("/healthz"),
        await client.get("/no-such-route"),
        await client.get(tenant.env_url("warehouse_status")),  # 401
        await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers),
        await client.post("/internal/organizations", json={}, headers=INTERNAL_HEADERS),
        await client.post("/internal/organizations", content=b"x" * 20_000_000),  # 413
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(GENERATED.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


async def test_every_log_line_of_a_request_names_its_id(settings: Settings):
    async with extended_app(settings) as ext, client_for(ext) as c:
        with captured_logs() as logs:
            r = await c.get("/test-only/crash", headers={"X-Request-ID": "crash-1"})
        expect(r, 500)
        assert r.headers["x-request-id"] == "crash-1"
        assert r.json()["detail"] == "A server error occurred. Request id: crash-1."
        # The service's own lines (the test client's httpx logger writes one too).
        records = [rec for rec in logs.json_records() if rec["logger"].startswith("app.")]
        assert {rec["logger"] for rec in records} >= {"app.core.errors", "app.access"}
        assert all(rec.get("request_id") == "crash-1" for rec in records), records
        lines = [line for line in logs.text_lines() if " app." in line]
        assert len(lines) >= 2 and all("request_id=crash-1" in line for line in lines)
        # A generated id is the one quoted in the detail and sent back.
        r = await c.get("/test-only/crash", headers={"X-Request-ID": "not sane!"})
        rid = r.headers["x-request-id"]
        assert GENERATED.fullmatch(rid)
        assert r.json()["detail"] == f"A server error occurred. Request id: {rid}."
        assert len(r.headers.get_list("x-request-id")) == 1


async def test_access_line_fields(client: httpx.AsyncClient, tenant: Tenant, settings: Settings):
    with captured_logs() as logs:
        r = await client.get(
            tenant.env_url("check-database-name"),
            params={"name": "acme-access"},
            headers={**tenant.headers, "X-Request-ID": "access-1"},
        )
        expect(r, 200)
        await client.get(f"/api/projects/{tenant.project_id}/data_warehouse/nope/")
    first, second = logs.access()
    assert first["request_id"] == "access-1"
    assert first["method"] == "GET"
    assert (
        first["route"] == "/api/environments/{environment_id}/data_warehouse/check-database-name/"
    )
    assert first["status"] == 200
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] > 0
    assert first["team_id"] == tenant.env_id
    assert first["key_id"] == await key_id_of(settings, tenant.key)
    assert second["route"] == "unmatched" and second["status"] == 404
    assert second["team_id"] is None and second["key_id"] is None
    service_lines = [line for line in logs.text_lines() if " httpx " not in line]
    everything = "\n".join(service_lines) + str(logs.access())
    assert tenant.key not in everything
    assert "acme-access" not in everything  # a route template, not the raw path or query
