"""The provisioning state machine: one small, idempotent step at a time.

    pending -> provisioning -> ready     steps: cleanup? storage database role secret restore?
                                                tables probe
                            -> failed    (a step still failing at the deadline)
    ready | failed | provisioning -> deleting -> deleted
                                         steps: final-snapshot? drop-database drop-role cleanup?
                                                remove-storage destroy-secret
    deleting -> ready                    (the final snapshot still failing at the deadline: the
                                          warehouse is kept as it was, nothing is dropped)

Storage steps (bucket, final snapshot, restore) act through `app.services.storage`.

One job advances one warehouse, holding a transaction-level advisory lock on the service
database for the whole run, so only one worker moves a warehouse at a time; a worker that dies
loses the lock with its connection. Each step: re-read the row (FOR UPDATE) and record which
step starts, commit; act on the cluster (every action checks the catalogs first, so running it
again is harmless); re-read, record the result, commit. A row whose `generation` moved on
belongs to a newer request: the job stops at the next step boundary.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.passwords import SecretBox
from app.models import ManagedWarehouse, OperationAction, WarehouseState, WarehouseTeamMembership
from app.pgcluster.backend import WarehouseBackend
from app.pgcluster.safety import TrustAuthRefused
from app.pgcluster.scram import scram_verifier
from app.pgcluster.team_tables import TeamTables
from app.services.events.outbox import emit_event
from app.services.fleet.backends import ClusterBackends, admin_dsn_of
from app.services.fleet.health import note_reachable
from app.services.operations.audit import AuditService
from app.services.operations.service import OperationsService
from app.services.storage import steps as storage_steps
from app.services.storage.transfer import StorageTransfer
from app.services.warehouse.plan import (
    CLUSTER_STEPS,
    GUARDED_STEPS,
    LABELS,
    SUB_STATE_OF,
    next_step,
)
from app.settings import Settings
from app.worker import metrics
from app.worker.failpoints import failpoint

logger = logging.getLogger(__name__)
S = WarehouseState
# Operations whose goal is the warehouse `ready` / `deleted`.
GOAL_READY: tuple[str, ...] = (OperationAction.PROVISION, OperationAction.RESTORE)
GOAL_DELETED: tuple[str, ...] = (OperationAction.DEPROVISION,)
LOCK_NAMESPACE = 72_010_002
MAX_BACKOFF_SECONDS = 30.0
# States whose arrival is a webhook event (`warehouse.<state>`, API.md §10).
WEBHOOK_STATES = frozenset({S.READY, S.FAILED, S.DELETED})


def advisory_key(warehouse_id: uuid.UUID) -> int:
    return int.from_bytes(warehouse_id.bytes[:4], "big", signed=True)


@dataclass(frozen=True)
class Snapshot:
    """What a step needs, copied out of the row so no ORM object crosses a commit."""

    id: uuid.UUID
    organization_id: uuid.UUID
    state: str
    database_name: str
    login_role: str
    password_ciphertext: bytes | None
    stale_names: tuple[str, ...]
    tables: tuple[tuple[int, str | None, str | None], ...] = field(default=())
    final_snapshot_id: uuid.UUID | None = None
    restore_snapshot_id: uuid.UUID | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class Outcome:
    result: str
    retry_in: float | None = None


class WarehouseMachine:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        backends: ClusterBackends,
        storage: StorageTransfer,
        secrets: SecretBox,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.backends = backends
        self.storage = storage
        self.secrets = secrets

    def backoff(self, attempt: int) -> float:
        base = float(self.settings.job_retry_base_seconds) * 2.0 ** min(max(attempt - 1, 0), 10)
        jitter = random.uniform(0.5, 1.5)  # noqa: S311 - spreading retries, not security
        return float(min(MAX_BACKOFF_SECONDS, base) * jitter)

    async def advance(self, warehouse_id: uuid.UUID, generation: int) -> Outcome:
        async with self.engine.connect() as lock_conn:
            locked = await lock_conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                {"ns": LOCK_NAMESPACE, "key": advisory_key(warehouse_id)},
            )
            if not locked:
                return Outcome("busy", retry_in=self.backoff(1))
            try:
                return await self._run(warehouse_id, generation)
            finally:
                await lock_conn.rollback()

    async def _run(self, warehouse_id: uuid.UUID, generation: int) -> Outcome:
        while True:
            async with self.sessionmaker() as session, session.begin():
                wh = await self._load(session, warehouse_id)
                if wh is None or wh.generation != generation:
                    return Outcome("superseded")
                if wh.state not in (S.PENDING, S.PROVISIONING, S.DELETING):
                    return Outcome(wh.state)
                if wh.state == S.PENDING:
                    await self._transition(session, wh, S.PROVISIONING, "Provisioning started")
                if wh.deadline_at is None:
                    wh.deadline_at = now() + timedelta(
                        seconds=self.settings.provision_deadline_seconds
                    )
                tables = await self._tables_to_create(session, wh)
                if wh.state == S.DELETING:
                    await storage_steps.final_snapshot_pending(session, wh)
                step = next_step(wh, tables)
                if step is None:
                    if wh.state == S.DELETING:
                        await self._finish_teardown(session, wh)
                    return Outcome(wh.state)
                sub = SUB_STATE_OF.get(step)
                if sub is not None:
                    setattr(wh, sub, S.PROVISIONING if wh.state == S.PROVISIONING else S.DELETING)
                if wh.attempt == 0:
                    wh.status_message = LABELS[step]
                # The warehouse's own cluster (API.md §8), read in this step's transaction.
                admin_dsn = await admin_dsn_of(session, self.settings, wh.cluster)
                snap = Snapshot(
                    id=wh.id,
                    organization_id=wh.organization_id,
                    state=wh.state,
                    database_name=wh.database_name,
                    login_role=wh.login_role,
                    password_ciphertext=wh.password_ciphertext,
                    stale_names=tuple(wh.stale_names),
                    tables=tables,
                    final_snapshot_id=wh.final_snapshot_id,
                    restore_snapshot_id=wh.restore_snapshot_id,
                    cluster=wh.cluster,
                )
            try:
                backend = self.backends.for_dsn(admin_dsn)
                if step in GUARDED_STEPS:
                    await self.backends.guard(admin_dsn).ensure_safe()
                failpoint("before", step)
                result = await self._act(step, snap, backend)
                failpoint("after", step)
            except Exception as exc:
                return await self._record_failure(warehouse_id, generation, step, exc)
            async with self.sessionmaker() as session, session.begin():
                wh = await self._load(session, warehouse_id)
                if wh is None or wh.generation != generation:
                    return Outcome("superseded")
                await self._record(session, wh, step, snap, result)

    # -- planning ---------------------------------------------------------------------------

    @staticmethod
    async def _load(session: AsyncSession, warehouse_id: uuid.UUID) -> ManagedWarehouse | None:
        return await session.get(
            ManagedWarehouse, warehouse_id, with_for_update=True, populate_existing=True
        )

    @staticmethod
    async def _tables_to_create(
        session: AsyncSession, wh: ManagedWarehouse
    ) -> tuple[tuple[int, str | None, str | None], ...]:
        if wh.state == S.DELETING:
            return ()
        rows = await session.execute(
            select(
                WarehouseTeamMembership.id,
                WarehouseTeamMembership.table_suffix,
                WarehouseTeamMembership.schema_name,
            ).where(
                WarehouseTeamMembership.organization_id == wh.organization_id,
                WarehouseTeamMembership.tables_created_at.is_(None),
                or_(
                    WarehouseTeamMembership.table_suffix.is_not(None),
                    WarehouseTeamMembership.schema_name.is_not(None),
                ),
            )
        )
        return tuple((r.id, r.table_suffix, r.schema_name) for r in rows)

    # -- actions on the outside world -------------------------------------------------------

    async def _act(self, step: str, snap: Snapshot, b: WarehouseBackend) -> Any:
        if step == "cleanup":
            for name in snap.stale_names:
                if name != snap.database_name:
                    await b.drop_database(name)
                    await b.drop_role(name)
            return snap.stale_names
        if step == "storage":
            return await self.storage.ensure_bucket(snap.organization_id)
        if step == "database":
            return await b.ensure_database(snap.database_name)
        if step == "role":
            verifier = scram_verifier(self._password(snap))
            return await b.ensure_login_role(
                snap.login_role, database=snap.database_name, verifier=verifier
            )
        if step == "secret":
            self._password(snap)  # stored and readable with the configured key
            return None
        if step in storage_steps.STEPS:
            return await storage_steps.act(step, self.storage, b.admin_dsn, snap)
        if step == "tables":
            for _id, suffix, schema in snap.tables:
                layout = TeamTables.for_layout(table_suffix=suffix, schema_name=schema)
                await b.ensure_team_tables(
                    snap.database_name, owner_role=snap.login_role, tables=layout
                )
            return tuple(t[0] for t in snap.tables)
        if step == "probe":
            return await b.probe(snap.database_name, snap.login_role, self._password(snap))
        if step == "drop-database":
            return await b.drop_database(snap.database_name)
        if step == "drop-role":
            return await b.drop_role(snap.login_role)
        if step == "remove-storage":
            return await self.storage.teardown_storage(snap.organization_id)
        if step == "destroy-secret":
            return None
        raise ValueError(f"unknown step {step}")

    def _password(self, snap: Snapshot) -> str:
        if snap.password_ciphertext is None:
            raise LookupError("no stored password")
        return self.secrets.decrypt(snap.password_ciphertext)

    # -- recording --------------------------------------------------------------------------

    async def _record(
        self, session: AsyncSession, wh: ManagedWarehouse, step: str, snap: Snapshot, result: Any
    ) -> None:
        sub = SUB_STATE_OF.get(step)
        if sub is not None:
            setattr(wh, sub, S.READY if wh.state == S.PROVISIONING else S.DELETED)
        if step in CLUSTER_STEPS:
            await note_reachable(session, snap.cluster)
        wh.attempt = 0
        if step == "cleanup":
            wh.stale_names = [n for n in wh.stale_names if n not in snap.stale_names]
        elif step == "storage":
            wh.storage_location = str(result)
        elif step == "restore":
            wh.restore_snapshot_id = None
        elif step == "final-snapshot":
            await storage_steps.record_final(session, snap.final_snapshot_id, result, error=None)
            wh.final_snapshot_id = None
        elif step == "tables":
            await session.execute(
                update(WarehouseTeamMembership)
                .where(WarehouseTeamMembership.id.in_(result))
                .values(tables_created_at=now())
                .execution_options(synchronize_session=False)
            )
        elif step == "destroy-secret":
            wh.password_ciphertext = None
        elif step == "probe":
            if await self._tables_to_create(session, wh):
                return  # an environment joined meanwhile: create its tables, probe again
            wh.ready_at = now()
            if wh.deadline_at is not None:  # set at the first step: deadline - allowance
                allowance = self.settings.provision_deadline_seconds
                metrics.provisioned_in(allowance - (wh.deadline_at - wh.ready_at).total_seconds())
            wh.deadline_at = None
            await self._transition(session, wh, S.READY, "Ready")

    async def _finish_teardown(self, session: AsyncSession, wh: ManagedWarehouse) -> None:
        await session.execute(
            update(WarehouseTeamMembership)
            .where(WarehouseTeamMembership.organization_id == wh.organization_id)
            .values(tables_created_at=None)
            .execution_options(synchronize_session=False)
        )
        wh.storage_location = None
        wh.deadline_at = None
        wh.ready_at = None
        await self._transition(session, wh, S.DELETED, "Deleted")

    async def _record_failure(
        self, warehouse_id: uuid.UUID, generation: int, step: str, exc: Exception
    ) -> Outcome:
        error = type(exc).__name__
        logger.warning(
            "warehouse step failed",
            extra={"warehouse_id": str(warehouse_id), "step": step, "error_class": error},
        )
        async with self.sessionmaker() as session, session.begin():
            wh = await self._load(session, warehouse_id)
            if wh is None or wh.generation != generation:
                return Outcome("superseded")
            wh.attempt += 1
            verb = "Provisioning" if wh.state == S.PROVISIONING else "Deprovisioning"
            deadline = wh.deadline_at or now()
            hopeless = isinstance(exc, (TrustAuthRefused, *storage_steps.HOPELESS))
            if step == "final-snapshot" and now() >= deadline:
                message = await storage_steps.abandon_final_snapshot(session, wh, error)
                await OperationsService(session).finish_running(wh.id, GOAL_DELETED, error=message)
                await self._transition(session, wh, S.READY, message)
                return Outcome(S.READY)
            if hopeless or now() >= deadline:
                sub = SUB_STATE_OF.get(step)
                if sub is not None:
                    setattr(wh, sub, S.FAILED)
                wh.failed_at = now()
                wh.deadline_at = None
                message = f"{verb} failed at step '{step}': {error}"
                if isinstance(exc, TrustAuthRefused):
                    message = f"{verb} refused: {exc}"
                message = storage_steps.hopeless_message(exc) or message
                await self._transition(session, wh, S.FAILED, message)
                return Outcome(S.FAILED)
            wh.status_message = (
                f"{verb}: step '{step}' failed ({error}); retrying (attempt {wh.attempt})"
            )
            remaining = (deadline - now()).total_seconds()
            return Outcome("retry", retry_in=max(0.01, min(self.backoff(wh.attempt), remaining)))

    @staticmethod
    async def _transition(
        session: AsyncSession, wh: ManagedWarehouse, to_state: str, message: str
    ) -> None:
        """Change the state, audit it, and settle the operation whose goal this reaches or
        abandons, all in the caller's transaction (API.md §7)."""
        operations = OperationsService(session)
        finished = []
        if to_state == S.READY:
            finished = await operations.finish_running(wh.id, GOAL_READY)
        elif to_state == S.DELETED:
            finished = await operations.finish_running(wh.id, GOAL_DELETED)
        elif to_state == S.FAILED:
            finished = await operations.finish_running(
                wh.id, GOAL_READY + GOAL_DELETED, error=message
            )
        AuditService(session).record(
            organization_id=wh.organization_id,
            warehouse_id=wh.id,
            action="state_change",
            from_state=wh.state,
            to_state=to_state,
        )
        metrics.transition(wh.state, to_state)
        wh.state = to_state
        wh.status_message = message
        if to_state in WEBHOOK_STATES:
            await emit_event(
                session,
                f"warehouse.{to_state}",
                org_id=wh.organization_id,
                operation_id=finished[0].id if finished else None,
                state=to_state,
                cluster=wh.cluster,
            )


def now() -> datetime:
    return datetime.now(UTC)
