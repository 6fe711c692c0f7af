"""Bodies of the `operations` actions (API.md §7)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class OperationOut(BaseModel):
    id: uuid.UUID
    action: Literal["provision", "deprovision", "move", "snapshot", "restore"]
    status: Literal["running", "succeeded", "failed"]
    org_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = Field(description="Null while the operation runs.")
    error: str | None = Field(
        description="Why it failed: the step that gave up and the kind of error; else null."
    )


class OperationPageOut(BaseModel):
    results: list[OperationOut]
    next: str | None = Field(description="Query string of the next page (`?limit=L&offset=O`).")
    previous: str | None = Field(description="Query string of the previous page, or null.")
