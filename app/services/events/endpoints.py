"""Webhook endpoints as the internal API manages them (API.md §10), and their deliveries log.

A secret is `whsec_` + base64 of 24-64 random bytes. It is stored encrypted (SecretBox, purpose
`webhook-secret`), shown once in the answer to the registration, and never listed or logged.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.crypto import SecretBox
from app.core.errors import NotFound, ValidationFailed
from app.models import WebhookDeliveryAttempt, WebhookEndpoint
from app.services.events.outbox import EVENT_TYPES

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_PURPOSE = "warehouse-api/webhook-secret/v1"  # noqa: S105 - a key-derivation label
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
GENERATED_SECRET_BYTES = 32
MAX_URL_LENGTH = 2048


def secret_box(secret_key: str) -> SecretBox:
    return SecretBox(secret_key, SECRET_PURPOSE)


def secret_bytes(secret: str) -> bytes | None:
    """The key of a `whsec_...` secret, or None when it is not one (wrong prefix, base64, size)."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        return None
    return raw


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def check_url(url: str) -> str:
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"url must be at most {MAX_URL_LENGTH} characters", attr="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationFailed("url must not contain spaces or control characters", attr="url")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise ValidationFailed("url is not a valid URL", attr="url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url must be an http or https URL with a host", attr="url")
    return url


def check_events(events: list[str] | None) -> list[str]:
    """The effective set, in the order of API.md §10. None = all of them."""
    if events is None:
        return list(EVENT_TYPES)
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"events: unknown event type; use any of {', '.join(EVENT_TYPES)}", attr="events"
        )
    if not events:
        raise ValidationFailed("events must name at least one event type", attr="events")
    return [e for e in EVENT_TYPES if e in events]


@dataclass(frozen=True)
class Registered:
    endpoint: WebhookEndpoint
    secret: str


class WebhookEndpoints:
    def __init__(self, session: AsyncSession, secret_key: str) -> None:
        self.session = session
        self.box = secret_box(secret_key)

    async def register(self, url: str, events: list[str] | None, secret: str | None) -> Registered:
        url = check_url(url)
        effective = check_events(events)
        if secret is None:
            secret = generate_secret()
        elif secret_bytes(secret) is None:
            raise ValidationFailed(
                f"secret must be '{SECRET_PREFIX}' followed by the base64 of "
                f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes",
                attr="secret",
            )
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            url=url,
            events=effective,
            secret_ciphertext=self.box.encrypt(secret.encode()),
        )
        self.session.add(endpoint)
        await self.session.flush()
        return Registered(endpoint, secret)

    async def live(self) -> list[WebhookEndpoint]:
        rows = await self.session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return list(rows)

    async def live_id(self, endpoint_id: str) -> uuid.UUID:
        try:
            parsed = uuid.UUID(endpoint_id)
        except ValueError:
            raise NotFound("Webhook not found.") from None
        found = await self.session.scalar(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.id == parsed, WebhookEndpoint.deleted_at.is_(None)
            )
        )
        if found is None:
            raise NotFound("Webhook not found.")
        return parsed

    async def delete(self, endpoint_id: str) -> None:
        """Gone at once: pending deliveries to it are dropped by the worker, not sent."""
        parsed = await self.live_id(endpoint_id)
        await self.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == parsed, WebhookEndpoint.deleted_at.is_(None))
            .values(deleted_at=func.now())
        )

    async def attempts(self, endpoint_id: uuid.UUID, limit: int) -> list[WebhookDeliveryAttempt]:
        """Newest first: one row per attempt that ended."""
        rows = await self.session.scalars(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.endpoint_id == endpoint_id)
            .order_by(WebhookDeliveryAttempt.id.desc())
            .limit(limit)
        )
        return list(rows)
