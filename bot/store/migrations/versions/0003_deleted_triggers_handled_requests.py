"""Triggers the bot deleted are kept, marked deleted; what a trigger was asked for (measure,
period) is kept for finding an identical one; Slack requests already handled are remembered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns only: existing rows keep their values and read as "not deleted".
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("trigger_by", sa.String(16), nullable=True))
        batch.add_column(sa.Column("recurring", sa.String(16), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("deleted_by", sa.String(32), nullable=True))
    op.create_table(
        "handled_requests",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("handled_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_handled_requests_handled_at", "handled_requests", ["handled_at"])


def downgrade() -> None:
    op.drop_index("ix_handled_requests_handled_at", table_name="handled_requests")
    op.drop_table("handled_requests")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("deleted_by")
        batch.drop_column("deleted_at")
        batch.drop_column("recurring")
        batch.drop_column("trigger_by")
