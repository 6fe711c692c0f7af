"""Copying a warehouse between two real password-checking clusters (app/pgcluster/copy.py)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import pytest

from app.devtools.embedded import PasswordCheckingCluster
from app.pgcluster import copy
from app.pgcluster.scram import scram_verifier
from app.pgcluster.sql import database_dsn, quote_ident
from app.pgcluster.team_tables import TeamTables, ensure_team_tables


async def _admin(cluster: PasswordCheckingCluster, database: str = "postgres") -> Any:
    return await asyncpg.connect(database_dsn(cluster.admin_dsn, database))


async def _login(cluster: PasswordCheckingCluster, name: str, password: str) -> Any:
    return await asyncpg.connect(
        host="127.0.0.1", port=cluster.port, user=name, password=password, database=name
    )


async def _make_warehouse(cluster: PasswordCheckingCluster, name: str, password: str) -> None:
    """What provisioning leaves behind, plus rows, a table of the customer's own and a view."""
    conn = await _admin(cluster)
    try:
        await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
        await conn.execute(
            f"CREATE ROLE {quote_ident(name)} LOGIN PASSWORD '{scram_verifier(password)}'"
        )
        await conn.execute(f"ALTER DATABASE {quote_ident(name)} OWNER TO {quote_ident(name)}")
        await conn.execute(f"REVOKE ALL ON DATABASE {quote_ident(name)} FROM PUBLIC")
    finally:
        await conn.close()
    conn = await _admin(cluster, name)
    try:
        for layout in (
            TeamTables.for_layout(table_suffix="web", schema_name=None),
            TeamTables.for_layout(table_suffix=None, schema_name="mobile"),
        ):
            await ensure_team_tables(conn, owner_role=name, tables=layout)
    finally:
        await conn.close()
    conn = await _login(cluster, name, password)
    try:
        await conn.execute(
            "INSERT INTO events_web SELECT gen_random_uuid(), 'pageview', 'u' || i,"
            " jsonb_build_object('i', i), now() FROM generate_series(1, 2500) i"
        )
        await conn.execute(
            "INSERT INTO mobile.persons SELECT gen_random_uuid(), ARRAY['d' || i], '{}', now()"
            " FROM generate_series(1, 40) i"
        )
        await conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO notes (body) SELECT 'n' FROM generate_series(1, 7)")
        await conn.execute("CREATE VIEW recent AS SELECT * FROM events_web LIMIT 5")
    finally:
        await conn.close()


async def _cleanup(*clusters: PasswordCheckingCluster, name: str) -> None:
    for cluster in clusters:
        await copy.drop_warehouse(cluster.admin_dsn, name)


async def test_copy_keeps_rows_owner_and_password(
    warehouse_cluster: PasswordCheckingCluster, second_cluster: PasswordCheckingCluster
) -> None:
    source, target = warehouse_cluster.admin_dsn, second_cluster.admin_dsn
    name = "mv-" + uuid.uuid4().hex[:10]
    password = secrets.token_urlsafe(32)
    await _make_warehouse(warehouse_cluster, name, password)
    session = await _login(warehouse_cluster, name, password)
    try:
        # Freeze: no new logins, and the open session is ended.
        assert await copy.freeze_role(source, name) == 1
        assert await copy.freeze_role(source, name) == 0  # again: nothing left to do
        with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError):
            await _login(warehouse_cluster, name, password)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await session.fetchval("SELECT 1")
    finally:
        session.terminate()

    verifier = await copy.read_verifier(source, name)
    assert verifier.startswith("SCRAM-SHA-256$")
    shape = await copy.database_shape(source, name)
    for _ in range(2):  # every step may run again
        await copy.ensure_role(target, name, verifier)
        await copy.recreate_database(target, name, owner=name, shape=shape)
        await copy.stream_copy(source, target, name, role=name)
    before = await copy.row_counts(source, name)
    after = await copy.row_counts(target, name)
    assert before == after
    assert before["public.events_web"] == 2500
    assert after["mobile.persons"] == 40 and after["public.notes"] == 7
    assert copy.count_differences(before, after) == []

    # Frozen on the target too until the unfreeze; then the same password logs in there.
    with pytest.raises(asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        await _login(second_cluster, name, password)
    assert await copy.unfreeze_role(target, name) is True
    conn = await _login(second_cluster, name, password)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events_web") == 2500
        assert await conn.fetchval("SELECT count(*) FROM recent") == 5
        await conn.execute("INSERT INTO notes (body) VALUES ('after the move')")
        assert await conn.fetchval("SELECT max(id) FROM notes") == 8  # the sequence came along
        owners = await conn.fetch(
            "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('public', 'mobile')"
        )
        assert [r["owner"] for r in owners] == [name]
    finally:
        await conn.close()
    with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
        await _login(second_cluster, name, "not-" + password)

    await copy.drop_warehouse(source, name)
    await copy.drop_warehouse(source, name)
    assert await copy.holds_name(source, name) == (False, False)
    assert await copy.holds_name(target, name) == (True, True)
    await _cleanup(second_cluster, name=name)


async def test_a_failed_copy_says_which_program_and_leaves_no_rows(
    warehouse_cluster: PasswordCheckingCluster, second_cluster: PasswordCheckingCluster
) -> None:
    source, target = warehouse_cluster.admin_dsn, second_cluster.admin_dsn
    name = "mv-" + uuid.uuid4().hex[:10]
    password = secrets.token_urlsafe(32)
    await _make_warehouse(warehouse_cluster, name, password)
    try:
        shape = await copy.database_shape(source, name)
        await copy.ensure_role(target, name, await copy.read_verifier(source, name))
        await copy.recreate_database(target, name, owner=name, shape=shape)
        conn = await _admin(second_cluster, name)
        try:  # a clash makes the one-transaction restore fail part-way
            await conn.execute("CREATE TABLE public.notes (x int)")
        finally:
            await conn.close()
        with pytest.raises(copy.CopyError, match="pg_restore exited with status 1") as info:
            await copy.stream_copy(source, target, name, role=name)
        assert password not in str(info.value)
        assert second_cluster.admin_password not in str(info.value)
        assert await copy.row_counts(target, name) == {"public.notes": 0}
        with pytest.raises(copy.CopyError, match="no password"):
            await copy.read_verifier(source, "no_such_role")
    finally:
        await _cleanup(warehouse_cluster, second_cluster, name=name)
