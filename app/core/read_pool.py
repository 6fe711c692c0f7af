"""The read pool: plain asyncpg connections for the hot, read-only statements.

Authentication runs one statement per request, and the status poll and the pipeline activity
and stats reads one or two more; none needs a transaction. Through an ORM session each cost
more than the query itself, and even asyncpg's own pool spends more CPU on a checkout than a
small query does (a task per release, a timer per acquire, a reset query): about 40 us of
CPU a statement here, against 55 us for the statement itself.

So this pool is a stack of idle connections and a queue of waiters:
- a statement takes the most recently used idle connection (its statement cache is warm),
  opens a new one while fewer than `size` exist, or waits for one to come back;
- a connection goes back after its statement, also after an error the server answered or a
  cancelled statement (asyncpg asks the server to cancel it, and the connection's next
  statement waits until it has); one that failed itself (closed, reset, timed out on the
  client) is closed and the pool opens a fresh one for the next statement;
- a statement that meets a connection the server has dropped (a database restart) is retried
  once on a fresh connection; when the server is down the error reaches the handlers, which
  answer 503.

Every connection is in autocommit (asyncpg's default: no BEGIN), so each statement sees its
own snapshot and leaves nothing behind that a reset would have to clear.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from app.core.statements import named
from app.settings import Settings, to_plain_dsn

Connect = Callable[[], Awaitable[asyncpg.Connection]]

# Errors the server answers when it is going away: the connection is closed, not reused.
_SERVER_GOING = (
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
# Errors worth one retry on a fresh connection: the server dropped this one.
_RETRYABLE = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    ConnectionResetError,
)


class ReadPool:
    def __init__(self, connect: Connect, size: int) -> None:
        self._connect = connect
        self._size = size
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings) -> ReadPool:
        dsn = to_plain_dsn(settings.database_url)

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                dsn,
                timeout=5,
                command_timeout=settings.db_statement_timeout_ms / 1000 or None,
                server_settings={
                    "application_name": "warehouse-api-read",
                    "statement_timeout": str(settings.db_statement_timeout_ms),
                },
            )

        return cls(connect, settings.db_pool_size)

    # -- statements ---------------------------------------------------------------------------

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return row

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", query, args)
        return rows

    async def execute(self, query: str, *args: Any) -> str:
        return str(await self._run("execute", query, args))

    async def rows(self, sql: str, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        """Run a statement written with `:name` parameters (`app.core.statements`)."""
        statement = named(sql)
        return await self.fetch(statement.sql, *statement.args(params))

    async def row(self, sql: str, params: Mapping[str, Any]) -> asyncpg.Record | None:
        statement = named(sql)
        return await self.fetchrow(statement.sql, *statement.args(params))

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        try:
            return await self._once(method, query, args)
        except _RETRYABLE:
            return await self._once(method, query, args)

    async def _once(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        connection = await self._acquire()
        try:
            result = await getattr(connection, method)(query, *args)
        except asyncio.CancelledError:
            # asyncpg has asked the server to cancel the statement; the connection's next
            # statement waits for that to finish, so the connection can go back.
            self._release(connection, healthy=True)
            raise
        except asyncpg.PostgresError as exc:
            # An error the server answered (a bad cast, a statement timeout): the connection
            # is fine, unless the server is going away.
            self._release(connection, healthy=not isinstance(exc, _SERVER_GOING))
            raise
        except BaseException:
            # The connection itself failed (closed, reset, a client-side timeout).
            self._release(connection, healthy=False)
            raise
        self._release(connection, healthy=True)
        return result

    # -- connections --------------------------------------------------------------------------

    async def _acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.exceptions.InterfaceError("the read pool is closed")
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._open -= 1
        if self._open < self._size:
            return await self._new_connection()
        waiter: asyncio.Future[asyncpg.Connection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection (or a slot) just as the wait was cancelled: pass it on.
                passed = waiter.result()
                if passed is None:
                    self._give_up_slot()
                else:
                    self._release(passed, healthy=True)
            raise
        # None: a connection was closed, and its slot is handed over for a new one.
        return handed if handed is not None else await self._new_connection(slot_taken=True)

    async def _new_connection(self, *, slot_taken: bool = False) -> asyncpg.Connection:
        if not slot_taken:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._give_up_slot()
            raise

    def _release(self, connection: asyncpg.Connection, *, healthy: bool) -> None:
        if self._closed or not healthy or connection.is_closed():
            connection.terminate()
            self._give_up_slot()
            return
        if not self._wake_one(connection):
            self._idle.append(connection)

    def _give_up_slot(self) -> None:
        """A connection slot is free: hand it to a waiter (who opens a connection), or count
        it as free."""
        if not self._wake_one(None):
            self._open -= 1

    def _wake_one(self, handed: asyncpg.Connection | None) -> bool:
        """Give a waiter the connection, or (None) the slot of a closed one; False if none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            try:
                await asyncio.wait_for(connection.close(), 5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.exceptions.InterfaceError("the read pool is closed"))
