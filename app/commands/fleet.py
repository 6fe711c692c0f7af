"""`warehouse clusters ...` and `warehouse warehouses move`: the fleet from the command line.

The commands call the same services as the internal API (API.md §8) in one transaction each,
and `--json` prints the API's JSON answer. `--wait` on `move` and `drain` then follows the
operations with a progress display on stderr until they end: exit 0 when all succeeded, 1 when
one failed. Jobs go to Redis after the commit; without Redis the worker's reconciler picks the
moves up on its next tick.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.commands.common import CLIError, emit, load_settings, validate
from app.core.db import build_engine, build_sessionmaker, commit_and_run_hooks
from app.core.queue import JobQueue
from app.models import ManagedWarehouse, Operation, WarehouseMove
from app.routers.internal_clusters import cluster_out
from app.schemas.fleet import ClusterIn
from app.schemas.moves import DrainOut, MoveIn, MoveOut
from app.services.fleet.clusters import ClusterRegistry, ClusterView, NewCluster
from app.services.fleet.moves import MoveService
from app.settings import Settings

T = TypeVar("T")
POLL_SECONDS = 0.5

clusters_cli = typer.Typer(help="Warehouse clusters: register, pause, drain.", no_args_is_help=True)
warehouses_cli = typer.Typer(help="Managed warehouses, for operators.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
WaitFlag = Annotated[
    bool, typer.Option("--wait", help="Follow the operations until they end (exit 1 if one fails).")
]


def register(cli: typer.Typer) -> None:
    cli.add_typer(clusters_cli, name="clusters")
    cli.add_typer(warehouses_cli, name="warehouses")


async def _queue(settings: Settings) -> tuple[JobQueue | None, Any]:
    from arq import create_pool
    from arq.connections import RedisSettings

    redis_settings = RedisSettings.from_dsn(settings.redis_url)
    redis_settings.conn_timeout = 2
    redis_settings.conn_retries = 0
    try:
        redis = await create_pool(redis_settings, default_queue_name=settings.queue_name)
    except Exception:
        return None, None
    return JobQueue(redis), redis


async def in_transaction(
    work: Callable[[AsyncSession, Settings, JobQueue | None], Awaitable[T]],
) -> T:
    """Run `work` in one transaction; jobs it queued are sent after the commit."""
    settings = load_settings()
    engine = build_engine(settings, pool_size=1)
    queue, redis = await _queue(settings)
    try:
        async with build_sessionmaker(engine)() as session:
            result = await work(session, settings, queue)
            await commit_and_run_hooks(session)
            return result
    finally:
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


# ----------------------------------------------------------------------------- following


async def _poll(operation_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str, str, str]]:
    """id -> (status, step, database name, error) of each operation and its move."""
    settings = load_settings()
    engine = build_engine(settings, pool_size=1)
    try:
        async with build_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(
                    Operation.id,
                    Operation.status,
                    Operation.error,
                    WarehouseMove.step,
                    WarehouseMove.target_cluster,
                    ManagedWarehouse.database_name,
                )
                .outerjoin(WarehouseMove, WarehouseMove.id == Operation.id)
                .outerjoin(ManagedWarehouse, ManagedWarehouse.id == Operation.warehouse_id)
                .where(Operation.id.in_(operation_ids))
            )
            return {
                r.id: (
                    r.status,
                    r.step or "",
                    f"{r.database_name or '?'}"
                    + (f" -> {r.target_cluster}" if r.target_cluster else ""),
                    r.error or "",
                )
                for r in rows
            }
    finally:
        await engine.dispose()


def follow(operation_ids: list[uuid.UUID], *, timeout: float | None = None) -> int:
    """Print each operation's progress on stderr until all end; 0 if all succeeded, else 1."""
    total = len(operation_ids)
    shown: dict[uuid.UUID, tuple[str, str]] = {}
    started = time.monotonic()
    while True:
        states = asyncio.run(_poll(operation_ids))
        done = 0
        failed = 0
        for index, op_id in enumerate(operation_ids, start=1):
            status, step, what, error = states.get(op_id, ("unknown", "", "?", ""))
            if status != "running":
                done += 1
                failed += status != "succeeded"
            view = (status, step)
            if shown.get(op_id) != view:
                shown[op_id] = view
                detail = error if status == "failed" else (step if status == "running" else "")
                line = f"[{index}/{total}] {op_id} {what}: {status}"
                typer.echo(f"{line} ({detail})" if detail else line, err=True)
        if done == total:
            elapsed = time.monotonic() - started
            typer.echo(
                f"{total - failed} of {total} succeeded, {failed} failed ({elapsed:.1f} s)",
                err=True,
            )
            return 1 if failed else 0
        if timeout is not None and time.monotonic() - started > timeout:
            typer.echo(f"{done} of {total} ended; still running", err=True)
            return 1
        time.sleep(POLL_SECONDS)


# ----------------------------------------------------------------------------- commands


def _org(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise CLIError("invalid --org: not an organization id (uuid)") from None


@warehouses_cli.command("move")
def warehouses_move(
    org: Annotated[str, typer.Option("--org", help="Organization id.")],
    cluster: Annotated[str, typer.Option("--cluster", help="Target cluster name.")],
    as_json: JsonFlag = False,
    wait: WaitFlag = False,
) -> None:
    """Move an organization's warehouse to another cluster (same password there)."""
    org_id = _org(org)
    try:
        body = MoveIn(cluster=cluster)
    except ValidationError as exc:
        raise CLIError(f"invalid --cluster: {exc.errors()[0]['msg']}") from None

    async def work(session: AsyncSession, settings: Settings, queue: JobQueue | None) -> uuid.UUID:
        return await MoveService(session, settings, queue).move(org_id, body.cluster)

    operation_id = asyncio.run(in_transaction(work))
    emit(
        as_json,
        MoveOut(operation_id=operation_id).model_dump(mode="json"),
        f"Move started: operation {operation_id}",
    )
    if wait:
        sys.stdout.flush()
        raise SystemExit(follow([operation_id]))


@clusters_cli.command("drain")
def clusters_drain(
    name: Annotated[str, typer.Argument(help="Cluster name.")],
    as_json: JsonFlag = False,
    wait: WaitFlag = False,
) -> None:
    """Move every warehouse off a cluster, then mark it drained."""

    async def work(
        session: AsyncSession, settings: Settings, queue: JobQueue | None
    ) -> list[uuid.UUID]:
        return await MoveService(session, settings, queue).drain(name)

    operation_ids = asyncio.run(in_transaction(work))
    emit(
        as_json,
        DrainOut(operation_ids=operation_ids).model_dump(mode="json"),
        f"Draining '{name}': {len(operation_ids)} move(s) started",
    )
    if wait:
        sys.stdout.flush()
        raise SystemExit(follow(operation_ids))


# ----------------------------------------------------------------------------- the registry


def _cluster_json(view: ClusterView) -> dict[str, Any]:
    return cluster_out(view).model_dump(mode="json")


def _cluster_line(view: ClusterView) -> str:
    c = view.cluster
    health = "healthy" if c.healthy else "unhealthy"
    labels = ",".join(f"{k}={v}" for k, v in sorted((c.labels or {}).items()))
    return (
        f"{c.name}\t{c.state}\t{view.warehouses}/{c.max_warehouses}\t{health}\t"
        f"{c.public_host}:{c.public_port}" + (f"\t{labels}" if labels else "")
    )


def _labels(raw: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid --label {item!r}: expected key=value")
        labels[key] = value
    return labels


@clusters_cli.command("add")
def clusters_add(
    name: Annotated[str, typer.Option("--name", help="Cluster name (a DNS label).")],
    admin_url: Annotated[
        str, typer.Option("--admin-url", help="Superuser DSN; stored encrypted, never shown.")
    ],
    public_host: Annotated[str, typer.Option("--public-host", help="Host shown in `connection`.")],
    public_port: Annotated[int, typer.Option("--public-port", help="Port shown in `connection`.")],
    max_warehouses: Annotated[
        int, typer.Option("--max-warehouses", help="Capacity (default 500).")
    ] = 500,
    label: Annotated[list[str] | None, typer.Option("--label", help="k=v, repeatable.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register a warehouse cluster (the service connects to it first)."""
    body = validate(
        ClusterIn,
        {
            "admin_url": "--admin-url",
            "public_host": "--public-host",
            "public_port": "--public-port",
            "max_warehouses": "--max-warehouses",
            "labels": "--label",
        },
        name=name,
        admin_url=admin_url,
        public_host=public_host,
        public_port=public_port,
        max_warehouses=max_warehouses,
        labels=_labels(label or []),
    )

    async def work(
        session: AsyncSession, settings: Settings, queue: JobQueue | None
    ) -> ClusterView:
        view, _created = await ClusterRegistry(session, settings).register(
            NewCluster(
                name=body.name,
                admin_url=body.admin_url,
                public_host=body.public_host,
                public_port=body.public_port,
                max_warehouses=body.max_warehouses,
                labels=body.labels,
            )
        )
        return view

    view = asyncio.run(in_transaction(work))
    emit(as_json, _cluster_json(view), f"Registered {_cluster_line(view)}")


@clusters_cli.command("list")
def clusters_list(as_json: JsonFlag = False) -> None:
    """Every registered cluster, by name."""

    async def work(
        session: AsyncSession, settings: Settings, queue: JobQueue | None
    ) -> list[ClusterView]:
        return await ClusterRegistry(session, settings).list()

    views = asyncio.run(in_transaction(work))
    if as_json:
        typer.echo(json.dumps([_cluster_json(v) for v in views]))
    else:
        typer.echo("\n".join(_cluster_line(v) for v in views) or "No cluster is registered.")


def _set_state(name: str, state: str, as_json: bool) -> None:
    async def work(
        session: AsyncSession, settings: Settings, queue: JobQueue | None
    ) -> ClusterView:
        return await ClusterRegistry(session, settings).update(name, {"state": state})

    view = asyncio.run(in_transaction(work))
    emit(as_json, _cluster_json(view), _cluster_line(view))


@clusters_cli.command("pause")
def clusters_pause(
    name: Annotated[str, typer.Argument(help="Cluster name.")], as_json: JsonFlag = False
) -> None:
    """Keep the cluster's warehouses, place no new ones there."""
    _set_state(name, "paused", as_json)


@clusters_cli.command("resume")
def clusters_resume(
    name: Annotated[str, typer.Argument(help="Cluster name.")], as_json: JsonFlag = False
) -> None:
    """Take new warehouses again (also puts a drained cluster back into service)."""
    _set_state(name, "active", as_json)


@clusters_cli.command("remove")
def clusters_remove(
    name: Annotated[str, typer.Argument(help="Cluster name.")], as_json: JsonFlag = False
) -> None:
    """Forget a cluster that holds no warehouse that is not deleted."""

    async def work(session: AsyncSession, settings: Settings, queue: JobQueue | None) -> None:
        await ClusterRegistry(session, settings).remove(name)

    asyncio.run(in_transaction(work))
    if not as_json:  # the API answers 204 with no body: --json prints nothing
        typer.echo(f"Removed cluster {name}")
