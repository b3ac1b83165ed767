"""Receiving alerts: a verified Twilio callback becomes a stored alert plus its outbox row.

This is the receive + dedupe stage of the pipeline; bot/delivery.py is the notify stage.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from sqlalchemy import Connection, Insert, Row, Select, func, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.model import StoredAlert
from bot.store import Store
from bot.store.schema import alerts, channels, outbox, triggers

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
    return store_alerts(store, [alert], fallback_channel=fallback_channel, now=now)[0]


def store_alerts(
    store: Store, batch: Sequence[IncomingAlert], *, fallback_channel: str, now: float | None = None
) -> list[bool]:
    """Store alerts with their outbox rows in one transaction; for each, whether it was new.

    A repeat of a stored alert (same idempotency token, or same trigger and firing time), also
    within the batch, is left out and reported as not new.
    """
    received = time.time() if now is None else now
    firsts: dict[str, IncomingAlert] = {}  # dedupe key -> the alert that stands for it
    firings: set[str] = set()
    for alert in batch:
        if alert.dedupe_key in firsts or (alert.firing_key and alert.firing_key in firings):
            continue
        firsts[alert.dedupe_key] = alert
        if alert.firing_key:
            firings.add(alert.firing_key)
    rows = [_alert_row(alert, received) for alert in firsts.values()]
    targets = {key: alert.requested_channel or fallback_channel for key, alert in firsts.items()}

    def insert(conn: Connection) -> dict[str, int]:
        inserted = {key: alert_id for alert_id, key in conn.execute(_insert_alerts(conn.dialect.name), rows)}
        if inserted:
            conn.execute(_INSERT_OUTBOX, [_outbox_row(alert_id, targets[key]) for key, alert_id in inserted.items()])
        # Channel rows are never deleted: once this process has seen one, skip the upsert.
        for channel in {targets[key] for key in inserted} - store.known_channels - {""}:
            ensure_channel(conn, channel)
        return inserted

    inserted = store.write(insert)
    store.known_channels.update(targets[key] for key in inserted if targets[key])  # once committed
    return [firsts.get(a.dedupe_key) is a and a.dedupe_key in inserted for a in batch]


def _alert_row(alert: IncomingAlert, received: float) -> dict[str, Any]:
    return {
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


def _outbox_row(alert_id: int, channel: str) -> dict[str, Any]:
    if channel:
        return {"alert_id": alert_id, "channel": channel, "status": "pending", "last_error": ""}
    reason = "the callback names no channel and ALERT_CHANNEL is not set"
    return {"alert_id": alert_id, "channel": "", "status": "failed", "last_error": reason}


_INSERT_OUTBOX = outbox.insert()


def ensure_channel(conn: Connection, channel: str) -> None:
    """Make sure the channel has a delivery-state row."""
    conn.execute(_insert_channel(conn.dialect.name), {"channel": channel, "next_post_at": 0.0, "lease_until": 0.0})


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


@dataclass
class _Waiting:
    alert: IncomingAlert
    done: bool = False
    is_new: bool = False
    error: Exception | None = None


class AlertWriter:
    """Stores alerts for many request threads with *group commit*.

    A commit costs far more than an insert, and SQLite takes one writer at a time, so alerts that
    arrive together share one transaction: the first waiting thread writes everything queued so
    far, the others wait for that commit. No thread answers before its alert is committed.
    """

    def __init__(self, store: Store, *, fallback_channel: str) -> None:
        self.store = store
        self.fallback_channel = fallback_channel
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False
        self.batches = 0  # transactions written, for tests and benchmarks

    def store_alert(self, alert: IncomingAlert) -> bool:
        """Store it (with whatever else is waiting); False if it was already stored."""
        me = _Waiting(alert)
        with self._cond:
            self._queue.append(me)
            while self._writing and not me.done:
                self._cond.wait()
            if not me.done:
                self._writing = True
                batch, self._queue = self._queue, []
        if not me.done:
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
        if me.error is not None:
            raise me.error
        return me.is_new

    def _write(self, batch: list[_Waiting]) -> None:
        self.batches += 1
        try:
            outcomes = store_alerts(self.store, [w.alert for w in batch], fallback_channel=self.fallback_channel)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            # Alone, each alert stands or falls by itself rather than with its neighbours.
            for waiting in batch:
                self._write([waiting])
            return
        for waiting, is_new in zip(batch, outcomes, strict=True):
            waiting.is_new, waiting.done = is_new, True


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


def count_unsent(store: Store) -> dict[str, int]:
    """How many outbox rows are in each state short of sent (for /healthz).

    Sent rows are left out: they pile up for ever, and the status index keeps this cheap.
    """
    query = select(outbox.c.status, func.count()).where(outbox.c.status != "sent").group_by(outbox.c.status)
    with store.engine.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


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
