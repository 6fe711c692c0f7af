"""Building and running the arq worker.

`run_worker(settings, burst=False)` blocks until the worker stops (SIGINT/SIGTERM, or an empty
queue in burst mode). Resources (engine, sessionmaker, warehouse backend) are built in
`on_startup` and disposed in `on_shutdown`; arq builds the Redis pool from `settings.redis_url`.
A long-running worker reconciles with an arq cron job every `reconcile_interval_seconds`; a burst
worker reconciles at start-up and then on a timer (a cron job would keep the queue non-empty).
The worker is a `ResilientWorker`: a Redis outage or restart is waited out, not fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from arq import Retry, cron
from arq.connections import RedisSettings
from arq.worker import Function, Worker, func

from app.core.db import build_engine, build_sessionmaker
from app.pgcluster import build_secret_box
from app.s3 import S3Storage
from app.services.events.delivery import Clients, WebhookSender
from app.services.events.retention import prune_webhook_history
from app.services.fleet.backends import ClusterBackends
from app.services.fleet.bootstrap import bootstrap_default_cluster
from app.services.fleet.counters import check_counters
from app.services.fleet.health import check_clusters
from app.services.fleet.move_jobs import ADVANCE_MOVE
from app.services.fleet.move_machine import MoveMachine
from app.services.storage.maintenance import StorageMaintenance
from app.services.storage.records import TAKE_SNAPSHOT
from app.services.storage.runner import SnapshotRunner
from app.services.storage.transfer import StorageTransfer
from app.services.warehouse.jobs import ADVANCE_WAREHOUSE, RECONCILE_WAREHOUSES
from app.services.warehouse.machine import WarehouseMachine
from app.settings import Settings
from app.worker.metrics import counted, serve
from app.worker.moves import MOVE_JOB_TIMEOUT_SECONDS, MoveReconciler, advance_move
from app.worker.reconcile import Reconciler
from app.worker.resilient import ResilientWorker

logger = logging.getLogger(__name__)

# A step may stream a whole snapshot in or out: generous, since only a hung job reaches it.
JOB_TIMEOUT_SECONDS = 3600
# arq marks a job "in progress" for the longest job timeout + 10 s.
IN_PROGRESS_TIMEOUT_SECONDS = max(JOB_TIMEOUT_SECONDS, MOVE_JOB_TIMEOUT_SECONDS) + 10
POLL_DELAY_SECONDS = 0.1
WORKER_POOL_OVERFLOW = 2
UNLIMITED_TRIES = 1_000_000
CHECK_STORAGE = "check_storage"
CHECK_CLUSTERS = "check_warehouse_clusters"
PRUNE_WEBHOOKS = "prune_webhook_history"


@counted(ADVANCE_WAREHOUSE)
async def advance_warehouse(ctx: dict[str, Any], warehouse_id: str, generation: int) -> str:
    machine: WarehouseMachine = ctx["machine"]
    try:
        outcome = await machine.advance(uuid.UUID(warehouse_id), generation)
    except Exception as exc:
        # The service database or Redis hiccuped between steps: try again later.
        logger.warning(
            "warehouse job interrupted",
            extra={"warehouse_id": warehouse_id, "error_class": type(exc).__name__},
        )
        raise Retry(defer=machine.backoff(ctx.get("job_try", 1))) from exc
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.result


@counted(TAKE_SNAPSHOT)
async def take_snapshot(ctx: dict[str, Any], snapshot_id: str) -> str:
    runner: SnapshotRunner = ctx["snapshots"]
    try:
        outcome = await runner.run(uuid.UUID(snapshot_id))
    except Exception as exc:
        logger.warning(
            "snapshot job interrupted",
            extra={"snapshot_id": snapshot_id, "error_class": type(exc).__name__},
        )
        raise Retry(defer=runner.backoff(ctx.get("job_try", 1))) from exc
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.result


@counted(CHECK_STORAGE)
async def check_storage(ctx: dict[str, Any]) -> int:
    maintenance: StorageMaintenance = ctx["storage_check"]
    report = await maintenance.run_once()
    return report.expired + report.buckets_repaired + report.snapshots_lost


@counted(PRUNE_WEBHOOKS)
async def prune_webhooks(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    retention = timedelta(days=settings.webhook_retention_days)
    attempts, events = await prune_webhook_history(ctx["sessionmaker"], retention)
    return attempts + events


@counted(RECONCILE_WAREHOUSES)
async def reconcile_warehouses(ctx: dict[str, Any]) -> int:
    reconciler: Reconciler = ctx["reconciler"]
    moves: MoveReconciler = ctx["move_reconciler"]
    return await reconciler.run_once() + await moves.run_once()


async def check_warehouse_clusters(ctx: dict[str, Any]) -> int:
    results = await check_clusters(ctx["sessionmaker"], ctx["settings"])
    await check_counters(ctx["sessionmaker"])  # placement's counters: repaired if they drifted
    return sum(results.values())


async def _periodic_reconcile(
    reconcilers: list[Reconciler | MoveReconciler], interval: float
) -> None:
    while True:
        for reconciler in reconcilers:
            try:
                await reconciler.run_once()
            except Exception as exc:
                logger.warning("reconcile failed", extra={"error_class": type(exc).__name__})
        await asyncio.sleep(interval)


async def _start_webhooks(ctx: dict[str, Any], sessionmaker: Any, settings: Settings) -> None:
    """The webhook sender: a loop beside arq's, polling the outbox (app/services/events).

    It stops with the worker's main task, even when arq's close never reaches `on_shutdown`.
    """
    # httpx logs every request's URL at INFO; a receiver's URL may carry a token, and each
    # attempt's outcome is in the deliveries log anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sender = WebhookSender(
        sessionmaker,
        Clients(),
        secret_key=settings.secret_key.get_secret_value(),
        retry_delays=settings.webhook_retry_delays,
        lease_seconds=settings.webhook_lease_seconds,
    )
    task = asyncio.create_task(sender.run())
    ctx["webhook_task"] = task
    main_task = asyncio.current_task()
    if main_task is not None:
        main_task.add_done_callback(lambda _main: _cancel_once(task))


def _cancel_once(task: asyncio.Task[None]) -> None:
    if not task.done() and not task.cancelling():
        task.cancel()


async def _stop_webhooks(ctx: dict[str, Any]) -> None:
    task: asyncio.Task[None] | None = ctx.pop("webhook_task", None)
    if task is not None:
        _cancel_once(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    # Each job holds its advisory-lock connection and one step's at a time; the cron jobs are
    # jobs too; two spare for the webhook sender and the reconcilers (settings.py).
    engine = build_engine(
        settings, pool_size=settings.worker_max_jobs * 2 + 2, max_overflow=WORKER_POOL_OVERFLOW
    )
    sessionmaker = build_sessionmaker(engine)
    await bootstrap_default_cluster(sessionmaker, settings)
    backends = ClusterBackends(settings, pool_max_size=settings.worker_max_jobs)
    await backends.guard(settings.warehouse_admin_dsn).problem_at_startup()
    ctx["engine"] = engine
    ctx["sessionmaker"] = sessionmaker
    ctx["backends"] = backends
    storage = S3Storage.from_settings(settings)
    transfer = StorageTransfer(storage, sessionmaker)
    ctx["storage"] = storage
    ctx["machine"] = WarehouseMachine(
        engine=engine,
        sessionmaker=sessionmaker,
        settings=settings,
        backends=backends,
        storage=transfer,
        secrets=build_secret_box(settings),
    )
    ctx["snapshots"] = SnapshotRunner(
        engine=engine,
        sessionmaker=sessionmaker,
        settings=settings,
        transfer=transfer,
    )
    # A cron job of the long-running worker; a burst worker (a one-off drain) leaves it out.
    ctx["storage_check"] = StorageMaintenance(sessionmaker, storage)
    reconciler = Reconciler(
        sessionmaker,
        ctx["redis"],
        queue_name=settings.queue_name,
        in_progress_timeout_s=IN_PROGRESS_TIMEOUT_SECONDS,
    )
    ctx["reconciler"] = reconciler
    ctx["move_machine"] = MoveMachine(engine=engine, sessionmaker=sessionmaker, settings=settings)
    move_reconciler = MoveReconciler(
        sessionmaker,
        ctx["redis"],
        queue_name=settings.queue_name,
        in_progress_timeout_s=IN_PROGRESS_TIMEOUT_SECONDS,
    )
    ctx["move_reconciler"] = move_reconciler
    await _start_webhooks(ctx, sessionmaker, settings)
    if ctx.get("burst"):
        ctx["reconcile_task"] = asyncio.create_task(
            _periodic_reconcile([reconciler, move_reconciler], settings.reconcile_interval_seconds)
        )


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await _stop_webhooks(ctx)
    task: asyncio.Task[None] | None = ctx.pop("reconcile_task", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if "backends" in ctx:
        await ctx.pop("backends").close()
    if "storage" in ctx:
        await ctx.pop("storage").close()
    if "engine" in ctx:
        await ctx.pop("engine").dispose()


def _cron_schedule(interval: int) -> dict[str, Any]:
    if interval < 60:
        return {"second": set(range(0, 60, interval))}
    return {"second": {0}, "minute": set(range(0, 60, max(1, interval // 60)))}


def build_worker(settings: Settings, *, burst: bool = False, handle_signals: bool = True) -> Worker:
    functions: list[Function] = [
        func(
            advance_warehouse,
            name=ADVANCE_WAREHOUSE,
            keep_result=0,
            max_tries=UNLIMITED_TRIES,
            timeout=JOB_TIMEOUT_SECONDS,
        ),
        func(
            counted(ADVANCE_MOVE)(advance_move),
            name=ADVANCE_MOVE,
            keep_result=0,
            max_tries=UNLIMITED_TRIES,
            timeout=MOVE_JOB_TIMEOUT_SECONDS,
        ),
        func(
            take_snapshot,
            name=TAKE_SNAPSHOT,
            keep_result=0,
            max_tries=UNLIMITED_TRIES,
            timeout=JOB_TIMEOUT_SECONDS,
        ),
    ]
    cron_jobs = []
    if not burst:
        cron_jobs.append(
            cron(
                reconcile_warehouses,
                name=RECONCILE_WAREHOUSES,
                run_at_startup=True,
                timeout=JOB_TIMEOUT_SECONDS,
                keep_result=0,
                **_cron_schedule(settings.reconcile_interval_seconds),
            )
        )
        cron_jobs.append(
            cron(
                counted(CHECK_CLUSTERS)(check_warehouse_clusters),
                name=CHECK_CLUSTERS,
                run_at_startup=True,
                timeout=JOB_TIMEOUT_SECONDS,
                keep_result=0,
                **_cron_schedule(settings.cluster_check_seconds),
            )
        )
        cron_jobs.append(
            cron(
                check_storage,
                name=CHECK_STORAGE,
                run_at_startup=True,
                timeout=JOB_TIMEOUT_SECONDS,
                keep_result=0,
                **_cron_schedule(settings.storage_check_seconds),
            )
        )
        cron_jobs.append(
            cron(
                prune_webhooks,
                name=PRUNE_WEBHOOKS,
                run_at_startup=True,
                timeout=JOB_TIMEOUT_SECONDS,
                keep_result=0,
                minute={23},  # hourly
                second={0},
            )
        )
    return ResilientWorker(
        functions=functions,
        cron_jobs=cron_jobs,
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        burst=burst,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        handle_signals=handle_signals,
        max_jobs=settings.worker_max_jobs,
        job_timeout=JOB_TIMEOUT_SECONDS,
        keep_result=0,
        poll_delay=POLL_DELAY_SECONDS,
        max_tries=UNLIMITED_TRIES,
        ctx={"settings": settings, "burst": burst},
    )


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """Run the worker until it is stopped (or, with `burst`, until the queue is empty)."""
    metrics_server = serve(settings.worker_metrics_host, settings.worker_metrics_port)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        build_worker(settings, burst=burst).run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
        asyncio.set_event_loop(None)
        loop.close()
