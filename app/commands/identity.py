"""`warehouse orgs|projects|environments|users|keys create`: tenants from the command line.

They share `IdentityService` with the internal API and validate their input with the same
pydantic bodies, each in its own session and transaction.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.commands.common import CLIError, JsonFlag, emit, run_in_transaction, split_list, validate
from app.models import MembershipLevel
from app.schemas.identity import (
    EnvironmentCreate,
    OrganizationCreate,
    PersonalAPIKeyCreate,
    ProjectCreate,
    UserCreate,
)
from app.services.identity.service import IdentityService

orgs_cli = typer.Typer(help="Organizations.", no_args_is_help=True)
projects_cli = typer.Typer(
    help="Projects (each comes with its primary environment).", no_args_is_help=True
)
environments_cli = typer.Typer(help="Environments (teams) of a project.", no_args_is_help=True)
users_cli = typer.Typer(help="Users and their organization membership.", no_args_is_help=True)
keys_cli = typer.Typer(help="Personal API keys.", no_args_is_help=True)

TimezoneOpt = Annotated[str, typer.Option("--timezone", help="IANA time zone, e.g. Europe/Paris.")]


class Level(enum.StrEnum):
    member = "member"
    admin = "admin"
    owner = "owner"


LEVELS = {
    Level.member: MembershipLevel.MEMBER,
    Level.admin: MembershipLevel.ADMIN,
    Level.owner: MembershipLevel.OWNER,
}


def register(cli: typer.Typer) -> None:
    cli.add_typer(orgs_cli, name="orgs")
    cli.add_typer(projects_cli, name="projects")
    cli.add_typer(environments_cli, name="environments")
    cli.add_typer(users_cli, name="users")
    cli.add_typer(keys_cli, name="keys")


@orgs_cli.command("create")
def orgs_create(
    name: Annotated[str, typer.Option("--name", help="Organization name.")],
    as_json: JsonFlag = False,
) -> None:
    """Create an organization."""
    body: OrganizationCreate = validate(OrganizationCreate, {}, name=name)

    async def work(session: AsyncSession) -> dict[str, Any]:
        svc = IdentityService(session)
        org = (await svc.create_organization(body.name)).obj
        return {"id": str(org.id), "name": org.name}

    out = run_in_transaction(work)
    emit(as_json, out, f"Created organization {out['name']!r}: id {out['id']}")


@projects_cli.command("create")
def projects_create(
    org: Annotated[str, typer.Option("--org", help="Organization id (uuid).")],
    name: Annotated[str, typer.Option("--name", help="Project name.")],
    timezone: TimezoneOpt = "UTC",
    as_json: JsonFlag = False,
) -> None:
    """Create a project and its primary environment."""
    body: ProjectCreate = validate(
        ProjectCreate,
        {"organization_id": "--org"},
        organization_id=org,
        name=name,
        timezone=timezone,
    )

    async def work(session: AsyncSession) -> dict[str, Any]:
        svc = IdentityService(session)
        project, team = await svc.create_project(body.organization_id, body.name, body.timezone)
        return {
            "id": project.id,
            "organization_id": str(project.organization_id),
            "name": project.name,
            "environment_id": team.id,
            "timezone": team.timezone,
        }

    out = run_in_transaction(work)
    emit(
        as_json,
        out,
        f"Created project {out['name']!r}: id {out['id']}, "
        f"primary environment id {out['environment_id']}",
    )


@environments_cli.command("create")
def environments_create(
    project: Annotated[int, typer.Option("--project", help="Project id.")],
    name: Annotated[str, typer.Option("--name", help="Environment name.")],
    timezone: TimezoneOpt = "UTC",
    as_json: JsonFlag = False,
) -> None:
    """Create another environment in a project."""
    body: EnvironmentCreate = validate(
        EnvironmentCreate,
        {"project_id": "--project"},
        project_id=project,
        name=name,
        timezone=timezone,
    )

    async def work(session: AsyncSession) -> dict[str, Any]:
        svc = IdentityService(session)
        team = await svc.create_environment(body.project_id, body.name, body.timezone)
        return {
            "id": team.id,
            "project_id": team.project_id,
            "name": team.name,
            "timezone": team.timezone,
        }

    out = run_in_transaction(work)
    emit(as_json, out, f"Created environment {out['name']!r}: id {out['id']}")


@users_cli.command("create")
def users_create(
    org: Annotated[str, typer.Option("--org", help="Organization id (uuid).")],
    email: Annotated[str, typer.Option("--email", help="The user's email address.")],
    level: Annotated[Level, typer.Option("--level", help="Membership level.")] = Level.member,
    as_json: JsonFlag = False,
) -> None:
    """Create a user (or reuse one with this email) and make them a member of the organization."""
    body: UserCreate = validate(
        UserCreate,
        {"organization_id": "--org"},
        organization_id=org,
        email=email,
        level=int(LEVELS[level]),
    )

    async def work(session: AsyncSession) -> dict[str, Any]:
        svc = IdentityService(session)
        result = await svc.create_user(body.email, body.organization_id, body.level)
        return {
            "id": result.obj.id,
            "email": result.obj.email,
            "organization_id": str(body.organization_id),
            "level": body.level,
            "created": result.created,
        }

    out = run_in_transaction(work)
    verb = "Created" if out["created"] else "Updated"
    emit(as_json, out, f"{verb} user {out['email']}: id {out['id']}, {level.value}")


@keys_cli.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Email of the user the key acts as.")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated scopes, e.g. warehouse_view:read or *.")
    ],
    teams: Annotated[
        str | None, typer.Option("--teams", help="Comma-separated environment ids it may use.")
    ] = None,
    orgs: Annotated[
        str | None, typer.Option("--orgs", help="Comma-separated organization ids it may use.")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="A note to recognise the key.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a personal API key. The plaintext key is printed once and never stored."""
    team_ids = split_list(teams)
    if not all(t.isascii() and t.isdigit() for t in team_ids):
        raise CLIError("invalid --teams: use comma-separated environment ids, e.g. 1,2")
    fields = {
        "scopes": split_list(scopes),
        "label": label,
        "scoped_teams": [int(t) for t in team_ids] or None,
        "scoped_organizations": split_list(orgs) or None,
    }
    options = {"scoped_teams": "--teams", "scoped_organizations": "--orgs"}
    validate(PersonalAPIKeyCreate, options, user_id=1, **fields)

    async def work(session: AsyncSession) -> dict[str, Any]:
        svc = IdentityService(session)
        owner = await svc.user_by_email(user)
        body: PersonalAPIKeyCreate = validate(
            PersonalAPIKeyCreate, options, user_id=owner.id, **fields
        )
        issued = await svc.create_key(
            owner.id,
            body.scopes,
            label=body.label,
            scoped_teams=body.scoped_teams,
            scoped_organizations=[str(o) for o in body.scoped_organizations or []],
        )
        return {
            "id": str(issued.key.id),
            "key": issued.plaintext,
            "mask_value": issued.key.mask_value,
            "scopes": issued.key.scopes,
            "scoped_teams": issued.key.scoped_teams,
            "scoped_organizations": issued.key.scoped_organizations,
            "user_id": owner.id,
            "label": issued.key.label,
        }

    out = run_in_transaction(work)
    emit(
        as_json,
        out,
        f"Created key {out['mask_value']} for {user} (scopes: {', '.join(out['scopes'])}).\n"
        f"Key (shown only now): {out['key']}",
    )
