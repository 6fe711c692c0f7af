"""The fleet: PostgreSQL clusters that hold warehouses (API.md §8)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin


class ClusterState(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DRAINING = "draining"
    DRAINED = "drained"


class WarehouseCluster(CreatedAtMixin, Base):
    """A registered cluster. `managed_warehouses.cluster` names one.

    `admin_url_ciphertext` is the admin DSN encrypted with a key of its own purpose
    (`app.services.fleet.registry`); it is never returned or logged. NULL only for the
    placeholder `default` row a migration writes for warehouses that predate the registry,
    until start-up registers the configured cluster under that name.
    """

    __tablename__ = "warehouse_clusters"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    admin_url_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    public_host: Mapped[str] = mapped_column(Text, nullable=False)
    public_port: Mapped[int] = mapped_column(Integer, nullable=False)
    max_warehouses: Mapped[int] = mapped_column(Integer, nullable=False, server_default="500")
    state: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    healthy: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # Kept exact by triggers (migration 0012; app.services.fleet.counters): the warehouses on
    # it that are not `deleted` (API.md §8 `warehouses`), and the moves on their way to it.
    warehouses: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    incoming: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
