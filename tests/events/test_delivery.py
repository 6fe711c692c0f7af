"""Webhook delivery by the worker to a real HTTP receiver on 127.0.0.1 (API.md §10).

Signatures are checked here with hmac/base64 written for the test (not the app's signer), after
checking that code against the Standard Webhooks published test vector.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import pytest

from app.services.events.outbox import emit_event
from tests.events.receiver import Received, Receiver
from tests.support.harness import INTERNAL_HEADERS, ROOT, create_tenant
from tests.support.lifecycle import (
    derive_settings,
    new_name,
    provision,
    run_burst_worker,
    running_worker,
    wait_for_state,
    worker_env,
)
from tests.support.status_recorder import expect

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
DELIVERY_FIELDS = {
    "event_id",
    "type",
    "attempt",
    "status_code",
    "error",
    "delivered_at",
    "next_attempt_at",
}


def expected_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_independent_signer_matches_the_published_vector():
    assert (
        expected_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def check_signed(received, secret: str = SECRET) -> dict[str, Any]:
    h = received.headers
    assert h["webhook-id"].startswith("msg_")
    assert h["content-type"] == "application/json"
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    signatures = h["webhook-signature"].split(" ")
    assert expected_signature(secret, h["webhook-id"], h["webhook-timestamp"], received.body) in (
        signatures
    )
    body: dict[str, Any] = json.loads(received.body)
    assert set(body) == {"type", "timestamp", "data"}
    datetime.fromisoformat(body["timestamp"])
    return body


def private(settings, **changes):
    """Settings for a worker of its own: a long-running worker's cron jobs left in the shared
    queue would keep every later burst worker of the session from finding it empty."""
    queue_name = f"arq:webhooks-test:{uuid.uuid4().hex[:8]}"
    return derive_settings(settings, queue_name=queue_name, **changes)


async def register(client, url: str, **extra) -> str:
    r = await client.post(
        "/internal/webhooks", json={"url": url, "secret": SECRET, **extra}, headers=INTERNAL_HEADERS
    )
    expect(r, 201)
    webhook_id: str = r.json()["id"]
    return webhook_id


async def deliveries(client, webhook_id: str) -> list[dict[str, Any]]:
    r = await client.get(
        f"/internal/webhooks/{webhook_id}/deliveries?limit=100", headers=INTERNAL_HEADERS
    )
    expect(r, 200)
    rows: list[dict[str, Any]] = r.json()["results"]
    assert all(set(row) == DELIVERY_FIELDS for row in rows)
    return rows


async def wait_rows(
    client, webhook_id: str, count: int, within: float = 15
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while len(rows := await deliveries(client, webhook_id)) < count:
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)
    return rows


def of_org(receiver: Receiver, org_id: str) -> list[Received]:
    return [x for x in receiver.received if json.loads(x.body)["data"].get("org_id") == org_id]


# Synthetic events use `warehouse.password_reset`, and the endpoints of those tests subscribe to
# it only: workers never make that type, so the warehouses other tests left behind, which these
# workers move on, cannot send anything to them.
ONLY_OURS = ["warehouse.password_reset"]


async def emit(sessionmaker, type_: str = "warehouse.password_reset", **data) -> None:
    async with sessionmaker() as session, session.begin():
        await emit_event(session, type_, org_id=data.pop("org_id", uuid.uuid4()), **data)


async def test_lifecycle_events_arrive_signed(client, settings, sessionmaker, caplog):
    caplog.set_level(logging.DEBUG)
    async with Receiver() as receiver:
        webhook_id = await register(client, receiver.url)
        tenant = await create_tenant(client)
        r = await provision(client, tenant, new_name("hook"))
        expect(r, 202)
        passwords = [r.json()["password"]]
        operations = [r.json()["operation_id"]]
        await run_burst_worker(settings)
        await wait_for_state(client, tenant, {"ready"})
        r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
        expect(r, 200)
        passwords.append(r.json()["password"])
        r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
        expect(r, 202)
        operations.append(r.json()["operation_id"])
        await run_burst_worker(settings)
        await wait_for_state(client, tenant, {"deleted"})
        async with running_worker(private(settings)):  # sends whatever the burst workers left
            deadline = time.monotonic() + 15
            while len(received := of_org(receiver, tenant.org_id)) < 4:
                assert time.monotonic() < deadline, received
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # nothing else arrives
    # Other tests' warehouses that these workers moved on are sent here too: only ours count.
    received = of_org(receiver, tenant.org_id)

    # Sent concurrently: the order of arrival is not the order of the events.
    by_type = {check_signed(x)["type"]: x for x in received}
    assert len(received) == 4
    # The deprovision's final snapshot (API.md §9) has its event too.
    assert set(by_type) == {
        "warehouse.ready",
        "warehouse.password_reset",
        "snapshot.ready",
        "warehouse.deleted",
    }
    final = json.loads(by_type["snapshot.ready"].body)["data"]
    assert final["org_id"] == tenant.org_id and final["operation_id"] == operations[1]
    assert "snapshot_id" in final
    expected = {
        "warehouse.ready": ("ready", operations[0]),
        "warehouse.password_reset": ("ready", None),  # a reset is not an operation (§7)
        "warehouse.deleted": ("deleted", operations[1]),
    }
    for type_, (state, operation_id) in expected.items():
        data = json.loads(by_type[type_].body)["data"]
        assert data["org_id"] == tenant.org_id
        assert data["state"] == state
        assert data.get("operation_id") == operation_id  # the operation the change finished
        assert set(data) <= {"org_id", "operation_id", "state", "cluster", "snapshot_id"}
    ids = {x.headers["webhook-id"] for x in received}
    assert len(ids) == 4
    for x in received:
        assert all(p not in x.body.decode() for p in passwords)

    deadline = time.monotonic() + 15
    while True:
        rows = [r for r in await deliveries(client, webhook_id) if r["event_id"] in ids]
        if len(rows) >= 4:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)
    assert len(rows) == 4
    assert {row["event_id"] for row in rows} == ids
    assert {row["type"] for row in rows} == set(by_type)
    for row in rows:
        assert row["attempt"] == 1
        assert row["status_code"] == 200
        assert row["error"] is None
        assert row["next_attempt_at"] is None
        assert datetime.fromisoformat(row["delivered_at"]).tzinfo is not None
    ended = [datetime.fromisoformat(row["delivered_at"]) for row in rows]
    assert ended == sorted(ended, reverse=True)  # newest first
    r = await client.get(
        f"/internal/webhooks/{webhook_id}/deliveries?limit=1", headers=INTERNAL_HEADERS
    )
    assert len(r.json()["results"]) == 1
    assert SECRET not in caplog.text
    assert SECRET.removeprefix("whsec_") not in caplog.text


async def test_retries_on_the_schedule_until_a_2xx(client, settings, sessionmaker):
    fast = private(settings, webhook_retry_schedule="0.3,0.3,5")
    answers = iter([500, 503])
    async with Receiver(respond=lambda _r: next(answers, 204)) as receiver:
        webhook_id = await register(client, receiver.url, events=ONLY_OURS)
        await emit(sessionmaker, "warehouse.ready")  # not subscribed: never sent
        await emit(sessionmaker, state="ready")
        async with running_worker(fast):
            received = await receiver.wait_for(3)
            await asyncio.sleep(0.5)
    assert len(received) == 3
    assert len({x.headers["webhook-id"] for x in received}) == 1  # the same id on every retry
    for x in received:
        assert check_signed(x)["type"] == "warehouse.password_reset"
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert all(gap >= 0.25 for gap in gaps), gaps

    rows = await deliveries(client, webhook_id)
    assert [(r["attempt"], r["status_code"]) for r in rows] == [(3, 204), (2, 503), (1, 500)]
    assert rows[0]["delivered_at"] is not None and rows[0]["next_attempt_at"] is None
    for row in rows[1:]:
        assert row["delivered_at"] is None
        assert row["error"] and "50" in row["error"]
        assert row["next_attempt_at"] is not None
    assert {r["event_id"] for r in rows} == {received[0].headers["webhook-id"]}


async def test_gives_up_when_the_schedule_ends(client, settings, sessionmaker):
    fast = private(settings, webhook_retry_schedule="0.2,0.2")
    async with Receiver(respond=lambda _r: 500) as receiver:
        webhook_id = await register(client, receiver.url, events=ONLY_OURS)
        await emit(sessionmaker)
        async with running_worker(fast):
            await receiver.wait_for(3)
            await asyncio.sleep(1.0)
    assert len(receiver.received) == 3  # first attempt + one per delay, then no more
    rows = await deliveries(client, webhook_id)
    assert [r["attempt"] for r in rows] == [3, 2, 1]
    assert rows[0]["next_attempt_at"] is None and rows[0]["delivered_at"] is None
    assert all(r["next_attempt_at"] for r in rows[1:])


async def test_unreachable_endpoint_is_logged_as_an_error(client, settings, sessionmaker):
    receiver = await Receiver().start()
    url = receiver.url
    await receiver.stop()  # nothing listens there any more
    fast = private(settings, webhook_retry_schedule="")
    webhook_id = await register(client, url, events=ONLY_OURS)
    await emit(sessionmaker)
    async with running_worker(fast):
        rows = await wait_rows(client, webhook_id, 1)
    assert len(rows) == 1
    assert rows[0]["status_code"] is None
    assert rows[0]["error"] == "Could not connect to the endpoint"
    assert rows[0]["next_attempt_at"] is None


async def test_deleted_endpoint_gets_nothing_more(client, settings, sessionmaker):
    async with Receiver() as receiver:
        webhook_id = await register(client, receiver.url, events=ONLY_OURS)
        await emit(sessionmaker)
        r = await client.delete(f"/internal/webhooks/{webhook_id}", headers=INTERNAL_HEADERS)
        expect(r, 204)
        await emit(sessionmaker)
        async with running_worker(private(settings)):
            await asyncio.sleep(1.0)
    assert receiver.received == []


@pytest.mark.fault
async def test_a_worker_sigkilled_mid_delivery_loses_nothing(client, settings, sessionmaker):
    leased = private(settings, webhook_lease_seconds=1.0)
    async with Receiver(hang=True) as receiver:
        webhook_id = await register(client, receiver.url, events=ONLY_OURS)
        await emit(sessionmaker, state="ready")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.worker",
            cwd=str(ROOT),
            env=worker_env(leased, LOG_LEVEL="DEBUG"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            first = (await receiver.wait_for(1, within=30))[0]
        finally:
            proc.send_signal(signal.SIGKILL)
            _, stderr = await proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        assert SECRET not in stderr.decode()
        assert await deliveries(client, webhook_id) == []  # that attempt never ended

        receiver.hang = False
        async with running_worker(leased):
            again = (await receiver.wait_for(2, within=30))[1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.body == first.body
    check_signed(again)
    rows = await wait_rows(client, webhook_id, 1)
    assert [(r["attempt"], r["status_code"]) for r in rows] == [(1, 200)]


async def test_two_workers_share_the_outbox_without_sending_twice(client, settings, sessionmaker):
    async with Receiver() as receiver:
        webhook_id = await register(client, receiver.url, events=ONLY_OURS)
        async with sessionmaker() as session, session.begin():
            for _ in range(100):
                await emit_event(session, ONLY_OURS[0], org_id=uuid.uuid4(), state="ready")
        shared = private(settings)
        async with running_worker(shared), running_worker(shared):
            await receiver.wait_for(100)
            rows = await wait_rows(client, webhook_id, 100)
            await asyncio.sleep(0.5)
    ids = [x.headers["webhook-id"] for x in receiver.received]
    assert len(ids) == len(set(ids)) == 100
    assert sorted(r["event_id"] for r in rows) == sorted(ids)
