"""Test helpers: push pipeline records through the internal API, as the pipeline services do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.harness import INTERNAL_HEADERS
from tests.support.status_recorder import expect as expect_status


def iso(dt: datetime) -> str:
    return dt.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


class Pipelines:
    """Records of one environment, created with the internal PUTs."""

    def __init__(self, client: httpx.AsyncClient, team_id: int) -> None:
        self.client = client
        self.team_id = team_id

    @property
    def base(self) -> str:
        return f"/internal/environments/{self.team_id}"

    async def put(self, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        r = await self.client.put(path, json=body, headers=INTERNAL_HEADERS)
        expect_status(r, expect)
        data: dict[str, Any] = r.json()
        return data

    async def source(
        self, source_type: str = "Stripe", status: str = "Completed", **kw: Any
    ) -> str:
        sid = kw.pop("id", None) or str(uuid.uuid4())
        await self.put(
            f"{self.base}/sources/{sid}", {"source_type": source_type, "status": status, **kw}
        )
        return sid

    async def table(
        self,
        source_id: str,
        name: str = "customers",
        status: str = "Completed",
        should_sync: bool = True,
        **kw: Any,
    ) -> str:
        tid = kw.pop("id", None) or str(uuid.uuid4())
        body = {"name": name, "status": status, "should_sync": should_sync, **kw}
        await self.put(f"{self.base}/sources/{source_id}/schemas/{tid}", body)
        return tid

    async def import_job(
        self,
        schema_id: str,
        status: str = "Completed",
        rows: int = 10,
        billable: bool = True,
        created_at: datetime | None = None,
        **kw: Any,
    ) -> str:
        jid = kw.pop("id", None) or str(uuid.uuid4())
        body = {
            "schema_id": schema_id,
            "status": status,
            "rows_synced": rows,
            "billable": billable,
            "created_at": iso(created_at or now()),
            **kw,
        }
        await self.put(f"{self.base}/import_jobs/{jid}", body)
        return jid

    async def saved_query(
        self, name: str = "revenue", is_materialized: bool = True, **kw: Any
    ) -> str:
        qid = kw.pop("id", None) or str(uuid.uuid4())
        body = {"name": name, "is_materialized": is_materialized, **kw}
        await self.put(f"{self.base}/saved_queries/{qid}", body)
        return qid

    async def modeling_job(
        self,
        saved_query_id: str,
        status: str = "Completed",
        rows: int = 5,
        created_at: datetime | None = None,
        **kw: Any,
    ) -> str:
        jid = kw.pop("id", None) or str(uuid.uuid4())
        body = {
            "saved_query_id": saved_query_id,
            "status": status,
            "rows_materialized": rows,
            "created_at": iso(created_at or now()),
            **kw,
        }
        await self.put(f"{self.base}/modeling_jobs/{jid}", body)
        return jid

    async def batch_export(self, name: str = "S3 export", paused: bool = False, **kw: Any) -> str:
        eid = kw.pop("id", None) or str(uuid.uuid4())
        await self.put(f"{self.base}/batch_exports/{eid}", {"name": name, "paused": paused, **kw})
        return eid

    async def export_run(
        self, export_id: str, status: str, created_at: datetime | None = None, **kw: Any
    ) -> str:
        rid = kw.pop("id", None) or str(uuid.uuid4())
        body = {"status": status, "created_at": iso(created_at or now()), **kw}
        await self.put(f"{self.base}/batch_exports/{export_id}/runs/{rid}", body)
        return rid

    async def function(
        self, name: str, type: str, state: int, enabled: bool = True, **kw: Any
    ) -> str:
        fid = kw.pop("id", None) or str(uuid.uuid4())
        body = {"name": name, "type": type, "state": state, "enabled": enabled, **kw}
        await self.put(f"{self.base}/functions/{fid}", body)
        return fid

    async def partition(
        self, dataset: str, key: str, state: str, total: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"state": state}
        if total is not None:
            body["total_partitions"] = total
        return await self.put(f"{self.base}/backfill_partitions/{dataset}/{key}", body)
