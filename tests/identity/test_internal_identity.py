"""The internal identity API (API.md §6): idempotent creation, token auth, key revocation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from app.settings import Settings
from tests.support.harness import INTERNAL_HEADERS, Tenant, create_tenant
from tests.support.http import assert_error, key_id_of, sql
from tests.support.status_recorder import expect


async def test_repeated_organization_with_same_id_returns_it(client: httpx.AsyncClient):
    org_id = str(uuid.uuid4())
    r1 = await client.post(
        "/internal/organizations", json={"id": org_id, "name": "Acme"}, headers=INTERNAL_HEADERS
    )
    expect(r1, 201)
    assert r1.json() == {"id": org_id, "name": "Acme"}
    r2 = await client.post(
        "/internal/organizations", json={"id": org_id, "name": "Other"}, headers=INTERNAL_HEADERS
    )
    expect(r2, 200)
    assert r2.json() == {"id": org_id, "name": "Acme"}


async def test_repeated_user_email_adds_membership(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
):
    email = f"{uuid.uuid4().hex[:10]}@Example.com"
    body = {"email": email, "organization_id": tenant.org_id, "level": 1}
    r1 = await client.post("/internal/users", json=body, headers=INTERNAL_HEADERS)
    expect(r1, 201)
    assert r1.json()["email"] == email.lower()
    body2 = {"email": email, "organization_id": other_tenant.org_id, "level": 8}
    r2 = await client.post("/internal/users", json=body2, headers=INTERNAL_HEADERS)
    expect(r2, 200)
    assert r2.json() == r1.json()
    rows = await sql(
        settings,
        "SELECT organization_id::text AS org, level FROM organization_memberships "
        "WHERE user_id = $1 ORDER BY level",
        r1.json()["id"],
    )
    assert [(r["org"], r["level"]) for r in rows] == [
        (tenant.org_id, 1),
        (other_tenant.org_id, 8),
    ]
    # The new membership is real: the user's key now reaches the other organization's team.
    key = await tenant.add_key(r1.json()["id"], ["*"])
    r = await client.get(
        other_tenant.env_url("check-database-name") + "?name=acme",
        headers={"Authorization": f"Bearer {key}"},
    )
    expect(r, 200)


async def test_internal_token_required(client: httpx.AsyncClient, tenant: Tenant):
    calls = [
        ("POST", "/internal/organizations", {"name": "x"}),
        ("POST", "/internal/projects", {"organization_id": tenant.org_id, "name": "p"}),
        ("POST", "/internal/users", {"email": "a@b.c", "organization_id": tenant.org_id}),
        ("DELETE", f"/internal/personal_api_keys/{uuid.uuid4()}", None),
    ]
    for method, path, body in calls:
        r = await client.request(method, path, json=body)
        assert_error(r, 401, "not_authenticated")
        for header in (
            "Bearer wrong-token",
            f"Basic {INTERNAL_HEADERS['Authorization'][7:]}",
            f"Bearer {tenant.key}",  # a personal API key is not the internal token
            "Bearer ",
        ):
            r = await client.request(method, path, json=body, headers={"Authorization": header})
            assert_error(r, 401, "authentication_failed")


async def test_unknown_parents_are_404(client: httpx.AsyncClient):
    cases = [
        ("/internal/projects", {"organization_id": str(uuid.uuid4()), "name": "p"}),
        ("/internal/environments", {"project_id": 2**40, "name": "e"}),
        ("/internal/users", {"email": "z@z.z", "organization_id": str(uuid.uuid4()), "level": 1}),
        ("/internal/personal_api_keys", {"user_id": 2**40, "scopes": ["*"]}),
    ]
    for path, body in cases:
        r = await client.post(path, json=body, headers=INTERNAL_HEADERS)
        assert_error(r, 404, "not_found")


async def test_deleted_key_stops_working_at_once(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    url = tenant.env_url("check-database-name") + "?name=acme"
    key = await tenant.add_user(8, ["*"])
    headers = {"Authorization": f"Bearer {key}"}
    expect(await client.get(url, headers=headers), 200)
    key_id = await key_id_of(settings, key)
    r = await client.delete(f"/internal/personal_api_keys/{key_id}", headers=INTERNAL_HEADERS)
    expect(r, 204)
    assert r.content == b""
    r = await client.get(url, headers=headers)
    assert_error(
        r,
        401,
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
    )
    r = await client.delete(f"/internal/personal_api_keys/{key_id}", headers=INTERNAL_HEADERS)
    assert_error(r, 404, "not_found")
    r = await client.delete("/internal/personal_api_keys/not-a-uuid", headers=INTERNAL_HEADERS)
    assert_error(r, 400, "invalid_input")
    # Other keys of the organization keep working.
    expect(await client.get(url, headers=tenant.headers), 200)


async def test_key_is_returned_once_and_scopes_deduplicated(
    client: httpx.AsyncClient, tenant: Tenant
):
    r = await client.post(
        "/internal/personal_api_keys",
        json={
            "user_id": tenant.user_id,
            "scopes": ["warehouse_view:read", "warehouse_view:read", "query:read"],
            "label": "ci",
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 201)
    body = r.json()
    assert set(body) == {"id", "key", "mask_value", "scopes"}
    assert body["key"].startswith("phx_") and len(body["key"]) >= 47
    assert body["mask_value"] == f"phx_...{body['key'][-4:]}"
    assert body["scopes"] == ["warehouse_view:read", "query:read"]


async def test_project_timezone_applies_to_primary_environment(
    client: httpx.AsyncClient, settings: Settings
):
    tenant = await create_tenant(client, timezone="Asia/Tokyo")
    rows = await sql(
        settings, "SELECT timezone, is_primary, project_id FROM teams WHERE id = $1", tenant.env_id
    )
    assert rows[0]["timezone"] == "Asia/Tokyo"
    assert rows[0]["is_primary"] is True
    assert rows[0]["project_id"] == tenant.project_id
    r = await client.post(
        "/internal/environments",
        json={"project_id": tenant.project_id, "name": "eu", "timezone": "Europe/Paris"},
        headers=INTERNAL_HEADERS,
    )
    expect(r, 201)
    assert r.json()["timezone"] == "Europe/Paris"
    assert r.json()["project_id"] == tenant.project_id
    # The project prefix still resolves to the primary environment, not the new one.
    key = await tenant.add_user(8, ["*"], scoped_teams=[r.json()["id"]])
    r = await client.get(
        tenant.project_url("check-database-name") + "?name=acme",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert_error(
        r,
        403,
        "permission_denied",
        f"API key does not have access to the requested project: ID {tenant.env_id}.",
    )


async def test_last_used_at_written_at_most_once_an_hour(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    key = await tenant.add_user(8, ["*"])
    key_id = uuid.UUID(await key_id_of(settings, key))
    url = tenant.env_url("check-database-name") + "?name=acme"
    headers = {"Authorization": f"Bearer {key}"}

    async def last_used() -> datetime | None:
        rows = await sql(settings, "SELECT last_used_at FROM personal_api_keys WHERE id=$1", key_id)
        value: datetime | None = rows[0]["last_used_at"]
        return value

    assert await last_used() is None
    before = datetime.now(UTC)
    expect(await client.get(url, headers=headers), 200)
    first = await last_used()
    assert first is not None and first >= before - timedelta(seconds=1)
    xmin = (await sql(settings, "SELECT xmin::text FROM personal_api_keys WHERE id=$1", key_id))[0]
    expect(await client.get(url, headers=headers), 200)
    expect(await client.get(url, headers=headers), 200)
    assert await last_used() == first
    # Not rewritten at all: the row version is unchanged (xmin changes on every UPDATE).
    again = (await sql(settings, "SELECT xmin::text FROM personal_api_keys WHERE id=$1", key_id))[0]
    assert again == xmin
    # An hour later the next request writes it once more.
    old = first - timedelta(hours=1, minutes=1)
    await sql(settings, "UPDATE personal_api_keys SET last_used_at=$1 WHERE id=$2", old, key_id)
    expect(await client.get(url, headers=headers), 200)
    latest = await last_used()
    assert latest is not None and latest > first
