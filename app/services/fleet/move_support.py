"""What moves need from the rest of the fleet: cluster DSNs, placement, operations, events.

Kept in one place so the move machine and the move/drain requests read the registry the same
way. Nothing here commits.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NoCapacity
from app.models import (
    ManagedWarehouse,
    Operation,
    WarehouseCluster,
    WarehouseMove,
    WarehouseState,
)
from app.services.events.outbox import emit_event
from app.services.fleet.bootstrap import admin_url_box
from app.services.fleet.placement import choose_cluster
from app.services.operations.service import OperationsService
from app.settings import Settings

ACTIVE = "active"
PAUSED = "paused"
DRAINING = "draining"
DRAINED = "drained"


class UnknownCluster(LookupError):
    pass


async def admin_dsn(session: AsyncSession, settings: Settings, cluster: str) -> str:
    row = await session.get(WarehouseCluster, cluster)
    if row is None or row.admin_url_ciphertext is None:
        raise UnknownCluster("the cluster is not registered")
    return admin_url_box(settings).decrypt(row.admin_url_ciphertext).decode()


async def live_warehouses(session: AsyncSession, cluster: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(ManagedWarehouse)
        .where(
            ManagedWarehouse.cluster == cluster,
            ManagedWarehouse.state != WarehouseState.DELETED,
        )
    )
    return int(count or 0)


async def room_elsewhere(session: AsyncSession, *, exclude: str) -> int:
    """Free places on the clusters that take new warehouses, other than `exclude`: room
    left after the warehouses on them and the moves on their way to them."""
    free = await session.scalar(
        select(
            func.coalesce(
                func.sum(
                    func.greatest(
                        0,
                        WarehouseCluster.max_warehouses
                        - WarehouseCluster.warehouses
                        - WarehouseCluster.incoming,
                    )
                ),
                0,
            )
        ).where(
            WarehouseCluster.name != exclude,
            WarehouseCluster.state == ACTIVE,
            WarehouseCluster.healthy.is_(True),
            WarehouseCluster.admin_url_ciphertext.is_not(None),
        )
    )
    return int(free or 0)


async def choose_target(session: AsyncSession, settings: Settings, *, exclude: str) -> str | None:
    """The placement rule (API.md §8) among the other clusters, or None when none has room."""
    try:
        return await choose_cluster(session, settings, exclude=exclude)
    except NoCapacity:
        return None


async def finish_operation(
    session: AsyncSession, operation_id: uuid.UUID, *, error: str | None
) -> None:
    operation = await session.get(Operation, operation_id, with_for_update=True)
    if operation is not None and operation.finished_at is None:
        OperationsService(session).finish(operation, error=error)


async def finish_drain_if_done(session: AsyncSession, cluster: str) -> bool:
    """`drained` (and the `cluster.drained` event) once every move of the drain ended and no
    live warehouse is left on the cluster."""
    unfinished = await session.scalar(
        select(func.count())
        .select_from(WarehouseMove)
        .where(WarehouseMove.drain_cluster == cluster, WarehouseMove.finished_at.is_(None))
    )
    if unfinished:
        return False
    row = await session.get(WarehouseCluster, cluster, with_for_update=True)
    if row is None or row.state != DRAINING:
        return False
    if await live_warehouses(session, cluster):
        # A move failed (its operation says why): the cluster stops draining but still takes
        # no new warehouses, and the operator may drain it again.
        row.state = PAUSED
        return False
    row.state = DRAINED
    await emit_event(session, "cluster.drained", cluster=cluster)
    return True
