"""Requests to move a warehouse or drain a cluster (API.md §8), as the API and CLI make them.

Both write the `move` operation(s) and the move records in the caller's transaction and send
the jobs after commit; the worker's move machine (`move_machine.py`) does the rest. Checks run
in the contract's order: every 404 before any 409.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, ServiceUnavailable
from app.core.queue import JobQueue
from app.models import (
    ManagedWarehouse,
    MoveStatus,
    OperationAction,
    Organization,
    WarehouseCluster,
    WarehouseMove,
    WarehouseState,
)
from app.pgcluster.copy import holds_name
from app.services.events.outbox import emit_event
from app.services.fleet import move_support as support
from app.services.fleet.move_jobs import ADVANCE_MOVE, move_job_id
from app.services.operations.audit import AuditService
from app.services.operations.service import OperationsService
from app.settings import Settings

logger = logging.getLogger(__name__)
S = WarehouseState
NO_CLUSTER = "No warehouse cluster with this name is registered"


class MoveService:
    def __init__(self, session: AsyncSession, settings: Settings, queue: JobQueue | None) -> None:
        self.session = session
        self.settings = settings
        self.queue = queue
        self.operations = OperationsService(session)

    # -- lookups ----------------------------------------------------------------------------

    async def _warehouse(self, org_id: uuid.UUID, *, lock: bool) -> ManagedWarehouse:
        if await self.session.get(Organization, org_id) is None:
            raise NotFound("Organization not found")
        stmt = select(ManagedWarehouse).where(ManagedWarehouse.organization_id == org_id)
        if lock:
            stmt = stmt.with_for_update()
        warehouse = await self.session.scalar(stmt)
        if warehouse is None or warehouse.state == S.DELETED:
            raise NotFound("No managed warehouse exists for this organization")
        return warehouse

    async def _cluster(self, name: str, *, lock: bool = False) -> WarehouseCluster:
        cluster = await self.session.get(WarehouseCluster, name, with_for_update=lock)
        if cluster is None or cluster.admin_url_ciphertext is None:
            raise NotFound(NO_CLUSTER)
        return cluster

    # -- move -------------------------------------------------------------------------------

    async def move(self, org_id: uuid.UUID, cluster_name: str) -> uuid.UUID:
        warehouse = await self._warehouse(org_id, lock=True)
        target = await self._cluster(cluster_name)
        if warehouse.state != S.READY:
            raise await self.operations.conflict(
                org_id,
                f"Only a ready warehouse can be moved (state: {warehouse.state})",
            )
        if warehouse.cluster is None:
            raise Conflict("The warehouse is on no registered cluster, so it cannot be moved")
        if warehouse.cluster == target.name:
            raise Conflict(f"The warehouse is already on the cluster '{target.name}'")
        if target.state != support.ACTIVE:
            raise Conflict(
                f"The cluster '{target.name}' does not take warehouses (state: {target.state})"
            )
        if not target.healthy:
            raise Conflict(f"The cluster '{target.name}' is not healthy")
        if target.warehouses + target.incoming >= target.max_warehouses:
            raise Conflict(f"The cluster '{target.name}' has no room for another warehouse")
        dsn = await support.admin_dsn(self.session, self.settings, target.name)
        try:
            held = any(await holds_name(dsn, warehouse.database_name, warehouse.login_role))
        except Exception as exc:
            logger.warning(
                "could not check the target cluster's names",
                extra={"cluster": target.name, "error_class": type(exc).__name__},
            )
            raise ServiceUnavailable(
                f"The cluster '{target.name}' could not be reached; try again later"
            ) from exc
        if held:
            raise Conflict(
                f"The cluster '{target.name}' already holds a database or role named "
                f"'{warehouse.database_name}'"
            )
        # The room again, on the row locked (after the call to the cluster, so no lock waits on
        # the network): provisions and other moves onto it wait or go elsewhere until the
        # move, counted in its `incoming`, commits.
        locked = await self.session.scalar(
            select(WarehouseCluster)
            .where(WarehouseCluster.name == target.name)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE
            .execution_options(populate_existing=True)
        )
        if locked is None or locked.warehouses + locked.incoming >= locked.max_warehouses:
            raise Conflict(f"The cluster '{target.name}' has no room for another warehouse")
        operation = await self.operations.start(
            organization_id=org_id, warehouse_id=warehouse.id, action=OperationAction.MOVE
        )
        self.session.add(
            WarehouseMove(
                id=operation.id,
                warehouse_id=warehouse.id,
                organization_id=org_id,
                source_cluster=warehouse.cluster,
                target_cluster=target.name,
                status=MoveStatus.RUNNING,
                step="start",
            )
        )
        AuditService(self.session).record(
            organization_id=org_id,
            warehouse_id=warehouse.id,
            action="move",
            from_state=S.READY,
            to_state=S.MIGRATING,
        )
        warehouse.state = S.MIGRATING
        warehouse.status_message = f"Moving to the cluster '{target.name}'"
        await self.session.flush()
        self._enqueue(operation.id)
        return operation.id

    # -- drain ------------------------------------------------------------------------------

    async def drain(self, cluster_name: str) -> list[uuid.UUID]:
        cluster = await self._cluster(cluster_name, lock=True)
        if cluster.state in (support.DRAINING, support.DRAINED):
            raise Conflict(f"The cluster '{cluster.name}' is already {cluster.state}")
        warehouses = list(
            await self.session.scalars(
                select(ManagedWarehouse)
                .where(
                    ManagedWarehouse.cluster == cluster.name,
                    ManagedWarehouse.state != S.DELETED,
                )
                .order_by(ManagedWarehouse.created_at, ManagedWarehouse.id)
                .with_for_update()
            )
        )
        room = await support.room_elsewhere(self.session, exclude=cluster.name)
        if room < len(warehouses):
            raise Conflict(
                f"The other clusters have room for {room} warehouses, and "
                f"'{cluster.name}' holds {len(warehouses)}; nothing was started"
            )
        cluster.state = support.DRAINING
        ids: list[uuid.UUID] = []
        for warehouse in warehouses:
            operation = await self.operations.start(
                organization_id=warehouse.organization_id,
                warehouse_id=warehouse.id,
                action=OperationAction.MOVE,
            )
            self.session.add(
                WarehouseMove(
                    id=operation.id,
                    warehouse_id=warehouse.id,
                    organization_id=warehouse.organization_id,
                    source_cluster=cluster.name,
                    drain_cluster=cluster.name,
                    status=MoveStatus.WAITING,
                    step="start",
                )
            )
            ids.append(operation.id)
        await self.session.flush()
        if not warehouses:
            cluster.state = support.DRAINED
            await emit_event(self.session, "cluster.drained", cluster=cluster.name)
        for move_id in ids:
            self._enqueue(move_id)
        return ids

    def _enqueue(self, move_id: uuid.UUID) -> None:
        if self.queue is None:
            return  # no queue (a CLI without Redis): the worker's reconciler sends it
        self.queue.enqueue_after_commit(
            self.session, ADVANCE_MOVE, str(move_id), job_id=move_job_id(move_id)
        )
