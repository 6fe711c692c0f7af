"""The organization's operations (API.md §7): a page of them, and one by id."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Path, Query

from app.core.db import ReadSession
from app.core.errors import NotFound, ValidationFailed
from app.core.scopes import Scope
from app.models import Operation
from app.pipeline.actions import Action
from app.pipeline.auth import Context
from app.schemas.operations import OperationOut, OperationPageOut
from app.services.operations.service import MAX_PAGE, OperationsService

DEFAULT_LIMIT = 20
# Any integer is accepted; an offset beyond this is past every row anyway.
MAX_OFFSET = 10**15
NOT_FOUND = "No operation with this id exists for this organization"
_INT = re.compile(r"[+-]?[0-9]+")
QueryStr = Annotated[str | None, Query(max_length=100)]


def _integer(raw: str | None, attr: str, default: int) -> int:
    if raw is None:
        return default
    if not _INT.fullmatch(raw.strip()):
        raise ValidationFailed(f"{attr} must be an integer", attr=attr)
    return int(raw)


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


async def list_operations(
    ctx: Context, session: ReadSession, limit: QueryStr = None, offset: QueryStr = None
) -> OperationPageOut:
    lim = _integer(limit, "limit", DEFAULT_LIMIT)
    if lim < 1:
        raise ValidationFailed("limit must be at least 1", attr="limit")
    lim = min(lim, MAX_PAGE)
    off = min(max(0, _integer(offset, "offset", 0)), MAX_OFFSET)
    page = await OperationsService(session).page(ctx.organization_id, limit=lim, offset=off)
    return OperationPageOut(
        results=[operation_out(o) for o in page.results],
        next=f"?limit={lim}&offset={off + lim}" if page.has_next else None,
        previous=f"?limit={lim}&offset={max(0, off - lim)}" if off > 0 else None,
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


READ = (Scope.WAREHOUSE_VIEW_READ,)

ACTIONS: list[Action] = [
    Action(
        name="operations",
        method="GET",
        endpoint=list_operations,
        scopes=READ,
        response_model=OperationPageOut,
        summary="The organization's operations, newest first",
        verb="list",
        errors=(400,),
    ),
    Action(
        name="operations/{operation_id}",
        method="GET",
        endpoint=retrieve_operation,
        scopes=READ,
        response_model=OperationOut,
        summary="One operation of the organization",
        operation_name="operations",
        verb="retrieve",
    ),
]
