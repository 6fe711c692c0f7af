"""Snapshots of warehouses (API.md §9) and buckets waiting to be deleted."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class SnapshotKind(enum.StrEnum):
    MANUAL = "manual"
    FINAL = "final"


class SnapshotStatus(enum.StrEnum):
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"


class Snapshot(Base):
    """A `pg_dump --format=custom` of a warehouse database at `snapshots/<id>.dump` in the
    organization's bucket. Kept after its warehouse is deleted, until it expires.

    `warehouse_id` has no foreign key: the warehouse record may go (`delete-org` takes the
    snapshots with it, explicitly) while the object is still being deleted.
    """

    __tablename__ = "snapshots"
    __table_args__ = (
        Index("ix_snapshots_organization_id_created_at", "organization_id", "created_at"),
        Index("ix_snapshots_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    warehouse_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    database_name: Mapped[str] = mapped_column(String(63), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # A fixed, credential-safe sentence when `failed`.
    error: Mapped[str | None] = mapped_column(Text)
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # The worker's retry bookkeeping (never shown).
    attempt: Mapped[int] = mapped_column(nullable=False, server_default="0")
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def object_key(self) -> str:
        return snapshot_key(self.id)


def snapshot_key(snapshot_id: uuid.UUID) -> str:
    return f"snapshots/{snapshot_id}.dump"


class BucketDeletion(Base):
    """An organization whose bucket may no longer be needed (its records went first): the
    worker deletes the bucket's objects and the bucket, unless the organization needs it again
    (a live warehouse or a snapshot), then drops this row."""

    __tablename__ = "bucket_deletions"

    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
