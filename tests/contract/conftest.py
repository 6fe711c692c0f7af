from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.settings import Settings
from tests.support.webhooks import forget_webhook_endpoints


@pytest.fixture(autouse=True)
def _no_webhook_endpoint_left(settings: Settings) -> Iterator[None]:
    """The fuzzer registers webhook endpoints at made-up URLs; drop them afterwards."""
    yield
    asyncio.run(forget_webhook_endpoints(settings))
