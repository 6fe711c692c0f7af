"""Snapshot dumps: `pg_dump --format=custom` out as a byte stream, and a byte stream into
`pg_restore` (API.md §9).

Both run the cluster's own major version of the program (`binaries.find_binary`) with the admin
DSN in the environment (never argv), and die with this process. Bytes pass through in chunks:
nothing is held whole in memory or written to local disk. Errors name the program and its exit
status only (no DSN, no SQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator

from app.pgcluster.binaries import find_binary, libpq_env
from app.pgcluster.copy import _die_with_parent, _tail, server_major

logger = logging.getLogger(__name__)
CHUNK_SIZE = 1024 * 1024


class DumpFailed(RuntimeError):
    """pg_dump or pg_restore failed; the message is safe to show."""


class DigestMismatch(RuntimeError):
    """The object read back does not have the sha256 recorded when it was written."""


async def dump_database(admin_dsn: str, database: str) -> AsyncIterator[bytes]:
    """Yield `pg_dump --format=custom` of `database`, chunk by chunk; raises DumpFailed at the
    end when pg_dump did not succeed. Closing the iterator early kills pg_dump."""
    program = find_binary("pg_dump", await server_major(admin_dsn))
    proc = await asyncio.create_subprocess_exec(
        str(program),
        "--format=custom",
        "--no-owner",
        "--no-acl",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=libpq_env(admin_dsn, database=database),
        preexec_fn=_die_with_parent,
        limit=CHUNK_SIZE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read())
    try:
        while True:
            chunk = await proc.stdout.read(CHUNK_SIZE)
            if not chunk:
                break
            yield chunk
        code = await proc.wait()
        if code != 0:
            logger.warning(
                "pg_dump failed", extra={"exit_status": code, "stderr": _tail(await errors)}
            )
            raise DumpFailed(f"pg_dump exited with status {code}")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if not errors.done():
            errors.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await errors


async def restore_database(
    admin_dsn: str,
    database: str,
    *,
    role: str,
    chunks: AsyncIterable[bytes],
    expected_sha256: str,
) -> int:
    """Feed a custom-format dump into `pg_restore` as `role` (who then owns every object) in
    one transaction, hashing on the way. The digest is compared before pg_restore is allowed to
    see the end of its input: a mismatch kills it, so nothing of a bad object is committed.
    Returns the bytes restored."""
    program = find_binary("pg_restore", await server_major(admin_dsn))
    proc = await asyncio.create_subprocess_exec(
        str(program),
        "--no-owner",
        "--no-acl",
        f"--role={role}",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={database}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=libpq_env(admin_dsn, database=database),
        preexec_fn=_die_with_parent,
    )
    assert proc.stdin is not None and proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read())
    digest = hashlib.sha256()
    size = 0
    try:
        held: bytes | None = None  # the last chunk waits until the digest is known
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                if held is not None:
                    proc.stdin.write(held)
                    await proc.stdin.drain()
                held = chunk
            if digest.hexdigest() != expected_sha256:
                raise DigestMismatch("the snapshot object failed its sha256 check")
            if held is not None:
                proc.stdin.write(held)
                await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # pg_restore stopped reading: its exit status says why
        code = await proc.wait()
        if code != 0:
            logger.warning(
                "pg_restore failed", extra={"exit_status": code, "stderr": _tail(await errors)}
            )
            raise DumpFailed(f"pg_restore exited with status {code}")
        return size
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if not errors.done():
            errors.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await errors
