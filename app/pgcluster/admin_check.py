"""Is this admin DSN fit to hold warehouses? Checked before a cluster is registered (API.md §8).

Connects for real, then asks whether the role is a superuser and whether `pg_hba` trusts host
logins. Answers are fixed sentences: an error's text (which may quote the DSN or the server's
words) never reaches the caller or a log line; only its kind does.
"""

from __future__ import annotations

import socket

import asyncpg

from app.pgcluster.postgres import trusts_host_logins

CONNECT_TIMEOUT = 5.0
NOT_SUPERUSER = "The cluster's admin role must be a superuser"
TRUSTS_LOGINS = "The cluster trusts host logins, so passwords would not be checked"


def connect_failure_kind(exc: BaseException) -> str:
    """A short, secret-free name for why a connection failed."""
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "password authentication failed"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return "the server refused the login"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database does not exist"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return "network error"
    if isinstance(exc, ValueError | asyncpg.ClientConfigurationError):
        return "invalid connection URL"
    if isinstance(exc, asyncpg.PostgresError):
        return "the server refused the connection"
    return type(exc).__name__


async def admin_url_problem(dsn: str, *, allow_trust: bool) -> str | None:
    """The §8 refusal detail for this admin DSN, or None when it may be registered."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, command_timeout=10)
    except Exception as exc:
        return f"Could not connect to the cluster: {connect_failure_kind(exc)}"
    try:
        superuser = await conn.fetchval(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        )
        if not superuser:
            return NOT_SUPERUSER
        if not allow_trust and await trusts_host_logins(conn):
            return TRUSTS_LOGINS
        return None
    except Exception as exc:
        return f"Could not connect to the cluster: {connect_failure_kind(exc)}"
    finally:
        await conn.close()


async def probe_admin_url(dsn: str) -> bool:
    """The health probe: connect and run `SELECT 1`."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, command_timeout=CONNECT_TIMEOUT)
    except Exception:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    except Exception:
        return False
    finally:
        await conn.close()
