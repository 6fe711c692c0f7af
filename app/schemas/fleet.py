"""Bodies of the internal cluster API (API.md §8). The admin DSN goes in, never out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

# Printable text only: PostgreSQL cannot store NUL, and control characters have no place here.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
LabelKey = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=63, pattern=_PRINTABLE)
]
LabelValue = Annotated[str, StringConstraints(strict=True, max_length=255, pattern=_PRINTABLE)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=64)]
Host = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=255, pattern=_PRINTABLE)
]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Capacity = Annotated[int, Field(strict=True, ge=1, le=1_000_000)]


class ClusterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="A DNS label, as warehouse names (§4.1).")
    admin_url: str | None = Field(
        default=None,
        description="Superuser DSN `postgresql://user:password@host:port/db`; stored encrypted.",
    )
    public_host: Host | None = Field(default=None, description="Host shown in `connection`.")
    public_port: Port | None = Field(default=None, description="Port shown in `connection`.")
    max_warehouses: Capacity = 500
    labels: Labels = Field(default_factory=dict)


class ClusterPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["active", "paused"] | None = None
    max_warehouses: Capacity | None = None
    public_host: Host | None = None
    public_port: Port | None = None
    labels: Labels | None = None


class ClusterOut(BaseModel):
    name: str
    state: Literal["active", "paused", "draining", "drained"]
    public_host: str
    public_port: int
    max_warehouses: int
    warehouses: int = Field(description="Warehouses on it that are not `deleted`.")
    healthy: bool
    last_checked_at: datetime | None
    labels: dict[str, str]


class ClusterList(BaseModel):
    results: list[ClusterOut]


class WarehousePlacementOut(BaseModel):
    org_id: uuid.UUID
    database_name: str
    state: str
    cluster: str | None
