"""Receiving alerts: a verified Twilio callback becomes a stored alert plus its outbox row.

This is the receive + dedupe stage of the pipeline; bot/delivery.py is the notify stage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import Connection, Insert, Row, Select, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.model import StoredAlert
from bot.store import Store, alerts, channels, outbox, triggers

MAX_FIELD = 255


@dataclass(frozen=True)
class IncomingAlert:
    """What Twilio told us when a trigger fired (callback parameters, parsed)."""

    dedupe_key: str
    firing_key: str | None
    trigger_sid: str
    account_sid: str
    category: str
    trigger_by: str
    trigger_value: str
    current_value: str
    recurring: str
    date_fired: str
    fired_at: float
    requested_channel: str
    params: dict[str, str]


def parse_callback(
    params: Mapping[str, str], *, header_token: str = "", channel: str = "", now: float | None = None
) -> IncomingAlert | None:
    """The alert in a callback, or None when it names no trigger (nothing to relay).

    Only UsageTriggerSid is required: Twilio's callback fields are not all documented, so
    everything else is optional and every parameter is kept as received.
    """
    received = time.time() if now is None else now
    sid = _clip(params.get("UsageTriggerSid", ""), "trigger_sid")
    if not sid:
        return None
    date_fired = _clip(params.get("DateFired", ""), "date_fired")
    token = params.get("IdempotencyToken", "") or header_token
    firing_key = f"{sid}|{date_fired}" if date_fired else None
    if token:
        dedupe_key = _token_key(token)
    elif firing_key:
        dedupe_key = "fired:" + firing_key
    else:
        # Neither a token nor a firing time: every callback is its own alert.
        dedupe_key = f"received:{sid}|{received:.6f}"
    recurring = params.get("Recurring", "")
    return IncomingAlert(
        dedupe_key=dedupe_key,
        firing_key=firing_key,
        trigger_sid=sid,
        account_sid=_clip(params.get("AccountSid", ""), "account_sid"),
        category=_clip(params.get("UsageCategory", ""), "category"),
        trigger_by=_clip(params.get("TriggerBy", ""), "trigger_by"),
        trigger_value=_clip(params.get("TriggerValue", ""), "trigger_value"),
        current_value=_clip(params.get("CurrentValue", ""), "current_value"),
        recurring="" if recurring in ("", "alltime") else _clip(recurring, "recurring"),
        date_fired=date_fired,
        fired_at=_parse_fired(date_fired) or received,
        requested_channel=_clip(channel, "requested_channel"),
        params=dict(params),
    )


def store_alert(store: Store, alert: IncomingAlert, *, fallback_channel: str, now: float | None = None) -> bool:
    """Store the alert and its outbox row in one transaction. False when it was already stored."""
    received = time.time() if now is None else now
    target = alert.requested_channel or fallback_channel
    row = {
        "dedupe_key": alert.dedupe_key,
        "firing_key": alert.firing_key,
        "trigger_sid": alert.trigger_sid,
        "account_sid": alert.account_sid,
        "category": alert.category,
        "trigger_by": alert.trigger_by,
        "trigger_value": alert.trigger_value,
        "current_value": alert.current_value,
        "recurring": alert.recurring,
        "date_fired": alert.date_fired,
        "fired_at": alert.fired_at,
        "received_at": received,
        "requested_channel": alert.requested_channel,
        "params": json.dumps(alert.params, sort_keys=True),
    }
    if target:
        outbox_row = {"channel": target, "status": "pending", "last_error": ""}
    else:
        reason = "the callback names no channel and ALERT_CHANNEL is not set"
        outbox_row = {"channel": "", "status": "failed", "last_error": reason}

    def insert(conn: Connection) -> bool:
        alert_id = _insert_ignoring_duplicates(conn, alerts, row)
        if alert_id is None:
            return False
        conn.execute(_INSERT_OUTBOX, {"alert_id": alert_id, **outbox_row})
        # Channel rows are never deleted: once this process has seen one, skip the upsert.
        if target and target not in store.known_channels:
            ensure_channel(conn, target)
        return True

    is_new = store.write(insert)
    if target:
        store.known_channels.add(target)  # only once the transaction has committed
    return is_new


_INSERT_OUTBOX = outbox.insert()


def ensure_channel(conn: Connection, channel: str) -> None:
    """Make sure the channel has a delivery-state row."""
    _insert_ignoring_duplicates(conn, channels, {"channel": channel, "next_post_at": 0.0, "lease_until": 0.0})


@functools.cache
def _insert_or_ignore(dialect_name: str, table: Table) -> Insert:
    # Built once: constructing an INSERT with .values() on every callback costs more than running it.
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    pk = next(iter(table.primary_key.columns))
    return dialect.insert(table).on_conflict_do_nothing().returning(pk)


def _insert_ignoring_duplicates(conn: Connection, table: Table, values: dict[str, Any]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING; the new row's first primary-key value, or None."""
    row = conn.execute(_insert_or_ignore(conn.dialect.name, table), values).first()
    return None if row is None else row[0]


def stored_alerts_query() -> Select[Any]:
    """Outbox rows with their alert and, when the bot made the trigger, who made it; oldest first."""
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
    )


def failed_alerts(store: Store, limit: int = 100) -> list[StoredAlert]:
    """Alerts that could not be delivered, newest first."""
    query = stored_alerts_query().where(outbox.c.status == "failed").order_by(None).order_by(outbox.c.id.desc())
    with store.engine.connect() as conn:
        return [to_stored_alert(r) for r in conn.execute(query.limit(limit))]


def count_by_status(store: Store) -> dict[str, int]:
    """How many outbox rows are in each state (for /healthz)."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    return {status: n for status, n in rows}


def _parse_fired(value: str) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None


def _clip(value: str, column: str) -> str:
    # Cut to the column's width: PostgreSQL refuses longer values (SQLite would store them), and
    # a refused insert is a 503 on every retry, i.e. a lost alert.
    return value[: alerts.c[column].type.length or MAX_FIELD]


def _token_key(token: str) -> str:
    """The dedupe key for an idempotency token; a token too long for the column is hashed."""
    key = "token:" + token
    if len(key) <= MAX_FIELD:
        return key
    return "token-sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()
