"""The per-cluster counters placement reads, and their periodic check.

`warehouse_clusters.warehouses` (warehouses on the cluster that are not `deleted`) and
`.incoming` (moves on their way to it, not yet switched) are maintained by triggers on
`managed_warehouses` and `warehouse_moves` (migration 0012) in the transaction of every write
that changes them — provision, failure and re-provision, teardown to `deleted`, `delete-org`,
a move's claim, switch, rollback and end, a drain re-pointing a failed warehouse, a restore —
whichever code path makes it. They cannot drift through the service; only writes that bypass
the triggers could (a cluster renamed by hand, triggers disabled for a bulk load). The worker's
cluster check therefore recounts them every `CLUSTER_CHECK_SECONDS` and repairs (and logs) any
difference.

Recounting is exact under concurrency: every write that changes a cluster's counters updates
that cluster's row, so once `recount` holds the row lock no such write is uncommitted, and the
count taken after the lock (a fresh snapshot) sees them all; writes that come later wait for
the lock and then apply their change to the repaired value.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import WarehouseCluster

logger = logging.getLogger(__name__)

_COUNT = text(
    """
SELECT
    (SELECT count(*) FROM managed_warehouses m
     WHERE m.cluster = :name AND m.state <> 'deleted') AS warehouses,
    (SELECT count(*) FROM warehouse_moves v
     WHERE v.target_cluster = :name AND v.finished_at IS NULL AND NOT v.switched) AS incoming
"""
)


async def recount(session: AsyncSession, name: str) -> tuple[int, int] | None:
    """Lock the cluster's row, count from the rows, repair the counters if they differ.
    Returns the (warehouses, incoming) counters as they were when they differed, else None."""
    row = await session.get(WarehouseCluster, name, with_for_update=True, populate_existing=True)
    if row is None:
        return None
    counted = (await session.execute(_COUNT, {"name": name})).one()
    if (row.warehouses, row.incoming) == (counted.warehouses, counted.incoming):
        return None
    before = (row.warehouses, row.incoming)
    row.warehouses = int(counted.warehouses)
    row.incoming = int(counted.incoming)
    await session.flush()
    return before


async def check_counters(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, bool]:
    """Recount every cluster, each in a short transaction of its own; True = it was exact."""
    async with sessionmaker() as session:
        names = list(await session.scalars(select(WarehouseCluster.name)))
    results: dict[str, bool] = {}
    for name in names:
        async with sessionmaker() as session, session.begin():
            before = await recount(session, name)
            row = await session.get(WarehouseCluster, name)
            if before is not None and row is not None:
                logger.warning(
                    "cluster counters drifted; repaired",
                    extra={
                        "cluster": name,
                        "stored_warehouses": before[0],
                        "stored_incoming": before[1],
                        "warehouses": row.warehouses,
                        "incoming": row.incoming,
                    },
                )
        results[name] = before is None
    return results
