"""Managed-warehouse actions (API.md §4.1-4.2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Request

from app.core.errors import ValidationFailed
from app.core.scopes import Scope
from app.models import WarehouseState
from app.pipeline.actions import ActionSet
from app.pipeline.auth import Context
from app.pipeline.sessions import DbSession
from app.schemas.storage import DeprovisionIn
from app.schemas.warehouse import (
    DeprovisionOut,
    NameAvailability,
    OrgStatusOut,
    PasswordOut,
    ProvisionIn,
    ProvisionOut,
    WarehouseConnection,
    WarehouseStatusOut,
)
from app.services.fleet.backends import ClusterBackends
from app.services.warehouse import reads as warehouse_reads
from app.services.warehouse.availability import database_name_availability
from app.services.warehouse.lifecycle import WarehouseService
from app.services.warehouse.names import validate_table_name, validate_warehouse_name

actions = ActionSet()
READ = (Scope.WAREHOUSE_VIEW_READ,)
WRITE = (Scope.WAREHOUSE_VIEW_WRITE,)


def _service(request: Request, session: DbSession) -> WarehouseService:
    state = request.app.state
    return WarehouseService(
        session,
        settings=state.settings,
        backends=state.cluster_backends,
        secrets=state.secret_box,
        queue=getattr(state, "queue", None),
    )


@actions.action(
    name="check-database-name",
    method="GET",
    scopes=READ,
    response_model=NameAvailability,
    summary="Check whether a warehouse name is valid and free",
    exclude_none=True,
    errors=(400,),
)
async def check_database_name(
    ctx: Context,
    session: DbSession,
    request: Request,
    name: Annotated[
        str | None, Query(max_length=1000, description="Warehouse name to check.")
    ] = None,
) -> NameAvailability:
    valid = validate_warehouse_name(name, attr="name")
    backends: ClusterBackends = request.app.state.cluster_backends

    async def on_any_cluster(candidate: str) -> bool:
        return await backends.name_exists_anywhere(session, candidate)

    result = await database_name_availability(
        session, valid, ctx.organization_id, cluster_has_name=on_any_cluster
    )
    return NameAvailability(name=result.name, available=result.available, reason=result.reason)


@actions.action(
    name="provision",
    method="POST",
    scopes=WRITE,
    response_model=ProvisionOut,
    summary="Provision the organization's managed warehouse (answers at once; poll status)",
    admin_verb="provision",
    status_code=202,
    errors=(400, 409, 503),
)
async def provision(
    ctx: Context,
    session: DbSession,
    request: Request,
    body: Annotated[ProvisionIn | None, Body()] = None,
) -> ProvisionOut:
    body = body or ProvisionIn()
    database_name = validate_warehouse_name(body.database_name, attr="database_name")
    table_name = validate_table_name(body.table_name)
    creds = await _service(request, session).provision(ctx, database_name, table_name)
    return ProvisionOut(
        status="provisioning started",
        org=ctx.organization_id,
        username=creds.username,
        password=creds.password,
        operation_id=creds.operation_id,
    )


@actions.action(
    name="warehouse_status",
    method="GET",
    scopes=READ,
    response_model=WarehouseStatusOut,
    summary="State of the organization's managed warehouse and how to connect to it",
    prefetch=warehouse_reads.STATUS_PREFETCH,
)
async def warehouse_status(ctx: Context, request: Request) -> WarehouseStatusOut:
    wh = warehouse_reads.warehouse_status(ctx.prefetched)
    connection = None
    if wh.state == WarehouseState.READY and wh.public_host and wh.public_port:
        # The cluster the warehouse is on (API.md §8).
        connection = WarehouseConnection(
            host=wh.public_host,
            port=wh.public_port,
            database=wh.database_name,
            username=wh.login_role,
        )
    return WarehouseStatusOut(
        org_id=wh.organization_id,
        state=wh.state,
        status_message=wh.status_message,
        s3_state=wh.s3_state,
        metadata_store_state=wh.metadata_store_state,
        identity_state=wh.identity_state,
        secrets_state=wh.secrets_state,
        ready_at=wh.ready_at,
        failed_at=wh.failed_at,
        connection=connection,
        has_backfill=wh.has_backfill,
        table_suffix=wh.table_suffix,
    )


@actions.action(
    name="reset-password",
    method="POST",
    scopes=WRITE,
    response_model=PasswordOut,
    summary="Rotate the warehouse's root password; the old one stops working at once",
    admin_verb="reset the root password for",
    errors=(409,),
)
async def reset_password(ctx: Context, session: DbSession, request: Request) -> PasswordOut:
    creds = await _service(request, session).reset_password(ctx)
    return PasswordOut(username=creds.username, password=creds.password)


@actions.action(
    name="deprovision",
    method="POST",
    scopes=WRITE,
    response_model=DeprovisionOut,
    summary=(
        "Tear down the managed warehouse (a ready one after its final snapshot): database, "
        "login role, storage and secret"
    ),
    admin_verb="deprovision",
    status_code=202,
    errors=(409,),
)
async def deprovision(
    ctx: Context,
    session: DbSession,
    request: Request,
    body: Annotated[DeprovisionIn | None, Body()] = None,
) -> DeprovisionOut:
    if body is None and (await request.body()).strip():
        raise ValidationFailed("The request body must be a JSON object")  # e.g. `null`
    if body is not None and body.unknown_fields():
        field = body.unknown_fields()[0][:100]
        raise ValidationFailed(f"Unknown field '{field}'", attr=field)
    skip = body is not None and body.skip_final_snapshot
    result = await _service(request, session).deprovision(ctx, skip_final_snapshot=skip)
    deleted = result.warehouse.state == WarehouseState.DELETED
    status = "deleted" if deleted else "deprovisioning started"
    return DeprovisionOut(status=status, org=ctx.organization_id, operation_id=result.operation_id)


@actions.action(
    name="delete-org",
    method="DELETE",
    scopes=WRITE,
    response_model=OrgStatusOut,
    summary="Delete the record of a deprovisioned warehouse, freeing its name",
    admin_verb="delete the provisioning record for",
    errors=(409,),
)
async def delete_org(ctx: Context, session: DbSession, request: Request) -> OrgStatusOut:
    org = await _service(request, session).delete_record(ctx)
    return OrgStatusOut(status="deleted", org=org)


ACTIONS = actions.actions
