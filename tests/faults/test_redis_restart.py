"""Redis is restarted (empty) while a warehouse is being provisioned.

API and long-running worker share a private redis-server. Right after the provision's 202 the
server is stopped (SIGTERM by PID); while it is down the API still answers (the rate limiter
fails open; a provision's state is committed and only its enqueue fails); a new empty server
comes back on the same port. The worker reconnects by itself, its reconciler re-sends the lost
jobs, and both warehouses end `ready` with exactly one database and one role each.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from app.settings import Settings
from tests.support.faults import RedisServer
from tests.support.harness import create_tenant, make_app
from tests.support.lifecycle import (
    Cluster,
    derive_settings,
    new_name,
    provision,
    running_worker,
    wait_for_state,
)
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault


async def test_provisioning_finishes_after_redis_restarts(
    settings: Settings, warehouse_cluster, service_db_url: str, redis_server: RedisServer
) -> None:
    private = derive_settings(
        settings,
        database_url=service_db_url,
        redis_url=redis_server.url,
        queue_name=f"arq:faults-redis:{uuid.uuid4().hex[:8]}",
        rate_limit_per_minute=1000,
    )
    cluster = Cluster(warehouse_cluster)
    app = make_app(private)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first, second = await create_tenant(c), await create_tenant(c)
            first_name, second_name = new_name("redis"), new_name("redis")
            async with running_worker(private):
                r1 = await provision(c, first, first_name)
                expect(r1, 202)
                await redis_server.stop()

                # Redis is down: reads still answer (the rate limiter lets requests through)
                # and a provision is accepted; its lost enqueue is the reconciler's to repair.
                down = await c.get(first.env_url("warehouse_status"), headers=first.headers)
                expect(down, 200)
                assert down.json()["org_id"] == first.org_id
                r2 = await provision(c, second, second_name)
                expect(r2, 202)
                await asyncio.sleep(1.0)
                await redis_server.start()

                for tenant in (first, second):
                    body = await wait_for_state(c, tenant, {"ready", "failed"}, within=30)
                    assert body["state"] == "ready", body

            for name, response in ((first_name, r1), (second_name, r2)):
                assert await cluster.count_like(name) == (1, 1)
                conn = await cluster.login(name, name, response.json()["password"])
                assert await conn.fetchval("SELECT count(*) FROM events_main") == 0
                await conn.close()
