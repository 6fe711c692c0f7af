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
import os
import shutil
import tempfile
from dataclasses import dataclass
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
    clusters: Annotated[
        int,
        typer.Option(
            "--clusters",
            min=1,
            max=9,
            help="Password-checking warehouse clusters to start and register (the first is "
            "`default`, then dev-2, dev-3, ...), to try moves and drains locally.",
        ),
    ] = 1,
) -> None:
    """Zero-setup dev: embedded PostgreSQL and Redis, migrations, a demo tenant, API + worker."""
    from app.devtools.dev import run_dev

    run_dev(data_dir=data_dir.resolve(), host=host, port=port, demo=demo, clusters=clusters)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Number of worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (run `warehouse migrate` first)."""
    settings = load_settings()  # fail fast, with a clear message, on bad settings
    # Before prometheus-client is imported anywhere: every worker process writes its figures
    # to this directory and /metrics adds them up. Wiped now, so a restart starts from zero.
    metrics_dir = _fresh_metrics_dir()
    import uvicorn

    from app.core.logging import logging_config

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
    settings = load_settings()
    from app.core.logging import configure_logging

    configure_logging(settings.log_level, settings.effective_log_format)
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
