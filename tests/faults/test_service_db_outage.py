"""The service database disappears for a moment: requests answer a clean 503, then recover.

The service database here is a throwaway PostgreSQL instance of its own, so stopping it
affects nothing else.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core.migrate import migrate_database
from app.devtools.embedded import PasswordCheckingCluster
from app.settings import Settings, with_database
from tests.support.harness import create_tenant, make_app
from tests.support.status_recorder import expect

pytestmark = pytest.mark.fault


@pytest.fixture
async def own_database(
    settings: Settings,
) -> AsyncIterator[tuple[PasswordCheckingCluster, Settings]]:
    tmp = Path(tempfile.mkdtemp(prefix="wh-svcdb-"))
    cluster = PasswordCheckingCluster(tmp / "data").start()
    try:
        conn = await asyncpg.connect(cluster.admin_dsn)
        await conn.execute("CREATE DATABASE service")
        await conn.close()
        url = with_database(cluster.admin_dsn, "service")
        await asyncio.to_thread(migrate_database, url)
        yield cluster, settings.model_copy(update={"database_url": url})
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


async def test_outage_gives_503_then_recovers(own_database) -> None:
    cluster, outage_settings = own_database
    app = make_app(outage_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tenant = await create_tenant(client)
            url = tenant.env_url("check-database-name") + "?name=acme"
            expect(await client.get(url, headers=tenant.headers), 200)
            # A read on the autocommit read engine, so its pool holds a connection too.
            activity = tenant.env_url("running_activity")
            expect(await client.get(activity, headers=tenant.headers), 200)

            cluster.stop("immediate")
            down = await client.get(url, headers=tenant.headers)
            expect(down, 503)
            assert down.json() == {
                "type": "server_error",
                "code": "unavailable",
                "detail": "The service is temporarily unavailable. Try again shortly.",
                "attr": None,
            }
            assert down.headers["Retry-After"] == "1"
            # The status poll's fast path hands an outage to the routed path: 503, not 500.
            poll = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
            expect(poll, 503)
            assert poll.json() == down.json()
            read = await client.get(activity, headers=tenant.headers)
            expect(read, 503)
            assert read.json() == down.json()
            ready = await client.get("/readyz")
            expect(ready, 503)
            assert ready.json()["code"] == "unavailable"

            cluster.start()
            again = await client.get(url, headers=tenant.headers)
            expect(again, 200)
            assert again.json() == {"name": "acme", "available": True}
            poll = await client.get(tenant.env_url("warehouse_status"), headers=tenant.headers)
            expect(poll, 404)
            read = await client.get(activity, headers=tenant.headers)
            assert read.status_code == 200, (
                read.text
            )  # the read pool's stale connection was replaced
            assert read.json()["results"] == []
            expect(await client.get("/readyz"), 200)
