"""Webhook history retention (app/services/events/retention.py): old delivery attempts and
finished events go; recent ones, and an old event still being retried, stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.crypto import SecretBox
from app.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint, WebhookEvent
from app.services.events.outbox import new_event_id
from app.services.events.retention import prune_webhook_history

RETENTION = timedelta(days=30)


async def _event(
    session: AsyncSession, endpoint_id: uuid.UUID, *, age: timedelta, done: bool
) -> str:
    created = datetime.now(UTC) - age
    event = WebhookEvent(id=new_event_id(), type="warehouse.ready", payload={}, created_at=created)
    session.add(event)
    await session.flush()
    session.add(
        WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, done=done, created_at=created)
    )
    session.add(
        WebhookDeliveryAttempt(
            event_id=event.id,
            endpoint_id=endpoint_id,
            type="warehouse.ready",
            attempt=1,
            status_code=500,
            created_at=created,
        )
    )
    await session.flush()
    return event.id


async def test_old_history_goes_and_pending_or_recent_history_stays(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as session, session.begin():
        endpoint = WebhookEndpoint(
            url="http://127.0.0.1:9/hook",
            events=["warehouse.ready"],
            secret_ciphertext=SecretBox("k", "test").encrypt(b"whsec_x"),
        )
        session.add(endpoint)
        await session.flush()
        old_done = [
            await _event(session, endpoint.id, age=timedelta(days=31), done=True) for _ in range(5)
        ]
        old_pending = await _event(session, endpoint.id, age=timedelta(days=40), done=False)
        recent = await _event(session, endpoint.id, age=timedelta(days=29), done=True)
        endpoint_id = endpoint.id

    attempts, events = await prune_webhook_history(sessionmaker, RETENTION, batch=2)

    async with sessionmaker() as session:
        kept_events = set(
            await session.scalars(
                select(WebhookEvent.id).where(WebhookEvent.id.in_([*old_done, old_pending, recent]))
            )
        )
        kept_attempts = set(
            await session.scalars(
                select(WebhookDeliveryAttempt.event_id).where(
                    WebhookDeliveryAttempt.endpoint_id == endpoint_id
                )
            )
        )
        deliveries = await session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.event_id.in_(old_done))
        )
    assert kept_events == {old_pending, recent}
    assert kept_attempts == {recent}  # the log of what happened past retention goes too
    assert deliveries == 0  # with their events
    assert (attempts, events) == (6, 5)
