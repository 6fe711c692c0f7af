"""Bodies of the snapshot and restore actions (API.md §9)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class SnapshotOut(BaseModel):
    id: uuid.UUID
    kind: Literal["manual", "final"]
    status: Literal["running", "ready", "failed"]
    database_name: str
    size_bytes: int | None = Field(description="Size of the dump object; null until ready.")
    sha256: str | None = Field(
        description="sha256 of the dump object (64 lowercase hex characters); null until ready."
    )
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime


class SnapshotListOut(BaseModel):
    results: list[SnapshotOut] = Field(description="Newest first.")


class SnapshotStartedOut(BaseModel):
    snapshot_id: uuid.UUID
    operation_id: uuid.UUID = Field(description="The `snapshot` operation (see `operations`).")


class RestoreIn(BaseModel):
    snapshot_id: str | None = Field(
        default=None, description="The snapshot to restore (a uuid).", max_length=100
    )
    database_name: str | None = Field(
        default=None,
        description="Name of the new warehouse; default: the snapshot's `database_name`.",
        examples=["acme-restored"],
    )


class RestoreOut(BaseModel):
    status: str = Field(examples=["restore started"])
    org: uuid.UUID
    username: str = Field(description="The new warehouse's login role.")
    password: str = Field(description="The new root password. Shown only here.")
    operation_id: uuid.UUID = Field(description="The `restore` operation (see `operations`).")


class DeprovisionIn(BaseModel):
    # Unknown fields are refused (by the endpoint, see `unknown_fields`): a misspelt
    # `skip_final_snapshot` is an error, not a final snapshot taken against the caller's intent.
    model_config = ConfigDict(extra="allow")

    skip_final_snapshot: StrictBool = Field(
        default=False,
        description="Tear down a `ready` warehouse without taking its final snapshot first.",
    )
    personal_api_key: str | None = Field(
        default=None, description="The personal API key, when not sent as a Bearer token."
    )

    def unknown_fields(self) -> list[str]:
        return sorted(self.model_extra or {})
