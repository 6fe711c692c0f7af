"""What each step of a move does on the clusters (API.md §8). No service-database access here.

Every action checks the catalogs first, so it can run again after a crash at any line: the
machine (`move_machine.py`) records a step only after its action returned.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from app.pgcluster import copy
from app.pgcluster.binaries import BinariesNotFound
from app.pgcluster.sql import database_dsn
from app.pgcluster.team_tables import TeamTables, ensure_team_tables

FORWARD_STEPS = (
    "freeze",
    "claim",
    "role",
    "copy",
    "verify",
    "switch",
    "drop-source",
    "tables",
    "unfreeze",
)
ROLLBACK_STEPS = ("undo-target", "undo-freeze")
# Steps that only change the service database (done in the recording transaction).
RECORD_ONLY = frozenset({"switch"})


class MoveRefused(RuntimeError):
    """A failure that trying again cannot fix: the move rolls back at once."""


@dataclass(frozen=True)
class MoveContext:
    """What a step needs, copied out of the rows so no ORM object crosses a commit."""

    database: str
    role: str
    source_dsn: str
    target_dsn: str | None
    target_claimed: bool
    tables: tuple[tuple[int, str | None, str | None], ...] = ()
    stale_names: tuple[str, ...] = ()


async def act(step: str, ctx: MoveContext) -> object:
    if step == "freeze":
        return await copy.freeze_role(ctx.source_dsn, ctx.role)
    if step == "undo-freeze":
        return await copy.unfreeze_role(ctx.source_dsn, ctx.role)
    if step == "drop-source":
        await copy.drop_warehouse(ctx.source_dsn, ctx.database, ctx.role)
        return None
    target = ctx.target_dsn
    if target is None:
        raise MoveRefused("no target cluster")
    if step == "claim":
        if any(await copy.holds_name(target, ctx.database, ctx.role)) and not ctx.target_claimed:
            raise MoveRefused("the target cluster already holds a database or role of that name")
        return None
    if step == "role":
        verifier = await copy.read_verifier(ctx.source_dsn, ctx.role)
        await copy.ensure_role(target, ctx.role, verifier, login=False)
        return None
    if step == "copy":
        await _copy(target, ctx)
        return None
    if step == "verify":
        before, after = await asyncio.gather(
            copy.row_counts(ctx.source_dsn, ctx.database), copy.row_counts(target, ctx.database)
        )
        if copy.count_differences(before, after):
            raise MoveRefused("row counts differ between the source and the target")
        return sum(before.values())
    if step == "tables":
        await _ensure_tables(target, ctx)
        return tuple(t[0] for t in ctx.tables)
    if step == "unfreeze":
        if not await copy.unfreeze_role(target, ctx.role):
            raise RuntimeError("the login role is missing on the target cluster")
        return None
    if step == "undo-target":
        if ctx.target_claimed:
            await copy.drop_warehouse(target, ctx.database, ctx.role)
        return None
    raise ValueError(f"unknown move step {step}")


async def _copy(target: str, ctx: MoveContext) -> None:
    """Read both servers at once, then start pg_dump while the target database is (re)made:
    the copy's fixed costs overlap instead of adding up."""
    shape, source_major, target_major = await asyncio.gather(
        copy.database_shape(ctx.source_dsn, ctx.database),
        copy.server_major(ctx.source_dsn),
        copy.server_major(target),
    )

    async def prepare() -> None:
        await copy.recreate_database(target, ctx.database, owner=ctx.role, shape=shape)

    try:
        await copy.stream_copy(
            ctx.source_dsn,
            target,
            ctx.database,
            role=ctx.role,
            source_major=source_major,
            target_major=target_major,
            prepare_target=prepare,
        )
    except BinariesNotFound as exc:
        raise MoveRefused(str(exc)) from exc


async def _ensure_tables(target_dsn: str, ctx: MoveContext) -> None:
    """Tables of environments that joined while the warehouse was moving."""
    if not ctx.tables:
        return
    conn = await asyncpg.connect(database_dsn(target_dsn, ctx.database), timeout=10)
    try:
        for _id, suffix, schema in ctx.tables:
            layout = TeamTables.for_layout(table_suffix=suffix, schema_name=schema)
            await ensure_team_tables(conn, owner_role=ctx.role, tables=layout)
    finally:
        await conn.close()


async def remove_leftovers(
    source_dsn: str, database: str, role: str, stale: tuple[str, ...]
) -> None:
    """A failed warehouse re-pointed by a drain: nothing of it stays on the drained cluster."""
    await copy.drop_warehouse(source_dsn, database, role)
    for name in stale:
        await copy.drop_warehouse(source_dsn, name)
