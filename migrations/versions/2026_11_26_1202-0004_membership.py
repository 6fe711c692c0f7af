"""membership: one name per organization across table suffixes and schemas

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-26 12:02:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A table suffix and a schema name share one namespace per organization (API.md §4.2).
    op.execute(
        "CREATE UNIQUE INDEX uq_warehouse_team_memberships_organization_id_name "
        "ON warehouse_team_memberships (organization_id, coalesce(schema_name, table_suffix))"
    )


def downgrade() -> None:
    op.drop_index(
        "uq_warehouse_team_memberships_organization_id_name",
        table_name="warehouse_team_memberships",
    )
