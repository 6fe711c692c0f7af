"""Bodies of the managed-warehouse actions (API.md §4.1-4.2)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

StateName = Literal["pending", "provisioning", "ready", "failed", "deleting", "deleted"]
# `state` also reads `migrating` while a move between clusters runs (API.md §8); the
# sub-states never do.
WarehouseStateName = Literal[
    "pending", "provisioning", "ready", "failed", "deleting", "deleted", "migrating"
]


class NameAvailability(BaseModel):
    name: str
    available: bool
    reason: str | None = Field(default=None, description="Why the name is not available.")


class ProvisionIn(BaseModel):
    database_name: str | None = Field(
        default=None,
        description="Warehouse name: a DNS label of 3-63 characters starting with a letter.",
        examples=["acme-warehouse"],
    )
    table_name: str | None = Field(
        default=None,
        description="Suffix of this environment's tables (`events_<name>`, `persons_<name>`).",
        examples=["acme"],
    )


class ProvisionOut(BaseModel):
    status: str = Field(examples=["provisioning started"])
    org: uuid.UUID
    username: str = Field(description="The warehouse's login role.")
    password: str = Field(description="The root password. Shown only here and by reset-password.")
    operation_id: uuid.UUID = Field(description="The `provision` operation (see `operations`).")


class PasswordOut(BaseModel):
    username: str
    password: str = Field(description="The new root password; the old one no longer works.")


class OrgStatusOut(BaseModel):
    status: str
    org: uuid.UUID


class DeprovisionOut(OrgStatusOut):
    operation_id: uuid.UUID | None = Field(
        description="The `deprovision` operation: the running one, or the one that deleted it."
    )


class WarehouseConnection(BaseModel):
    host: str
    port: int
    database: str
    username: str


class WarehouseStatusOut(BaseModel):
    org_id: uuid.UUID
    state: WarehouseStateName
    status_message: str
    s3_state: StateName
    metadata_store_state: StateName
    identity_state: StateName
    secrets_state: StateName
    ready_at: datetime | None
    failed_at: datetime | None
    connection: WarehouseConnection | None = Field(
        description="How to connect, only while `state` is `ready`. Never holds a password."
    )
    has_backfill: bool = Field(description="Whether the calling environment writes into it.")
    table_suffix: str | None = Field(description="The calling environment's table suffix.")
