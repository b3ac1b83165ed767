"""The outbox: the repository that owns the SQL of stored alerts and their delivery rows.

An alert row and its outbox row are written in one transaction (`store_alerts`), so an alert
Twilio was told we have is always one the relay will deliver. A row then moves through
`OutboxStatus`: pending -> sending (a batch was handed to Slack) -> sent, or held (snoozed,
bot/alerts/mute.py) or failed (undeliverable, kept and listed by `/usage alerts failed`).
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert, Row, Select, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.model import IncomingAlert, StoredAlert
from bot.store import Store
from bot.store.schema import alerts, channel_work, channels, outbox, triggers


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    HELD = "held"
    FAILED = "failed"


NO_CHANNEL = "the callback names no channel and ALERT_CHANNEL is not set"


def store_alerts(store: Store, batch: Sequence[IncomingAlert], *, fallback_channel: str, received: float) -> list[bool]:
    """Store alerts, each with its outbox row in the same transaction (up to 500 alerts share one);
    for each, whether it was new.

    A repeat of a stored alert (same idempotency token, or same trigger and firing time), also
    within the batch, is left out and reported as not new.

    This is the intake's hot path (AlertWriter calls it for every group of callbacks), so it runs
    prepared SQL on the driver rather than building Core statements: on PostgreSQL one statement,
    which is atomic by itself, in one round trip; on SQLite three statements in one transaction.
    """
    firsts: dict[str, IncomingAlert] = {}  # dedupe key -> the alert that stands for it
    firings: set[str] = set()
    for alert in batch:
        if alert.dedupe_key in firsts or (alert.firing_key and alert.firing_key in firings):
            continue
        firsts[alert.dedupe_key] = alert
        if alert.firing_key:
            firings.add(alert.firing_key)
    rows = [
        (*_alert_values(alert, received), *_delivery(alert.requested_channel or fallback_channel))
        for alert in firsts.values()
    ]
    inserted: set[str] = set()
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        if store.is_sqlite:
            inserted |= store.write_on_driver(lambda cursor, c=chunk: _store_on_sqlite(cursor, c, store.known_channels))
        else:
            new_channels = any(row[_CHANNEL] and row[_CHANNEL] not in store.known_channels for row in chunk)
            inserted |= store.write_on_driver(lambda cursor, c=chunk, n=new_channels: _store_on_postgres(cursor, c, n))
    # Channel rows are never deleted: once this process has seen one committed, it skips the upsert.
    store.known_channels.update(row[_CHANNEL] for row in rows if row[0] in inserted and row[_CHANNEL])
    return [firsts.get(a.dedupe_key) is a and a.dedupe_key in inserted for a in batch]


def store_generated_alert(
    conn: Connection, alert: IncomingAlert, *, channel: str, kind: str, details: str, at: float
) -> bool:
    """Store an alert the bot raised itself (e.g. a spend spike, bot/watch/) with its outbox row,
    inside the caller's transaction; False when its dedupe key was stored already."""
    row = {**dict(zip(_ALERT_COLUMNS, _alert_values(alert, at), strict=True)), "kind": kind, "details": details}
    inserted = conn.execute(_insert_alerts(conn.dialect.name), row).first()
    if inserted is None:
        return False
    delivery = dict(zip(("channel", "status", "last_error"), _delivery(channel), strict=True))
    conn.execute(_INSERT_OUTBOX, {"alert_id": inserted.id, **delivery})
    if channel:
        ensure_channel(conn, channel)
        queue_work(conn, {channel})
    return True


# The columns an incoming alert fills, in the order of `_alert_values`.
_ALERT_COLUMNS = (
    "dedupe_key",
    "firing_key",
    "trigger_sid",
    "account_sid",
    "category",
    "trigger_by",
    "trigger_value",
    "current_value",
    "recurring",
    "date_fired",
    "fired_at",
    "received_at",
    "requested_channel",
    "params",
)
_CHANNEL = len(_ALERT_COLUMNS)  # a row of store_alerts: the alert's values, then `_delivery`'s
# Rows per statement: SQLite allows 32,766 parameters in one (https://www.sqlite.org/limits.html).
_ROWS_PER_STATEMENT = 500


def _alert_values(alert: IncomingAlert, received: float) -> tuple[Any, ...]:
    return (
        alert.dedupe_key,
        alert.firing_key,
        alert.trigger_sid,
        alert.account_sid,
        alert.category,
        alert.trigger_by,
        alert.trigger_value,
        alert.current_value,
        alert.recurring,
        alert.date_fired,
        alert.fired_at,
        received,
        alert.requested_channel,
        json.dumps(alert.params, sort_keys=True),
    )


def _delivery(channel: str) -> tuple[str, str, str]:
    """The outbox row's (channel, status, last_error) for an alert bound for `channel`."""
    if channel:
        return channel, OutboxStatus.PENDING, ""
    return "", OutboxStatus.FAILED, NO_CHANNEL


def _store_on_sqlite(cursor: Any, rows: Sequence[tuple[Any, ...]], known_channels: set[str]) -> set[str]:
    """Insert the alerts, then the new ones' outbox rows, channels and work (a driver cursor, in
    a transaction); the dedupe keys of the new alerts."""
    values = [value for row in rows for value in row[:_CHANNEL]]
    stored = dict(cursor.execute(_sqlite_insert_alerts(len(rows)), values).fetchall())
    if not stored:
        return set()
    delivery = {row[0]: row[_CHANNEL:] for row in rows}
    cursor.executemany(_SQLITE_INSERT_OUTBOX, [(alert_id, *delivery[key]) for alert_id, key in stored.items()])
    given_work = sorted({delivery[key][0] for key in stored.values()} - {""})
    cursor.executemany(_SQLITE_INSERT_CHANNEL, [(name,) for name in given_work if name not in known_channels])
    cursor.executemany(_SQLITE_INSERT_WORK, [(name,) for name in given_work])
    return set(stored.values())


def _store_on_postgres(cursor: Any, rows: Sequence[tuple[Any, ...]], new_channels: bool) -> set[str]:
    cursor.execute(_postgres_store(len(rows), new_channels), [value for row in rows for value in row])
    return {key for (key,) in cursor.fetchall()}


@functools.cache
def _sqlite_insert_alerts(rows: int) -> str:
    one = "(" + ", ".join("?" * len(_ALERT_COLUMNS)) + ")"
    return (
        f"INSERT INTO {alerts.name} ({', '.join(_ALERT_COLUMNS)}) VALUES {', '.join([one] * rows)} "
        "ON CONFLICT DO NOTHING RETURNING id, dedupe_key"
    )


_SQLITE_INSERT_OUTBOX = (
    f"INSERT INTO {outbox.name} (alert_id, channel, status, last_error, attempts, also_fired) VALUES (?, ?, ?, ?, 0, 0)"
)
_SQLITE_INSERT_CHANNEL = (
    f"INSERT INTO {channels.name} (channel, next_post_at, lease_until, failures, last_error) VALUES (?, 0, 0, 0, '') "
    "ON CONFLICT DO NOTHING"
)
_SQLITE_INSERT_WORK = f"INSERT INTO {channel_work.name} (channel) VALUES (?)"


@functools.cache
def _postgres_store(rows: int, new_channels: bool) -> str:
    """One statement that stores the alerts (skipping repeats), their outbox rows, the channels'
    work and, with `new_channels`, the channels' rows if missing; it returns the dedupe keys of the
    new alerts. (Channel rows are never deleted, so a channel seen once needs no upsert, which would
    wait for a relay updating that row: a unique check waits for the row's updater.)"""
    columns = ", ".join(_ALERT_COLUMNS)
    one = "(" + ", ".join(["%s"] * (_CHANNEL + 3)) + ")"
    new = "stored JOIN incoming USING (dedupe_key)"
    return (
        f"WITH incoming ({columns}, channel, status, last_error) AS (VALUES {', '.join([one] * rows)}), "
        f"stored AS (INSERT INTO {alerts.name} ({columns}) SELECT {columns} FROM incoming "
        "ON CONFLICT DO NOTHING RETURNING id, dedupe_key), "
        f"delivery AS (INSERT INTO {outbox.name} (alert_id, channel, status, last_error, attempts, also_fired) "
        f"SELECT stored.id, channel, status, last_error, 0, 0 FROM {new}), "
        + (
            f"known AS (INSERT INTO {channels.name} (channel, next_post_at, lease_until, failures, last_error) "
            f"SELECT DISTINCT channel, 0, 0, 0, '' FROM {new} WHERE channel <> '' ON CONFLICT DO NOTHING), "
            if new_channels
            else ""
        )
        + f"work AS (INSERT INTO {channel_work.name} (channel) SELECT DISTINCT channel FROM {new} WHERE channel <> '') "
        "SELECT dedupe_key FROM stored"
    )


_INSERT_OUTBOX = outbox.insert()


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
def _insert_alerts(dialect_name: str) -> Insert:
    # RETURNING the key as well: with ON CONFLICT DO NOTHING, the rows that come back are the new ones.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(alerts).on_conflict_do_nothing().returning(alerts.c.id, alerts.c.dedupe_key)


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
    return StoredAlert(
        outbox_id=row.id,
        status=row.status,
        batch_id=row.batch_id,
        attempted_at=row.attempted_at,
        trigger_sid=row.trigger_sid,
        category=row.category,
        trigger_by=row.trigger_by,
        trigger_value=row.trigger_value,
        current_value=row.current_value,
        recurring=row.recurring,
        fired_at=row.fired_at,
        requested_channel=row.requested_channel,
        created_by=row.created_by or "",
        friendly_name=row.friendly_name or "",
        channel=row.channel,
        last_error=row.last_error,
        also_fired=row.also_fired or 0,
        deleted_at=row.deleted_at,
        deleted_by=row.deleted_by or "",
        kind=row.kind or "trigger",
        details=row.details or "",
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
    with store.engine.connect() as conn:
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
