"""Helpers for the storage tests: a ready warehouse with rows, the bucket as S3 sees it."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import httpx
from aiobotocore.session import get_session

from app.settings import Settings
from tests.support.harness import Tenant
from tests.support.lifecycle import (
    new_name,
    provision,
    run_burst_worker,
    status,
)
from tests.support.status_recorder import expect


def s3_client(settings: Settings) -> Any:
    secret = settings.s3_secret_access_key
    return get_session().create_client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
    )


def bucket(settings: Settings, org_id: str) -> str:
    return f"{settings.s3_bucket_prefix}-{uuid.UUID(org_id).hex}"


async def object_digest(settings: Settings, org_id: str, key: str) -> tuple[int, str]:
    """(size, sha256) of an object, read through the S3 API."""
    digest = hashlib.sha256()
    size = 0
    async with s3_client(settings) as s3:
        answer = await s3.get_object(Bucket=bucket(settings, org_id), Key=key)
        async with answer["Body"] as body:
            while chunk := await body.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


async def put_object(settings: Settings, org_id: str, key: str, data: bytes) -> None:
    async with s3_client(settings) as s3:
        await s3.put_object(Bucket=bucket(settings, org_id), Key=key, Body=data)


async def ready_warehouse(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, *, rows: int = 500
) -> dict[str, Any]:
    """Provision for real and fill it: `rows` events, and a table of the customer's own."""
    name = new_name("snap")
    r = await provision(client, tenant, name, "main")
    expect(r, 202)
    await run_burst_worker(settings)
    body = await status(client, tenant)
    assert body["state"] == "ready", body
    answer: dict[str, Any] = r.json()
    conn = await login(settings, name, name, answer["password"])
    try:
        await conn.execute(
            "INSERT INTO events_main (uuid, event, distinct_id, properties, timestamp)"
            " SELECT gen_random_uuid(), 'e' || i, 'd' || (i % 7),"
            " jsonb_build_object('i', i), now() - i * interval '1 minute'"
            " FROM generate_series(1, $1) AS i",
            rows,
        )
        await conn.execute("CREATE TABLE mine (id int PRIMARY KEY, note text)")
        await conn.execute(
            "INSERT INTO mine SELECT i, repeat('x', i) FROM generate_series(1, 50) i"
        )
    finally:
        await conn.close()
    return {"name": name, **answer}


async def login(settings: Settings, database: str, user: str, password: str) -> Any:
    port = settings.warehouse_public_port
    return await asyncpg.connect(
        host="127.0.0.1", port=port, user=user, password=password, database=database, timeout=5
    )


async def contents(settings: Settings, database: str, user: str, password: str) -> dict[str, Any]:
    """What a customer sees: row counts and a digest of every row of both tables."""
    conn = await login(settings, database, user, password)
    try:
        return {
            "events": await conn.fetchval("SELECT count(*) FROM events_main"),
            "events_md5": await conn.fetchval(
                "SELECT md5(string_agg(uuid::text || event || properties::text, ',' ORDER BY uuid))"
                " FROM events_main"
            ),
            "mine": await conn.fetchval("SELECT count(*) FROM mine"),
            "mine_md5": await conn.fetchval(
                "SELECT md5(string_agg(id || note, ',' ORDER BY id)) FROM mine"
            ),
            "owners": sorted(
                {
                    r["tableowner"]
                    for r in await conn.fetch(
                        "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"
                    )
                }
            ),
        }
    finally:
        await conn.close()


async def snapshots(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    r = await client.get(tenant.env_url("snapshots"), headers=tenant.headers)
    expect(r, 200)
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def operation(client: httpx.AsyncClient, tenant: Tenant, op_id: str) -> dict[str, Any]:
    r = await client.get(tenant.env_url(f"operations/{op_id}"), headers=tenant.headers)
    expect(r, 200)
    body: dict[str, Any] = r.json()
    return body
