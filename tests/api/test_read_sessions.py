"""Autocommit read sessions (`ReadSession`) are only for actions that cannot write."""

from __future__ import annotations

from typing import get_type_hints

from sqlalchemy import text

from app.core.db import build_read_sessionmaker
from app.pipeline.sessions import ReadSession
from app.routers import all_actions


def test_only_get_actions_take_a_read_session():
    takes = {
        action.name: action.method
        for action in all_actions()
        if any(
            hint == ReadSession
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
