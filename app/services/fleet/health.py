"""Cluster health (API.md §8): connect to every registered cluster and run a probe.

The worker runs `check_clusters` every `CLUSTER_CHECK_SECONDS`; `healthy` and
`last_checked_at` record the answer, and placement skips clusters that are not healthy. Probes
run concurrently and outside any transaction; the results are written in one short one.
Between checks, a worker step that reached a cluster marked unhealthy marks it healthy again
(`note_reachable`), so a cluster back from an outage takes warehouses without waiting a period.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import WarehouseCluster
from app.pgcluster.admin_check import probe_admin_url
from app.services.fleet.backends import registered_clusters
from app.settings import Settings

logger = logging.getLogger(__name__)


async def check_clusters(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[str, bool]:
    async with sessionmaker() as session:
        clusters = await registered_clusters(session, settings)
    answers = await asyncio.gather(*(probe_admin_url(c.admin_dsn) for c in clusters))
    checked_at = datetime.now(UTC)
    results = {c.name: ok for c, ok in zip(clusters, answers, strict=True)}
    async with sessionmaker() as session, session.begin():
        for name, ok in results.items():
            await session.execute(
                update(WarehouseCluster)
                .where(WarehouseCluster.name == name)
                .values(healthy=ok, last_checked_at=checked_at)
            )
    for name, ok in results.items():
        if not ok:
            logger.warning("warehouse cluster failed its health check", extra={"cluster": name})
    return results


async def note_reachable(session: AsyncSession, name: str | None) -> None:
    """Mark the cluster healthy if it was not: the caller just completed work on it."""
    if name is None:
        return
    await session.execute(
        update(WarehouseCluster)
        .where(WarehouseCluster.name == name, WarehouseCluster.healthy.is_(False))
        .values(healthy=True, last_checked_at=func.now())
    )
