"""Operations (API.md §7): written with each change, finished by the state machine, listed and
read on both prefixes, and named in the 409s they cause."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.models import Operation, WarehouseTeamMembership
from app.settings import Settings
from tests.support.harness import Tenant, create_tenant
from tests.support.lifecycle import derive_settings, new_name, provision, run_burst_worker, status
from tests.support.status_recorder import expect

FIELDS = {"id", "action", "status", "org_id", "created_at", "updated_at", "finished_at", "error"}


def running_detail(operation_id: str) -> re.Pattern[str]:
    return re.compile(rf".* \(operation {re.escape(operation_id)} is running\)$")


async def get_operation(client: httpx.AsyncClient, tenant: Tenant, op_id: str) -> dict[str, Any]:
    r = await client.get(tenant.env_url(f"operations/{op_id}"), headers=tenant.headers)
    expect(r, 200)
    r2 = await client.get(tenant.project_url(f"operations/{op_id}"), headers=tenant.headers)
    expect(r2, 200)
    assert r2.json() == r.json()
    body: dict[str, Any] = r.json()
    assert set(body) == FIELDS
    return body


async def test_provision_operation_runs_then_succeeds(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    r = await provision(client, tenant, new_name())
    expect(r, 202)
    op_id = r.json()["operation_id"]
    assert set(r.json()) == {"status", "org", "username", "password", "operation_id"}
    op = await get_operation(client, tenant, op_id)
    assert op["action"] == "provision" and op["status"] == "running"
    assert op["org_id"] == tenant.org_id and op["finished_at"] is None and op["error"] is None

    # A credential change waits for it, and says which operation is in the way.
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 409)
    assert running_detail(op_id).fullmatch(r.json()["detail"]), r.json()

    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "ready"
    op = await get_operation(client, tenant, op_id)
    assert op["status"] == "succeeded" and op["error"] is None
    assert op["finished_at"] is not None
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 200)

    # Deprovision: one operation, however often it is asked for.
    first = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(first, 202)
    dep_id = first.json()["operation_id"]
    assert set(first.json()) == {"status", "org", "operation_id"}
    again = await client.post(tenant.project_url("deprovision"), headers=tenant.headers)
    expect(again, 202)
    assert again.json()["operation_id"] == dep_id
    # While it runs: no provision, no password reset, both naming it.
    r = await provision(client, tenant, new_name())
    expect(r, 409)
    assert running_detail(dep_id).fullmatch(r.json()["detail"])
    r = await client.post(tenant.env_url("reset-password"), headers=tenant.headers)
    expect(r, 409)
    assert running_detail(dep_id).fullmatch(r.json()["detail"])

    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"
    assert (await get_operation(client, tenant, dep_id))["status"] == "succeeded"
    after = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(after, 202)
    assert after.json()["operation_id"] == dep_id and after.json()["status"] == "deleted"

    r = await client.get(tenant.env_url("operations"), headers=tenant.headers)
    expect(r, 200)
    listed = r.json()
    assert [o["id"] for o in listed["results"]] == [dep_id, op_id]
    assert listed["next"] is None and listed["previous"] is None


async def test_deprovision_during_provisioning_fails_the_provision(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI, settings: Settings
) -> None:
    r = await provision(client, tenant, new_name())
    prov_id = r.json()["operation_id"]
    async with app.state.sessionmaker() as session, session.begin():
        op = await session.get(Operation, uuid.UUID(prov_id))
        assert op is not None
    # Let the worker take the first steps: `provisioning` allows a deprovision (§4.2).
    await _set_state(app, tenant, "provisioning")
    r = await client.post(tenant.env_url("deprovision"), headers=tenant.headers)
    expect(r, 202)
    dep_id = r.json()["operation_id"]
    assert dep_id != prov_id
    prov = await get_operation(client, tenant, prov_id)
    assert prov["status"] == "failed" and prov["finished_at"] is not None
    assert prov["error"] == "Provisioning was stopped by a deprovision request"
    await run_burst_worker(settings)
    assert (await status(client, tenant))["state"] == "deleted"
    assert (await get_operation(client, tenant, dep_id))["status"] == "succeeded"


async def test_failed_provision_fails_its_operation_with_the_status_message(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI, settings: Settings
) -> None:
    staging = await tenant.add_environment("staging")
    async with app.state.sessionmaker() as session, session.begin():
        session.add(
            WarehouseTeamMembership(
                team_id=staging, organization_id=uuid.UUID(tenant.org_id), schema_name="pg_nope"
            )
        )
    r = await provision(client, tenant, new_name())
    op_id = r.json()["operation_id"]
    await run_burst_worker(derive_settings(settings, provision_deadline_seconds=1.5))
    body = await status(client, tenant)
    assert body["state"] == "failed"
    op = await get_operation(client, tenant, op_id)
    assert op["status"] == "failed"
    assert op["error"] == body["status_message"]
    assert "pg_nope" not in op["error"] and r.json()["password"] not in op["error"]
    # Clean up the half-built warehouse.
    assert (await client.post(tenant.env_url("deprovision"), headers=tenant.headers)).status_code
    async with app.state.sessionmaker() as session, session.begin():
        bad = await session.get(WarehouseTeamMembership, await _membership_id(app, staging))
        await session.delete(bad)
    await run_burst_worker(settings)


async def test_list_pages_and_caps(client: httpx.AsyncClient, app: FastAPI) -> None:
    tenant = await create_tenant(client)
    org = uuid.UUID(tenant.org_id)
    start = datetime.now(UTC) - timedelta(days=1)
    ids = [uuid.uuid4() for _ in range(105)]
    async with app.state.sessionmaker() as session, session.begin():
        for i, op_id in enumerate(ids):
            session.add(
                Operation(
                    id=op_id,
                    organization_id=org,
                    action="provision",
                    status="succeeded",
                    created_at=start + timedelta(seconds=i),
                    finished_at=start + timedelta(seconds=i),
                )
            )
    newest_first = [str(i) for i in reversed(ids)]
    second_env = await tenant.add_environment("second")

    r = await client.get(tenant.env_url("operations"), headers=tenant.headers)
    page = r.json()
    assert [o["id"] for o in page["results"]] == newest_first[:20]
    assert page["next"] == "?limit=20&offset=20" and page["previous"] is None
    # The same list from every environment of the organization, under both prefixes.
    other = f"/api/environments/{second_env}/data_warehouse/operations/"
    assert (await client.get(other, headers=tenant.headers)).json() == page
    assert (await client.get(tenant.project_url("operations"), headers=tenant.headers)).json() == (
        page
    )

    r = await client.get(
        tenant.env_url("operations") + "?limit=20&offset=20", headers=tenant.headers
    )
    page = r.json()
    assert [o["id"] for o in page["results"]] == newest_first[20:40]
    assert page["previous"] == "?limit=20&offset=0" and page["next"] == "?limit=20&offset=40"

    r = await client.get(
        tenant.env_url("operations"), params={"limit": str(10**30)}, headers=tenant.headers
    )
    page = r.json()
    assert len(page["results"]) == 100 and page["next"] == "?limit=100&offset=100"
    r = await client.get(
        tenant.env_url("operations"),
        params={"limit": "100", "offset": "100"},
        headers=tenant.headers,
    )
    page = r.json()
    assert [o["id"] for o in page["results"]] == newest_first[100:]
    assert page["next"] is None and page["previous"] == "?limit=100&offset=0"
    r = await client.get(
        tenant.env_url("operations"), params={"offset": "-7"}, headers=tenant.headers
    )
    assert r.json()["previous"] is None and len(r.json()["results"]) == 20
    r = await client.get(
        tenant.env_url("operations"), params={"offset": str(10**40)}, headers=tenant.headers
    )
    expect(r, 200)
    assert r.json()["results"] == [] and r.json()["next"] is None

    for bad, attr in (
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"offset": "1.5"}, "offset"),
    ):
        r = await client.get(tenant.env_url("operations"), params=bad, headers=tenant.headers)
        expect(r, 400)
        assert r.json()["attr"] == attr, r.text


async def test_retrieve_not_found(client: httpx.AsyncClient, app: FastAPI) -> None:
    mine = await create_tenant(client)
    theirs = await create_tenant(client)
    op_id = uuid.uuid4()
    async with app.state.sessionmaker() as session, session.begin():
        session.add(
            Operation(
                id=op_id,
                organization_id=uuid.UUID(theirs.org_id),
                action="provision",
                status="running",
            )
        )
    assert (
        await client.get(theirs.env_url(f"operations/{op_id}"), headers=theirs.headers)
    ).status_code == 200
    for raw in (str(op_id), str(uuid.uuid4()), "not-a-uuid", "1" * 200):
        for url in (mine.env_url(f"operations/{raw}"), mine.project_url(f"operations/{raw}")):
            r = await client.get(url, headers=mine.headers)
            expect(r, 404)
            assert r.json()["code"] == "not_found"
    # Read scope is enough; no admin needed.
    member = await theirs.add_user(1, ["warehouse_view:read"])
    r = await client.get(
        theirs.env_url(f"operations/{op_id}"), headers={"Authorization": f"Bearer {member}"}
    )
    expect(r, 200)
    assert r.json()["status"] == "running"


async def _set_state(app: FastAPI, tenant: Tenant, state: str) -> None:
    from sqlalchemy import update

    from app.models import ManagedWarehouse

    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(ManagedWarehouse)
            .where(ManagedWarehouse.organization_id == uuid.UUID(tenant.org_id))
            .values(state=state)
        )


async def _membership_id(app: FastAPI, team_id: int) -> int:
    from sqlalchemy import select

    async with app.state.sessionmaker() as session:
        found = await session.scalar(
            select(WarehouseTeamMembership.id).where(WarehouseTeamMembership.team_id == team_id)
        )
    assert found is not None
    return int(found)
