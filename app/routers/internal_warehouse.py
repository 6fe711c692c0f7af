"""Internal service-to-service API, warehouse data part (API.md §6 `warehouse/rows`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from app.core.errors import ErrorBody
from app.pipeline.auth import InternalCaller
from app.pipeline.sessions import DbSession
from app.schemas.membership import WarehouseRowsIn, WarehouseRowsOut
from app.services.warehouse.rows import WarehouseRowsService

router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[InternalCaller])


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
    service = WarehouseRowsService(session, state.settings, state.tenant_pools)
    inserted = await service.append(team_id, body.table, body.rows)
    return WarehouseRowsOut(inserted=inserted)
