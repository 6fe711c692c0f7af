"""Webhook endpoints registered by a test must not outlive it: every later state change in the
session's database would otherwise be sent to them by whichever worker runs next."""

from __future__ import annotations

import asyncpg

from app.settings import Settings, to_plain_dsn


async def forget_webhook_endpoints(settings: Settings) -> None:
    conn = await asyncpg.connect(to_plain_dsn(settings.database_url))
    try:
        await conn.execute(
            "UPDATE webhook_endpoints SET deleted_at = now() WHERE deleted_at IS NULL"
        )
        await conn.execute("UPDATE webhook_deliveries SET done = true WHERE NOT done")
    finally:
        await conn.close()
