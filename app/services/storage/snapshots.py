"""Snapshots as the API changes them: take one, list them, find one to restore (API.md §9).

`take` writes the `running` snapshot record and its `snapshot` operation in the request's
transaction and sends the worker job after commit; the worker (`runner.py`) does the dump.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import RequestContext
from app.core.errors import NotFound
from app.core.queue import JobQueue
from app.models import ManagedWarehouse, OperationAction, WarehouseState
from app.models.storage import Snapshot, SnapshotKind, SnapshotStatus
from app.services.operations.audit import AuditService
from app.services.operations.service import OperationsService
from app.services.storage.records import (
    TAKE_SNAPSHOT,
    listed_snapshots,
    new_snapshot,
    now,
    snapshot_job_id,
)
from app.settings import Settings

NO_WAREHOUSE = "No managed warehouse exists for this organization"
NO_SNAPSHOT = "No snapshot with this id exists for this organization"


class SnapshotService:
    def __init__(
        self, session: AsyncSession, *, settings: Settings, queue: JobQueue | None
    ) -> None:
        self.session = session
        self.settings = settings
        self.queue = queue
        self.operations = OperationsService(session)

    async def take(self, ctx: RequestContext) -> Snapshot:
        warehouse = await self.session.scalar(
            select(ManagedWarehouse)
            .where(ManagedWarehouse.organization_id == ctx.organization_id)
            .with_for_update()
        )
        if warehouse is None:
            raise NotFound(NO_WAREHOUSE)
        if warehouse.state != WarehouseState.READY:
            raise await self.operations.conflict(
                ctx.organization_id,
                "A snapshot can only be taken while the managed warehouse is ready "
                f"(state: {warehouse.state})",
            )
        await self.operations.refuse_if_running(
            ctx.organization_id, "A snapshot cannot be taken while an operation runs"
        )
        operation = await self.operations.start(
            organization_id=ctx.organization_id,
            warehouse_id=warehouse.id,
            action=OperationAction.SNAPSHOT,
        )
        snapshot = new_snapshot(
            self.settings, warehouse, SnapshotKind.MANUAL, operation_id=operation.id
        )
        self.session.add(snapshot)
        AuditService(self.session).record(
            organization_id=ctx.organization_id,
            warehouse_id=warehouse.id,
            action="snapshot",
            from_state=warehouse.state,
            to_state=warehouse.state,
            actor_user_id=ctx.principal.user_id,
            actor_key_id=ctx.principal.key_id,
            detail=f"snapshot {snapshot.id}",
        )
        await self.session.flush()
        if self.queue is not None:
            self.queue.enqueue_after_commit(
                self.session,
                TAKE_SNAPSHOT,
                str(snapshot.id),
                job_id=snapshot_job_id(snapshot.id),
            )
        return snapshot

    async def list(self, ctx: RequestContext) -> list[Snapshot]:
        return await listed_snapshots(self.session, ctx.organization_id)

    async def restorable(self, ctx: RequestContext, snapshot_id: uuid.UUID) -> Snapshot:
        """The organization's `ready` snapshot that has not expired, else 404."""
        snapshot = await self.session.scalar(
            select(Snapshot).where(
                Snapshot.id == snapshot_id,
                Snapshot.organization_id == ctx.organization_id,
                Snapshot.status == SnapshotStatus.READY,
                Snapshot.expires_at > now(),
            )
        )
        if snapshot is None:
            raise NotFound(NO_SNAPSHOT)
        return snapshot
