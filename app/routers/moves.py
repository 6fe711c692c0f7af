"""Internal fleet API, moves and drains (API.md §8): where a warehouse lives, move, drain."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from app.core.errors import ErrorBody, NotFound
from app.pipeline.auth import InternalCaller
from app.pipeline.sessions import DbSession
from app.schemas.moves import DrainOut, MoveIn, MoveOut, WarehouseLocationOut
from app.services.fleet.moves import MoveService

router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[InternalCaller])
OrgId = Annotated[str, Path(description="The organization's id (uuid).")]
ClusterName = Annotated[str, Path(description="The cluster's name.")]


def _errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {s: {"model": ErrorBody} for s in (401, *statuses)}


def _org(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("Organization not found") from None


def _service(request: Request, session: DbSession) -> MoveService:
    state = request.app.state
    return MoveService(session, state.settings, getattr(state, "queue", None))


@router.get("/warehouses/{org_id}", response_model=WarehouseLocationOut, responses=_errors(404))
async def get_warehouse_location(
    org_id: OrgId, request: Request, session: DbSession
) -> WarehouseLocationOut:
    found = await _service(request, session).locate(_org(org_id))
    return WarehouseLocationOut(
        org_id=found.org_id,
        database_name=found.database_name,
        state=found.state,
        cluster=found.cluster,
    )


@router.post(
    "/warehouses/{org_id}/move",
    status_code=202,
    response_model=MoveOut,
    responses=_errors(400, 404, 409, 503),
)
async def move_warehouse(
    org_id: OrgId, body: MoveIn, request: Request, session: DbSession
) -> MoveOut:
    operation_id = await _service(request, session).move(_org(org_id), body.cluster)
    return MoveOut(operation_id=operation_id)


@router.post(
    "/clusters/{name}/drain",
    status_code=202,
    response_model=DrainOut,
    responses=_errors(404, 409),
)
async def drain_cluster(name: ClusterName, request: Request, session: DbSession) -> DrainOut:
    operation_ids = await _service(request, session).drain(name)
    return DrainOut(operation_ids=operation_ids)
