"""Bodies of the membership actions (enable_backfill, onboard-team, check-schema-name),
property_values, and the internal warehouse rows API."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

MAX_ROWS_PER_BATCH = 1000


class EnableBackfillIn(BaseModel):
    # Optional here so a missing name gets the contract's own message from the validator.
    table_name: str | None = Field(
        default=None,
        max_length=1000,
        description="Suffix of the tables `events_<name>` / `persons_<name>`.",
    )


class BackfillEnabled(BaseModel):
    enabled: bool
    table_suffix: str


class OnboardTeamIn(BaseModel):
    schema_name: str | None = Field(
        default=None,
        max_length=1000,
        description="The environment's own schema in the warehouse database.",
    )


class TeamOnboarded(BaseModel):
    onboarded: bool
    schema_name: str


class SchemaNameAvailability(BaseModel):
    name: str
    available: bool


class PropertyValue(BaseModel):
    name: str


class PropertyValues(BaseModel):
    results: list[PropertyValue]
    refreshing: bool = False


class EventRow(BaseModel):
    """One row of the environment's events table."""

    model_config = ConfigDict(extra="forbid")

    uuid: uuid.UUID
    event: str = Field(min_length=1, max_length=1000)
    distinct_id: str = Field(min_length=1, max_length=1000)
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: AwareDatetime


class PersonRow(BaseModel):
    """One row of the environment's persons table."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    distinct_ids: list[str] = Field(max_length=1000)
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime


class WarehouseRowsIn(BaseModel):
    table: Literal["events", "persons"]
    # Each row is checked in one pass by the rows service (400 naming `rows.<i>.<field>`);
    # validating every value of every object here first would double the work of a batch.
    rows: list[Annotated[Any, WithJsonSchema({"type": "object"})]] = Field(
        max_length=MAX_ROWS_PER_BATCH,
        description=(
            "Rows to append. events: `{uuid, event, distinct_id, properties?, timestamp}`; "
            "persons: `{id, distinct_ids, properties?, created_at}`. Timestamps need a zone. "
            f"At most {MAX_ROWS_PER_BATCH} rows per call."
        ),
    )


class WarehouseRowsOut(BaseModel):
    inserted: int = Field(description="Rows newly stored; rows already present are not counted.")
