"""`warehouse dev --demo`: a month of realistic pipeline records in the demo environment.

It talks to the running service like the pipeline services would: the internal API (PUT
upserts with the internal token) for sources, synced tables, import and model jobs, batch
exports, functions, billing and backfill partitions, and the public API with the demo key to
provision the demo warehouse (only when the organization has none) and push a few events and
persons once it is ready. Every id is a uuid5 of a fixed name, so running it again updates the
same records (timestamps move with the clock) and adds nothing twice.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

NAMESPACE = uuid.UUID("5b0f7a52-4c1e-4d59-9a57-6f2d0c0de000")
DAYS = 30
WAREHOUSE_NAME = "demo-warehouse"
TABLE_SUFFIX = "demo"
IDEMPOTENCY_KEY = "warehouse-dev-demo-provision"


def demo_id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join(str(p) for p in parts)))


@dataclass(frozen=True)
class Table:
    name: str
    status: str = "Completed"  # status of the newest job
    should_sync: bool = True
    error: str | None = None
    never_synced: bool = False


@dataclass(frozen=True)
class Source:
    source_type: str
    prefix: str | None
    tables: tuple[Table, ...]
    status: str = "Completed"
    error: str | None = None


SOURCES = (
    Source(
        "Stripe",
        None,
        (
            Table("customers"),
            Table("invoices", "Failed", error="Stripe API answered 429 Too Many Requests"),
            Table("charges", "Running"),
            Table("subscriptions"),
        ),
    ),
    Source(
        "Hubspot",
        "hubspot_crm",
        (
            Table("contacts"),
            Table("companies", "BillingLimitReached", error="Billing limit reached"),
            Table("deals", should_sync=False),
        ),
    ),
    Source(
        "Postgres",
        "app_db",
        (Table("users"), Table("orders", "Running", never_synced=True)),
        status="Error",
        error="could not connect to server: Connection refused",
    ),
)
# (view name, status of its newest run, error)
VIEWS = (
    ("daily_revenue", "Completed", None),
    ("active_customers", "Running", None),
    ("churn_scores", "Failed", 'column "plan_tier" does not exist'),
)
# (export name, paused, status of its newest run, error)
EXPORTS = (
    ("S3 events export", False, "Failed", "Access Denied: s3:PutObject on acme-events"),
    ("BigQuery export", False, "Completed", None),
    ("Snowflake export (paused)", True, "Failed", "warehouse suspended"),
)
# (name, type, state, error): 1 healthy, 2 degraded, 11 forcefully degraded
FUNCTIONS = (
    ("Slack alerts", "destination", 2, "Slack answered 429 Too Many Requests"),
    ("Customer.io", "destination", 1, None),
    ("GeoIP enrichment", "transformation", 1, None),
    ("PII scrubber", "transformation", 11, None),
)
EVENTS = ("$pageview", "signed_up", "purchase", "invite_sent")
BROWSERS = ("Chrome", "Firefox", "Safari")
PLANS = ("free", "team", "enterprise")


@dataclass
class DemoSummary:
    records: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {what}" for what, n in sorted(self.records.items()))
        head = f"demo data written (upserts by fixed ids: a re-run adds nothing): {counts}"
        return [head, *(f"  {note}" for note in self.notes)]


class DemoFiller:
    """Fills one environment; `client` points at the running service (base URL set)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        internal_token: str,
        api_key: str,
        organization_id: uuid.UUID | str,
        environment_id: int,
        now: datetime | None = None,
        ready_timeout: float = 90.0,
    ) -> None:
        self.client = client
        self.internal = {"Authorization": f"Bearer {internal_token}"}
        self.public = {"Authorization": f"Bearer {api_key}"}
        self.org_id = str(organization_id)
        self.env = environment_id
        # Whole minutes: a re-run within the same minute writes identical bodies.
        self.now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        self.ready_timeout = ready_timeout
        self.rng = random.Random(environment_id)  # noqa: S311 - repeatable demo data, not secrets
        self.summary = DemoSummary()
        self.billable_rows_this_month = 0

    @property
    def base(self) -> str:
        return f"/internal/environments/{self.env}"

    async def put(self, what: str, path: str, body: dict[str, Any]) -> None:
        r = await self.client.put(path, json=body, headers=self.internal)
        if r.status_code != 200:
            raise RuntimeError(f"PUT {path} answered {r.status_code}: {r.text[:300]}")
        self.summary.records[what] += 1

    def at(self, days_ago: int, hour: int = 0) -> datetime:
        """A time `days_ago` days back at about `hour` UTC, never later than a few minutes ago."""
        day = self.now - timedelta(days=days_ago)
        moment = day.replace(hour=hour % 24, minute=self.rng.randrange(60))
        return min(moment, self.now - timedelta(minutes=self.rng.randrange(3, 30)))

    def after(self, moment: datetime, minutes: int) -> datetime:
        return min(moment + timedelta(minutes=minutes), self.now)

    async def run(self) -> DemoSummary:
        await self.sources()
        await self.models()
        await self.exports()
        await self.functions()
        await self.billing()
        await self.warehouse()
        return self.summary

    # -- imports ---------------------------------------------------------------------------

    async def sources(self) -> None:
        for s_index, source in enumerate(SOURCES):
            source_id = demo_id("source", self.env, source.source_type)
            body: dict[str, Any] = {"source_type": source.source_type, "status": source.status}
            if source.prefix:
                body["prefix"] = source.prefix
            if source.error:
                body["latest_error"] = source.error
            await self.put("sources", f"{self.base}/sources/{source_id}", body)
            for t_index, table in enumerate(source.tables):
                hour = 2 + s_index * 3 + t_index
                await self.table(source_id, table, hour)

    async def table(self, source_id: str, table: Table, hour: int) -> None:
        schema_id = demo_id("schema", self.env, source_id, table.name)
        path = f"{self.base}/sources/{source_id}/schemas/{schema_id}"
        # The table first (jobs name it), its last sync once the jobs are known.
        await self.put_schema(path, table, None)
        last_synced: datetime | None = None
        days = [0] if table.never_synced else list(range(DAYS - 1, -1, -1))
        for days_ago in days:
            created = self.at(days_ago, hour)
            newest = days_ago == 0
            status = table.status if newest else self._past_status()
            rows = self.rng.randrange(200, 50_000)
            body: dict[str, Any] = {
                "schema_id": schema_id,
                "status": status,
                "rows_synced": 0 if status == "Running" else rows,
                "billable": table.name != "users",
                "created_at": created.isoformat(),
                "workflow_run_id": f"import-{schema_id[:8]}-{days_ago}",
            }
            if status != "Running":
                finished = self.after(created, self.rng.randrange(1, 40))
                body["finished_at"] = finished.isoformat()
                if status == "Completed":
                    last_synced = finished
            if status in ("Failed", "BillingLimitReached"):
                body["latest_error"] = table.error or "Sync failed: connection reset by peer"
            if body["billable"] and created >= self.now.replace(day=1, hour=0, minute=0):
                self.billable_rows_this_month += body["rows_synced"]
            job_id = demo_id("import_job", self.env, schema_id, days_ago)
            await self.put("import jobs", f"{self.base}/import_jobs/{job_id}", body)
        await self.put_schema(path, table, last_synced)

    def _past_status(self) -> str:
        roll = self.rng.random()
        return "Failed" if roll < 0.06 else "BillingLimitTooLow" if roll < 0.08 else "Completed"

    async def put_schema(self, path: str, table: Table, last_synced: datetime | None) -> None:
        body: dict[str, Any] = {
            "name": table.name,
            "status": table.status,
            "should_sync": table.should_sync,
            "sync_type": "incremental" if table.name != "deals" else "full_refresh",
        }
        if table.error:
            body["latest_error"] = table.error
        if last_synced is not None:
            body["last_synced_at"] = last_synced.isoformat()
        await self.put("synced tables", path, body)

    # -- models ----------------------------------------------------------------------------

    async def models(self) -> None:
        for v_index, (name, newest_status, error) in enumerate(VIEWS):
            query_id = demo_id("saved_query", self.env, name)
            await self.put(
                "saved queries",
                f"{self.base}/saved_queries/{query_id}",
                {"name": name, "is_materialized": True, "origin": "data_warehouse"},
            )
            for days_ago in range(DAYS - 1, -1, -1):
                created = self.at(days_ago, 6 + v_index)
                status = newest_status if days_ago == 0 else self._past_model_status()
                body: dict[str, Any] = {
                    "saved_query_id": query_id,
                    "status": status,
                    "rows_materialized": 0 if status == "Running" else self.rng.randrange(10, 9000),
                    "created_at": created.isoformat(),
                    "workflow_run_id": f"model-{query_id[:8]}-{days_ago}",
                }
                if status != "Running":
                    body["last_run_at"] = self.after(created, 3).isoformat()
                if status == "Failed":
                    body["error"] = error or "Query timed out after 600 s"
                job_id = demo_id("modeling_job", self.env, query_id, days_ago)
                await self.put("model jobs", f"{self.base}/modeling_jobs/{job_id}", body)

    def _past_model_status(self) -> str:
        roll = self.rng.random()
        return "Failed" if roll < 0.05 else "Cancelled" if roll < 0.07 else "Completed"

    # -- destinations ----------------------------------------------------------------------

    async def exports(self) -> None:
        for name, paused, newest_status, error in EXPORTS:
            export_id = demo_id("batch_export", self.env, name)
            path = f"{self.base}/batch_exports/{export_id}"
            await self.put("batch exports", path, {"name": name, "paused": paused})
            for days_ago in range(6, -1, -1):
                created = self.at(days_ago, 1)
                status = newest_status if days_ago == 0 else "Completed"
                body: dict[str, Any] = {
                    "status": status,
                    "created_at": created.isoformat(),
                    "finished_at": self.after(created, 7).isoformat(),
                }
                if status != "Completed":
                    body["latest_error"] = error
                run_id = demo_id("batch_export_run", self.env, export_id, days_ago)
                await self.put("batch export runs", f"{path}/runs/{run_id}", body)

    async def functions(self) -> None:
        for name, kind, state, error in FUNCTIONS:
            function_id = demo_id("function", self.env, name)
            body: dict[str, Any] = {"name": name, "type": kind, "enabled": True, "state": state}
            if error:
                body["error"] = error
            await self.put("functions", f"{self.base}/functions/{function_id}", body)

    async def billing(self) -> None:
        start = self.now.replace(day=1, hour=0, minute=0)
        end = (start + timedelta(days=32)).replace(day=1)
        body = {
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "interval": "month",
            "tracked_rows": int(self.billable_rows_this_month * 0.8),
        }
        await self.put("billing records", f"/internal/organizations/{self.org_id}/billing", body)

    # -- the warehouse ---------------------------------------------------------------------

    async def warehouse(self) -> None:
        url = f"/api/environments/{self.env}/data_warehouse"
        r = await self.client.get(f"{url}/warehouse_status/", headers=self.public)
        if r.status_code == 404:
            r = await self.client.post(
                f"{url}/provision/",
                json={"database_name": WAREHOUSE_NAME, "table_name": TABLE_SUFFIX},
                headers={**self.public, "Idempotency-Key": IDEMPOTENCY_KEY},
            )
            if r.status_code != 202:
                self.summary.notes.append(f"warehouse not provisioned: {r.json().get('detail')}")
                return
            self.summary.notes.append(
                f"provisioned the warehouse {WAREHOUSE_NAME!r} "
                "(POST reset-password for a password you can log in with)"
            )
        await self.partitions()
        if await self._wait_ready(url):
            await self.rows()
        else:
            self.summary.notes.append("the warehouse is not ready yet: no events pushed")

    async def partitions(self) -> None:
        month = self.now.replace(day=1, hour=0, minute=0)
        keys = []
        for _ in range(12):
            month = (month - timedelta(days=1)).replace(day=1)
            keys.append(month.strftime("%Y-%m"))
        for dataset, count, running in (("events", 12, 1), ("persons", 4, 0)):
            chosen = sorted(keys[:count])
            for i, key in enumerate(chosen):
                state = "running" if i >= count - running else "completed"
                body = {"state": state, "total_partitions": count}
                path = f"{self.base}/backfill_partitions/{dataset}/{key}"
                await self.put("backfill partitions", path, body)

    async def _wait_ready(self, url: str) -> bool:
        deadline = asyncio.get_running_loop().time() + self.ready_timeout
        while True:
            r = await self.client.get(f"{url}/warehouse_status/", headers=self.public)
            state = r.json().get("state") if r.status_code == 200 else None
            if state == "ready":
                return True
            if state not in ("pending", "provisioning"):
                return False
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.5)

    async def rows(self) -> None:
        rng = random.Random(self.env * 7919)  # noqa: S311 - repeatable demo data
        people = [demo_id("person", self.env, i) for i in range(40)]
        persons = [
            {
                "id": pid,
                "distinct_ids": [f"user-{i}"],
                "properties": {"plan": rng.choice(PLANS), "email": f"user{i}@example.com"},
                "created_at": self.at(DAYS - i % DAYS).isoformat(),
            }
            for i, pid in enumerate(people)
        ]
        events = [
            {
                "uuid": demo_id("event", self.env, i),
                "event": rng.choice(EVENTS),
                "distinct_id": f"user-{rng.randrange(len(people))}",
                "properties": {"$browser": rng.choice(BROWSERS), "plan": rng.choice(PLANS)},
                "timestamp": self.at(rng.randrange(DAYS), rng.randrange(24)).isoformat(),
            }
            for i in range(300)
        ]
        for table, rows in (("persons", persons), ("events", events)):
            r = await self.client.post(
                f"{self.base}/warehouse/rows",
                json={"table": table, "rows": rows},
                headers=self.internal,
            )
            if r.status_code != 200:
                self.summary.notes.append(f"{table} not pushed: {r.json().get('detail')}")
                continue
            self.summary.records[f"new warehouse {table}"] += r.json()["inserted"]


async def fill_demo(
    base_url: str,
    *,
    internal_token: str,
    api_key: str,
    organization_id: uuid.UUID | str,
    environment_id: int,
    ready_timeout: float = 90.0,
) -> DemoSummary:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        filler = DemoFiller(
            client,
            internal_token=internal_token,
            api_key=api_key,
            organization_id=organization_id,
            environment_id=environment_id,
            ready_timeout=ready_timeout,
        )
        return await filler.run()
