"""Internal API: the fleet's cluster registry (API.md §8). The admin DSN goes in, never out."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Body,
    Path,
    Request,
    Response,
)

from app.core.errors import ErrorBody
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.fleet import (
    ClusterIn,
    ClusterList,
    ClusterOut,
    ClusterPatch,
)
from app.services.fleet.clusters import ClusterRegistry, ClusterView, NewCluster

router = APIRouter(
    prefix="/internal/clusters",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)

# No length bound: a name no cluster can have is an unknown cluster, 404 (API.md §6, §8).
ClusterName = Annotated[str, Path(description="The cluster's name.")]
_401 = {"model": ErrorBody, "description": "Missing or wrong internal token"}
_404 = {"model": ErrorBody, "description": "No cluster with this name"}


def cluster_out(view: ClusterView) -> ClusterOut:
    c = view.cluster
    return ClusterOut(
        name=c.name,
        state=c.state,
        public_host=c.public_host,
        public_port=c.public_port,
        max_warehouses=c.max_warehouses,
        warehouses=view.warehouses,
        healthy=c.healthy,
        last_checked_at=c.last_checked_at,
        labels=dict(c.labels or {}),
    )


def _registry(request: Request, session: DbSession) -> ClusterRegistry:
    return ClusterRegistry(session, request.app.state.settings)


@router.post(
    "",
    status_code=201,
    response_model=ClusterOut,
    responses={
        200: {"model": ClusterOut, "description": "Already registered with this admin_url"},
        400: {
            "model": ErrorBody,
            "description": "Invalid body, or the admin_url is refused (cannot connect, not a "
            "superuser, trusts host logins)",
        },
        401: _401,
        409: {"model": ErrorBody, "description": "The name is registered with another admin_url"},
    },
)
async def register_cluster(
    request: Request,
    response: Response,
    session: DbSession,
    body: Annotated[ClusterIn | None, Body()] = None,
) -> ClusterOut:
    body = body or ClusterIn()
    view, created = await _registry(request, session).register(
        NewCluster(
            name=body.name,
            admin_url=body.admin_url,
            public_host=body.public_host,
            public_port=body.public_port,
            max_warehouses=body.max_warehouses,
            labels=body.labels,
        )
    )
    response.status_code = 201 if created else 200
    return cluster_out(view)


@router.get("", response_model=ClusterList, responses={401: _401})
async def list_clusters(request: Request, session: DbSession) -> ClusterList:
    views = await _registry(request, session).list()
    return ClusterList(results=[cluster_out(v) for v in views])


@router.get("/{name}", response_model=ClusterOut, responses={401: _401, 404: _404})
async def get_cluster(name: ClusterName, request: Request, session: DbSession) -> ClusterOut:
    return cluster_out(await _registry(request, session).get(name))


@router.patch(
    "/{name}",
    response_model=ClusterOut,
    responses={
        400: {"model": ErrorBody, "description": "Invalid body"},
        401: _401,
        404: _404,
        409: {"model": ErrorBody, "description": "The cluster is draining"},
    },
)
async def update_cluster(
    name: ClusterName,
    request: Request,
    session: DbSession,
    body: Annotated[ClusterPatch | None, Body()] = None,
) -> ClusterOut:
    # Every field is optional: no body (or `null`) changes nothing, as `{}` does.
    changes = body.model_dump(exclude_unset=True) if body is not None else {}
    return cluster_out(await _registry(request, session).update(name, changes))


@router.delete(
    "/{name}",
    status_code=204,
    responses={
        401: _401,
        404: _404,
        409: {"model": ErrorBody, "description": "Warehouses that are not deleted are on it"},
    },
)
async def remove_cluster(name: ClusterName, request: Request, session: DbSession) -> Response:
    await _registry(request, session).remove(name)
    return Response(status_code=204)
