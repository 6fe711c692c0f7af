"""merge operations/clusters, snapshots, webhooks and warehouse-move branches

Revision ID: 0011
Revises: 0007, 0008, 0009, 0010
Create Date: 2026-12-01 11:00:00
"""

from collections.abc import Sequence

revision: str = "0011"
down_revision: str | Sequence[str] | None = ("0007", "0008", "0009", "0010")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
