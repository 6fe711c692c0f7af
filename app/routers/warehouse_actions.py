"""Managed-warehouse actions (API.md §4.1-4.2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.auth import Context
from app.db import DbSession
from app.routers.actions import Action
from app.schemas.warehouse import NameAvailability
from app.scopes import Scope
from app.services.names import validate_warehouse_name
from app.services.warehouse_names import database_name_availability


async def check_database_name(
    ctx: Context,
    session: DbSession,
    name: Annotated[
        str | None, Query(max_length=1000, description="Warehouse name to check.")
    ] = None,
) -> NameAvailability:
    valid = validate_warehouse_name(name, attr="name")
    result = await database_name_availability(session, valid, ctx.organization_id)
    return NameAvailability(name=result.name, available=result.available, reason=result.reason)


ACTIONS: list[Action] = [
    Action(
        name="check-database-name",
        method="GET",
        endpoint=check_database_name,
        scopes=(Scope.WAREHOUSE_VIEW_READ,),
        response_model=NameAvailability,
        summary="Check whether a warehouse name is valid and free",
        exclude_none=True,
        errors=(400,),
    ),
]
