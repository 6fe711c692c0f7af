"""Environments joining the organization's warehouse, and what they can read back from it
(API.md §4.2 enable_backfill / onboard-team / check-schema-name, §4.3 property_values)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query, Request, Response

from app.core.scopes import Scope
from app.pipeline.actions import ActionSet
from app.pipeline.auth import Context
from app.pipeline.sessions import DbSession
from app.schemas.membership import (
    BackfillEnabled,
    EnableBackfillIn,
    OnboardTeamIn,
    PropertyValue,
    PropertyValues,
    SchemaNameAvailability,
    TeamOnboarded,
)
from app.services.pipelines.property_values import PropertyValuesService
from app.services.warehouse.membership import WarehouseMembershipService
from app.services.warehouse.names import validate_schema_name

# Bodies are optional so that a missing body gets the same "<field> is required" as a missing field.
actions = ActionSet()


@actions.action(
    name="enable_backfill",
    method="POST",
    scopes=(Scope.WAREHOUSE_VIEW_WRITE,),
    response_model=BackfillEnabled,
    summary="Write this environment's events and persons into the organization's warehouse",
    admin_verb="enable backfill for",
    errors=(400, 409),
)
async def enable_backfill(
    ctx: Context,
    session: DbSession,
    request: Request,
    body: Annotated[EnableBackfillIn | None, Body()] = None,
) -> BackfillEnabled:
    service = WarehouseMembershipService(session, request.app.state.settings)
    membership = await service.enable_backfill(ctx.team, body.table_name if body else None)
    assert membership.table_suffix is not None
    return BackfillEnabled(enabled=True, table_suffix=membership.table_suffix)


@actions.action(
    name="onboard-team",
    method="POST",
    scopes=(Scope.WAREHOUSE_VIEW_WRITE,),
    response_model=TeamOnboarded,
    summary="Give this environment its own schema in the organization's warehouse",
    admin_verb="onboard this project for",
    errors=(400, 409),
)
async def onboard_team(
    ctx: Context,
    session: DbSession,
    request: Request,
    body: Annotated[OnboardTeamIn | None, Body()] = None,
) -> TeamOnboarded:
    service = WarehouseMembershipService(session, request.app.state.settings)
    membership = await service.onboard_team(ctx.team, body.schema_name if body else None)
    assert membership.schema_name is not None
    return TeamOnboarded(onboarded=True, schema_name=membership.schema_name)


@actions.action(
    name="check-schema-name",
    method="GET",
    scopes=(Scope.WAREHOUSE_VIEW_READ,),
    response_model=SchemaNameAvailability,
    summary="Check whether a schema name is valid and free in this organization",
    admin_verb="check schema names for",
    errors=(400,),
)
async def check_schema_name(
    ctx: Context,
    session: DbSession,
    request: Request,
    name: Annotated[str | None, Query(max_length=1000, description="Schema name to check.")] = None,
) -> SchemaNameAvailability:
    valid = validate_schema_name(name, attr="name")
    service = WarehouseMembershipService(session, request.app.state.settings)
    available = await service.schema_name_available(ctx.organization_id, valid)
    return SchemaNameAvailability(name=valid, available=available)


@actions.action(
    name="property_values",
    method="GET",
    scopes=(Scope.QUERY_READ,),
    response_model=PropertyValues,
    summary="Distinct values of a column or JSON property of a warehouse table",
    errors=(400,),
)
async def property_values(
    ctx: Context,
    session: DbSession,
    request: Request,
    response: Response,
    table_name: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`events_<suffix>`/`persons_<suffix>`, or `events`/`persons` of the "
            "environment's schema.",
        ),
    ] = None,
    key: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Column name; a dotted key (`properties.plan`) reads into a JSON column.",
        ),
    ] = None,
    value: Annotated[
        str | None, Query(max_length=1000, description="Case-insensitive substring filter.")
    ] = None,
) -> PropertyValues:
    service = PropertyValuesService(session, request.app.state.settings)
    values = await service.values(ctx.team, table_name=table_name, key=key, value=value)
    response.headers["Cache-Control"] = "max-age=10"
    return PropertyValues(results=[PropertyValue(name=v) for v in values], refreshing=False)


ACTIONS = actions.actions
