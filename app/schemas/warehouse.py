"""Bodies of the managed-warehouse actions."""

from __future__ import annotations

from pydantic import BaseModel, Field


class NameAvailability(BaseModel):
    name: str
    available: bool
    reason: str | None = Field(default=None, description="Why the name is not available.")
