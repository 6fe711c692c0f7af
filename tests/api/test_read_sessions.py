"""Autocommit reads (`ReadSession`, and `Reads`, the asyncpg read pool) are only for actions
that cannot write."""

from __future__ import annotations

from typing import get_type_hints

from sqlalchemy import text

from app.core.db import build_read_sessionmaker
from app.core.statements import named
from app.pipeline.sessions import Reads, ReadSession
from app.routers import all_actions


def test_only_get_actions_take_a_read_session():
    takes = {
        action.name: action.method
        for action in all_actions()
        if any(
            hint in (ReadSession, Reads)
            for hint in get_type_hints(action.endpoint, include_extras=True).values()
        )
    }
    assert "running_activity" in takes and "job_stats" in takes
    assert set(takes.values()) == {"GET"}, takes
    assert "data_ops_dashboard" not in takes, "it creates the dashboard on first read"


async def test_a_read_session_sends_no_begin(app):
    maker = build_read_sessionmaker(app.state.read_engine)
    async with maker() as session:
        first = (await session.execute(text("SELECT txid_current()"))).scalar_one()
        second = (await session.execute(text("SELECT txid_current()"))).scalar_one()
    assert second != first, "each statement is its own transaction: no BEGIN was sent"


async def test_the_read_pool_runs_named_statements_each_in_its_own_transaction(app):
    reads = app.state.read_pool
    sql = "SELECT txid_current() AS txid, CAST(:a AS int) + :b AS total, 'x::y' AS literal"
    first = await reads.row(sql, {"a": 40, "b": 2})
    second = await reads.row(sql, {"a": 1, "b": 1})
    assert first is not None and second is not None
    assert (first["total"], second["total"], first["literal"]) == (42, 2, "x::y")
    assert second["txid"] != first["txid"]


def test_named_statements_number_parameters_once_each_and_leave_casts():
    statement = named("SELECT :a, CAST(:b AS int), CAST(:a AS text), x::date, '\\:lit' FROM t")
    assert statement.sql == "SELECT $1, CAST($2 AS int), CAST($1 AS text), x::date, ':lit' FROM t"
    assert statement.names == ("a", "b")
    assert statement.args({"b": 2, "a": 1, "unused": 3}) == (1, 2)
