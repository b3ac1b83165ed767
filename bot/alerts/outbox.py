"""The outbox: the repository that owns the SQL of stored alerts and their delivery rows.

An alert row and its outbox row are written in one transaction (bot/alerts/intake.py), so an
alert Twilio was told we have is always one the relay will deliver. A row then moves through
`OutboxStatus`: pending -> sending (a batch was handed to Slack) -> sent, or held (snoozed,
bot/alerts/mute.py) or failed (undeliverable, kept and listed by `/usage alerts failed`).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Row, Select, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.model import StoredAlert
from bot.store import Store
from bot.store.schema import alerts, channel_work, channels, outbox, triggers


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    HELD = "held"
    FAILED = "failed"


NO_CHANNEL = "the callback names no channel and ALERT_CHANNEL is not set"


def ensure_channel(conn: Connection, channel: str) -> None:
    """Make sure the channel has a delivery-state row."""
    conn.execute(_insert_channel(conn.dialect.name), {"channel": channel, "next_post_at": 0.0, "lease_until": 0.0})


def queue_work(conn: Connection, names: set[str]) -> None:
    """Tell the relay these channels have alerts to send, inside the transaction that gave them
    the alerts: an insert (into `channel_work`), so that no lock on a channel row is waited for."""
    if names:
        conn.execute(_INSERT_WORK, [{"channel": name} for name in sorted(names)])


_INSERT_WORK = channel_work.insert()


# INSERT statements are built once per dialect: building one with .values() on every callback
# costs more than running it.


@functools.cache
def _insert_channel(dialect_name: str) -> Insert:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(channels).on_conflict_do_nothing()


# --- reading -----------------------------------------------------------------------------


def stored_alerts_query() -> Select[Any]:
    """Outbox rows with their alert and, when the bot made the trigger, who made it (and who
    deleted it, if the bot did); oldest first."""
    return (
        select(
            outbox.c.id,
            outbox.c.status,
            outbox.c.batch_id,
            outbox.c.attempted_at,
            outbox.c.channel,
            outbox.c.last_error,
            outbox.c.also_fired,
            alerts.c.trigger_sid,
            alerts.c.category,
            alerts.c.trigger_by,
            alerts.c.trigger_value,
            alerts.c.current_value,
            alerts.c.recurring,
            alerts.c.fired_at,
            alerts.c.requested_channel,
            triggers.c.created_by,
            triggers.c.friendly_name,
            triggers.c.deleted_at,
            triggers.c.deleted_by,
            alerts.c.kind,
            alerts.c.details,
        )
        .join(alerts, alerts.c.id == outbox.c.alert_id)
        .outerjoin(triggers, triggers.c.sid == alerts.c.trigger_sid)
        .order_by(outbox.c.id)
    )


def to_stored_alert(row: Row[Any]) -> StoredAlert:
    """A row of `stored_alerts_query`. Unpacked by position, in the query's column order: the
    relay reads up to a batch of these for every post, and a lookup by name per field cost more
    than the query."""
    (
        outbox_id, status, batch_id, attempted_at, channel, last_error, also_fired, trigger_sid, category, trigger_by,
        trigger_value, current_value, recurring, fired_at, requested_channel, created_by, friendly_name, deleted_at,
        deleted_by, kind, details,
    ) = row  # fmt: skip
    return StoredAlert(
        outbox_id=outbox_id,
        status=status,
        batch_id=batch_id,
        attempted_at=attempted_at,
        trigger_sid=trigger_sid,
        category=category,
        trigger_by=trigger_by,
        trigger_value=trigger_value,
        current_value=current_value,
        recurring=recurring,
        fired_at=fired_at,
        requested_channel=requested_channel,
        created_by=created_by or "",
        friendly_name=friendly_name or "",
        channel=channel,
        last_error=last_error,
        also_fired=also_fired or 0,
        deleted_at=deleted_at,
        deleted_by=deleted_by or "",
        kind=kind or "trigger",
        details=details or "",
    )


def failed_alerts(store: Store, limit: int = 100) -> list[StoredAlert]:
    """Alerts that could not be delivered, newest first."""
    query = (
        stored_alerts_query().where(outbox.c.status == OutboxStatus.FAILED).order_by(None).order_by(outbox.c.id.desc())
    )
    with store.engine.connect() as conn:
        return [to_stored_alert(r) for r in conn.execute(query.limit(limit))]


def count_unsent(store: Store) -> dict[str, int]:
    """How many outbox rows are in each state short of sent (for /healthz).

    Sent rows are left out: they pile up, and the status index keeps this cheap.
    """
    query = select(outbox.c.status, func.count()).where(outbox.c.status != OutboxStatus.SENT).group_by(outbox.c.status)
    with store.engine.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


# The relay runs these for every post: built once, with bound parameters, since building a Core
# statement costs more than SQLite takes to run it ("b_" names: an UPDATE reserves column names).
_SENDING_IN_CHANNEL = (
    select(outbox.c.batch_id)
    .where(outbox.c.channel == bindparam("b_channel"), outbox.c.status == OutboxStatus.SENDING)
    .limit(1)
)
_BATCH_ROWS = stored_alerts_query().where(
    outbox.c.channel == bindparam("b_channel"), outbox.c.batch_id == bindparam("b_batch")
)
_OLDEST_PENDING = (
    stored_alerts_query()
    .where(outbox.c.channel == bindparam("b_channel"), outbox.c.status == OutboxStatus.PENDING)
    .limit(bindparam("b_limit"))
)


def load_batch(store: Store, channel: str, max_batch: int) -> list[StoredAlert]:
    """An interrupted batch first (to settle it), else the oldest pending alerts of the channel."""
    with store.read() as conn:
        sending = conn.execute(_SENDING_IN_CHANNEL, {"b_channel": channel}).scalar()
        if sending:
            rows = conn.execute(_BATCH_ROWS, {"b_channel": channel, "b_batch": sending}).all()
        else:
            rows = conn.execute(_OLDEST_PENDING, {"b_channel": channel, "b_limit": max_batch}).all()
    return [to_stored_alert(r) for r in rows]


# --- a batch's way through delivery ---------------------------------------------------------


# A batch's rows (one channel's), if still pending. Spelled so that PostgreSQL reads only them,
# through ix_outbox_channel_status_id, even with statistics from before a burst: on status alone,
# or with the ids as a filter, it may read every pending row (tests/test_relay_load.py).
# Parameters: pending_params(batch).
PENDING_ROWS = (
    outbox.c.channel == bindparam("b_channel"),
    outbox.c.status == OutboxStatus.PENDING,
    outbox.c.id.between(bindparam("b_first"), bindparam("b_last")),
    outbox.c.id.in_(bindparam("b_ids", expanding=True)),
)


def pending_params(batch: Sequence[StoredAlert]) -> dict[str, Any]:
    """The parameters of PENDING_ROWS for the batch."""
    ids = [a.outbox_id for a in batch]
    return {"b_channel": batch[0].channel, "b_first": min(ids), "b_last": max(ids), "b_ids": ids}


_MARK_SENDING = (
    update(outbox)
    .where(*PENDING_ROWS)
    .values(
        status=OutboxStatus.SENDING,
        batch_id=bindparam("b_batch"),
        attempted_at=bindparam("b_at"),
        attempts=outbox.c.attempts + 1,
    )
)
_MARK_SENT = (
    update(outbox)
    .where(outbox.c.batch_id == bindparam("b_batch"), outbox.c.status == OutboxStatus.SENDING)
    .values(status=OutboxStatus.SENT, sent_at=bindparam("b_at"), message_ts=bindparam("b_ts"))
)


def mark_sending(store: Store, batch: Sequence[StoredAlert], batch_id: str, at: float) -> None:
    """Record the batch before it is posted, so an interrupted post can be settled later."""
    params = {**pending_params(batch), "b_batch": batch_id, "b_at": at}
    store.write(lambda conn: conn.execute(_MARK_SENDING, params))


def mark_sent(store: Store, batch_id: str, *, at: float, message_ts: str | None) -> None:
    """Not durable (Store.transaction): if a database crash undoes it, the batch is `sending` again
    and the next attempt finds it in the channel instead of posting it twice."""
    store.write(lambda conn: mark_sent_in(conn, batch_id, at=at, message_ts=message_ts), durable=False)


def mark_sent_in(conn: Connection, batch_id: str, *, at: float, message_ts: str | None) -> None:
    """`mark_sent`, inside the caller's transaction."""
    conn.execute(_MARK_SENT, {"b_batch": batch_id, "b_at": at, "b_ts": message_ts})


def reset_to_pending(store: Store, batch_id: str) -> None:
    """The post certainly did not land (429, a rejected token): forget the batch."""
    store.write(
        lambda conn: conn.execute(
            update(outbox)
            .where(outbox.c.batch_id == batch_id, outbox.c.status == OutboxStatus.SENDING)
            .values(status=OutboxStatus.PENDING, batch_id=None)
        )
    )


def fail_batch(store: Store, batch_id: str, reason: str) -> None:
    store.write(
        lambda conn: conn.execute(
            update(outbox).where(outbox.c.batch_id == batch_id).values(status=OutboxStatus.FAILED, last_error=reason)
        )
    )


def redirect_batch(store: Store, batch_id: str, fallback: str, reason: str) -> None:
    """Send the batch's alerts to the fallback channel instead (as new pending rows there)."""

    def move(conn: Connection) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.batch_id == batch_id)
            .values(channel=fallback, status=OutboxStatus.PENDING, batch_id=None, last_error=reason)
        )
        ensure_channel(conn, fallback)
        queue_work(conn, {fallback})

    store.write(move)


# --- retention (bot/reports/retention.py): delivered alerts leave after RETENTION_DAYS ---------


def prune_sent(conn: Connection, *, sent_before: float, limit: int) -> int:
    """Delete up to `limit` alerts delivered before `sent_before` (outbox status sent) with their
    alert rows, inside the caller's transaction; how many were deleted.

    Only `sent` rows go: pending, sending, held and failed alerts stay however old they are
    (failed ones are listed by `/usage alerts failed` until someone looks).
    """
    sent_long_ago = (outbox.c.status == OutboxStatus.SENT, outbox.c.sent_at < sent_before)
    oldest = select(outbox.c.id).where(*sent_long_ago).order_by(outbox.c.id).limit(limit)
    # The outbox row first, since it refers to its alert; the conditions are repeated so that a
    # row changed meanwhile by another worker is left alone.
    alert_ids = [
        alert_id
        for (alert_id,) in conn.execute(
            outbox.delete().where(outbox.c.id.in_(oldest), *sent_long_ago).returning(outbox.c.alert_id)
        )
    ]
    if alert_ids:
        conn.execute(alerts.delete().where(alerts.c.id.in_(alert_ids)))
    return len(alert_ids)
