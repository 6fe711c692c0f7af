"""Placement (API.md §8): which cluster a new warehouse, or a moving one, goes to.

Among clusters that are `active`, `healthy` and below `max_warehouses`, the one with the lowest
fill ratio, ties broken by name. The fill counts the warehouses on the cluster that are not
`deleted` and the moves on their way to it (`warehouse_clusters.warehouses` and `.incoming`,
kept exact by triggers, migration 0012), so provisions and incoming moves never overfill it
together.

The rule itself is one SQL function, `warehouse_cluster_pick`, which returns the chosen
cluster's row locked and checks the room on the row as it is once locked; a cluster locked by a
placement in flight is skipped while another candidate has room. Concurrent placements
serialise only on that one row, for one statement:

- A new warehouse (`provision`, `restore`) is written with no cluster; a deferred constraint
  trigger places it inside COMMIT, so the cluster row is locked only while the commit runs on
  the server — no request holds it across a round trip, and a burst of provisions never queues
  connections behind a lock. No room: the commit fails with SQLSTATE `WH503`
  (`app.core.db.NO_CAPACITY_SQLSTATE`), answered 503 `no_capacity`, and nothing is recorded.
- A move's target (`choose_cluster`) is picked in the worker's step transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NoCapacity
from app.models import ClusterState, WarehouseCluster
from app.services.fleet.bootstrap import bootstrap_in
from app.settings import Settings

_PICK = text("SELECT warehouse_cluster_pick(:excluded)")


async def _bootstrap_if_empty(session: AsyncSession, settings: Settings) -> None:
    """If no cluster is registered at all, bootstrap `default`."""
    registered = await session.scalar(
        select(WarehouseCluster.name)
        .where(WarehouseCluster.admin_url_ciphertext.is_not(None))
        .limit(1)
    )
    if registered is None:
        await bootstrap_in(session, settings)


async def _has_room(session: AsyncSession) -> bool:
    """Whether a candidate has room now, read without a lock."""
    candidate = (
        (WarehouseCluster.state == ClusterState.ACTIVE)
        & WarehouseCluster.healthy.is_(True)
        & WarehouseCluster.admin_url_ciphertext.is_not(None)
    )
    room = WarehouseCluster.warehouses + WarehouseCluster.incoming < WarehouseCluster.max_warehouses
    n = await session.scalar(select(func.count()).where(candidate & room))
    return bool(n)


async def choose_cluster(
    session: AsyncSession, settings: Settings, *, exclude: str | None = None
) -> str:
    """Pick a cluster by the rule, its row locked until the caller commits; NoCapacity when
    none has room. The caller records the warehouse (or move) on it in the same transaction."""
    chosen = await session.scalar(_PICK, {"excluded": exclude})
    if chosen is None:
        await _bootstrap_if_empty(session, settings)
        chosen = await session.scalar(_PICK, {"excluded": exclude})
    if chosen is None:
        raise NoCapacity()
    return str(chosen)


async def cluster_to_keep(session: AsyncSession, cluster: str | None) -> str | None:
    """`cluster` if it still takes warehouses (active, healthy, registered), else None.

    A failed warehouse provisioned again already counts on its cluster; it stays there while
    that cluster takes warehouses (full or not), so the leftovers of the failed attempt are
    cleaned up where they are.
    """
    if cluster is None:
        return None
    row = await session.scalar(
        select(WarehouseCluster.name).where(
            WarehouseCluster.name == cluster,
            WarehouseCluster.state == ClusterState.ACTIVE,
            WarehouseCluster.healthy.is_(True),
            WarehouseCluster.admin_url_ciphertext.is_not(None),
        )
    )
    return cluster if row is not None else None


async def check_room(session: AsyncSession, settings: Settings) -> None:
    """NoCapacity at once when no cluster has room now, read without a lock (bootstrapping
    `default` when none is registered); a warehouse written with no cluster is then placed by
    the commit (see the module), which decides for certain."""
    if not await _has_room(session):
        await _bootstrap_if_empty(session, settings)
        if not await _has_room(session):
            raise NoCapacity()
