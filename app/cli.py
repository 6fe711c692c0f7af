"""The `warehouse` command line: run the service, migrate it, and administer it.

    warehouse dev                      all of it on embedded servers under .data/ (app/devtools)
    warehouse serve / worker / migrate the production processes
    warehouse orgs|projects|environments|users|keys create [--json]   (app/commands/identity.py)
    warehouse clusters ... / warehouses move [--json] [--wait]         (app/commands/fleet.py)

Settings come from the environment (`DATABASE_URL`, `REDIS_URL`, `SECRET_KEY`, ...). Failures
print one line on stderr and exit non-zero; no traceback.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

import typer

from app.commands import fleet, identity
from app.commands.common import describe_failure, fail, load_settings
from app.core.migrate import migrate_database

cli = typer.Typer(
    name="warehouse",
    help="warehouse-api: managed data warehouses and pipeline health.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
identity.register(cli)
fleet.register(cli)


@cli.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where embedded servers keep their data.")
    ] = Path(".data"),
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Once the API is up, fill the demo environment with a month of pipeline "
            "records and a demo warehouse (re-running adds nothing twice).",
        ),
    ] = False,
) -> None:
    """Zero-setup dev: embedded PostgreSQL and Redis, migrations, a demo tenant, API + worker."""
    from app.devtools.dev import run_dev

    run_dev(data_dir=data_dir.resolve(), host=host, port=port, demo=demo)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Number of worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (run `warehouse migrate` first)."""
    import uvicorn

    from app.core.logging import logging_config

    settings = load_settings()  # fail fast, with a clear message, on bad settings
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Our handler for every logger and every worker; it redacts keys in access lines.
        log_config=logging_config(settings.log_level),
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


@cli.command()
def worker(
    burst: Annotated[bool, typer.Option(help="Exit once the queue is empty.")] = False,
) -> None:
    """Run the background worker (provisioning and teardown jobs)."""
    settings = load_settings()
    # Imported here: the worker pulls in its own dependencies, which no other command needs.
    worker_main = importlib.import_module("app.worker.main")
    worker_main.run_worker(settings, burst=burst)


@cli.command()
def migrate() -> None:
    """Apply every database migration (alembic upgrade heads)."""
    migrate_database(load_settings().database_url)
    typer.echo("database is up to date", err=True)


def main() -> None:
    try:
        cli()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        message = describe_failure(exc)
        if message is None:
            message = f"unexpected {type(exc).__name__}: {exc}"
        fail(message)


if __name__ == "__main__":
    main()
