"""Engine and session plumbing.

Engines and sessionmakers are built in the app lifespan / worker start-up and kept on
`app.state`; nothing here connects at import time. The request session dependency owns the
transaction: it commits when the route returns and rolls back on any exception, so services only
`flush()`. Work that must happen after the commit (enqueueing jobs) is queued on the session with
`after_commit()` and run by the dependency once the commit has succeeded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings, to_plain_dsn

AfterCommit = Callable[[], Awaitable[Any]]
_AFTER_COMMIT_KEY = "after_commit"


def build_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "application_name": "warehouse-api",
            },
            "timeout": 5,
        },
    )


def build_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the surrounding transaction has committed (never before)."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


async def commit_and_run_hooks(session: AsyncSession) -> None:
    await session.commit()
    hooks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
    for hook in hooks:
        await hook()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            session.info.pop(_AFTER_COMMIT_KEY, None)
            await session.rollback()
            raise
        else:
            await commit_and_run_hooks(session)


DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


def build_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for GET actions that only read: the same pool, in autocommit, so a read pays
    no BEGIN and no COMMIT round trip. Each statement sees its own snapshot."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    async with maker() as session:
        yield session


# Only for endpoints that never write: nothing here commits.
ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset query (RESET ALL, UNLISTEN, CLOSE ALL, advisory unlock).

    The read pool only runs single statements through `Pool.fetchrow`/`Pool.execute`: nothing
    sets session state, listens, opens cursors or takes advisory locks, so that reset would
    be a second round trip per read that resets nothing. asyncpg still rolls back a
    transaction left open before calling this.
    """


class ReadPool:
    """A plain asyncpg pool for the hot, read-only paths (authentication, status polls).

    Those paths need one statement and no transaction; going through the ORM session cost more
    than the query itself. A read that meets a connection the server has dropped (after a
    database restart) is retried once on a fresh connection; when the server is down the error
    reaches the handlers and the client gets a 503.
    """

    _RETRYABLE = (
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.InterfaceError,
        ConnectionResetError,
    )

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, settings: Settings) -> ReadPool:
        pool = await asyncpg.create_pool(
            to_plain_dsn(settings.database_url),
            min_size=0,
            max_size=settings.db_pool_size,
            timeout=5,
            reset=_keep_session,
            command_timeout=settings.db_statement_timeout_ms / 1000 or None,
            server_settings={
                "application_name": "warehouse-api-read",
                "statement_timeout": str(settings.db_statement_timeout_ms),
            },
        )
        return cls(pool)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.pool.fetchrow(query, *args)
        except self._RETRYABLE:
            return await self.pool.fetchrow(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        try:
            return str(await self.pool.execute(query, *args))
        except self._RETRYABLE:
            return str(await self.pool.execute(query, *args))

    async def close(self) -> None:
        await self.pool.close()
