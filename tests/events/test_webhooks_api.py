"""The internal webhooks API (API.md §10): register, list, delete, validation, deliveries 404s."""

from __future__ import annotations

import base64
import uuid

import pytest

from app.services.events.outbox import EVENT_TYPES
from tests.support.harness import INTERNAL_HEADERS
from tests.support.status_recorder import expect

ALL = list(EVENT_TYPES)


def whsec(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n))).decode()


async def test_register_list_delete(client):
    r = await client.post(
        "/internal/webhooks", json={"url": "http://127.0.0.1:9/h"}, headers=INTERNAL_HEADERS
    )
    expect(r, 201)
    created = r.json()
    assert set(created) == {"id", "url", "events", "secret"}
    assert created["url"] == "http://127.0.0.1:9/h"
    assert created["events"] == ALL
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"][6:])) == 32
    uuid.UUID(created["id"])

    secret = whsec(24)
    r = await client.post(
        "/internal/webhooks",
        json={
            "url": "https://10.1.2.3:8443/x?y=1",
            "events": ["snapshot.ready", "warehouse.ready", "snapshot.ready"],
            "secret": secret,
        },
        headers=INTERNAL_HEADERS,
    )
    expect(r, 201)
    second = r.json()
    assert second["events"] == ["warehouse.ready", "snapshot.ready"]
    assert second["secret"] == secret

    r = await client.get("/internal/webhooks", headers=INTERNAL_HEADERS)
    expect(r, 200)
    listed = r.json()
    assert set(listed) == {"results"}
    assert listed["results"] == [
        {"id": created["id"], "url": created["url"], "events": ALL},
        {"id": second["id"], "url": second["url"], "events": second["events"]},
    ]
    assert created["secret"] not in r.text and secret not in r.text

    r = await client.delete(f"/internal/webhooks/{created['id']}", headers=INTERNAL_HEADERS)
    expect(r, 204)
    assert r.content == b""
    r = await client.delete(f"/internal/webhooks/{created['id']}", headers=INTERNAL_HEADERS)
    expect(r, 404)
    assert r.json()["code"] == "not_found"
    r = await client.get("/internal/webhooks", headers=INTERNAL_HEADERS)
    assert [w["id"] for w in r.json()["results"]] == [second["id"]]
    r = await client.get(f"/internal/webhooks/{created['id']}/deliveries", headers=INTERNAL_HEADERS)
    expect(r, 404)


@pytest.mark.parametrize("webhook_id", [str(uuid.uuid4()), "not-a-uuid", "1"])
async def test_unknown_ids_are_404(client, webhook_id):
    r = await client.delete(f"/internal/webhooks/{webhook_id}", headers=INTERNAL_HEADERS)
    expect(r, 404)
    assert set(r.json()) == {"type", "code", "detail", "attr"}
    r = await client.get(
        f"/internal/webhooks/{webhook_id}/deliveries?limit=0", headers=INTERNAL_HEADERS
    )
    assert r.status_code == 404  # 404 before 400


async def test_needs_the_internal_token(client):
    for method, path in [
        ("POST", "/internal/webhooks"),
        ("GET", "/internal/webhooks"),
        ("DELETE", f"/internal/webhooks/{uuid.uuid4()}"),
        ("GET", f"/internal/webhooks/{uuid.uuid4()}/deliveries"),
    ]:
        r = await client.request(method, path, json={"url": "http://x/"})
        expect(r, 401)


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        ({}, "url"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"url": "127.0.0.1:8000/x"}, "url"),
        ({"url": "http:///nohost"}, "url"),
        ({"url": "http://127.0.0.1:99999/x"}, "url"),
        ({"url": "http://a b/"}, "url"),
        ({"url": 5}, "url"),
        ({"url": "http://x/", "events": []}, "events"),
        ({"url": "http://x/", "events": ["warehouse.exploded"]}, "events"),
        ({"url": "http://x/", "events": "warehouse.ready"}, "events"),
        ({"url": "http://x/", "secret": "abc"}, "secret"),
        ({"url": "http://x/", "secret": whsec(23)}, "secret"),
        ({"url": "http://x/", "secret": whsec(65)}, "secret"),
        ({"url": "http://x/", "secret": "whsec_!!!notbase64!!!"}, "secret"),
        ({"url": "http://x/", "secret": whsec(32)[6:]}, "secret"),
        ({"url": "http://x/", "colour": "red"}, "colour"),
    ],
)
async def test_validation(client, body, attr):
    r = await client.post("/internal/webhooks", json=body, headers=INTERNAL_HEADERS)
    expect(r, 400)
    assert r.json()["attr"] == attr
    if isinstance(body.get("secret"), str):
        assert body["secret"] not in r.text


async def test_secret_boundaries_and_unpadded_base64(client):
    for secret in (whsec(24), whsec(64), whsec(32).rstrip("=")):
        r = await client.post(
            "/internal/webhooks",
            json={"url": "http://127.0.0.1:9/", "secret": secret},
            headers=INTERNAL_HEADERS,
        )
        expect(r, 201)


async def test_deliveries_limit(client):
    r = await client.post(
        "/internal/webhooks", json={"url": "http://127.0.0.1:9/"}, headers=INTERNAL_HEADERS
    )
    url = f"/internal/webhooks/{r.json()['id']}/deliveries"
    for limit in ("1", "100", "10" * 40):
        r = await client.get(url, params={"limit": limit}, headers=INTERNAL_HEADERS)
        expect(r, 200)
        assert r.json() == {"results": []}
    for limit in ("0", "-1", "x", "1.5"):
        r = await client.get(url, params={"limit": limit}, headers=INTERNAL_HEADERS)
        expect(r, 400)
        assert r.json()["attr"] == "limit", limit


async def test_wrong_method_names_every_allowed_one(client):
    r = await client.put("/internal/webhooks", headers=INTERNAL_HEADERS)
    expect(r, 405)
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["code"] == "method_not_allowed"
    r = await client.post(f"/internal/webhooks/{uuid.uuid4()}", headers=INTERNAL_HEADERS)
    expect(r, 405)
    assert r.headers["allow"] == "DELETE"


def test_retry_schedule_setting():
    from app.settings import Settings

    assert Settings(_env_file=None).webhook_retry_delays == (
        5,
        30,
        120,
        600,
        1800,
        3600,
        7200,
        14400,
        28800,
        43200,
    )
    assert Settings(_env_file=None, webhook_retry_schedule=" 1, 2.5 ").webhook_retry_delays == (
        1.0,
        2.5,
    )
    assert Settings(_env_file=None, webhook_retry_schedule="").webhook_retry_delays == ()
    for bad in ("1,x", "-1", "nan", "inf"):
        with pytest.raises(ValueError):
            Settings(_env_file=None, webhook_retry_schedule=bad)
