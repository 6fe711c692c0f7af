"""The worker side of a manual snapshot: dump the warehouse into its bucket, then record it.

One job per snapshot (`snapshot:<id>`), run under an advisory lock on the snapshot, so two
workers never dump the same one. The record is re-read before and after the dump; a failure is
retried with back-off until the snapshot's deadline (SNAPSHOT_DEADLINE_SECONDS after its first
attempt), then the snapshot is `failed`. A worker that dies mid-dump leaves the record
`running`; the reconciler sends its job again, and the dump starts over (an unfinished
multipart upload is never visible as an object). The operation and the `snapshot.ready` /
`snapshot.failed` event are written in the transaction that settles the snapshot.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.models import ManagedWarehouse, Operation, WarehouseState
from app.models.storage import Snapshot, SnapshotKind, SnapshotStatus
from app.services.events.outbox import emit_event
from app.services.fleet.backends import admin_dsn_of
from app.services.operations.audit import AuditService
from app.services.operations.service import OperationsService
from app.services.storage.records import now
from app.services.storage.transfer import StorageTransfer
from app.settings import Settings
from app.worker.failpoints import failpoint

logger = logging.getLogger(__name__)
SNAPSHOT_LOCK_NAMESPACE = 72_010_011
MAX_BACKOFF_SECONDS = 30.0


def snapshot_lock_key(snapshot_id: uuid.UUID) -> int:
    return int.from_bytes(snapshot_id.bytes[:4], "big", signed=True)


@dataclass(frozen=True)
class SnapshotOutcome:
    result: str
    retry_in: float | None = None


@dataclass(frozen=True)
class _Work:
    organization_id: uuid.UUID
    database_name: str
    admin_dsn: str = field(repr=False)


class SnapshotRunner:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        transfer: StorageTransfer,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.transfer = transfer

    def backoff(self, attempt: int) -> float:
        base = float(self.settings.job_retry_base_seconds) * 2.0 ** min(max(attempt - 1, 0), 10)
        jitter = random.uniform(0.5, 1.5)  # noqa: S311 - spreading retries, not security
        return float(min(MAX_BACKOFF_SECONDS, base) * jitter)

    async def run(self, snapshot_id: uuid.UUID) -> SnapshotOutcome:
        async with self.engine.connect() as lock_conn:
            locked = await lock_conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                {"ns": SNAPSHOT_LOCK_NAMESPACE, "key": snapshot_lock_key(snapshot_id)},
            )
            if not locked:
                return SnapshotOutcome("busy", retry_in=self.backoff(1))
            try:
                return await self._run(snapshot_id)
            finally:
                await lock_conn.rollback()

    async def _run(self, snapshot_id: uuid.UUID) -> SnapshotOutcome:
        async with self.sessionmaker() as session, session.begin():
            snap = await session.get(Snapshot, snapshot_id, with_for_update=True)
            if snap is None or snap.status != SnapshotStatus.RUNNING:
                return SnapshotOutcome(snap.status if snap else "gone")
            if snap.kind != SnapshotKind.MANUAL:
                return SnapshotOutcome("final")  # a step of its deprovision, not a job
            warehouse = await session.get(ManagedWarehouse, snap.warehouse_id)
            if warehouse is None or warehouse.state != WarehouseState.READY:
                await self._settle(session, snap, error="The warehouse is no longer ready")
                return SnapshotOutcome(SnapshotStatus.FAILED)
            if snap.deadline_at is not None and now() >= snap.deadline_at:
                # An attempt that never came back (its job timed out, its worker died).
                await self._settle(session, snap, error="The snapshot could not be taken in time")
                return SnapshotOutcome(SnapshotStatus.FAILED)
            if snap.deadline_at is None:
                snap.deadline_at = now() + timedelta(
                    seconds=self.settings.snapshot_deadline_seconds
                )
            # The warehouse's own cluster (API.md §8).
            admin_dsn = await admin_dsn_of(session, self.settings, warehouse.cluster)
            work = _Work(snap.organization_id, snap.database_name, admin_dsn)
        try:
            failpoint("before", "snapshot")
            uploaded = await self.transfer.take(
                admin_dsn=work.admin_dsn,
                organization_id=work.organization_id,
                snapshot_id=snapshot_id,
                database=work.database_name,
            )
            failpoint("after", "snapshot")
        except Exception as exc:
            return await self._failed_attempt(snapshot_id, exc)
        async with self.sessionmaker() as session, session.begin():
            snap = await session.get(Snapshot, snapshot_id, with_for_update=True)
            if snap is None or snap.status != SnapshotStatus.RUNNING:
                return SnapshotOutcome(snap.status if snap else "gone")
            StorageTransfer.record_ready(snap, uploaded)
            await self._settle(session, snap, error=None)
        return SnapshotOutcome(SnapshotStatus.READY)

    async def _failed_attempt(self, snapshot_id: uuid.UUID, exc: Exception) -> SnapshotOutcome:
        error = type(exc).__name__
        logger.warning(
            "snapshot attempt failed",
            extra={"snapshot_id": str(snapshot_id), "error_class": error},
        )
        async with self.sessionmaker() as session, session.begin():
            snap = await session.get(Snapshot, snapshot_id, with_for_update=True)
            if snap is None or snap.status != SnapshotStatus.RUNNING:
                return SnapshotOutcome(snap.status if snap else "gone")
            snap.attempt += 1
            deadline = snap.deadline_at or now()
            if now() >= deadline:
                await self._settle(
                    session, snap, error=f"The snapshot could not be taken ({error})"
                )
                return SnapshotOutcome(SnapshotStatus.FAILED)
            remaining = (deadline - now()).total_seconds()
            return SnapshotOutcome(
                "retry", retry_in=max(0.01, min(self.backoff(snap.attempt), remaining))
            )

    async def _settle(self, session: AsyncSession, snap: Snapshot, *, error: str | None) -> None:
        """`ready` (error None) or `failed`: the record, its operation, audit and event."""
        if error is not None:
            StorageTransfer.record_failed(snap, error)
        if snap.operation_id is not None:
            operation = await session.get(Operation, snap.operation_id, with_for_update=True)
            if operation is not None and operation.finished_at is None:
                OperationsService(session).finish(operation, error=error)
        await record_settled(session, snap)


async def record_settled(session: AsyncSession, snap: Snapshot) -> None:
    """Audit and `snapshot.ready` / `snapshot.failed` for a snapshot that just settled."""
    AuditService(session).record(
        organization_id=snap.organization_id,
        warehouse_id=snap.warehouse_id,
        action=f"snapshot_{snap.status}",
        from_state=None,
        to_state=None,
        detail=f"snapshot {snap.id} ({snap.kind})",
    )
    await emit_event(
        session,
        f"snapshot.{snap.status}",
        org_id=snap.organization_id,
        operation_id=snap.operation_id,
        snapshot_id=snap.id,
    )
    await session.flush()
