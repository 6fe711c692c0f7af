"""Bodies of the fleet's move and drain calls (API.md §8)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # No length bound here: a name no cluster can have is an unknown cluster, 404 (API.md §8).
    cluster: str = Field(min_length=1, description="Name of the target cluster.", examples=["b"])


class MoveOut(BaseModel):
    operation_id: uuid.UUID


class DrainOut(BaseModel):
    operation_ids: list[uuid.UUID] = Field(description="One `move` operation per warehouse.")
