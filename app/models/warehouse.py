"""The managed warehouse of an organization and the environments that write into it."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin


class WarehouseState(enum.StrEnum):
    PENDING = "pending"
    PROVISIONING = "provisioning"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"
    MIGRATING = "migrating"  # a move between clusters runs (API.md §8)


class ManagedWarehouse(CreatedAtMixin, Base):
    """One row per organization (unique), kept through `deleted` until `delete-org` frees it.

    `database_name` is unique across rows, so a name stays with its organization until then.
    `generation` grows on every provision/deprovision request; worker job ids derive from it.
    """

    __tablename__ = "managed_warehouses"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    database_name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    login_role: Mapped[str] = mapped_column(String(63), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    s3_state: Mapped[str] = mapped_column(String(16), nullable=False)
    metadata_store_state: Mapped[str] = mapped_column(String(16), nullable=False)
    identity_state: Mapped[str] = mapped_column(String(16), nullable=False)
    secrets_state: Mapped[str] = mapped_column(String(16), nullable=False)
    status_message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    storage_location: Mapped[str | None] = mapped_column(Text)
    # The cluster it is placed on (API.md §8); NULL once that cluster's record is removed,
    # which only happens when the warehouse is `deleted`.
    cluster: Mapped[str | None] = mapped_column(
        ForeignKey("warehouse_clusters.name", onupdate="CASCADE", ondelete="SET NULL"),
        index=True,
        server_default="default",
    )
    generation: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Names (database + role) of earlier failed attempts still to be removed from the cluster.
    stale_names: Mapped[list[str]] = mapped_column(
        ARRAY(String(63)), nullable=False, server_default="{}"
    )
    # The final snapshot the running teardown takes first (API.md §9); null = none to take.
    final_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The snapshot a restore brings back before the probe; null for a plain provision.
    restore_snapshot_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class WarehouseTeamMembership(CreatedAtMixin, Base):
    """An environment writing into its organization's warehouse: table suffix or own schema."""

    __tablename__ = "warehouse_team_memberships"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    table_suffix: Mapped[str | None] = mapped_column(String(55))
    schema_name: Mapped[str | None] = mapped_column(String(63))
    backfill_enabled: Mapped[bool] = mapped_column(nullable=False, server_default="true")
    tables_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# One name per organization across both layouts: a table suffix and a schema name share the
# namespace (API.md §4.2), so two environments can never be handed the same name, even when
# their requests race.
Index(
    "uq_warehouse_team_memberships_organization_id_name",
    WarehouseTeamMembership.organization_id,
    func.coalesce(WarehouseTeamMembership.schema_name, WarehouseTeamMembership.table_suffix),
    unique=True,
)
