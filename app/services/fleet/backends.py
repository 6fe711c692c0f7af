"""Per-cluster admin backends: which cluster holds a warehouse, and a pool to reach it.

`admin_dsn_of` resolves a cluster name to its admin DSN inside the caller's session (decrypting
the stored copy). The cluster named `default` is the one this process is configured with
(`WAREHOUSE_ADMIN_URL`, or its default): bootstrap registers it, and each process reaches it
with its own setting, so rotating that DSN is a restart, as before the fleet existed.

`ClusterBackends` keeps one `PostgresWarehouseBackend` (a lazily opened asyncpg pool) per DSN,
closes those unused for `idle_seconds`, and caches one trust-auth guard per DSN.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import InvalidToken
from app.core.errors import ServiceUnavailable
from app.models import WarehouseCluster
from app.pgcluster.postgres import PostgresWarehouseBackend
from app.pgcluster.safety import ClusterAuthGuard
from app.services.fleet.bootstrap import DEFAULT_CLUSTER, admin_url_box
from app.settings import Settings

IDLE_SECONDS = 300.0


class ClusterUnknown(ServiceUnavailable):
    """A warehouse names a cluster whose admin DSN is not available (unregistered/unreadable)."""

    default_detail = "The warehouse's cluster is not available."


@dataclass(frozen=True)
class RegisteredCluster:
    name: str
    admin_dsn: str
    healthy: bool = True


def decrypt_admin_url(settings: Settings, ciphertext: bytes) -> str:
    try:
        return admin_url_box(settings).decrypt(ciphertext).decode()
    except InvalidToken as exc:
        raise ClusterUnknown() from exc


def cluster_dsn(settings: Settings, name: str | None, ciphertext: bytes | None) -> str:
    if name is None or name == DEFAULT_CLUSTER:
        return settings.warehouse_admin_dsn
    if ciphertext is None:
        raise ClusterUnknown()
    return decrypt_admin_url(settings, ciphertext)


async def admin_dsn_of(session: AsyncSession, settings: Settings, name: str | None) -> str:
    """The admin DSN of the cluster `name` (a warehouse's `cluster`)."""
    if name is None or name == DEFAULT_CLUSTER:
        return settings.warehouse_admin_dsn
    ciphertext = await session.scalar(
        select(WarehouseCluster.admin_url_ciphertext).where(WarehouseCluster.name == name)
    )
    return cluster_dsn(settings, name, ciphertext)


async def registered_clusters(session: AsyncSession, settings: Settings) -> list[RegisteredCluster]:
    """Every registered cluster (any state), by name."""
    rows = await session.execute(
        select(
            WarehouseCluster.name,
            WarehouseCluster.admin_url_ciphertext,
            WarehouseCluster.healthy,
        )
        .where(WarehouseCluster.admin_url_ciphertext.is_not(None))
        .order_by(WarehouseCluster.name)
    )
    return [
        RegisteredCluster(r.name, cluster_dsn(settings, r.name, r.admin_url_ciphertext), r.healthy)
        for r in rows
    ]


class ClusterBackends:
    def __init__(
        self, settings: Settings, *, pool_max_size: int = 5, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.settings = settings
        self.pool_max_size = pool_max_size
        self.idle_seconds = idle_seconds
        self._backends: dict[str, PostgresWarehouseBackend] = {}
        self._last_used: dict[str, float] = {}
        self._guards: dict[str, ClusterAuthGuard] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def for_dsn(self, dsn: str) -> PostgresWarehouseBackend:
        now = time.monotonic()
        self._close_idle(now, keep=dsn)
        backend = self._backends.get(dsn)
        if backend is None:
            backend = PostgresWarehouseBackend(dsn, pool_max_size=self.pool_max_size)
            self._backends[dsn] = backend
        self._last_used[dsn] = now
        return backend

    async def for_cluster(
        self, session: AsyncSession, name: str | None
    ) -> PostgresWarehouseBackend:
        return self.for_dsn(await admin_dsn_of(session, self.settings, name))

    def guard(self, dsn: str) -> ClusterAuthGuard:
        guard = self._guards.get(dsn)
        if guard is None:
            guard = ClusterAuthGuard(self.for_dsn(dsn), self.settings)
            self._guards[dsn] = guard
        return guard

    async def name_exists_anywhere(self, session: AsyncSession, name: str) -> bool:
        """Does any registered cluster hold a database or role of this name? (§4.1, §8)

        A cluster the last health check found down is skipped (placement skips it too, so no
        warehouse is created there meanwhile); one that should answer and does not is a 503.
        """
        clusters = await registered_clusters(session, self.settings)
        if not clusters:
            clusters = [RegisteredCluster(DEFAULT_CLUSTER, self.settings.warehouse_admin_dsn)]
        answers = await asyncio.gather(
            *(self.for_dsn(c.admin_dsn).name_exists(name) for c in clusters if c.healthy)
        )
        return any(answers)

    def _close_idle(self, now: float, *, keep: str) -> None:
        for dsn, last in list(self._last_used.items()):
            if dsn != keep and now - last > self.idle_seconds:
                backend = self._backends.pop(dsn)
                self._last_used.pop(dsn)
                self._guards.pop(dsn, None)
                task = asyncio.get_running_loop().create_task(backend.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        backends = list(self._backends.values())
        self._backends.clear()
        self._last_used.clear()
        self._guards.clear()
        for backend in backends:
            await backend.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
