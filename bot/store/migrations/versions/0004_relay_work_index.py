"""The relay finds channels with work without reading the outbox: channel_work (appended to by
whatever gives a channel alerts), channels.queued/drained and a partial index over the channels that
have work; the outbox gets a (channel, status, id) index; held alerts whose snooze row is gone get an
ended snooze row, so they are released like any other.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_WORK = "queued > drained"


def upgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("queued", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("drained", sa.Integer(), nullable=False, server_default="0"))
    # Channels that have alerts waiting (or a batch whose post was interrupted) have work.
    op.execute(
        "UPDATE channels SET queued = 1 WHERE channel IN "
        "(SELECT channel FROM outbox WHERE status IN ('pending', 'sending'))"
    )
    op.create_index(
        "ix_channels_with_work",
        "channels",
        ["next_post_at"],
        sqlite_where=sa.text(HAS_WORK),
        postgresql_where=sa.text(HAS_WORK),
    )
    op.create_index("ix_outbox_channel_status_id", "outbox", ["channel", "status", "id"])
    op.create_table(
        "channel_work",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
    )
    # Before this revision, ending a snooze early deleted its row and a scan of every held alert
    # released what it had held; now the relay releases only snoozes whose `until` has passed.
    # Held alerts without an active snooze get a snooze row that has already ended.
    op.execute(
        "INSERT INTO snoozes (trigger_sid, channel, until, created_by, created_at) "
        "SELECT DISTINCT alerts.trigger_sid, outbox.channel, 0, '', 0 FROM outbox "
        "JOIN alerts ON alerts.id = outbox.alert_id "
        "WHERE outbox.status = 'held' AND NOT EXISTS (SELECT 1 FROM snoozes "
        "WHERE snoozes.trigger_sid = alerts.trigger_sid AND snoozes.channel = outbox.channel)"
    )


def downgrade() -> None:
    op.drop_table("channel_work")
    op.drop_index("ix_outbox_channel_status_id", table_name="outbox")
    op.drop_index("ix_channels_with_work", table_name="channels")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("drained")
        batch.drop_column("queued")
