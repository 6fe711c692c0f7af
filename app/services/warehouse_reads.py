"""The status poll, read straight from the driver pool.

`warehouse_status` is what clients poll while a warehouse provisions; it is one indexed read
with no transaction, so it skips the ORM session (see `app.db.ReadPool`). Everything that
changes state goes through `app.services.warehouse.WarehouseService`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.db import ReadPool
from app.errors import NotFound
from app.services.warehouse import NO_WAREHOUSE

_STATUS = """
SELECT w.organization_id, w.state, w.status_message, w.s3_state, w.metadata_store_state,
       w.identity_state, w.secrets_state, w.ready_at, w.failed_at, w.database_name,
       w.login_role, m.backfill_enabled, m.table_suffix
FROM managed_warehouses w
LEFT JOIN warehouse_team_memberships m ON m.team_id = $2
WHERE w.organization_id = $1
"""


@dataclass(frozen=True, slots=True)
class WarehouseStatusRow:
    organization_id: uuid.UUID
    state: str
    status_message: str
    s3_state: str
    metadata_store_state: str
    identity_state: str
    secrets_state: str
    ready_at: datetime | None
    failed_at: datetime | None
    database_name: str
    login_role: str
    has_backfill: bool
    table_suffix: str | None


async def warehouse_status(
    reads: ReadPool, organization_id: uuid.UUID, team_id: int
) -> WarehouseStatusRow:
    row = await reads.fetchrow(_STATUS, organization_id, team_id)
    if row is None:
        raise NotFound(NO_WAREHOUSE)
    return WarehouseStatusRow(
        organization_id=row["organization_id"],
        state=row["state"],
        status_message=row["status_message"],
        s3_state=row["s3_state"],
        metadata_store_state=row["metadata_store_state"],
        identity_state=row["identity_state"],
        secrets_state=row["secrets_state"],
        ready_at=row["ready_at"],
        failed_at=row["failed_at"],
        database_name=row["database_name"],
        login_role=row["login_role"],
        has_backfill=bool(row["backfill_enabled"]),
        table_suffix=row["table_suffix"],
    )
