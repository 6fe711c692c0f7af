"""The cluster registry as operators change it: register, list, read, update, remove (§8).

Registration connects with the admin DSN first (`app.pgcluster.admin_check`) and stores it only
encrypted. A cluster's `warehouses` counts the warehouses on it that are not `deleted`, from the
moment they are placed (`pending` included): the `warehouse_clusters.warehouses` counter, kept
exact by a trigger (`app.services.fleet.counters`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound, ValidationFailed
from app.models import ClusterState, WarehouseCluster
from app.pgcluster.admin_check import admin_url_problem
from app.services.fleet.backends import ClusterUnknown, decrypt_admin_url
from app.services.fleet.bootstrap import admin_url_box
from app.services.warehouse.names import WAREHOUSE_NAME_RE, validate_warehouse_name
from app.settings import Settings, to_plain_dsn

_LOCK_NAMESPACE = 72_010_008
NO_CLUSTER = "No warehouse cluster with this name is registered"


@dataclass(frozen=True)
class ClusterView:
    cluster: WarehouseCluster
    warehouses: int


@dataclass(frozen=True)
class NewCluster:
    name: str | None
    admin_url: str | None
    public_host: str | None
    public_port: int | None
    max_warehouses: int
    labels: dict[str, str]


def _required(value: Any, attr: str) -> Any:
    if value is None or value == "":
        raise ValidationFailed(f"{attr} is required", attr=attr, code="required")
    return value


def normalized_admin_url(raw: str) -> str:
    try:
        return to_plain_dsn(raw.strip())
    except ValueError:
        # One of §8's refusal details: the service cannot even try to connect with it.
        raise ValidationFailed(
            "Could not connect to the cluster: invalid connection URL", attr="admin_url"
        ) from None


class ClusterRegistry:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings

    async def register(self, new: NewCluster) -> tuple[ClusterView, bool]:
        """The cluster and whether it was created (False: the same one was registered)."""
        name = validate_warehouse_name(_required(new.name, "name"), attr="name")
        dsn = normalized_admin_url(_required(new.admin_url, "admin_url"))
        host = _required(new.public_host, "public_host")
        port = _required(new.public_port, "public_port")
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"),
            {"ns": _LOCK_NAMESPACE, "key": zlib.crc32(name.encode()) - 2**31},
        )
        existing = await self.session.get(WarehouseCluster, name, with_for_update=True)
        if existing is not None and existing.admin_url_ciphertext is not None:
            if self._same_dsn(existing, dsn):
                return await self.view(existing), False
            raise Conflict(f"A cluster named '{name}' is already registered with another admin_url")
        problem = await admin_url_problem(dsn, allow_trust=self.settings.warehouse_allow_trust_auth)
        if problem is not None:
            raise ValidationFailed(problem, attr="admin_url")
        ciphertext = admin_url_box(self.settings).encrypt(dsn.encode())
        if existing is None:
            existing = WarehouseCluster(name=name)
            self.session.add(existing)
        existing.admin_url_ciphertext = ciphertext
        existing.public_host = host
        existing.public_port = port
        existing.max_warehouses = new.max_warehouses
        existing.labels = dict(new.labels)
        existing.state = ClusterState.ACTIVE
        existing.healthy = True
        existing.last_checked_at = datetime.now(UTC)
        await self.session.flush()
        await self.session.refresh(existing)
        return await self.view(existing), True

    def _same_dsn(self, cluster: WarehouseCluster, dsn: str) -> bool:
        if cluster.admin_url_ciphertext is None:
            return False
        try:
            return decrypt_admin_url(self.settings, cluster.admin_url_ciphertext) == dsn
        except ClusterUnknown:
            return False

    async def view(self, cluster: WarehouseCluster) -> ClusterView:
        # The counter as committed (or as this transaction changed it), not the ORM copy.
        count = await self.session.scalar(
            select(WarehouseCluster.warehouses).where(WarehouseCluster.name == cluster.name)
        )
        return ClusterView(cluster, int(count or 0))

    async def list(self) -> list[ClusterView]:
        clusters = list(
            await self.session.scalars(
                select(WarehouseCluster)
                .where(WarehouseCluster.admin_url_ciphertext.is_not(None))
                .order_by(WarehouseCluster.name)
                .execution_options(populate_existing=True)
            )
        )
        return [ClusterView(c, c.warehouses) for c in clusters]

    async def _find(self, name: str, *, lock: bool = False) -> WarehouseCluster:
        if not WAREHOUSE_NAME_RE.fullmatch(name):
            raise NotFound(NO_CLUSTER)  # no cluster can have this name
        cluster = await self.session.get(
            WarehouseCluster, name, with_for_update=lock, populate_existing=lock
        )
        if cluster is None or cluster.admin_url_ciphertext is None:
            raise NotFound(NO_CLUSTER)
        return cluster

    async def get(self, name: str) -> ClusterView:
        return await self.view(await self._find(name))

    async def update(self, name: str, changes: dict[str, Any]) -> ClusterView:
        cluster = await self._find(name, lock=True)
        state = changes.get("state")
        if state is not None and state != cluster.state:
            if cluster.state == ClusterState.DRAINING:
                raise Conflict("The cluster is draining; its state changes when the drain ends")
            cluster.state = state
        for field in ("max_warehouses", "public_host", "public_port"):
            if changes.get(field) is not None:
                setattr(cluster, field, changes[field])
        if changes.get("labels") is not None:
            cluster.labels = dict(changes["labels"])
        await self.session.flush()
        return await self.view(cluster)

    async def remove(self, name: str) -> None:
        cluster = await self._find(name, lock=True)  # read as locked: no change is in flight
        count = cluster.warehouses
        if count:
            raise Conflict(f"The cluster still holds {count} warehouse(s) that are not deleted")
        await self.session.delete(cluster)
        await self.session.flush()
