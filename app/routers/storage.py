"""Snapshot and restore actions (API.md §9), on both prefixes through the router factory."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Request

from app.core.errors import ValidationFailed
from app.core.scopes import Scope
from app.models.storage import Snapshot
from app.pipeline.actions import ActionSet
from app.pipeline.auth import Context
from app.pipeline.sessions import DbSession, ReadSession
from app.routers.warehouse import _service as warehouse_service
from app.schemas.storage import (
    RestoreIn,
    RestoreOut,
    SnapshotListOut,
    SnapshotOut,
    SnapshotStartedOut,
)
from app.services.storage.snapshots import SnapshotService
from app.services.warehouse.names import validate_warehouse_name

WRITE = (Scope.WAREHOUSE_VIEW_WRITE,)
READ = (Scope.WAREHOUSE_VIEW_READ,)
actions = ActionSet()


def _snapshots(request: Request, session: DbSession | ReadSession) -> SnapshotService:
    state = request.app.state
    return SnapshotService(session, settings=state.settings, queue=getattr(state, "queue", None))


def snapshot_out(snapshot: Snapshot) -> SnapshotOut:
    return SnapshotOut(
        id=snapshot.id,
        kind=snapshot.kind,
        status=snapshot.status,
        database_name=snapshot.database_name,
        size_bytes=snapshot.size_bytes,
        sha256=snapshot.sha256,
        created_at=snapshot.created_at,
        ready_at=snapshot.ready_at,
        expires_at=snapshot.expires_at,
    )


@actions.action(
    name="snapshot",
    method="POST",
    scopes=WRITE,
    response_model=SnapshotStartedOut,
    summary="Take a snapshot (pg_dump) of the ready warehouse into the organization's bucket",
    admin_verb="take a snapshot of",
    status_code=202,
    errors=(409,),
)
async def take_snapshot(ctx: Context, session: DbSession, request: Request) -> SnapshotStartedOut:
    snapshot = await _snapshots(request, session).take(ctx)
    assert snapshot.operation_id is not None
    return SnapshotStartedOut(snapshot_id=snapshot.id, operation_id=snapshot.operation_id)


@actions.action(
    name="snapshots",
    method="GET",
    scopes=READ,
    response_model=SnapshotListOut,
    summary="The organization's snapshots, newest first (until they expire)",
)
async def list_snapshots(ctx: Context, session: ReadSession, request: Request) -> SnapshotListOut:
    snapshots = await _snapshots(request, session).list(ctx)
    return SnapshotListOut(results=[snapshot_out(s) for s in snapshots])


def _snapshot_id(raw: str | None) -> uuid.UUID:
    if raw is None or raw == "":
        raise ValidationFailed("snapshot_id is required", attr="snapshot_id", code="required")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed("snapshot_id must be a uuid", attr="snapshot_id") from None


@actions.action(
    name="restore",
    method="POST",
    scopes=WRITE,
    response_model=RestoreOut,
    summary="Restore a snapshot into a new warehouse (answers at once; poll status)",
    admin_verb="restore",
    status_code=202,
    errors=(400, 409),
)
async def restore(
    ctx: Context,
    session: DbSession,
    request: Request,
    body: Annotated[RestoreIn | None, Body()] = None,
) -> RestoreOut:
    # API.md §9 order: body (400) → snapshot (404) → a live warehouse (409) → the name (409).
    body = body or RestoreIn()
    snapshot_id = _snapshot_id(body.snapshot_id)
    name = None
    if body.database_name is not None:
        name = validate_warehouse_name(body.database_name, attr="database_name")
    snapshot = await _snapshots(request, session).restorable(ctx, snapshot_id)
    creds = await warehouse_service(request, session).provision(
        ctx, name or snapshot.database_name, None, restore_snapshot_id=snapshot.id
    )
    assert creds.operation_id is not None
    return RestoreOut(
        status="restore started",
        org=ctx.organization_id,
        username=creds.username,
        password=creds.password,
        operation_id=creds.operation_id,
    )


ACTIONS = actions.actions
