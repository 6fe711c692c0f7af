"""The move state machine: a warehouse goes from one cluster to another, one step at a time.

    start -> freeze -> claim -> role -> copy -> verify -> switch -> drop-source -> tables
          -> unfreeze -> (ready on the target; the move operation succeeded)
    any failure before `switch` -> undo-target -> undo-freeze -> (ready on the source; failed)

Like provisioning (`app/worker/machine.py`): one job advances one move while holding the
warehouse's transaction-level advisory lock (the same lock provisioning takes, so the two never
overlap); each step re-reads the rows FOR UPDATE, acts on the clusters (idempotent, catalogs
first), then records the step. A worker killed anywhere resumes from the recorded step. Before
`switch` every failure rolls the move back; from `switch` on it only goes forward, retrying.

A drain's moves start one at a time (a drain-wide advisory lock decides whose turn it is); a
warehouse still provisioning waits, and a failed one is only re-pointed.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.models import (
    ManagedWarehouse,
    MoveStatus,
    WarehouseMove,
    WarehouseState,
    WarehouseTeamMembership,
)
from app.pgcluster import copy
from app.services.events.outbox import emit_event
from app.services.fleet import move_support as support
from app.services.fleet.move_steps import MoveContext, MoveRefused, act, remove_leftovers
from app.services.operations.audit import AuditService
from app.services.warehouse.machine import LOCK_NAMESPACE, advisory_key
from app.settings import Settings
from app.worker import metrics
from app.worker.failpoints import failpoint

logger = logging.getLogger(__name__)
S = WarehouseState
M = MoveStatus
DRAIN_LOCK_NAMESPACE = 72_010_010
MAX_ATTEMPTS = 5  # a step failing this often in a row (before the switch) rolls the move back
MAX_BACKOFF_SECONDS = 15.0
WAIT_SECONDS = 0.5  # a drain move waiting for its turn or for provisioning to finish
NEXT = {
    "freeze": "claim",
    "claim": "role",
    "role": "copy",
    "copy": "verify",
    "verify": "switch",
    "switch": "drop-source",
    "drop-source": "tables",
    "tables": "unfreeze",
    "undo-target": "undo-freeze",
}


@dataclass(frozen=True)
class Outcome:
    result: str
    retry_in: float | None = None


def now() -> datetime:
    return datetime.now(UTC)


def drain_key(cluster: str) -> int:
    return int.from_bytes(uuid.uuid5(uuid.NAMESPACE_DNS, cluster).bytes[:4], "big", signed=True)


class MoveMachine:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.settings = settings

    def backoff(self, attempt: int) -> float:
        base = float(self.settings.job_retry_base_seconds) * 2.0 ** min(max(attempt - 1, 0), 10)
        jitter = random.uniform(0.5, 1.5)  # noqa: S311 - spreading retries, not security
        return float(min(MAX_BACKOFF_SECONDS, base) * jitter)

    async def advance(self, move_id: uuid.UUID) -> Outcome:
        async with self.sessionmaker() as session:
            warehouse_id = await session.scalar(
                select(WarehouseMove.warehouse_id).where(WarehouseMove.id == move_id)
            )
        if warehouse_id is None:
            return Outcome("gone")
        async with self.engine.connect() as lock_conn:
            locked = await lock_conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                {"ns": LOCK_NAMESPACE, "key": advisory_key(warehouse_id)},
            )
            if not locked:
                return Outcome("busy", retry_in=self.backoff(1))
            try:
                # One admin connection per cluster for the run's steps, not one per call.
                async with copy.reusing_connections():
                    return await self._run(move_id)
            finally:
                await lock_conn.rollback()

    async def _run(self, move_id: uuid.UUID) -> Outcome:
        # The next step and its context, read by the transaction that recorded the last one
        # (one transaction per step boundary, not two).
        upcoming: tuple[str, MoveContext] | None = None
        while True:
            if upcoming is None:
                async with self.sessionmaker() as session, session.begin():
                    move, wh = await self._load(session, move_id)
                    if move is None or wh is None:
                        return Outcome("gone")
                    if move.finished_at is not None:
                        return Outcome(move.status)
                    if move.step == "start":
                        waited = await self._start(session, move, wh)
                        if waited is not None:
                            return waited
                        continue
                    upcoming = (move.step, await self._context(session, move, wh))
            step, ctx = upcoming
            upcoming = None
            started = time.perf_counter()
            try:
                if step != "switch":
                    failpoint("before", f"move-{step}")
                    result = await act(step, ctx)
                    failpoint("after", f"move-{step}")
                else:
                    result = None
            except Exception as exc:
                return await self._record_failure(move_id, step, exc)
            if step == "switch":
                failpoint("before", "move-switch")
            async with self.sessionmaker() as session, session.begin():
                move, wh = await self._load(session, move_id)
                if move is None or wh is None or move.finished_at is not None or move.step != step:
                    return Outcome("superseded")
                await self._record(session, move, wh, step, result)
                if move.finished_at is None and move.step in NEXT.values():
                    await session.flush()
                    upcoming = (move.step, await self._context(session, move, wh))
            if step == "switch":
                failpoint("after", "move-switch")
            logger.info(
                "move step done",
                extra={
                    "move_id": str(move_id),
                    "step": step,
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )

    # -- loading ----------------------------------------------------------------------------

    @staticmethod
    async def _load(
        session: AsyncSession, move_id: uuid.UUID
    ) -> tuple[WarehouseMove | None, ManagedWarehouse | None]:
        move = await session.get(
            WarehouseMove, move_id, with_for_update=True, populate_existing=True
        )
        if move is None:
            return None, None
        wh = await session.get(
            ManagedWarehouse, move.warehouse_id, with_for_update=True, populate_existing=True
        )
        return move, wh

    async def _context(
        self, session: AsyncSession, move: WarehouseMove, wh: ManagedWarehouse
    ) -> MoveContext:
        tables: tuple[tuple[int, str | None, str | None], ...] = ()
        if move.step == "tables":
            rows = await session.execute(
                select(
                    WarehouseTeamMembership.id,
                    WarehouseTeamMembership.table_suffix,
                    WarehouseTeamMembership.schema_name,
                ).where(
                    WarehouseTeamMembership.organization_id == wh.organization_id,
                    WarehouseTeamMembership.tables_created_at.is_(None),
                    func.coalesce(
                        WarehouseTeamMembership.schema_name, WarehouseTeamMembership.table_suffix
                    ).is_not(None),
                )
            )
            tables = tuple((r.id, r.table_suffix, r.schema_name) for r in rows)
        target = move.target_cluster
        return MoveContext(
            database=wh.database_name,
            role=wh.login_role,
            source_dsn=await support.admin_dsn(session, self.settings, move.source_cluster),
            target_dsn=(
                await support.admin_dsn(session, self.settings, target) if target else None
            ),
            target_claimed=move.target_claimed,
            tables=tables,
        )

    # -- the first step: whose turn, and what kind of move ---------------------------------

    async def _start(
        self, session: AsyncSession, move: WarehouseMove, wh: ManagedWarehouse
    ) -> Outcome | None:
        """Begin the move inside this transaction; an Outcome when it must wait or is done."""
        if move.drain_cluster is not None:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :key)"),
                {"ns": DRAIN_LOCK_NAMESPACE, "key": drain_key(move.drain_cluster)},
            )
            busy = await session.scalar(
                select(func.count())
                .select_from(WarehouseMove)
                .where(
                    WarehouseMove.drain_cluster == move.drain_cluster,
                    WarehouseMove.finished_at.is_(None),
                    WarehouseMove.status.in_([M.RUNNING, M.ROLLING_BACK]),
                    WarehouseMove.id != move.id,
                )
            )
            if busy:
                return Outcome("waiting", retry_in=WAIT_SECONDS)
        if wh.cluster != move.source_cluster or wh.state == S.DELETED:
            # Re-provisioned elsewhere or deleted meanwhile: nothing of it left to move.
            await self._finish(session, move, wh, error=None, audit=False)
            return Outcome(M.SUCCEEDED)
        if wh.state in (S.PENDING, S.PROVISIONING, S.DELETING):
            return Outcome("waiting", retry_in=WAIT_SECONDS)
        if wh.state == S.FAILED:
            # Nothing to copy: clear the leftovers on the source (idempotent), then point the
            # record elsewhere. Cleared first: choosing a target locks its cluster row until
            # this transaction commits, and dropping can take a while.
            source = await support.admin_dsn(session, self.settings, move.source_cluster)
            try:
                await remove_leftovers(
                    source, wh.database_name, wh.login_role, tuple(wh.stale_names)
                )
            except Exception as exc:
                logger.warning(
                    "could not clear a failed warehouse's leftovers",
                    extra={"move_id": str(move.id), "error_class": type(exc).__name__},
                )
                return Outcome("retry", retry_in=self.backoff(move.attempt + 1))
        if move.target_cluster is None:
            move.target_cluster = await support.choose_target(
                session, self.settings, exclude=move.source_cluster
            )
            if move.target_cluster is None:
                error = "Move failed at step 'start': no other cluster has room"
                await self._finish(session, move, wh, error=error, audit=False)
                return Outcome(M.FAILED)
        if wh.state == S.FAILED:
            wh.cluster = move.target_cluster
            wh.stale_names = []
            move.switched = True
            await self._finish(session, move, wh, error=None, audit=False)
            return Outcome(M.SUCCEEDED)
        if wh.state == S.READY:
            self._audit(session, wh, S.MIGRATING)
            wh.state = S.MIGRATING
            wh.status_message = "Moving to another cluster"
        move.status = M.RUNNING
        move.step = "freeze"
        return None

    # -- recording --------------------------------------------------------------------------

    async def _record(
        self,
        session: AsyncSession,
        move: WarehouseMove,
        wh: ManagedWarehouse,
        step: str,
        result: object,
    ) -> None:
        move.attempt = 0
        if step == "freeze" and move.frozen_at is None:
            move.frozen_at = now()
        elif step == "claim":
            move.target_claimed = True
        elif step == "verify":
            move.rows_verified = int(result) if isinstance(result, int) else None
        elif step == "switch":
            assert move.target_cluster is not None
            wh.cluster = move.target_cluster
            move.switched = True
        elif step == "tables" and isinstance(result, tuple) and result:
            await session.execute(
                update(WarehouseTeamMembership)
                .where(WarehouseTeamMembership.id.in_(result))
                .values(tables_created_at=now())
                .execution_options(synchronize_session=False)
            )
        if step in ("unfreeze", "undo-freeze"):
            move.unfrozen_at = now()
            await self._finish(session, move, wh, error=move.error, audit=True)
            return
        move.step = NEXT[step]

    async def _record_failure(self, move_id: uuid.UUID, step: str, exc: Exception) -> Outcome:
        kind = str(exc) if isinstance(exc, MoveRefused) else _error_kind(exc)
        logger.warning(
            "move step failed",
            extra={"move_id": str(move_id), "step": step, "error_class": type(exc).__name__},
        )
        async with self.sessionmaker() as session, session.begin():
            move, wh = await self._load(session, move_id)
            if move is None or wh is None or move.finished_at is not None:
                return Outcome("superseded")
            move.attempt += 1
            forward_only = move.switched or move.status == M.ROLLING_BACK
            if not forward_only and (isinstance(exc, MoveRefused) or move.attempt >= MAX_ATTEMPTS):
                move.status = M.ROLLING_BACK
                move.error = f"Move failed at step '{step}': {kind}"
                move.step = "undo-target"
                move.attempt = 0
                return Outcome("rolling back", retry_in=0.0)
            return Outcome("retry", retry_in=self.backoff(move.attempt))

    async def _finish(
        self,
        session: AsyncSession,
        move: WarehouseMove,
        wh: ManagedWarehouse,
        *,
        error: str | None,
        audit: bool,
    ) -> None:
        """End the move, its operation, and (when it froze the warehouse) its `migrating`."""
        move.status = M.FAILED if error else M.SUCCEEDED
        move.error = error
        move.finished_at = now()
        move.step = "done"
        if audit and wh.state == S.MIGRATING:
            self._audit(session, wh, S.READY)
            wh.state = S.READY
            wh.status_message = "Ready"
        await support.finish_operation(session, move.id, error=error)
        if error is None and move.switched and wh.state == S.READY:
            await emit_event(
                session,
                "warehouse.migrated",
                org_id=wh.organization_id,
                operation_id=move.id,
                state=wh.state,
                cluster=wh.cluster,
            )
        if move.drain_cluster is not None:
            await session.flush()
            await support.finish_drain_if_done(session, move.drain_cluster)

    @staticmethod
    def _audit(session: AsyncSession, wh: ManagedWarehouse, to_state: str) -> None:
        AuditService(session).record(
            organization_id=wh.organization_id,
            warehouse_id=wh.id,
            action="move",
            from_state=wh.state,
            to_state=to_state,
        )
        metrics.transition(wh.state, to_state)  # warehouse_state_transitions_total


def _error_kind(exc: Exception) -> str:
    """A credential-safe kind of error: our own messages, else the exception's class."""
    from app.pgcluster.copy import CopyError

    if isinstance(exc, CopyError):
        return str(exc)
    return type(exc).__name__
