"""Placement (API.md §8): which cluster a new warehouse goes to.

Among clusters that are `active`, `healthy` and below `max_warehouses`, the one with the lowest
`warehouses / max_warehouses`, ties broken by name. The candidate rows are locked (`FOR NO KEY
UPDATE`, so the warehouse row's foreign-key check is not blocked) in the caller's transaction,
and counted after the lock is held: concurrent placements queue on the lock and each sees the
warehouses the previous ones committed, so no cluster is ever overfilled. `provision` calls
this; `restore` and moves reuse it.
"""

from __future__ import annotations

from fractions import Fraction

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.core.errors import NoCapacity
from app.models import ClusterState, ManagedWarehouse, WarehouseCluster
from app.services.fleet.bootstrap import bootstrap_in
from app.services.fleet.clusters import warehouse_counts
from app.settings import Settings


async def _candidates(session: AsyncSession, exclude: frozenset[str]) -> list[WarehouseCluster]:
    stmt = (
        select(WarehouseCluster)
        .where(
            WarehouseCluster.state == ClusterState.ACTIVE,
            WarehouseCluster.healthy.is_(True),
            WarehouseCluster.admin_url_ciphertext.is_not(None),
        )
        .order_by(WarehouseCluster.name)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
    )
    if exclude:
        stmt = stmt.where(WarehouseCluster.name.not_in(exclude))
    rows = await session.scalars(stmt.execution_options(populate_existing=True))
    return list(rows)


async def _bootstrap_if_empty(session: AsyncSession, settings: Settings) -> None:
    """Placement found no candidate: if no cluster is registered at all, bootstrap `default`."""
    registered = await session.scalar(
        select(WarehouseCluster.name)
        .where(WarehouseCluster.admin_url_ciphertext.is_not(None))
        .limit(1)
    )
    if registered is None:
        await bootstrap_in(session, settings)


async def choose_cluster(
    session: AsyncSession,
    settings: Settings,
    *,
    keep: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> str:
    """Lock the candidates and return the chosen cluster's name; NoCapacity when none has room.

    `keep`: a cluster the warehouse already counts on (a failed one provisioned again); it
    stays there while that cluster is a candidate, so leftovers of the failed attempt are
    cleaned up where they are.
    """
    candidates = await _candidates(session, exclude)
    if not candidates:
        await _bootstrap_if_empty(session, settings)
        candidates = await _candidates(session, exclude)
    if keep is not None and any(c.name == keep for c in candidates):
        return keep
    counts = await warehouse_counts(session, [c.name for c in candidates])
    best: tuple[Fraction, str] | None = None
    for cluster in candidates:
        count = counts.get(cluster.name, 0)
        if count >= cluster.max_warehouses:
            continue
        key = (Fraction(count, cluster.max_warehouses), cluster.name)
        if best is None or key < best:
            best = key
    if best is None:
        raise NoCapacity()
    return best[1]


_PLACE = text(
    """
UPDATE managed_warehouses AS w SET cluster = chosen.name
FROM (
    SELECT c.name
    FROM warehouse_clusters c
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM managed_warehouses m
        WHERE m.cluster = c.name AND m.state <> 'deleted'
    ) k
    WHERE c.name = ANY(CAST(:candidates AS text[])) AND k.n < c.max_warehouses
    ORDER BY k.n::numeric / c.max_warehouses, c.name
    LIMIT 1
) AS chosen
WHERE w.id = :warehouse_id
RETURNING w.cluster
"""
)


async def place_warehouse(
    session: AsyncSession,
    settings: Settings,
    warehouse: ManagedWarehouse,
    *,
    keep: str | None = None,
) -> str:
    """Place a flushed warehouse row: lock the candidates, then count, choose and set its
    `cluster` in one statement, so the locks are held for two round trips up to the commit.

    The caller should commit soon after: every placement in the fleet queues on these rows.
    """
    names = [c.name for c in await _candidates(session, frozenset())]
    if not names:
        await _bootstrap_if_empty(session, settings)
        names = [c.name for c in await _candidates(session, frozenset())]
    if keep is not None and keep in names:
        chosen: str | None = keep
        if warehouse.cluster != keep:
            warehouse.cluster = keep
            await session.flush()
        return keep
    chosen = await session.scalar(_PLACE, {"candidates": names, "warehouse_id": warehouse.id})
    if chosen is None:
        raise NoCapacity()
    # Written by the statement above: record it without marking the row dirty again.
    set_committed_value(warehouse, "cluster", chosen)
    return chosen
