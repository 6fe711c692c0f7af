"""Moves of a warehouse between clusters, and the drains made of them (API.md §8).

A move's `id` is the id of its `move` operation (§7). The row is the move's own progress record:
the worker reads it (FOR UPDATE) before every step and writes what the step did, so a worker
killed at any line resumes where the record says.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin


class MoveStatus(enum.StrEnum):
    WAITING = "waiting"  # a drain move whose warehouse is not ready to move yet
    RUNNING = "running"
    ROLLING_BACK = "rolling_back"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WarehouseMove(CreatedAtMixin, Base):
    __tablename__ = "warehouse_moves"
    __table_args__ = (
        Index(
            "ix_warehouse_moves_unfinished",
            "drain_cluster",
            "created_at",
            postgresql_where=text("finished_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("managed_warehouses.id", ondelete="CASCADE"), nullable=False, index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    source_cluster: Mapped[str] = mapped_column(String(63), nullable=False)
    # Chosen at request time for a move, when its turn comes for a drain move.
    target_cluster: Mapped[str | None] = mapped_column(String(63))
    # The cluster being drained, when this move is part of a drain.
    drain_cluster: Mapped[str | None] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # The next step to run (see app/services/fleet/move_machine.py).
    step: Mapped[str] = mapped_column(String(32), nullable=False)
    # The warehouse's database and role on the target were made by this move (ours to drop).
    target_claimed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # The warehouse's `cluster` names the target: from here on the move only goes forward.
    switched: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    rows_verified: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unfrozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
