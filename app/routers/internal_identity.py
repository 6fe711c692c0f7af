"""Internal service-to-service API, identity part (API.md §6)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from app.core.errors import ErrorBody
from app.pipeline.auth import InternalCaller
from app.pipeline.json_body import DecodedBodyRoute
from app.pipeline.sessions import DbSession
from app.schemas.identity import (
    EnvironmentCreate,
    EnvironmentOut,
    OrganizationCreate,
    OrganizationOut,
    PersonalAPIKeyCreate,
    PersonalAPIKeyOut,
    ProjectCreate,
    ProjectOut,
    UserCreate,
    UserOut,
)
from app.services.identity.service import IdentityService


def _errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {s: {"model": ErrorBody} for s in (400, 401, *statuses)}


router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[InternalCaller],
    route_class=DecodedBodyRoute,
)


@router.post(
    "/organizations",
    status_code=201,
    response_model=OrganizationOut,
    responses={200: {"model": OrganizationOut, "description": "Already exists"}, **_errors()},
)
async def create_organization(
    body: OrganizationCreate, session: DbSession, response: Response
) -> OrganizationOut:
    result = await IdentityService(session).create_organization(body.name, body.id)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return OrganizationOut(id=result.obj.id, name=result.obj.name)


@router.post("/projects", status_code=201, response_model=ProjectOut, responses=_errors(404))
async def create_project(body: ProjectCreate, session: DbSession) -> ProjectOut:
    project, team = await IdentityService(session).create_project(
        body.organization_id, body.name, body.timezone
    )
    return ProjectOut(
        id=project.id,
        organization_id=project.organization_id,
        name=project.name,
        environment_id=team.id,
    )


@router.post(
    "/environments", status_code=201, response_model=EnvironmentOut, responses=_errors(404)
)
async def create_environment(body: EnvironmentCreate, session: DbSession) -> EnvironmentOut:
    team = await IdentityService(session).create_environment(
        body.project_id, body.name, body.timezone
    )
    return EnvironmentOut(
        id=team.id, project_id=team.project_id, name=team.name, timezone=team.timezone
    )


@router.post(
    "/users",
    status_code=201,
    response_model=UserOut,
    responses={200: {"model": UserOut, "description": "Already exists"}, **_errors(404)},
)
async def create_user(body: UserCreate, session: DbSession, response: Response) -> UserOut:
    result = await IdentityService(session).create_user(
        body.email, body.organization_id, body.level
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return UserOut(id=result.obj.id, email=result.obj.email)


@router.post(
    "/personal_api_keys", status_code=201, response_model=PersonalAPIKeyOut, responses=_errors(404)
)
async def create_personal_api_key(
    body: PersonalAPIKeyCreate, session: DbSession
) -> PersonalAPIKeyOut:
    issued = await IdentityService(session).create_key(
        body.user_id,
        body.scopes,
        label=body.label,
        scoped_teams=body.scoped_teams,
        scoped_organizations=[str(o) for o in body.scoped_organizations or []],
    )
    return PersonalAPIKeyOut(
        id=issued.key.id,
        key=issued.plaintext,
        mask_value=issued.key.mask_value,
        scopes=issued.key.scopes,
    )


@router.delete(
    "/personal_api_keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def delete_personal_api_key(key_id: uuid.UUID, session: DbSession) -> Response:
    await IdentityService(session).delete_key(key_id)
    return Response(status_code=204)
