"""Integers of any size in the query (API.md §4.3): capped or clamped, never refused as "not an
integer"; below 1 → 400; non-integers → 400."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support.harness import Tenant
from tests.support.pipeline_records import Pipelines, now
from tests.support.status_recorder import expect

HUGE = str(10**30)
ENORMOUS = "9" * 5000  # longer than Python converts by default


async def _get(
    client: httpx.AsyncClient, tenant: Tenant, action: str, qs: str, status: int = 200
) -> dict[str, Any]:
    r = await client.get(tenant.env_url(action) + qs, headers=tenant.headers)
    expect(r, status)
    body: dict[str, Any] = r.json()
    return body


async def test_a_huge_limit_is_capped(client: httpx.AsyncClient, tenant: Tenant) -> None:
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    base = now() - timedelta(hours=1)
    ids = [await p.import_job(tid, created_at=base - timedelta(minutes=i)) for i in range(52)]
    for action in ("completed_activity", "running_activity"):
        for value in (HUGE, ENORMOUS, "+" + HUGE, "000" + HUGE):
            body = await _get(client, tenant, action, f"?limit={value}")
            expected = ids[:50] if action == "completed_activity" else []
            assert [r["id"] for r in body["results"]] == expected
    body = await _get(client, tenant, "completed_activity", f"?limit={HUGE}")
    assert body["next"] == "?limit=50&offset=50&cutoff_days=30"


async def test_a_huge_offset_is_an_empty_last_page(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    await p.import_job(tid, created_at=now() - timedelta(minutes=5))
    for action in ("completed_activity", "running_activity"):
        body = await _get(client, tenant, action, f"?offset={HUGE}")
        assert body["results"] == [] and body["next"] is None
        assert body["previous"] == f"?limit=20&offset={10**30 - 20}&cutoff_days=30"
        body = await _get(client, tenant, action, f"?offset={2**63}&limit=7&kind=import")
        assert body["results"] == [] and body["next"] is None
        assert body["previous"] == f"?limit=7&offset={2**63 - 7}&cutoff_days=30&kind=import"
        body = await _get(client, tenant, action, f"?offset={ENORMOUS}")
        assert body["results"] == [] and body["next"] is None
        body = await _get(client, tenant, action, f"?offset=-{HUGE}")
        assert body["previous"] is None


async def test_a_huge_cutoff_reaches_every_job(client: httpx.AsyncClient, tenant: Tenant) -> None:
    p = Pipelines(client, tenant.env_id)
    tid = await p.table(await p.source())
    old = await p.import_job(tid, created_at=now() - timedelta(days=4000))
    for value in (HUGE, ENORMOUS, "3650000"):
        body = await _get(client, tenant, "completed_activity", f"?cutoff_days={value}")
        assert [r["id"] for r in body["results"]] == [old]
    body = await _get(client, tenant, "completed_activity", f"?cutoff_days={HUGE}&limit=1")
    assert body["next"] is None and body["previous"] is None
    body = await _get(client, tenant, "completed_activity", "?offset=1&cutoff_days=" + HUGE)
    assert body["previous"] == f"?limit=20&offset=0&cutoff_days={HUGE}"


@pytest.mark.parametrize("action", ["completed_activity", "running_activity"])
@pytest.mark.parametrize(
    ("qs", "attr"),
    [
        ("?limit=0", "limit"),
        ("?limit=-" + HUGE, "limit"),
        ("?limit=1e3", "limit"),
        ("?limit=" + HUGE + ".0", "limit"),
        ("?limit=", "limit"),
        ("?offset=1.5", "offset"),
        ("?offset=0x10", "offset"),
        ("?cutoff_days=0", "cutoff_days"),
        ("?cutoff_days=-" + HUGE, "cutoff_days"),
        ("?cutoff_days=" + HUGE + "x", "cutoff_days"),
    ],
)
async def test_below_one_or_not_an_integer_is_400(
    client: httpx.AsyncClient, tenant: Tenant, action: str, qs: str, attr: str
) -> None:
    body = await _get(client, tenant, action, qs, status=400)
    assert body["type"] == "validation_error" and body["attr"] == attr


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (HUGE, "Invalid days parameter. Must be 1, 7, or 30."),
        (ENORMOUS, "Invalid days parameter. Must be 1, 7, or 30."),
        ("-" + HUGE, "Invalid days parameter. Must be 1, 7, or 30."),
        (HUGE + ".5", "Invalid days parameter"),
        ("seven", "Invalid days parameter"),
    ],
)
async def test_job_stats_days_of_any_size(
    client: httpx.AsyncClient, tenant: Tenant, value: str, detail: str
) -> None:
    body = await _get(client, tenant, "job_stats", f"?days={value}", status=400)
    assert body["detail"] == detail and body["attr"] == "days"
    assert (await _get(client, tenant, "job_stats", "?days=+0030"))["days"] == 30


async def test_operations_pages_take_integers_of_any_size(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for value in (HUGE, ENORMOUS):
        body = await _get(client, tenant, "operations", f"?limit={value}")
        assert body["results"] == [] and body["next"] is None and body["previous"] is None
    body = await _get(client, tenant, "operations", f"?offset={HUGE}")
    assert body["results"] == [] and body["next"] is None
    assert body["previous"] == f"?limit=20&offset={10**30 - 20}"
    body = await _get(client, tenant, "operations", f"?offset=-{HUGE}")
    assert body["previous"] is None
    for qs, attr in (("?limit=0", "limit"), ("?limit=1.0", "limit"), ("?offset=x", "offset")):
        error = await _get(client, tenant, "operations", qs, status=400)
        assert error["type"] == "validation_error" and error["attr"] == attr
