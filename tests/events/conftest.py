"""Webhook tests share the session's service database: each test leaves no endpoint behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import build_engine, build_sessionmaker
from app.settings import Settings
from tests.support.webhooks import forget_webhook_endpoints


@pytest.fixture(autouse=True)
async def _no_webhook_endpoint_left(settings: Settings) -> AsyncIterator[None]:
    yield
    await forget_webhook_endpoints(settings)


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = build_engine(settings)
    try:
        yield build_sessionmaker(engine)
    finally:
        await engine.dispose()
