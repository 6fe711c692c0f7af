"""Engine and session plumbing.

Engines and sessionmakers are built in the app lifespan / worker start-up and kept on
`app.state`; nothing here connects at import time. The request session dependency owns the
transaction: it commits when the route returns and rolls back on any exception, so services only
`flush()`. Work that must happen after the commit (enqueueing jobs) is queued on the session with
`after_commit()` and run by the dependency once the commit has succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.errors import NoCapacity
from app.settings import Settings

AfterCommit = Callable[[], Awaitable[Any]]
_AFTER_COMMIT_KEY = "after_commit"


def build_engine(
    settings: Settings, *, pool_size: int | None = None, max_overflow: int | None = None
) -> AsyncEngine:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow if max_overflow is None else max_overflow,
        connect_args=_connect_args(settings, "warehouse-api"),
    )
    _discard_dead_connections(engine)
    return engine


def build_read_engine(settings: Settings) -> AsyncEngine:
    """The engine of the pure-read GET actions: its connections are in autocommit from the
    moment they connect, so a read sends no BEGIN/COMMIT and nothing is reset on return. A
    fixed-size pool (no overflow), so a burst queues for a connection instead of opening and
    closing overflow connections."""
    engine = create_async_engine(
        settings.async_database_url,
        isolation_level="AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_reset_on_return=None,
        connect_args=_connect_args(settings, "warehouse-api-reads"),
    )
    _discard_dead_connections(engine)
    return engine


def _connect_args(settings: Settings, application_name: str) -> dict[str, Any]:
    return {
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "application_name": application_name,
        },
        "timeout": 5,
    }


def _discard_dead_connections(engine: AsyncEngine) -> None:
    """Hand out no connection the server has closed (a restart, an idle timeout), without a
    round trip per checkout.

    SQLAlchemy's `pool_pre_ping` would ask the server on every checkout — with asyncpg,
    outside autocommit, a BEGIN, an empty statement and a ROLLBACK. asyncpg already notices
    when the server closes the socket, so looking at the connection locally is enough; the
    pool then replaces it (`DisconnectionError` makes it connect again). A connection that dies
    unnoticed fails its statement, and SQLAlchemy invalidates the pool as it would anyway.
    """

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = getattr(dbapi_connection, "driver_connection", None)
        if raw is None or raw.is_closed():
            raise DisconnectionError("the server closed this connection")


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the surrounding transaction has committed (never before)."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


def discard_after_commit(session: AsyncSession) -> None:
    """Forget the hooks of a transaction that will not commit."""
    session.info.pop(_AFTER_COMMIT_KEY, None)


# The commit refused a new warehouse: no cluster has room (raised by the placement trigger
# that runs inside COMMIT, app.services.fleet.placement).
NO_CAPACITY_SQLSTATE = "WH503"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error raised through SQLAlchemy and asyncpg, if any."""
    for candidate in (getattr(exc, "orig", None), getattr(exc, "__cause__", None), exc):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
        cause = getattr(candidate, "__cause__", None)
        code = getattr(cause, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


async def commit(session: AsyncSession) -> None:
    """Commit; a commit the placement refused raises NoCapacity (503 `no_capacity`)."""
    try:
        await session.commit()
    except DBAPIError as exc:
        if sqlstate(exc) == NO_CAPACITY_SQLSTATE:
            raise NoCapacity() from None
        raise


async def commit_and_run_hooks(session: AsyncSession) -> None:
    await commit(session)
    hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for hook in hooks:
        await hook()


def build_read_sessionmaker(read_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for GET actions that only read, on the autocommit read engine
    (`build_read_engine`): a read pays no BEGIN and no COMMIT round trip. Each statement sees
    its own snapshot."""
    return async_sessionmaker(read_engine, expire_on_commit=False, autoflush=False)
