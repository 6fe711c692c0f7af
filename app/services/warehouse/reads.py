"""The status poll, read in the authentication statement.

`warehouse_status` is what clients poll while a warehouse provisions. Its columns ride along
in the statement that resolves the API key and the team (`app.core.context.Prefetch`), so a poll is
one indexed round trip with no transaction. Everything that changes state goes through
`app.services.warehouse.WarehouseService`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.core.context import Prefetch
from app.core.errors import NotFound
from app.services.warehouse.lifecycle import NO_WAREHOUSE

STATUS_PREFETCH = Prefetch(
    columns=(
        "w.organization_id AS wh_organization_id, w.state AS wh_state, "
        "w.status_message AS wh_status_message, w.s3_state AS wh_s3_state, "
        "w.metadata_store_state AS wh_metadata_store_state, "
        "w.identity_state AS wh_identity_state, w.secrets_state AS wh_secrets_state, "
        "w.ready_at AS wh_ready_at, w.failed_at AS wh_failed_at, "
        "w.database_name AS wh_database_name, w.login_role AS wh_login_role, "
        "wm.backfill_enabled AS wh_backfill_enabled, wm.table_suffix AS wh_table_suffix, "
        "wc.public_host AS wh_public_host, wc.public_port AS wh_public_port"
    ),
    joins=(
        "LEFT JOIN managed_warehouses w ON w.organization_id = t.organization_id\n"
        "LEFT JOIN warehouse_team_memberships wm ON wm.team_id = t.id\n"
        "LEFT JOIN warehouse_clusters wc ON wc.name = w.cluster"
    ),
)


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
    public_host: str | None  # of the warehouse's cluster
    public_port: int | None


def warehouse_status(row: Mapping[str, Any] | None) -> WarehouseStatusRow:
    """The status from an authentication row fetched with `STATUS_PREFETCH`."""
    if row is None or row["wh_organization_id"] is None:
        raise NotFound(NO_WAREHOUSE)
    return WarehouseStatusRow(
        organization_id=row["wh_organization_id"],
        state=row["wh_state"],
        status_message=row["wh_status_message"],
        s3_state=row["wh_s3_state"],
        metadata_store_state=row["wh_metadata_store_state"],
        identity_state=row["wh_identity_state"],
        secrets_state=row["wh_secrets_state"],
        ready_at=row["wh_ready_at"],
        failed_at=row["wh_failed_at"],
        database_name=row["wh_database_name"],
        login_role=row["wh_login_role"],
        has_backfill=bool(row["wh_backfill_enabled"]),
        table_suffix=row["wh_table_suffix"],
        public_host=row["wh_public_host"],
        public_port=row["wh_public_port"],
    )
