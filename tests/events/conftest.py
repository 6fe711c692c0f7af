"""Webhook tests share the session's service database: each test leaves no endpoint behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import build_engine, build_sessionmaker
from app.settings import Settings


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = build_engine(settings)
    try:
        yield build_sessionmaker(engine)
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_endpoints SET deleted_at = now() WHERE deleted_at IS NULL")
            )
            await conn.execute(text("UPDATE webhook_deliveries SET done = true WHERE NOT done"))
        await engine.dispose()
