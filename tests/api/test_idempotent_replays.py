"""A retry with the same Idempotency-Key replays the first answer byte for byte, for every
mutating action (API.md §5), through either prefix, and the change happens once.

Each action has a recipe: put a fresh organization where the action succeeds, send it once
with a key, then again (and through the other prefix); both answers must be the first one, and
the effect (audit records, state, the cluster's password) must be that of one request. A new
POST/DELETE action fails `test_every_mutating_action_has_a_replay_recipe` until it gets one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.models import AuditLog, IdempotencyKey
from app.routers import all_actions
from app.settings import Settings
from tests.support.harness import Tenant, create_tenant
from tests.support.lifecycle import Cluster, new_name, provision, run_burst_worker, status
from tests.support.status_recorder import expect


@dataclass
class World:
    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    cluster: Cluster


async def _audit(app: FastAPI, org_id: str) -> list[str]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditLog.action)
            .where(AuditLog.organization_id == uuid.UUID(org_id))
            .order_by(AuditLog.id)
        )
        return list(rows)


async def _ready(w: World, tenant: Tenant) -> tuple[str, str]:
    name = new_name("replay")
    r = expect(await provision(w.client, tenant, name), 202)
    await run_burst_worker(w.settings)
    assert (await status(w.client, tenant))["state"] == "ready"
    return name, r.json()["password"]


async def _deleted(w: World, tenant: Tenant) -> None:
    await _ready(w, tenant)
    expect(await w.client.post(tenant.env_url("deprovision"), headers=tenant.headers), 202)
    await run_burst_worker(w.settings)
    assert (await status(w.client, tenant))["state"] == "deleted"


# A recipe prepares the organization and returns (body, check): `check` runs after the first
# answer and its replays, with the first answer, and asserts the change happened once.
Check = Callable[[httpx.Response], Awaitable[None]]
Recipe = Callable[[World, Tenant], Awaitable[tuple[dict[str, Any] | None, Check]]]


async def provision_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    body = {"database_name": new_name("replay"), "table_name": "main"}

    async def check(first: httpx.Response) -> None:
        assert await _audit(w.app, tenant.org_id) == ["provision"]
        await run_burst_worker(w.settings)
        name = body["database_name"]
        assert await w.cluster.count_like(name) == (1, 1)
        (await w.cluster.login(name, name, first.json()["password"])).terminate()

    return body, check


async def reset_password_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    name, old_password = await _ready(w, tenant)

    async def check(first: httpx.Response) -> None:
        audit = await _audit(w.app, tenant.org_id)
        assert audit.count("rotate_password") == 1, audit
        # Rotated once: the replayed password is the one that logs in, the old one does not.
        (await w.cluster.login(name, name, first.json()["password"])).terminate()
        with pytest.raises(Exception, match="password authentication failed"):
            await w.cluster.login(name, name, old_password)

    return None, check


async def deprovision_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _ready(w, tenant)

    async def check(first: httpx.Response) -> None:
        audit = await _audit(w.app, tenant.org_id)
        assert audit.count("deprovision") == 1, audit
        assert (await status(w.client, tenant))["state"] == "deleting"

    return None, check


async def delete_org_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _deleted(w, tenant)

    async def check(first: httpx.Response) -> None:
        assert (await _audit(w.app, tenant.org_id)).count("delete_record") == 1
        # Without the key, a second delete finds nothing: the replays did not run again.
        again = await w.client.delete(tenant.env_url("delete-org"), headers=tenant.headers)
        expect(again, 404)

    return None, check


async def enable_backfill_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _ready(w, tenant)
    staging = await tenant.add_environment("staging")
    tenant.env_id = staging  # the action is sent from the second environment
    tenant.project_id = -1  # ... which is not the project's primary one
    body = {"table_name": "replayed"}

    async def check(first: httpx.Response) -> None:
        assert first.json() == {"enabled": True, "table_suffix": "replayed"}

    return body, check


async def onboard_team_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _ready(w, tenant)
    tenant.env_id = await tenant.add_environment("analytics")
    tenant.project_id = -1
    body = {"schema_name": "replayed_schema"}

    async def check(first: httpx.Response) -> None:
        assert first.json() == {"onboarded": True, "schema_name": "replayed_schema"}

    return body, check


async def _operations(w: World, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    r = expect(await w.client.get(tenant.env_url("operations"), headers=tenant.headers), 200)
    return [op for op in r.json()["results"] if op["action"] == action]


async def snapshot_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _ready(w, tenant)

    async def check(first: httpx.Response) -> None:
        assert len(await _operations(w, tenant, "snapshot")) == 1
        r = expect(await w.client.get(tenant.env_url("snapshots"), headers=tenant.headers), 200)
        assert [s["id"] for s in r.json()["results"]] == [first.json()["snapshot_id"]]

    return None, check


async def restore_recipe(w: World, tenant: Tenant) -> tuple[dict[str, Any] | None, Check]:
    await _ready(w, tenant)
    r = expect(await w.client.post(tenant.env_url("snapshot"), headers=tenant.headers), 202)
    snapshot_id = r.json()["snapshot_id"]
    await run_burst_worker(w.settings)
    r = await w.client.post(
        tenant.env_url("deprovision"), json={"skip_final_snapshot": True}, headers=tenant.headers
    )
    expect(r, 202)
    await run_burst_worker(w.settings)
    assert (await status(w.client, tenant))["state"] == "deleted"
    name = new_name("restored")
    body = {"snapshot_id": snapshot_id, "database_name": name}

    async def check(first: httpx.Response) -> None:
        assert len(await _operations(w, tenant, "restore")) == 1
        await run_burst_worker(w.settings)
        assert (await status(w.client, tenant))["state"] == "ready"
        assert await w.cluster.count_like(name) == (1, 1)
        (await w.cluster.login(name, name, first.json()["password"])).terminate()

    return body, check


RECIPES: dict[str, tuple[int, Recipe]] = {
    "snapshot": (202, snapshot_recipe),
    "restore": (202, restore_recipe),
    "provision": (202, provision_recipe),
    "reset-password": (200, reset_password_recipe),
    "deprovision": (202, deprovision_recipe),
    "delete-org": (200, delete_org_recipe),
    "enable_backfill": (200, enable_backfill_recipe),
    "onboard-team": (200, onboard_team_recipe),
}
MUTATING = [a for a in all_actions() if a.method in ("POST", "DELETE")]


def test_every_mutating_action_has_a_replay_recipe() -> None:
    missing = {a.name for a in MUTATING} - set(RECIPES)
    assert not missing, f"add a replay recipe to {__name__} for: {sorted(missing)}"


@pytest.mark.parametrize("action", MUTATING, ids=lambda a: a.name)
async def test_a_retry_with_the_same_key_replays_the_first_answer(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, warehouse_cluster: Any, action: Any
) -> None:
    status_code, recipe = RECIPES[action.name]
    world = World(client, app, settings, Cluster(warehouse_cluster))
    tenant = await create_tenant(client)
    body, check = await recipe(world, tenant)
    headers = {**tenant.headers, "Idempotency-Key": f"replay-{uuid.uuid4().hex}"}
    url = tenant.env_url(action.name)

    first = expect(
        await client.request(action.method, url, headers=headers, json=body), status_code
    )
    for _ in range(2):
        again = await client.request(action.method, url, headers=headers, json=body)
        expect(again, status_code)
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
    if tenant.project_id > 0:  # the other prefix names the same environment: the same answer
        via_project = await client.request(
            action.method, tenant.project_url(action.name), headers=headers, json=body
        )
        expect(via_project, status_code)
        assert via_project.content == first.content
    await check(first)
    await run_burst_worker(settings)  # leave no job behind for later tests' workers


async def test_a_retried_reset_password_returns_the_same_password_and_rotates_once(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, warehouse_cluster: Any
) -> None:
    world = World(client, app, settings, Cluster(warehouse_cluster))
    tenant = await create_tenant(client)
    name, old_password = await _ready(world, tenant)
    headers = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
    first = expect(await client.post(tenant.env_url("reset-password"), headers=headers), 200)
    verifier = await world.cluster.rolpassword(name)
    retried = expect(await client.post(tenant.env_url("reset-password"), headers=headers), 200)
    assert retried.json() == first.json() and retried.json()["password"] != old_password
    assert await world.cluster.rolpassword(name) == verifier  # not rotated a second time
    (await world.cluster.login(name, name, retried.json()["password"])).terminate()
    with pytest.raises(Exception, match="password authentication failed"):
        await world.cluster.login(name, name, old_password)
    # A new key is a new request: it rotates again.
    other = {**tenant.headers, "Idempotency-Key": uuid.uuid4().hex}
    second = expect(await client.post(tenant.env_url("reset-password"), headers=other), 200)
    assert second.json()["password"] != first.json()["password"]
    assert await world.cluster.rolpassword(name) != verifier


async def _claim(
    app: FastAPI, tenant: Tenant, key: str, body: dict[str, Any], age: timedelta
) -> None:
    """A claim left by a request with `body` that never answered (its process died `age` ago)."""
    now = datetime.now(UTC)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    request_hash = hashlib.sha256(b"POST\0\0" + canonical).hexdigest()
    async with app.state.sessionmaker() as session, session.begin():
        session.add(
            IdempotencyKey(
                key=key,
                user_id=tenant.user_id,
                team_id=tenant.env_id,
                action="provision",
                request_hash=request_hash,
                expires_at=now + timedelta(hours=24),
                created_at=now - age,
            )
        )


async def test_a_stale_claim_is_taken_over_and_a_fresh_one_is_not(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    tenant = await create_tenant(client)
    body = {"database_name": new_name("claim"), "table_name": "main"}
    stale_after = timedelta(seconds=settings.idempotency_stale_claim_seconds)

    fresh_key = uuid.uuid4().hex
    await _claim(app, tenant, fresh_key, body, age=stale_after / 4)
    headers = {**tenant.headers, "Idempotency-Key": fresh_key}
    r = expect(await client.post(tenant.env_url("provision"), json=body, headers=headers), 409)
    assert "still in progress" in r.json()["detail"]
    with pytest.raises(AssertionError):
        await status(client, tenant)  # nothing was provisioned

    stale_key = uuid.uuid4().hex
    await _claim(app, tenant, stale_key, body, age=stale_after + timedelta(seconds=5))
    headers = {**tenant.headers, "Idempotency-Key": stale_key}
    first = expect(await client.post(tenant.env_url("provision"), json=body, headers=headers), 202)
    replay = expect(await client.post(tenant.env_url("provision"), json=body, headers=headers), 202)
    assert replay.content == first.content
    assert (await status(client, tenant))["state"] == "pending"
    await run_burst_worker(settings)  # leave no job behind for later tests' workers


# Release on a 5xx (the warehouse cluster really stopped): tests/faults/test_hard_crashes.py.
