"""The `warehouse` command line: run the service, migrate it, and create tenants.

    warehouse dev                      all of it on embedded servers under .data/ (app/devserver.py)
    warehouse serve / worker / migrate the production processes
    warehouse orgs|projects|environments|users|keys create [--json]

Admin commands share `IdentityService` with the internal API and validate their input with the
same pydantic bodies, each in its own session and transaction. Settings come from the
environment (`DATABASE_URL`, `REDIS_URL`, `SECRET_KEY`, ...). Failures print one line on stderr
and exit non-zero; no traceback.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from app.db import build_engine, build_sessionmaker
from app.errors import APIError
from app.models import MembershipLevel
from app.schemas.identity import (
    EnvironmentCreate,
    OrganizationCreate,
    PersonalAPIKeyCreate,
    ProjectCreate,
    UserCreate,
)
from app.services.identity import IdentityService
from app.settings import PlaceholderSecretError, Settings

T = TypeVar("T")

cli = typer.Typer(
    name="warehouse",
    help="warehouse-api: managed data warehouses and pipeline health.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
orgs_cli = typer.Typer(help="Organizations.", no_args_is_help=True)
projects_cli = typer.Typer(
    help="Projects (each comes with its primary environment).", no_args_is_help=True
)
environments_cli = typer.Typer(help="Environments (teams) of a project.", no_args_is_help=True)
users_cli = typer.Typer(help="Users and their organization membership.", no_args_is_help=True)
keys_cli = typer.Typer(help="Personal API keys.", no_args_is_help=True)
cli.add_typer(orgs_cli, name="orgs")
cli.add_typer(projects_cli, name="projects")
cli.add_typer(environments_cli, name="environments")
cli.add_typer(users_cli, name="users")
cli.add_typer(keys_cli, name="keys")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
TimezoneOpt = Annotated[str, typer.Option("--timezone", help="IANA time zone, e.g. Europe/Paris.")]


class CLIError(Exception):
    """A failure to report as one line on stderr."""


class Level(enum.StrEnum):
    member = "member"
    admin = "admin"
    owner = "owner"


LEVELS = {
    Level.member: MembershipLevel.MEMBER,
    Level.admin: MembershipLevel.ADMIN,
    Level.owner: MembershipLevel.OWNER,
}


# ----------------------------------------------------------------------------- migrations


def alembic_config(database_url: str) -> Any:
    """An Alembic Config for the service's migrations, wherever the package is installed.

    Looks for `alembic.ini` in `$ALEMBIC_CONFIG`, beside the `app` package (a source checkout or
    an editable install) and in the working directory; without one (a wheel installed elsewhere)
    it points `script_location` at the `migrations` package shipped in the wheel.
    """
    from alembic.config import Config

    candidates = [
        Path(os.environ["ALEMBIC_CONFIG"]) if os.environ.get("ALEMBIC_CONFIG") else None,
        Path(__file__).resolve().parent.parent / "alembic.ini",
        Path.cwd() / "alembic.ini",
    ]
    ini = next((p for p in candidates if p is not None and p.is_file()), None)
    if ini is not None:
        cfg = Config(str(ini))
    else:
        spec = importlib.util.find_spec("migrations")
        locations = list(spec.submodule_search_locations or []) if spec else []
        script_dir = next((d for d in locations if (Path(d) / "env.py").is_file()), None)
        if script_dir is None:
            raise CLIError("cannot find alembic.ini or the migrations directory")
        cfg = Config()
        cfg.set_main_option("script_location", script_dir)
        cfg.set_main_option("path_separator", "os")
    cfg.attributes["database_url"] = database_url
    return cfg


def migrate_database(database_url: str) -> None:
    """`alembic upgrade heads` (every branch's head) on the service database."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "heads")


# ----------------------------------------------------------------------------- plumbing


def _settings() -> Settings:
    try:
        return Settings()
    except PlaceholderSecretError as exc:
        raise CLIError(str(exc)) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).upper() or "settings"
        raise CLIError(f"invalid setting {field}: {first['msg']}") from None


def _validate(model: type[BaseModel], options: dict[str, str], **values: Any) -> Any:
    """Validate with the internal API's body model; name the CLI option on failure."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        option = options.get(field, f"--{field.replace('_', '-')}")
        raise CLIError(f"invalid {option}: {first['msg']}") from None


async def _in_transaction(work: Callable[[IdentityService], Awaitable[T]]) -> T:
    settings = _settings()
    engine = build_engine(settings, pool_size=1)
    try:
        async with build_sessionmaker(engine)() as session:
            result = await work(IdentityService(session))
            await session.commit()
            return result
    finally:
        await engine.dispose()


def _run(work: Callable[[IdentityService], Awaitable[T]]) -> T:
    return asyncio.run(_in_transaction(work))


def _emit(as_json: bool, payload: dict[str, Any], human: str) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        typer.echo(human)


def _split(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _describe_failure(exc: BaseException) -> str | None:
    """A one-line explanation of an expected failure, or None for a real bug."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, CLIError):
        return str(exc)
    if isinstance(exc, APIError):
        return exc.detail
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        cause = getattr(orig, "__cause__", None) or orig
        if isinstance(cause, asyncpg.exceptions.UndefinedTableError):
            return "the service database is not migrated: run `warehouse migrate` first"
        name = type(cause).__name__
        first_line = str(cause).splitlines()[0] if str(cause) else name
        return f"database error ({name}): {first_line}"
    if isinstance(exc, asyncpg.exceptions.PostgresError):
        return f"database error ({type(exc).__name__}): {exc}"
    if isinstance(exc, OSError | TimeoutError):
        return f"cannot reach the service database ({type(exc).__name__}): {exc}"
    return None


# ----------------------------------------------------------------------------- processes


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where embedded servers keep their data.")
    ] = Path(".data"),
) -> None:
    """Zero-setup dev: embedded PostgreSQL and Redis, migrations, a demo tenant, API + worker."""
    from app.devserver import run_dev

    run_dev(data_dir=data_dir.resolve(), host=host, port=port)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Number of worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (run `warehouse migrate` first)."""
    settings = _settings()  # fail fast, with a clear message, on bad settings
    # Before prometheus-client is imported anywhere: every worker process writes its figures
    # to this directory and /metrics adds them up. Wiped now, so a restart starts from zero.
    metrics_dir = _fresh_metrics_dir()
    import uvicorn

    from app.logging_setup import logging_config

    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # Our handler for every logger and every worker, in LOG_FORMAT; it redacts secrets.
            log_config=logging_config(settings.log_level, settings.effective_log_format),
            log_level=settings.log_level.lower(),
            # The app writes its own access line (request id, route template, team, key id).
            access_log=False,
            proxy_headers=True,
        )
    finally:
        if metrics_dir.created:
            shutil.rmtree(metrics_dir.path, ignore_errors=True)


@dataclass(frozen=True)
class _MetricsDir:
    path: str
    created: bool


def _fresh_metrics_dir() -> _MetricsDir:
    """`PROMETHEUS_MULTIPROC_DIR` emptied, or a new temporary directory (removed at exit)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for entry in path.iterdir():
            if entry.is_file() and entry.suffix == ".db":
                entry.unlink()
        return _MetricsDir(str(path), created=False)
    created = tempfile.mkdtemp(prefix="warehouse-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return _MetricsDir(created, created=True)


@cli.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit once the queue is empty.")] = False,
) -> None:
    """Run the background worker (provisioning and teardown jobs)."""
    settings = _settings()
    from app.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.effective_log_format)
    # Imported here: the worker pulls in its own dependencies, which no other command needs.
    worker_main = importlib.import_module("app.worker.main")
    worker_main.run_worker(settings, burst=burst)


@cli.command()
def migrate() -> None:
    """Apply every database migration (alembic upgrade heads)."""
    migrate_database(_settings().database_url)
    typer.echo("database is up to date", err=True)


# ----------------------------------------------------------------------------- admin commands


@orgs_cli.command("create")
def orgs_create(
    name: Annotated[str, typer.Option("--name", help="Organization name.")],
    as_json: JsonFlag = False,
) -> None:
    """Create an organization."""
    body: OrganizationCreate = _validate(OrganizationCreate, {}, name=name)

    async def work(svc: IdentityService) -> dict[str, Any]:
        org = (await svc.create_organization(body.name)).obj
        return {"id": str(org.id), "name": org.name}

    out = _run(work)
    _emit(as_json, out, f"Created organization {out['name']!r}: id {out['id']}")


@projects_cli.command("create")
def projects_create(
    org: Annotated[str, typer.Option("--org", help="Organization id (uuid).")],
    name: Annotated[str, typer.Option("--name", help="Project name.")],
    timezone: TimezoneOpt = "UTC",
    as_json: JsonFlag = False,
) -> None:
    """Create a project and its primary environment."""
    body: ProjectCreate = _validate(
        ProjectCreate,
        {"organization_id": "--org"},
        organization_id=org,
        name=name,
        timezone=timezone,
    )

    async def work(svc: IdentityService) -> dict[str, Any]:
        project, team = await svc.create_project(body.organization_id, body.name, body.timezone)
        return {
            "id": project.id,
            "organization_id": str(project.organization_id),
            "name": project.name,
            "environment_id": team.id,
            "timezone": team.timezone,
        }

    out = _run(work)
    _emit(
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
    body: EnvironmentCreate = _validate(
        EnvironmentCreate,
        {"project_id": "--project"},
        project_id=project,
        name=name,
        timezone=timezone,
    )

    async def work(svc: IdentityService) -> dict[str, Any]:
        team = await svc.create_environment(body.project_id, body.name, body.timezone)
        return {
            "id": team.id,
            "project_id": team.project_id,
            "name": team.name,
            "timezone": team.timezone,
        }

    out = _run(work)
    _emit(as_json, out, f"Created environment {out['name']!r}: id {out['id']}")


@users_cli.command("create")
def users_create(
    org: Annotated[str, typer.Option("--org", help="Organization id (uuid).")],
    email: Annotated[str, typer.Option("--email", help="The user's email address.")],
    level: Annotated[Level, typer.Option("--level", help="Membership level.")] = Level.member,
    as_json: JsonFlag = False,
) -> None:
    """Create a user (or reuse one with this email) and make them a member of the organization."""
    body: UserCreate = _validate(
        UserCreate,
        {"organization_id": "--org"},
        organization_id=org,
        email=email,
        level=int(LEVELS[level]),
    )

    async def work(svc: IdentityService) -> dict[str, Any]:
        result = await svc.create_user(body.email, body.organization_id, body.level)
        return {
            "id": result.obj.id,
            "email": result.obj.email,
            "organization_id": str(body.organization_id),
            "level": body.level,
            "created": result.created,
        }

    out = _run(work)
    verb = "Created" if out["created"] else "Updated"
    _emit(as_json, out, f"{verb} user {out['email']}: id {out['id']}, {level.value}")


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
    team_ids = _split(teams)
    if not all(t.isascii() and t.isdigit() for t in team_ids):
        raise CLIError("invalid --teams: use comma-separated environment ids, e.g. 1,2")
    fields = {
        "scopes": _split(scopes),
        "label": label,
        "scoped_teams": [int(t) for t in team_ids] or None,
        "scoped_organizations": _split(orgs) or None,
    }
    options = {"scoped_teams": "--teams", "scoped_organizations": "--orgs"}
    _validate(PersonalAPIKeyCreate, options, user_id=1, **fields)

    async def work(svc: IdentityService) -> dict[str, Any]:
        owner = await svc.user_by_email(user)
        body: PersonalAPIKeyCreate = _validate(
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

    out = _run(work)
    _emit(
        as_json,
        out,
        f"Created key {out['mask_value']} for {user} (scopes: {', '.join(out['scopes'])}).\n"
        f"Key (shown only now): {out['key']}",
    )


# ----------------------------------------------------------------------------- entry point


def main() -> None:
    try:
        cli()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        message = _describe_failure(exc)
        if message is None:
            message = f"unexpected {type(exc).__name__}: {exc}"
        _fail(message)


if __name__ == "__main__":
    main()
