"""The managed warehouse as the API changes it: provision, status, password, deprovision, delete.

Each method takes the organization's row locks, checks the state, writes the new state and an
audit record, and registers the worker job to be sent after the request commits. The slow work
(databases, roles, storage) is the worker's (`app.worker.machine`); only `reset_password` touches
the cluster here, because the old password must stop working before the answer goes out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import null, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.context import RequestContext
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.passwords import SecretBox, generate_password
from app.core.queue import JobQueue
from app.models import (
    ManagedWarehouse,
    OperationAction,
    OperationStatus,
    Organization,
    WarehouseState,
    WarehouseTeamMembership,
)
from app.pgcluster.scram import scram_verifier
from app.services.events.outbox import emit_event
from app.services.fleet.backends import ClusterBackends
from app.services.fleet.placement import check_room, cluster_to_keep
from app.services.operations.audit import AuditService
from app.services.operations.service import OperationsService
from app.services.storage.records import SnapshotKind, forget_snapshots, new_snapshot
from app.services.warehouse.availability import database_name_availability
from app.services.warehouse.jobs import ADVANCE_WAREHOUSE, advance_job_id
from app.settings import Settings

NO_WAREHOUSE = "No managed warehouse exists for this organization"
S = WarehouseState
A = OperationAction
STOPPED_BY_DEPROVISION = "Provisioning was stopped by a deprovision request"
SUB_STATES = ("s3_state", "metadata_store_state", "identity_state", "secrets_state")


@dataclass(frozen=True)
class Credentials:
    warehouse: ManagedWarehouse
    username: str
    password: str
    operation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Deprovisioning:
    warehouse: ManagedWarehouse
    operation_id: uuid.UUID | None


class WarehouseService:
    def __init__(
        self,
        session: AsyncSession,
        *,
        settings: Settings,
        backends: ClusterBackends,
        secrets: SecretBox,
        queue: JobQueue | None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.backends = backends
        self.secrets = secrets
        self.queue = queue
        self.audit = AuditService(session)
        self.operations = OperationsService(session)

    # -- reads ------------------------------------------------------------------------------

    async def _warehouse(self, organization_id: uuid.UUID, *, lock: bool) -> ManagedWarehouse:
        stmt = select(ManagedWarehouse).where(ManagedWarehouse.organization_id == organization_id)
        if lock:
            stmt = stmt.with_for_update()
        warehouse = (await self.session.execute(stmt)).scalar_one_or_none()
        if warehouse is None:
            raise NotFound(NO_WAREHOUSE)
        return warehouse

    # -- provision --------------------------------------------------------------------------

    async def provision(
        self,
        ctx: RequestContext,
        database_name: str,
        table_name: str | None,
        *,
        restore_snapshot_id: uuid.UUID | None = None,
    ) -> Credentials:
        """Provision (or, with `restore_snapshot_id`, restore: the same steps plus bringing the
        snapshot back before the probe; no table name, the environments keep theirs)."""
        org_id = ctx.organization_id
        # Serialises concurrent provisions of one organization; the unique constraints on
        # organization_id and database_name back this up.
        await self.session.execute(
            select(Organization.id).where(Organization.id == org_id).with_for_update()
        )
        # API.md §4.2 order: a live warehouse (409) → the name (409) → the table rule (400/409),
        # so a second provision always learns that a warehouse exists.
        existing = await self.session.scalar(
            select(ManagedWarehouse)
            .where(ManagedWarehouse.organization_id == org_id)
            .with_for_update()
        )
        if existing is not None and existing.state not in (S.FAILED, S.DELETED):
            raise await self.operations.conflict(
                org_id,
                f"This organization already has a managed warehouse (state: {existing.state})",
            )
        reusing_stale = existing is not None and database_name in existing.stale_names
        if not reusing_stale:
            availability = await database_name_availability(
                self.session, database_name, org_id, cluster_has_name=self._name_on_any_cluster
            )
            if not availability.available:
                raise Conflict(
                    availability.reason or f"The name '{database_name}' is not available"
                )
        if table_name is not None:
            await self._check_table_name(ctx, table_name)
        # A failed warehouse counts on its cluster already and may stay there (placement).
        keep = await cluster_to_keep(
            self.session,
            existing.cluster if existing is not None and existing.state == S.FAILED else None,
        )
        if keep is None:
            await check_room(self.session, self.settings)  # 503 before anything is written

        password = generate_password()
        ciphertext = self.secrets.encrypt(password)
        from_state = existing.state if existing is not None else None
        if existing is None:
            warehouse = ManagedWarehouse(
                id=uuid.uuid4(), organization_id=org_id, generation=1, stale_names=[]
            )
            self.session.add(warehouse)
        else:
            warehouse = existing
            stale = [n for n in warehouse.stale_names if n != database_name]
            # A failed attempt under another name may have left a database/role behind.
            if warehouse.state == S.FAILED and warehouse.database_name != database_name:
                stale.append(warehouse.database_name)
            warehouse.stale_names = stale
            warehouse.generation += 1
        warehouse.database_name = database_name
        warehouse.login_role = database_name
        # NULL (None would let the column default apply): placed by the commit, on the
        # cluster the placement rule picks then (app.services.fleet.placement).
        warehouse.cluster = keep if keep is not None else null()
        warehouse.state = S.PENDING
        for sub in SUB_STATES:
            setattr(warehouse, sub, S.PENDING)
        warehouse.status_message = "Provisioning requested"
        warehouse.ready_at = None
        warehouse.failed_at = None
        warehouse.password_ciphertext = ciphertext
        warehouse.attempt = 0
        warehouse.deadline_at = None
        warehouse.final_snapshot_id = None
        warehouse.restore_snapshot_id = restore_snapshot_id
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"The name '{database_name}' is not available") from exc
        if table_name is not None:
            await self._record_membership(ctx, table_name)
        else:
            await self._tables_again(org_id)
        action = A.PROVISION if restore_snapshot_id is None else A.RESTORE
        self._audit(ctx, warehouse, action.value, from_state, S.PENDING)
        operation = await self.operations.start(
            organization_id=org_id, warehouse_id=warehouse.id, action=action
        )
        self._enqueue(warehouse)
        return Credentials(warehouse, warehouse.login_role, password, operation.id)

    async def _check_table_name(self, ctx: RequestContext, table_name: str) -> None:
        mine = await self.session.scalar(
            select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == ctx.team.id)
        )
        if mine is not None and mine.schema_name:
            raise ValidationFailed(
                f"This environment already writes to {mine.schema_name}.events, and its "
                "warehouse tables can't be changed",
                attr="table_name",
            )
        if mine is not None and mine.table_suffix and mine.table_suffix != table_name:
            raise ValidationFailed(
                f"This environment already writes to events_{mine.table_suffix}, and its "
                "warehouse tables can't be changed",
                attr="table_name",
            )
        taken = await self.session.scalar(
            select(WarehouseTeamMembership.id).where(
                WarehouseTeamMembership.organization_id == ctx.organization_id,
                WarehouseTeamMembership.team_id != ctx.team.id,
                or_(
                    WarehouseTeamMembership.table_suffix == table_name,
                    WarehouseTeamMembership.schema_name == table_name,
                ),
            )
        )
        if taken is not None:
            raise Conflict(
                f"The name '{table_name}' is already used by another environment of this "
                "organization"
            )

    async def _tables_again(self, organization_id: uuid.UUID) -> None:
        # The organization's tables are (re)created by the worker for every membership.
        await self.session.execute(
            update(WarehouseTeamMembership)
            .where(WarehouseTeamMembership.organization_id == organization_id)
            .values(tables_created_at=None)
            .execution_options(synchronize_session=False)
        )

    async def _record_membership(self, ctx: RequestContext, table_name: str) -> None:
        await self._tables_again(ctx.organization_id)
        mine = await self.session.scalar(
            select(WarehouseTeamMembership).where(WarehouseTeamMembership.team_id == ctx.team.id)
        )
        if mine is None:
            self.session.add(
                WarehouseTeamMembership(
                    team_id=ctx.team.id,
                    organization_id=ctx.organization_id,
                    table_suffix=table_name,
                    backfill_enabled=True,
                )
            )
        else:
            mine.table_suffix = table_name
            mine.backfill_enabled = True
        try:
            await self.session.flush()
        except IntegrityError as exc:
            raise Conflict("This environment's warehouse tables are being changed") from exc

    # -- credentials ------------------------------------------------------------------------

    async def reset_password(self, ctx: RequestContext) -> Credentials:
        warehouse = await self._warehouse(ctx.organization_id, lock=True)
        if warehouse.state != S.READY:
            raise await self.operations.conflict(
                ctx.organization_id,
                "The root password can only be reset while the managed warehouse is ready "
                f"(state: {warehouse.state})",
            )
        await self.operations.refuse_if_running(
            ctx.organization_id, "The root password cannot be reset while an operation runs"
        )
        password = generate_password()
        # The cluster first: the old password stops working before anyone sees the new one.
        backend = await self.backends.for_cluster(self.session, warehouse.cluster)
        await backend.set_password(warehouse.login_role, scram_verifier(password))
        warehouse.password_ciphertext = self.secrets.encrypt(password)
        self._audit(ctx, warehouse, "rotate_password", S.READY, S.READY)
        await emit_event(
            self.session,
            "warehouse.password_reset",
            org_id=warehouse.organization_id,
            state=S.READY,
            cluster=warehouse.cluster,
        )
        await self.session.flush()
        return Credentials(warehouse, warehouse.login_role, password)

    # -- teardown ---------------------------------------------------------------------------

    async def deprovision(
        self, ctx: RequestContext, *, skip_final_snapshot: bool = False
    ) -> Deprovisioning:
        warehouse = await self._warehouse(ctx.organization_id, lock=True)
        if warehouse.state == S.DELETED:
            # Converged: the id of the deprovision that deleted it.
            done = await self.operations.latest(
                warehouse.id, A.DEPROVISION, OperationStatus.SUCCEEDED
            )
            return Deprovisioning(warehouse, done.id if done is not None else None)
        if warehouse.state == S.DELETING:
            running = await self.operations.running(ctx.organization_id, (A.DEPROVISION,))
            if running is None:  # a teardown that predates operations
                running = await self.operations.start(
                    organization_id=ctx.organization_id,
                    warehouse_id=warehouse.id,
                    action=A.DEPROVISION,
                )
            self._enqueue(warehouse)  # converge: resend in case the job was lost
            return Deprovisioning(warehouse, running.id)
        await self.operations.refuse_if_running(
            ctx.organization_id,
            "The managed warehouse cannot be deprovisioned while this operation runs",
            (A.MOVE, A.SNAPSHOT),
        )
        if warehouse.state not in (S.READY, S.FAILED, S.PROVISIONING):
            raise await self.operations.conflict(
                ctx.organization_id,
                "The managed warehouse can be deprovisioned once provisioning has started "
                f"(state: {warehouse.state})",
            )
        from_state = warehouse.state
        # A provisioning still under way gives up its goal in this transaction.
        await self.operations.finish_running(
            warehouse.id, (A.PROVISION, A.RESTORE), error=STOPPED_BY_DEPROVISION
        )
        warehouse.state = S.DELETING
        warehouse.generation += 1
        warehouse.attempt = 0
        warehouse.deadline_at = None
        warehouse.status_message = "Deprovisioning requested"
        self._audit(ctx, warehouse, "deprovision", from_state, S.DELETING)
        await self.session.flush()
        operation = await self.operations.start(
            organization_id=ctx.organization_id, warehouse_id=warehouse.id, action=A.DEPROVISION
        )
        warehouse.final_snapshot_id = None
        if from_state == S.READY and not skip_final_snapshot:
            # Data never goes without its final snapshot: the teardown's first step.
            final = new_snapshot(
                self.settings, warehouse, SnapshotKind.FINAL, operation_id=operation.id
            )
            self.session.add(final)
            warehouse.final_snapshot_id = final.id
        await self.session.flush()
        self._enqueue(warehouse)
        return Deprovisioning(warehouse, operation.id)

    async def delete_record(self, ctx: RequestContext) -> uuid.UUID:
        warehouse = await self._warehouse(ctx.organization_id, lock=True)
        if warehouse.state != S.DELETED:
            raise Conflict(
                "The managed warehouse must be deprovisioned before its record can be deleted "
                f"(state: {warehouse.state})"
            )
        self._audit(ctx, warehouse, "delete_record", S.DELETED, None)
        await self.session.delete(warehouse)
        # The snapshots go with the record; their objects and the bucket follow (worker).
        await forget_snapshots(self.session, ctx.organization_id)
        await self.session.flush()
        return ctx.organization_id

    # -- helpers ----------------------------------------------------------------------------

    async def _name_on_any_cluster(self, name: str) -> bool:
        return await self.backends.name_exists_anywhere(self.session, name)

    def _audit(
        self,
        ctx: RequestContext,
        warehouse: ManagedWarehouse,
        action: str,
        from_state: str | None,
        to_state: str | None,
    ) -> None:
        self.audit.record(
            organization_id=warehouse.organization_id,
            warehouse_id=warehouse.id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            actor_user_id=ctx.principal.user_id,
            actor_key_id=ctx.principal.key_id,
        )

    def _enqueue(self, warehouse: ManagedWarehouse) -> None:
        if self.queue is None:
            return  # no queue (e.g. a CLI without Redis): the reconciler picks it up
        self.queue.enqueue_after_commit(
            self.session,
            ADVANCE_WAREHOUSE,
            str(warehouse.id),
            warehouse.generation,
            job_id=advance_job_id(warehouse.id, warehouse.generation),
        )
