"""snapshots: warehouse snapshots, buckets waiting for deletion, restore/final-snapshot links

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("database_name", sa.String(length=63), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("operation_id", sa.UUID(), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_snapshots_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    op.create_index(
        "ix_snapshots_organization_id_created_at",
        "snapshots",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_snapshots_status_expires_at", "snapshots", ["status", "expires_at"], unique=False
    )
    op.create_table(
        "bucket_deletions",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_bucket_deletions")),
    )
    op.add_column("managed_warehouses", sa.Column("final_snapshot_id", sa.UUID(), nullable=True))
    op.add_column("managed_warehouses", sa.Column("restore_snapshot_id", sa.UUID(), nullable=True))


def downgrade() -> None:
    op.drop_column("managed_warehouses", "restore_snapshot_id")
    op.drop_column("managed_warehouses", "final_snapshot_id")
    op.drop_table("bucket_deletions")
    op.drop_index("ix_snapshots_status_expires_at", table_name="snapshots")
    op.drop_index("ix_snapshots_organization_id_created_at", table_name="snapshots")
    op.drop_table("snapshots")
