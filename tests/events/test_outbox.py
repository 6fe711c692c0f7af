"""The outbox: `emit_event` writes the event and its deliveries in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import SecretBox
from app.core.db import build_engine, build_sessionmaker
from app.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.services.events.outbox import emit_event, event_body
from app.settings import Settings


@pytest.fixture
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = build_engine(settings)
    try:
        async with build_sessionmaker(engine)() as s:
            yield s
    finally:
        await engine.dispose()


async def _endpoint(
    session: AsyncSession, events: list[str], *, deleted: bool = False
) -> uuid.UUID:
    endpoint = WebhookEndpoint(
        url="http://127.0.0.1:9/hook",
        events=events,
        secret_ciphertext=SecretBox("k", "test").encrypt(b"whsec_x"),
        deleted_at=func.now() if deleted else None,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint.id


async def test_event_goes_to_subscribed_endpoints_in_the_callers_transaction(
    session: AsyncSession,
) -> None:
    await session.execute(delete(WebhookEndpoint))
    ready = await _endpoint(session, ["warehouse.ready", "warehouse.failed"])
    await _endpoint(session, ["snapshot.ready"])
    await _endpoint(session, ["warehouse.ready"], deleted=True)
    org = uuid.uuid4()
    await emit_event(session, "warehouse.ready", org_id=org, state="ready")
    event = (
        await session.scalars(
            select(WebhookEvent).where(WebhookEvent.payload["data"]["org_id"].astext == str(org))
        )
    ).one()
    assert event.type == "warehouse.ready"
    assert event.id.startswith("msg_")
    assert event.payload["data"] == {"org_id": str(org), "state": "ready"}
    body = event_body(event.payload)
    assert body.startswith(b'{"type":"warehouse.ready","timestamp":"')
    deliveries = (
        await session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))
    ).all()
    assert [(d.endpoint_id, d.event_id, d.attempt, d.done) for d in deliveries] == [
        (ready, event.id, 0, False)
    ]
    # Nothing committed: a rollback takes the event with it.
    event_id = event.id
    await session.rollback()
    assert await session.get(WebhookEvent, event_id) is None


async def test_cluster_drained_carries_the_cluster_only(session: AsyncSession) -> None:
    await session.execute(delete(WebhookEndpoint))
    await _endpoint(session, ["cluster.drained"])
    before = await session.scalar(select(func.count()).select_from(WebhookEvent))
    assert before is not None
    await emit_event(session, "cluster.drained", org_id=None, cluster="eu-1")
    event = (
        await session.scalars(select(WebhookEvent).where(WebhookEvent.type == "cluster.drained"))
    ).one()
    assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == before + 1
    assert event.payload["data"] == {"cluster": "eu-1"}
    await session.rollback()


async def test_no_endpoint_no_event(session: AsyncSession) -> None:
    await session.execute(delete(WebhookEndpoint))
    before = await session.scalar(select(func.count()).select_from(WebhookEvent))
    await emit_event(session, "warehouse.failed", org_id=uuid.uuid4(), state="failed")
    assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == before
    await session.rollback()


async def test_unknown_type_is_a_programming_error(session: AsyncSession) -> None:
    with pytest.raises(ValueError):
        await emit_event(session, "warehouse.exploded", org_id=uuid.uuid4())
