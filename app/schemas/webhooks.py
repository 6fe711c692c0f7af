"""Bodies of the internal webhooks API (API.md §10). Objects have exactly the listed fields."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.schemas.identity import StrictBody


class WebhookCreate(StrictBody):
    url: str = Field(max_length=4096, description="http or https URL of the receiver")
    events: list[str] | None = Field(
        default=None, max_length=64, description="Event types to send (default: all 8)"
    )
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="`whsec_` + base64 of 24-64 bytes; generated when missing",
    )


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown only in this answer")


class WebhookList(BaseModel):
    results: list[WebhookOut]


class DeliveryOut(BaseModel):
    event_id: str
    type: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered_at: datetime | None
    next_attempt_at: datetime | None


class DeliveryList(BaseModel):
    results: list[DeliveryOut]
