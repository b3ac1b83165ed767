"""The database schema: SQLAlchemy Core tables. Alembic revisions (bot/store/migrations/) build it.

Every timestamp is a float of Unix seconds, which compares the same way on both databases.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Key/value facts about the running system: schema version, Slack auth health, ...
state = Table(
    "state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Triggers created through the bot: who made them, and for which channel.
# Twilio stays the source of truth for the trigger itself.
triggers = Table(
    "triggers",
    metadata,
    Column("sid", String(34), primary_key=True),
    Column("channel_id", String(32), nullable=False),
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("category", String(128), nullable=False),
    Column("value_requested", String(64), nullable=False),
    Column("friendly_name", String(64), nullable=False, default=""),
    # What was asked for, so that an identical `/usage trigger` finds it (NULL in rows from before
    # revision 0003, which then never match).
    Column("trigger_by", String(16), nullable=True),
    Column("recurring", String(16), nullable=True),
    # Set when the bot deletes the trigger: the row stays, so that a callback Twilio still sends
    # afterwards can say who deleted it, and when.
    Column("deleted_at", Float, nullable=True),
    Column("deleted_by", String(32), nullable=True),
)

# One row per distinct firing Twilio told us about (the receive + dedupe stage).
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(255), nullable=False, unique=True),
    # "<trigger sid>|<DateFired>": a second guard, for a retry that carries a different token
    # (NULL when Twilio sent no DateFired; NULLs never collide).
    Column("firing_key", String(255), nullable=True, unique=True),
    Column("trigger_sid", String(64), nullable=False),
    Column("account_sid", String(64), nullable=False, default=""),
    Column("category", String(128), nullable=False, default=""),
    Column("trigger_by", String(16), nullable=False, default=""),
    Column("trigger_value", String(64), nullable=False, default=""),
    Column("current_value", String(64), nullable=False, default=""),
    Column("recurring", String(16), nullable=False, default=""),
    Column("date_fired", String(64), nullable=False, default=""),
    Column("fired_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("requested_channel", String(32), nullable=False, default=""),
    Column("params", Text, nullable=False, default="{}"),
    # "trigger" (a Twilio trigger fired) or "spike" (the spend-spike watch, bot/watch/); a spike
    # alert carries its rendered message in `details` (JSON), made when it was detected.
    Column("kind", String(16), nullable=False, server_default="trigger"),
    Column("details", Text, nullable=True),
)

# The outbox: written in the same transaction as its alert, worked off by the delivery loop.
# status: pending -> sending (a batch was handed to Slack) -> sent | failed
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False, unique=True),
    Column("channel", String(32), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="pending", index=True),
    Column("batch_id", String(36), nullable=True, index=True),
    Column("attempted_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("sent_at", Float, nullable=True),
    Column("message_ts", String(32), nullable=True),
    # How many later firings of the same trigger this row also stands for (a snooze summary).
    Column("also_fired", Integer, nullable=False, default=0),
    # A channel's pending (or interrupted) alerts, oldest first, without reading other channels'.
    Index("ix_outbox_channel_status_id", "channel", "status", "id"),
)

# Who did what, where, when: trigger creates/deletes, snoozes, digests, budgets.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("user_id", String(32), nullable=False),
    Column("channel_id", String(32), nullable=False, default=""),
    Column("action", String(32), nullable=False),
    Column("target", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
)

# A snoozed trigger's alerts to a channel are held back (outbox status "held") until `until`.
snoozes = Table(
    "snoozes",
    metadata,
    Column("trigger_sid", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("until", Float, nullable=False),
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Digest subscriptions: one per channel and cadence.
digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(32), nullable=False),
    Column("cadence", String(16), nullable=False),  # daily | weekly | monthly
    Column("at_minutes", Integer, nullable=False),  # minutes after local midnight (USAGE_TIMEZONE)
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("channel_id", "cadence"),
)

# One row per digest (or budget warning) that is due: inserting it claims the sending, so each
# subscription gets each digest once however many instances run `python -m bot digests`.
report_runs = Table(
    "report_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "digest" | "budget"
    Column("subject_id", Integer, nullable=False),  # digests.id or budgets.id
    Column("period_key", String(32), nullable=False),  # e.g. "2026-11-24", "2026-W47", "2026-11"
    Column("status", String(16), nullable=False),  # claimed | sent
    Column("claimed_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    UniqueConstraint("kind", "subject_id", "period_key"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(32), nullable=False),
    Column("period", String(16), nullable=False),  # daily | monthly
    Column("category", String(128), nullable=False),  # "totalprice" for total spend
    Column("amount", String(32), nullable=False),  # a decimal, as text: exact on both databases
    Column("trigger_sid", String(64), nullable=False, default=""),
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("channel_id", "period", "category"),
)

# Per-channel delivery state: pacing (Slack's ~1 message/s per channel, Retry-After, backoff)
# and a lease so that one worker at a time posts to a channel.
# `queued` counts the times the channel was given alerts to send (a relay moves them here from
# `channel_work`); `drained` is the `queued` a relay had read before it found nothing left to send.
# queued > drained: the channel has work, which the relay finds through the partial index without
# reading the outbox (bot/alerts/leases.py).
HAS_WORK = "queued > drained"
channels = Table(
    "channels",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("next_post_at", Float, nullable=False, default=0.0),
    Column("failures", Integer, nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=False, default=0.0),
    Column("last_error", Text, nullable=False, default=""),
    Column("queued", Integer, nullable=False, default=0, server_default="0"),
    Column("drained", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_channels_with_work", "next_post_at", sqlite_where=text(HAS_WORK), postgresql_where=text(HAS_WORK)),
)

# Slack requests already handled (a hash of the body), so that a retry or a double submit of a
# command or click is acknowledged without doing the work twice; rows older than an hour go.
handled_requests = Table(
    "handled_requests",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("handled_at", Float, nullable=False, index=True),
)

# "This channel was given alerts to send": appended in the transaction that gives them (intake, a
# redirect to ALERT_CHANNEL, a snooze's end) and moved into channels.queued by the relay. Inserts
# only, so intake never waits for a lock on a channel row the relay is updating.
channel_work = Table(
    "channel_work",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
)

# Spend-spike watches (bot/watch/): a channel watches one category, or '' for every category
# with spend, at a sensitivity.
watches = Table(
    "watches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(32), nullable=False),
    Column("category", String(128), nullable=False),  # '' = every category with spend
    Column("sensitivity", String(16), nullable=False),  # low | normal | high
    Column("created_by", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("channel_id", "category"),
)

# One fetch of Twilio's Usage/Records/Today per scheduled pass: {category: [count, price]} for
# the categories with usage, as compact JSON. Pruned after 35 days.
usage_snapshots = Table(
    "usage_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", Float, nullable=False),
    Column("day", String(10), nullable=False, index=True),  # the GMT day, YYYY-MM-DD
    Column("totals", Text, nullable=False),
)

# Where a spike stands per channel, category and GMT day: updating it conditionally is what makes
# each spike alert go out once however many scheduled passes run at once.
spike_states = Table(
    "spike_states",
    metadata,
    Column("channel_id", String(32), primary_key=True),
    Column("category", String(128), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("first_above_at", Float, nullable=True),
    Column("alerted_excess", Float, nullable=True),
    Column("escalated", Boolean, nullable=False, default=False),
)
