"""Internal fleet API, moves and drains (API.md §8)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request

from app.core.errors import ErrorBody, NotFound
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.moves import DrainOut, MoveIn, MoveOut
from app.services.fleet.moves import MoveService

router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)
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
