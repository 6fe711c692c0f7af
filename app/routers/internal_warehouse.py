"""Internal service-to-service API, warehouse data part (API.md §6 `warehouse/rows`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy import select

from app.core.errors import ErrorBody, NotFound
from app.models import ManagedWarehouse
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.fleet import WarehousePlacementOut
from app.schemas.membership import WarehouseRowsIn, WarehouseRowsOut
from app.services.warehouse.lifecycle import NO_WAREHOUSE
from app.services.warehouse.rows import WarehouseRowsService

router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)


@router.post(
    "/environments/{team_id}/warehouse/rows",
    response_model=WarehouseRowsOut,
    responses={
        400: {"model": ErrorBody, "description": "Invalid rows (attr names the first one)"},
        401: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "Unknown environment"},
        409: {
            "model": ErrorBody,
            "description": "No backfill/onboarding yet, or the warehouse is not ready",
        },
    },
)
async def append_warehouse_rows(
    team_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="Environment (team) id.")],
    body: WarehouseRowsIn,
    session: DbSession,
    request: Request,
) -> WarehouseRowsOut:
    state = request.app.state
    service = WarehouseRowsService(session, state.settings, state.read_pool, state.tenant_pools)
    inserted = await service.append(team_id, body.table, body.rows)
    return WarehouseRowsOut(inserted=inserted)


@router.get(
    "/warehouses/{org_id}",
    response_model=WarehousePlacementOut,
    responses={
        401: {"model": ErrorBody},
        404: {"model": ErrorBody, "description": "No warehouse record for this organization"},
    },
)
async def warehouse_placement(
    org_id: Annotated[str, Path(description="Organization id (uuid).")], session: DbSession
) -> WarehousePlacementOut:
    """Where an organization's warehouse lives, for operators (API.md §8)."""
    try:
        organization_id = uuid.UUID(org_id)
    except ValueError:
        raise NotFound(NO_WAREHOUSE) from None
    warehouse = await session.scalar(
        select(ManagedWarehouse).where(ManagedWarehouse.organization_id == organization_id)
    )
    if warehouse is None:
        raise NotFound(NO_WAREHOUSE)
    return WarehousePlacementOut(
        org_id=warehouse.organization_id,
        database_name=warehouse.database_name,
        state=warehouse.state,
        cluster=warehouse.cluster,
    )
