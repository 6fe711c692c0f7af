"""The organization's operations (API.md §7): a page of them, and one by id."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

from app.core.errors import NotFound, ValidationFailed
from app.core.scopes import Scope
from app.models import Operation
from app.pipeline.actions import ActionSet
from app.pipeline.auth import Context
from app.pipeline.query import IntQuery, parse_int
from app.pipeline.sessions import ReadSession
from app.schemas.operations import OperationOut, OperationPageOut
from app.services.operations.service import MAX_PAGE, OperationsService

actions = ActionSet()
READ = (Scope.WAREHOUSE_VIEW_READ,)


DEFAULT_LIMIT = 20
# Any integer is accepted; an offset beyond this is past every row anyway.
MAX_OFFSET = 10**15
NOT_FOUND = "No operation with this id exists for this organization"


def operation_out(operation: Operation) -> OperationOut:
    return OperationOut(
        id=operation.id,
        action=operation.action,
        status=operation.status,
        org_id=operation.organization_id,
        created_at=operation.created_at,
        updated_at=operation.updated_at,
        finished_at=operation.finished_at,
        error=operation.error,
    )


@actions.action(
    name="operations",
    method="GET",
    scopes=READ,
    response_model=OperationPageOut,
    summary="The organization's operations, newest first",
    verb="list",
    errors=(400,),
)
async def list_operations(
    ctx: Context, session: ReadSession, limit: IntQuery = None, offset: IntQuery = None
) -> OperationPageOut:
    lim = parse_int(limit, "limit", DEFAULT_LIMIT)
    if lim < 1:
        raise ValidationFailed("limit must be at least 1", attr="limit")
    lim = min(lim, MAX_PAGE)
    off = max(0, parse_int(offset, "offset", 0))
    page = await OperationsService(session).page(
        ctx.organization_id, limit=lim, offset=min(off, MAX_OFFSET)
    )
    return OperationPageOut(
        results=[operation_out(o) for o in page.results],
        next=f"?limit={lim}&offset={off + lim}" if page.has_next else None,
        previous=f"?limit={lim}&offset={max(0, off - lim)}" if off > 0 else None,
    )


@actions.action(
    name="operations/{operation_id}",
    method="GET",
    scopes=READ,
    response_model=OperationOut,
    summary="One operation of the organization",
    operation_name="operations",
    verb="retrieve",
)
async def retrieve_operation(
    ctx: Context,
    session: ReadSession,
    operation_id: Annotated[str, Path(description="The operation's uuid.")],
) -> OperationOut:
    try:
        wanted = uuid.UUID(operation_id)
    except ValueError:
        raise NotFound(NOT_FOUND) from None
    operation = await OperationsService(session).get(ctx.organization_id, wanted)
    if operation is None:
        raise NotFound(NOT_FOUND)
    return operation_out(operation)


ACTIONS = actions.actions
