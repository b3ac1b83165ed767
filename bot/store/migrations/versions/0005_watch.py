"""The spend-spike watch (bot/watch/): watches, usage snapshots, spike states; alerts get a kind
and the details a spike alert carries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every alert stored so far came from a Twilio trigger: the server default says so.
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="trigger"))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("sensitivity", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("channel_id", "category"),
    )
    op.create_table(
        "usage_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("taken_at", sa.Float(), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("totals", sa.Text(), nullable=False),
    )
    op.create_index("ix_usage_snapshots_day", "usage_snapshots", ["day"])
    op.create_table(
        "spike_states",
        sa.Column("channel_id", sa.String(32), primary_key=True),
        sa.Column("category", sa.String(128), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("first_above_at", sa.Float(), nullable=True),
        sa.Column("alerted_excess", sa.Float(), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spike_states")
    op.drop_index("ix_usage_snapshots_day", table_name="usage_snapshots")
    op.drop_table("usage_snapshots")
    op.drop_table("watches")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("details")
        batch.drop_column("kind")
