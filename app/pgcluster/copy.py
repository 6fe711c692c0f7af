"""Copy one warehouse (database + login role) from one cluster to another.

Every function takes admin DSNs (superuser), looks at the catalogs first and may run any number
of times. The data path is `pg_dump --format=custom` writing into an OS pipe that `pg_restore`
reads: no temporary file and no Python between the two processes. The restore runs as the login
role (`--no-owner --role`), so the role owns every object it creates, exactly as on the source.

Nothing here logs or raises a DSN or a password: errors name the program and its exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg

from app.pgcluster.binaries import find_binary, libpq_env, major_from_version_num
from app.pgcluster.scram import verifier_literal
from app.pgcluster.sql import database_dsn, quote_ident

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 600.0
ROLE_ATTRS = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_LOCALE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_PR_SET_PDEATHSIG = 1
# The restore's own session: more memory for building indexes, no wait for each WAL flush
# (it is one transaction that either lands whole or not at all).
RESTORE_OPTIONS = "-c maintenance_work_mem=256MB -c synchronous_commit=off"


class CopyError(RuntimeError):
    """A step of the copy failed; the message is safe to show (no DSN, no password)."""


@dataclass(frozen=True)
class DatabaseShape:
    encoding: str
    collate: str
    ctype: str


async def _connect(dsn: str, database: str | None = None) -> asyncpg.Connection:
    target = database_dsn(dsn, database) if database else dsn
    conn: asyncpg.Connection = await asyncpg.connect(
        target,
        timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
        server_settings={"application_name": "warehouse-api-move"},
    )
    return conn


# Admin connections a run of steps may reuse (`reusing_connections`), per DSN: idle ones only.
_REUSABLE: ContextVar[dict[str, list[asyncpg.Connection]] | None] = ContextVar(
    "reusable_admin_connections", default=None
)


@contextlib.asynccontextmanager
async def reusing_connections() -> AsyncIterator[None]:
    """Within this block, admin connections (to a cluster's `postgres` database) are kept
    open and reused by the functions here instead of connecting for every call; all are
    closed at the end. A connection is handed to one caller at a time; concurrent callers
    connect anew (and leave theirs for reuse too)."""
    kept: dict[str, list[asyncpg.Connection]] = {}
    token = _REUSABLE.set(kept)
    try:
        yield
    finally:
        _REUSABLE.reset(token)
        for conns in kept.values():
            for conn in conns:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=5)


@contextlib.asynccontextmanager
async def _admin(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    kept = _REUSABLE.get()
    idle = kept.setdefault(dsn, []) if kept is not None else None
    conn = None
    while idle and conn is None:
        candidate = idle.pop()
        conn = None if candidate.is_closed() else candidate
    if conn is None:
        conn = await _connect(dsn)
    reusable = False
    try:
        yield conn
        reusable = idle is not None and not conn.is_closed() and not conn.is_in_transaction()
    finally:
        if reusable and idle is not None:
            idle.append(conn)
        else:
            await conn.close()


async def server_major(dsn: str) -> int:
    async with _admin(dsn) as conn:
        return major_from_version_num(await conn.fetchval("SHOW server_version_num"))


async def holds_name(dsn: str, name: str, role: str | None = None) -> tuple[bool, bool]:
    """(database `name` exists, role `role` (default: `name`) exists) on the cluster."""
    async with _admin(dsn) as conn:
        row = await conn.fetchrow(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS db,"
            " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) AS role",
            name,
            role or name,
        )
        return bool(row["db"]), bool(row["role"])


# -- freeze -------------------------------------------------------------------------------


async def freeze_role(dsn: str, role: str) -> int:
    """NOLOGIN, then end the role's open sessions; returns how many were ended."""
    async with _admin(dsn) as conn:
        if await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f"ALTER ROLE {quote_ident(role)} NOLOGIN")
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = $1 AND pid <> pg_backend_pid()",
                role,
            )
            or 0
        )


async def unfreeze_role(dsn: str, role: str) -> bool:
    """LOGIN again; False when the role does not exist on that cluster."""
    async with _admin(dsn) as conn:
        can_login = await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
        if can_login is None:
            return False
        if not can_login:
            await conn.execute(f"ALTER ROLE {quote_ident(role)} LOGIN")
        return True


async def role_can_login(dsn: str, role: str) -> bool | None:
    async with _admin(dsn) as conn:
        value = await conn.fetchval("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role)
        return None if value is None else bool(value)


# -- role ---------------------------------------------------------------------------------


async def read_verifier(dsn: str, role: str) -> str:
    """The role's stored SCRAM verifier (pg_authid; needs a superuser)."""
    async with _admin(dsn) as conn:
        verifier = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    if not verifier:
        raise CopyError("the login role has no password on the source cluster")
    verifier_literal(verifier)  # refuses anything that is not a SCRAM verifier
    return str(verifier)


async def ensure_role(dsn: str, role: str, verifier: str, *, login: bool = False) -> None:
    """The role exists with exactly this verifier (NOLOGIN unless `login`)."""
    r, pw = quote_ident(role), verifier_literal(verifier)
    attrs = f"{'LOGIN' if login else 'NOLOGIN'} {ROLE_ATTRS}"
    async with _admin(dsn) as conn:
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role) is None:
            with contextlib.suppress(asyncpg.DuplicateObjectError):
                await conn.execute(f"CREATE ROLE {r} {attrs} PASSWORD {pw}")
        await conn.execute(f"ALTER ROLE {r} {attrs} PASSWORD {pw}")


# -- database -----------------------------------------------------------------------------


async def database_shape(dsn: str, database: str) -> DatabaseShape:
    async with _admin(dsn) as conn:
        row = await conn.fetchrow(
            "SELECT pg_encoding_to_char(encoding) AS enc, datcollate, datctype"
            " FROM pg_database WHERE datname = $1",
            database,
        )
    if row is None:
        raise CopyError("the database does not exist on the source cluster")
    shape = DatabaseShape(row["enc"], row["datcollate"], row["datctype"])
    for value in (shape.encoding, shape.collate, shape.ctype):
        if not _LOCALE_RE.fullmatch(value):
            raise CopyError("the source database has an unsupported encoding or locale")
    return shape


async def recreate_database(dsn: str, database: str, *, owner: str, shape: DatabaseShape) -> None:
    """An empty database owned by `owner`, reachable only by it (drops any earlier attempt)."""
    db, r = quote_ident(database), quote_ident(owner)
    async with _admin(dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        await conn.execute(
            f"CREATE DATABASE {db} OWNER {r} TEMPLATE template0"
            f" ENCODING '{shape.encoding}' LC_COLLATE '{shape.collate}'"
            f" LC_CTYPE '{shape.ctype}'"
        )
        await conn.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {r}")


async def drop_warehouse(dsn: str, database: str, role: str | None = None) -> None:
    """Remove a warehouse's database and login role from a cluster (idempotent)."""
    role = role or database
    async with _admin(dsn) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(database)} WITH (FORCE)")
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                role,
            )
            await conn.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")


# -- verification -------------------------------------------------------------------------

_TABLES_SQL = """
SELECT n.nspname || '.' || c.relname AS name,
       format('SELECT count(*) FROM ONLY %I.%I', n.nspname, c.relname) AS query
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""


async def row_counts(dsn: str, database: str) -> dict[str, int]:
    """Exact `count(*)` of every user table of the database (its own rows, ONLY)."""
    conn = await _connect(dsn, database)
    try:
        counts: dict[str, int] = {}
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for row in await conn.fetch(_TABLES_SQL):
                # The statement is built by the server's format('%I'), which quotes names.
                counts[row["name"]] = int(await conn.fetchval(row["query"]))
        return counts
    finally:
        await conn.close()


def count_differences(source: dict[str, int], target: dict[str, int]) -> list[str]:
    names = sorted(set(source) | set(target))
    return [n for n in names if source.get(n) != target.get(n)]


# -- the streamed copy --------------------------------------------------------------------


async def _given_or(major: int | None, dsn: str) -> int:
    return major if major is not None else await server_major(dsn)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(data: bytes) -> str:
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:])[:500]


async def stream_copy(
    source_dsn: str,
    target_dsn: str,
    database: str,
    *,
    role: str,
    source_major: int | None = None,
    target_major: int | None = None,
    prepare_target: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`pg_dump -Fc` of the source database piped into `pg_restore` as `role` on the target.

    The target database must exist, empty, owned by `role` — or be made so by
    `prepare_target`, which runs while pg_dump already connects and reads the source's catalogs
    into the pipe (pg_restore starts once it returns; the pipe holds what pg_dump wrote
    meanwhile). The restore is one transaction: it either lands whole or leaves nothing. If
    this process dies, both programs die with it.
    """
    majors = await asyncio.gather(
        _given_or(source_major, source_dsn), _given_or(target_major, target_dsn)
    )
    dump_bin = find_binary("pg_dump", majors[0])
    restore_bin = find_binary("pg_restore", majors[1])
    read_fd, write_fd = os.pipe()
    restore: asyncio.subprocess.Process | None = None
    dump: asyncio.subprocess.Process | None = None
    try:
        dump = await asyncio.create_subprocess_exec(
            str(dump_bin),
            "--format=custom",
            "--compress=0",
            "--no-owner",
            "--no-acl",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=asyncio.subprocess.PIPE,
            env=libpq_env(source_dsn, database=database),
            preexec_fn=_die_with_parent,
        )
        os.close(write_fd)
        write_fd = -1
        if prepare_target is not None:
            await prepare_target()
        restore = await asyncio.create_subprocess_exec(
            str(restore_bin),
            "--no-owner",
            "--no-acl",
            f"--role={role}",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={database}",
            stdin=read_fd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=libpq_env(target_dsn, database=database),
            preexec_fn=_die_with_parent,
        )
        os.close(read_fd)
        read_fd = -1
        (_, dump_err), (_, restore_err) = await asyncio.gather(
            dump.communicate(), restore.communicate()
        )
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        for proc in (dump, restore):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
    # A restore that stops early closes the pipe, and pg_dump then dies of SIGPIPE: the
    # restore's failure is the cause. Any other pg_dump failure comes first.
    dump_broke = dump.returncode not in (0, -signal.SIGPIPE)
    if dump_broke or (dump.returncode != 0 and restore.returncode == 0):
        logger.warning(
            "pg_dump failed", extra={"exit_status": dump.returncode, "stderr": _tail(dump_err)}
        )
        raise CopyError(f"pg_dump exited with status {dump.returncode}")
    if restore.returncode != 0:
        logger.warning(
            "pg_restore failed",
            extra={"exit_status": restore.returncode, "stderr": _tail(restore_err)},
        )
        raise CopyError(f"pg_restore exited with status {restore.returncode}")
