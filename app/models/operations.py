"""Operations: every asynchronous change to a warehouse, as the API reports it (API.md §7)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin


class OperationAction(enum.StrEnum):
    PROVISION = "provision"
    DEPROVISION = "deprovision"
    MOVE = "move"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"


class OperationStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Operation(CreatedAtMixin, Base):
    """One row per operation, written in the transaction of the change it stands for.

    `warehouse_id` outlives the warehouse record (`delete-org`): it is set to NULL then, and
    the organization keeps its operations.
    """

    __tablename__ = "operations"
    __table_args__ = (
        # The organization's list, newest first (`operations`).
        Index("ix_operations_organization_id_created_at", "organization_id", "created_at", "id"),
        # "Which operation of this organization is running?" (the 409s of API.md §7).
        Index(
            "ix_operations_running_organization_id",
            "organization_id",
            "warehouse_id",
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    warehouse_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("managed_warehouses.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # A fixed, credential-safe sentence (the step that gave up, the kind of error), or NULL.
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
