"""The PostgreSQL warehouse backend: one database + one LOGIN role per organization.

Admin statements run over a small asyncpg pool on the cluster's admin DSN. Identifiers pass the
name validators and `quote_ident`; passwords arrive only as SCRAM verifiers (`scram.py`), never
as plaintext SQL, and no statement text or password is ever logged or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from app.pgcluster.scram import verifier_literal
from app.pgcluster.sql import database_dsn, quote_ident
from app.pgcluster.team_tables import TeamTables, ensure_team_tables
from app.settings import Settings

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
TRUST_MESSAGE = (
    "The warehouse cluster trusts host logins (pg_hba 'trust'), so warehouse passwords would "
    "not be checked; refusing to provision. Configure password authentication "
    "(scram-sha-256) or set WAREHOUSE_ALLOW_TRUST_AUTH=true for a throwaway setup."
)


class PostgresWarehouseBackend:
    def __init__(self, admin_dsn: str, *, pool_max_size: int = 10) -> None:
        self.admin_dsn = admin_dsn
        self._pool_max_size = pool_max_size
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        parts = urlsplit(admin_dsn)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5432

    @classmethod
    def from_settings(
        cls, settings: Settings, *, pool_max_size: int = 10
    ) -> PostgresWarehouseBackend:
        return cls(settings.warehouse_admin_dsn, pool_max_size=pool_max_size)

    async def _admin(self) -> asyncpg.Pool:
        # Lazy: building the API or a worker never fails because the cluster is down.
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.admin_dsn,
                        min_size=0,
                        max_size=self._pool_max_size,
                        timeout=CONNECT_TIMEOUT,
                        command_timeout=COMMAND_TIMEOUT,
                        server_settings={"application_name": "warehouse-api-admin"},
                    )
        return self._pool

    async def _fetchval(self, query: str, *args: Any) -> Any:
        pool = await self._admin()
        async with pool.acquire() as conn:
            return await conn.fetchval(query, *args)

    async def _execute(self, *statements: str) -> None:
        pool = await self._admin()
        async with pool.acquire() as conn:
            for statement in statements:
                await conn.execute(statement)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- catalogs ---------------------------------------------------------------------------

    async def database_exists(self, name: str) -> bool:
        return bool(await self._fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))

    async def role_exists(self, name: str) -> bool:
        return bool(await self._fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name))

    async def name_exists(self, name: str) -> bool:
        return bool(
            await self._fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)"
                " OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                name,
            )
        )

    # -- provisioning -----------------------------------------------------------------------

    async def ensure_database(self, name: str) -> bool:
        if await self.database_exists(name):
            return False
        try:
            # CREATE DATABASE cannot run in a transaction block; asyncpg sends it alone.
            await self._execute(f"CREATE DATABASE {quote_ident(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True

    async def ensure_login_role(self, role: str, *, database: str, verifier: str) -> None:
        r, db, pw = quote_ident(role), quote_ident(database), verifier_literal(verifier)
        attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        if not await self.role_exists(role):
            with contextlib.suppress(asyncpg.DuplicateObjectError):
                await self._execute(f"CREATE ROLE {r} {attrs} PASSWORD {pw}")
        await self._execute(
            f"ALTER ROLE {r} {attrs} PASSWORD {pw}",
            f"ALTER DATABASE {db} OWNER TO {r}",
            f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
            f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {r}",
        )

    async def set_password(self, role: str, verifier: str) -> None:
        await self._execute(f"ALTER ROLE {quote_ident(role)} PASSWORD {verifier_literal(verifier)}")

    async def ensure_team_tables(
        self, database: str, *, owner_role: str, tables: TeamTables
    ) -> None:
        conn = await asyncpg.connect(
            database_dsn(self.admin_dsn, database),
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
        )
        try:
            await ensure_team_tables(conn, owner_role=owner_role, tables=tables)
        finally:
            await conn.close()

    async def probe(self, database: str, role: str, password: str) -> None:
        conn = await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=role,
            password=password,
            database=database,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            ssl=False,
        )
        try:
            if await conn.fetchval("SELECT 1") != 1:
                raise RuntimeError("probe query returned an unexpected value")
        finally:
            await conn.close()

    # -- teardown ---------------------------------------------------------------------------

    async def terminate_sessions(
        self, *, database: str | None = None, role: str | None = None
    ) -> int:
        if database is None and role is None:
            return 0
        count = await self._fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid()"
            " AND (($1::text IS NOT NULL AND datname = $1)"
            " OR ($2::text IS NOT NULL AND usename = $2))",
            database,
            role,
        )
        return int(count or 0)

    async def drop_database(self, name: str) -> bool:
        if not await self.database_exists(name):
            return False
        await self.terminate_sessions(database=name)
        await self._execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        return True

    async def drop_role(self, name: str) -> bool:
        if not await self.role_exists(name):
            return False
        await self.terminate_sessions(role=name)
        await self._execute(f"DROP ROLE IF EXISTS {quote_ident(name)}")
        return True

    # -- safety -----------------------------------------------------------------------------

    async def trust_auth_problem(self) -> str | None:
        pool = await self._admin()
        async with pool.acquire() as conn:
            return TRUST_MESSAGE if await trusts_host_logins(conn) else None


async def trusts_host_logins(conn: asyncpg.Connection) -> bool:
    """Does the cluster's pg_hba accept host logins without a password? (needs a superuser)"""
    rows = await conn.fetch(
        "SELECT type, database, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
    )
    for row in rows:
        databases = set(row["database"] or ())
        if (
            row["type"].startswith("host")
            and row["auth_method"] == "trust"
            and databases != {"replication"}
        ):
            return True
    return False
