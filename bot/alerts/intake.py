"""Storing new alerts: the SQL that writes an alert with its outbox row (bot/alerts/outbox.py),
its channel's row if missing, and the channel's work, in one transaction.

`store_alerts` is the intake's hot path (bot/alerts/receive.py AlertWriter calls it for every
group of callbacks); `store_generated_alert` stores an alert the bot raised itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Float, Insert
from sqlalchemy.dialects import postgresql, sqlite

from bot.alerts.outbox import NO_CHANNEL, OutboxStatus, ensure_channel, queue_work
from bot.model import IncomingAlert
from bot.store import Store
from bot.store.schema import alerts, channel_work, channels, outbox


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
    cursor.execute(_postgres_store(new_channels), [_array_literal(rows)])
    return {key for (key,) in cursor.fetchall()}


def _array_literal(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows as one two-dimensional PostgreSQL text array, written out
    (https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO). One parameter instead of one
    per value: the driver's conversion of a statement with many placeholders cost more than the
    rest of the intake's work on PostgreSQL, and the statement's text is now the same for any
    number of rows, so it is prepared once."""
    return "{" + ",".join("{" + ",".join(map(_array_element, row)) + "}" for row in rows) + "}"


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(float(value))  # the shortest text that reads back as the same float
    # Quoted, a backslash escapes the next character; only `"` and `\` need it.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


# A store_alerts row's columns with their PostgreSQL types, in order, read from the schema: the
# alert's Float columns are float8, its others and the outbox row's delivery fields text.
_POSTGRES_COLUMNS = [
    *((name, "float8" if isinstance(alerts.c[name].type, Float) else "text") for name in _ALERT_COLUMNS),
    *((name, "text") for name in ("channel", "status", "last_error")),
]


@functools.cache
def _postgres_store(new_channels: bool) -> str:
    """One statement that stores the alerts (skipping repeats), their outbox rows, the channels'
    work and, with `new_channels`, the channels' rows if missing; it returns the dedupe keys of the
    new alerts. Its one parameter is the rows as a two-dimensional text array (`_array_literal`).
    (Channel rows are never deleted, so a channel seen once needs no upsert, which would wait for
    a relay updating that row: a unique check waits for the row's updater.)"""
    columns = ", ".join(_ALERT_COLUMNS)
    fields = ", ".join(f"a[i][{n}]::{kind} AS {name}" for n, (name, kind) in enumerate(_POSTGRES_COLUMNS, start=1))
    new = "stored JOIN incoming USING (dedupe_key)"
    return (
        f"WITH incoming AS (SELECT {fields} FROM (SELECT %s::text[] AS a) AS p, generate_subscripts(p.a, 1) AS i), "
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


@functools.cache
def _insert_alerts(dialect_name: str) -> Insert:
    # RETURNING the key as well: with ON CONFLICT DO NOTHING, the rows that come back are the new ones.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(alerts).on_conflict_do_nothing().returning(alerts.c.id, alerts.c.dedupe_key)
