"""Baseline: the tables that Store.create_schema() made before migrations.

Written out by hand, not taken from bot/store/schema.py, so that later changes to the tables do
not rewrite history. The `default=`s in schema.py are applied by SQLAlchemy on insert and were
never in the database, so there are none here. A database made by that code is stamped at this
revision instead of running it (bot/store/migrate.py).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "triggers",
        sa.Column("sid", sa.String(34), primary_key=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("value_requested", sa.String(64), nullable=False),
        sa.Column("friendly_name", sa.String(64), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("firing_key", sa.String(255), nullable=True),
        sa.Column("trigger_sid", sa.String(64), nullable=False),
        sa.Column("account_sid", sa.String(64), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("trigger_by", sa.String(16), nullable=False),
        sa.Column("trigger_value", sa.String(64), nullable=False),
        sa.Column("current_value", sa.String(64), nullable=False),
        sa.Column("recurring", sa.String(16), nullable=False),
        sa.Column("date_fired", sa.String(64), nullable=False),
        sa.Column("fired_at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("requested_channel", sa.String(32), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.UniqueConstraint("dedupe_key"),
        sa.UniqueConstraint("firing_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(36), nullable=True),
        sa.Column("attempted_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("also_fired", sa.Integer(), nullable=False),
        sa.UniqueConstraint("alert_id"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
    )
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_index("ix_outbox_batch_id", "outbox", ["batch_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "snoozes",
        sa.Column("trigger_sid", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("until", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("cadence", sa.String(16), nullable=False),
        sa.Column("at_minutes", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("channel_id", "cadence"),
    )
    op.create_table(
        "digest_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("kind", "subject_id", "period_key"),
    )
    op.create_table(
        "budgets",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("trigger_sid", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("channel_id", "period", "category"),
    )
    op.create_table(
        "channels",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("next_post_at", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for index, table in (("ix_audit_at", "audit"), ("ix_outbox_batch_id", "outbox"), ("ix_outbox_status", "outbox")):
        op.drop_index(index, table_name=table)
    for table in ("channels", "budgets", "digest_runs", "digests", "snoozes", "audit", "outbox", "alerts", "triggers"):
        op.drop_table(table)
    op.drop_table("state")
