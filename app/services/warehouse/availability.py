"""Is a warehouse name free? Checked against the service's records and the warehouse cluster."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ManagedWarehouse, WarehouseState
from app.services.warehouse.names import reserved_reason

# Asks the warehouse cluster whether a database or role of that name exists there.
ClusterNameProbe = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class Availability:
    name: str
    available: bool
    reason: str | None = None


async def database_name_availability(
    session: AsyncSession,
    name: str,
    organization_id: uuid.UUID,
    cluster_has_name: ClusterNameProbe | None = None,
) -> Availability:
    reason = reserved_reason(name)
    if reason:
        return Availability(name, False, reason)
    holder = (
        await session.execute(
            select(ManagedWarehouse.organization_id, ManagedWarehouse.state).where(
                ManagedWarehouse.database_name == name
            )
        )
    ).one_or_none()
    if holder is not None:
        if holder.organization_id != organization_id:
            return Availability(name, False, f"The name '{name}' is already in use")
        if holder.state not in (WarehouseState.FAILED, WarehouseState.DELETED):
            return Availability(
                name, False, f"The name '{name}' is used by this organization's warehouse"
            )
        return Availability(name, True)
    if cluster_has_name is not None and await cluster_has_name(name):
        return Availability(
            name, False, f"A database or role named '{name}' already exists in the cluster"
        )
    return Availability(name, True)
