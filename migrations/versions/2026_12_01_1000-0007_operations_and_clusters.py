"""operations and warehouse clusters

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "warehouse_clusters",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("admin_url_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("public_host", sa.Text(), nullable=False),
        sa.Column("public_port", sa.Integer(), nullable=False),
        sa.Column("max_warehouses", sa.Integer(), server_default="500", nullable=False),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("healthy", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "labels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_warehouse_clusters")),
    )
    # Warehouses that predate the registry live on the configured cluster: a placeholder
    # `default` row keeps them valid until start-up registers that cluster's DSN under it.
    op.execute(
        "INSERT INTO warehouse_clusters (name, public_host, public_port) "
        "SELECT 'default', '127.0.0.1', 5432 "
        "WHERE EXISTS (SELECT 1 FROM managed_warehouses)"
    )
    op.alter_column("managed_warehouses", "cluster", existing_type=sa.String(63), nullable=True)
    op.create_index(
        op.f("ix_managed_warehouses_cluster"), "managed_warehouses", ["cluster"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_managed_warehouses_cluster_warehouse_clusters"),
        "managed_warehouses",
        "warehouse_clusters",
        ["cluster"],
        ["name"],
        onupdate="CASCADE",
        ondelete="SET NULL",
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("warehouse_id", sa.UUID(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_operations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["warehouse_id"],
            ["managed_warehouses.id"],
            name=op.f("fk_operations_warehouse_id_managed_warehouses"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
    )
    op.create_index(
        "ix_operations_organization_id_created_at",
        "operations",
        ["organization_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_operations_running_organization_id",
        "operations",
        ["organization_id", "warehouse_id"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        op.f("ix_operations_warehouse_id"), "operations", ["warehouse_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operations_warehouse_id"), table_name="operations")
    op.drop_index(
        "ix_operations_running_organization_id",
        table_name="operations",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index("ix_operations_organization_id_created_at", table_name="operations")
    op.drop_table("operations")
    op.drop_constraint(
        op.f("fk_managed_warehouses_cluster_warehouse_clusters"),
        "managed_warehouses",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_managed_warehouses_cluster"), table_name="managed_warehouses")
    op.execute("UPDATE managed_warehouses SET cluster = 'default' WHERE cluster IS NULL")
    op.alter_column("managed_warehouses", "cluster", existing_type=sa.String(63), nullable=False)
    op.drop_table("warehouse_clusters")
