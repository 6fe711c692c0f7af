"""warehouse moves: the progress record of each move between clusters (and drains)

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "warehouse_moves",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("warehouse_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("source_cluster", sa.String(length=63), nullable=False),
        sa.Column("target_cluster", sa.String(length=63), nullable=True),
        sa.Column("drain_cluster", sa.String(length=63), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("target_claimed", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("switched", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_verified", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unfrozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["managed_warehouses.id"],
            name=op.f("fk_warehouse_moves_warehouse_id_managed_warehouses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warehouse_moves")),
    )
    op.create_index(
        op.f("ix_warehouse_moves_warehouse_id"), "warehouse_moves", ["warehouse_id"], unique=False
    )
    op.create_index(
        "ix_warehouse_moves_unfinished",
        "warehouse_moves",
        ["drain_cluster", "created_at"],
        unique=False,
        postgresql_where=sa.text("finished_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_warehouse_moves_unfinished",
        table_name="warehouse_moves",
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    op.drop_index(op.f("ix_warehouse_moves_warehouse_id"), table_name="warehouse_moves")
    op.drop_table("warehouse_moves")
