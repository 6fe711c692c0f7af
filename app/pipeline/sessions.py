"""The request's database sessions, as FastAPI dependencies.

`DbSession` owns the request's transaction: it commits when the route returns and rolls back on
any exception, then runs the `after_commit()` hooks (enqueueing jobs) only after a successful
commit. `ReadSession` is for GET actions that never write: a session on the autocommit read
engine, nothing to commit. `Reads` is the app's asyncpg read pool itself, for the reads
whose services run their statements on it directly (no session at all).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import commit_and_run_hooks, discard_after_commit
from app.core.read_pool import ReadPool


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            discard_after_commit(session)
            await session.rollback()
            raise
        else:
            await commit_and_run_hooks(session)


DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    async with maker() as session:
        yield session


# Only for endpoints that never write: nothing here commits.
ReadSession = Annotated[AsyncSession, Depends(get_read_session, scope="function")]


async def get_read_pool(request: Request) -> ReadPool:
    pool: ReadPool = request.app.state.read_pool
    return pool


# Statements on the asyncpg read pool: autocommit, one snapshot per statement.
Reads = Annotated[ReadPool, Depends(get_read_pool)]
