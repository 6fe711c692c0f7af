"""Running and completed pipeline activity: import jobs and model jobs, newest first.

One statement per page. Each job table contributes at most `offset + limit + 1` rows read in
index order (`(team_id, created_at DESC, id DESC)`, or a partial index for running/failed), the
union is cut to the page, and only the page's rows are joined to their names. Jobs of deleted
sources, synced tables or views are left out (deleted records vanish from public answers).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from app.core.read_pool import ReadPool
from app.schemas.pipelines import ActivityPage, ActivityRow

MAX_LIMIT = 50
# Past any table's row count and inside PostgreSQL's bigint: a larger offset is an empty page
# without a query, and a longer cutoff reaches back no further than this many days.
MAX_SQL_OFFSET = 2**62
MAX_CUTOFF_DAYS = 700_000
MODEL_TYPE = "Materialized view"


class ActivityKind(enum.StrEnum):
    ALL = "all"
    IMPORT = "import"
    MODEL = "model"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    ALL = "all"


@dataclass(frozen=True)
class ActivityQuery:
    limit: int
    offset: int
    cutoff_days: int
    kind: ActivityKind
    running: bool
    outcome: Outcome = Outcome.COMPLETED

    def query_string(self, offset: int) -> str:
        qs = f"?limit={self.limit}&offset={offset}&cutoff_days={self.cutoff_days}"
        if self.kind is not ActivityKind.ALL:
            qs += f"&kind={self.kind.value}"
        if not self.running and self.outcome is not Outcome.COMPLETED:
            qs += f"&outcome={self.outcome.value}"
        return qs


# Status filters per (table, page type). Literals only: never user input.
_IMPORT_FILTER = {
    None: "status = 'Running'",
    Outcome.COMPLETED: "status = 'Completed'",
    Outcome.FAILED: "status IN ('Failed', 'BillingLimitReached', 'BillingLimitTooLow')",
    Outcome.ALL: "status <> 'Running'",
}
_MODEL_FILTER = {
    None: "status = 'Running'",
    Outcome.COMPLETED: "status = 'Completed'",
    Outcome.FAILED: "status = 'Failed'",
    Outcome.ALL: "status <> 'Running'",
}

_IMPORTS = """
    SELECT * FROM (
        SELECT 'import' AS kind, j.id, j.created_at, j.status, j.rows_synced AS rows,
               j.finished_at, j.latest_error, j.workflow_run_id, j.schema_id AS parent_id,
               j.source_id
        FROM external_data_jobs j
        WHERE j.team_id = :team_id AND j.created_at >= :since AND j.{status_filter}
          AND j.schema_id NOT IN (
              SELECT s.id FROM external_data_schemas s
              WHERE s.team_id = :team_id
                AND (s.deleted OR EXISTS (
                    SELECT 1 FROM external_data_sources src
                    WHERE src.id = s.source_id AND src.deleted)))
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT :window
    ) imports
"""

_MODELS = """
    SELECT * FROM (
        SELECT 'model' AS kind, m.id, m.created_at, m.status, m.rows_materialized AS rows,
               m.last_run_at AS finished_at, m.error AS latest_error, m.workflow_run_id,
               m.saved_query_id AS parent_id, NULL::uuid AS source_id
        FROM modeling_jobs m
        WHERE m.team_id = :team_id AND m.created_at >= :since AND m.{status_filter}
          AND m.saved_query_id NOT IN (
              SELECT q.id FROM saved_queries q WHERE q.team_id = :team_id AND q.deleted)
        ORDER BY m.created_at DESC, m.id DESC
        LIMIT :window
    ) models
"""

_PAGE = """
    WITH page AS (
        SELECT * FROM ({branches}) u
        ORDER BY created_at DESC, id DESC
        LIMIT :page_size OFFSET :offset
    )
    SELECT page.*, s.name AS schema_name, src.source_type, q.name AS view_name, q.origin
    FROM page
    -- LIMIT 1 keeps each lookup a per-row primary-key probe for the page's rows only.
    LEFT JOIN LATERAL (
        SELECT name FROM external_data_schemas
        WHERE page.kind = 'import' AND id = page.parent_id LIMIT 1
    ) s ON true
    LEFT JOIN LATERAL (
        SELECT source_type FROM external_data_sources
        WHERE page.kind = 'import' AND id = page.source_id LIMIT 1
    ) src ON true
    LEFT JOIN LATERAL (
        SELECT name, origin FROM saved_queries
        WHERE page.kind = 'model' AND id = page.parent_id LIMIT 1
    ) q ON true
    ORDER BY page.created_at DESC, page.id DESC
"""


def activity_sql(query: ActivityQuery) -> str:
    return _activity_sql(query.kind, None if query.running else query.outcome)


@cache  # at most 3 kinds x 4 status filters
def _activity_sql(kind: ActivityKind, key: Outcome | None) -> str:
    branches = []
    if kind in (ActivityKind.ALL, ActivityKind.IMPORT):
        branches.append(_IMPORTS.format(status_filter=_IMPORT_FILTER[key]))
    if kind in (ActivityKind.ALL, ActivityKind.MODEL):
        branches.append(_MODELS.format(status_filter=_MODEL_FILTER[key]))
    return _PAGE.format(branches=" UNION ALL ".join(branches))


def activity_params(team_id: int, query: ActivityQuery, now: datetime) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "since": now - timedelta(days=min(query.cutoff_days, MAX_CUTOFF_DAYS)),
        "window": query.offset + query.limit + 1,
        "page_size": query.limit + 1,
        "offset": query.offset,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row(r: Any) -> ActivityRow:
    is_import = r["kind"] == "import"
    return ActivityRow(
        id=str(r["id"]),
        type=(r["source_type"] or "") if is_import else MODEL_TYPE,
        name=r["schema_name"] if is_import else r["view_name"],
        status=r["status"],
        rows=r["rows"],
        created_at=r["created_at"].isoformat(),
        finished_at=_iso(r["finished_at"]),
        latest_error=r["latest_error"],
        workflow_run_id=r["workflow_run_id"],
        origin=None if is_import else r["origin"],
        source_id=str(r["source_id"]) if is_import else None,
    )


class ActivityService:
    def __init__(self, reads: ReadPool) -> None:
        self.reads = reads

    async def page(self, team_id: int, query: ActivityQuery) -> ActivityPage:
        now = datetime.now(UTC)
        rows: list[Any] = []
        if query.offset < MAX_SQL_OFFSET:
            rows = await self.reads.rows(activity_sql(query), activity_params(team_id, query, now))
        has_next = len(rows) > query.limit
        results = [_row(r) for r in rows[: query.limit]]
        return ActivityPage(
            results=results,
            next=query.query_string(query.offset + query.limit) if has_next else None,
            previous=(
                query.query_string(max(0, query.offset - query.limit)) if query.offset else None
            ),
        )
