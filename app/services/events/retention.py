"""Webhook history retention: the outbox and the delivery log do not grow forever.

After `WEBHOOK_RETENTION_DAYS` (default 30, as long as the delivery log is worth reading; the
whole retry schedule spans about a day), the worker deletes delivery attempts (the rows of
`GET /internal/webhooks/{id}/deliveries`) and events none of whose deliveries is still
pending; an event's deliveries go with it (ON DELETE CASCADE). An event still being retried is
kept however old it is. Deletes run in batches, each its own short transaction, so pruning a
large backlog never holds long locks against the delivery loop.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

BATCH = 1000

_PRUNE_ATTEMPTS = text(
    """
DELETE FROM webhook_delivery_attempts WHERE id IN (
    SELECT id FROM webhook_delivery_attempts WHERE created_at < :cutoff LIMIT :batch
)
"""
)
_PRUNE_EVENTS = text(
    """
DELETE FROM webhook_events WHERE id IN (
    SELECT e.id FROM webhook_events e
    WHERE e.created_at < :cutoff
      AND NOT EXISTS (
          SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND NOT d.done)
    LIMIT :batch
)
"""
)


async def prune_webhook_history(
    sessionmaker: async_sessionmaker[AsyncSession],
    retention: timedelta,
    *,
    now: datetime | None = None,
    batch: int = BATCH,
) -> tuple[int, int]:
    """Delete what is past `retention`; returns (attempts, events) deleted."""
    cutoff = (now or datetime.now(UTC)) - retention
    totals = []
    for statement in (_PRUNE_ATTEMPTS, _PRUNE_EVENTS):
        total = 0
        while True:
            async with sessionmaker() as session, session.begin():
                result = await session.execute(statement, {"cutoff": cutoff, "batch": batch})
            deleted = int(getattr(result, "rowcount", 0) or 0)
            total += deleted
            if deleted < batch:
                break
        totals.append(total)
    return totals[0], totals[1]
