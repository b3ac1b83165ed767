"""Receiving alerts: a verified Twilio callback becomes a stored alert plus its outbox row.

The receive + dedupe stage of the alert pipeline (docs/ARCHITECTURE.md): handlers/twilio_callbacks.py
has verified the signature (bot/alerts/signature.py); here the callback is parsed and stored with
its outbox row (bot/alerts/outbox.py); bot/alerts/relay.py delivers it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime

from bot.alerts.intake import store_alerts
from bot.alerts.single_writer import WriterClient, WriterUnavailable
from bot.clock import Clock, system_clock
from bot.model import IncomingAlert
from bot.store import Store
from bot.store.schema import alerts

log = logging.getLogger(__name__)

MAX_FIELD = 255

# Twilio's usage trigger callback parameters (https://www.twilio.com/docs/usage/api/usage-trigger),
# plus `channel`, the query parameter of our own callback URL (bot/alerts/triggers.py): kept whole.
KNOWN_PARAMS = frozenset(
    {
        "AccountSid",
        "ApiVersion",
        "UsageTriggerSid",
        "DateFired",
        "Recurring",
        "UsageCategory",
        "TriggerBy",
        "TriggerValue",
        "CurrentValue",
        "UsageRecordUri",
        "IdempotencyToken",
        "FriendlyName",
        "CallbackUrl",
        "CallbackMethod",
        "channel",
    }
)
# Any other parameter is kept only within these bounds, so a callback cannot make a row grow
# without limit; what does not fit is counted under DROPPED.
MAX_OTHER_PARAMS = 20
MAX_OTHER_NAME = 64
MAX_OTHER_VALUE = 256
MAX_PARAMS_JSON = 4096  # bytes of the stored JSON (ASCII: json.dumps escapes the rest)
DROPPED = "_dropped"


def parse_callback(
    params: Mapping[str, str], *, header_token: str = "", channel: str = "", clock: Clock = system_clock
) -> IncomingAlert | None:
    """The alert in a callback, or None when it names no trigger (nothing to relay).

    Only UsageTriggerSid is required: Twilio's callback fields are not all documented, so
    everything else is optional; the parameters are kept as received, within `cap_params`.
    """
    received = clock()
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
        params=cap_params(params),
    )


def cap_params(params: Mapping[str, str]) -> dict[str, str]:
    """The parameters to store: Twilio's own (`KNOWN_PARAMS`) whole; others in the order received
    while they fit (`MAX_OTHER_*`, `MAX_PARAMS_JSON`); `"_dropped": "N"` counts the rest.

    The signature was checked over every parameter before this (handlers/twilio_callbacks.py).
    """
    if KNOWN_PARAMS.issuperset(params):  # the usual callback: nothing to weigh
        return dict(params)
    kept = {name: value for name, value in params.items() if name in KNOWN_PARAMS}
    # json.dumps writes `{` `"name": "value"` joined by `, ` `}`: each entry costs its two JSON
    # strings plus 4 characters at most; room is kept for the DROPPED entry.
    size = 2 + sum(_entry_size(name, value) for name, value in kept.items())
    size += _entry_size(DROPPED, str(len(params)))
    others = 0
    for name, value in params.items():
        if name in KNOWN_PARAMS or name == DROPPED or others == MAX_OTHER_PARAMS:
            continue
        if len(name) <= MAX_OTHER_NAME and len(value) <= MAX_OTHER_VALUE:
            cost = _entry_size(name, value)
            if size + cost <= MAX_PARAMS_JSON:
                kept[name] = value
                others += 1
                size += cost
    if dropped := len(params) - len(kept):
        kept[DROPPED] = str(dropped)
    return kept


def _entry_size(name: str, value: str) -> int:
    return len(json.dumps(name)) + len(json.dumps(value)) + 4


class _Waiting:
    """One request thread's alert, and the lock it sleeps on until the alert is written or the
    thread is to write the next batch."""

    __slots__ = ("alert", "done", "error", "is_new", "wake")

    def __init__(self, alert: IncomingAlert) -> None:
        self.alert = alert
        self.wake = threading.Lock()
        self.wake.acquire()
        self.done = False
        self.is_new = False
        self.error: Exception | None = None


class AlertWriter:
    """Stores alerts for many request threads with *group commit*.

    A commit costs far more than an insert, and SQLite takes one writer at a time, so alerts that
    arrive together share one transaction: one thread at a time (the leader) writes everything
    queued so far; the others sleep until their alert is committed. The leader then wakes exactly
    those, and hands the lead to the first thread still waiting, if any. No thread answers before
    its alert is committed.

    With `single_writer` (a Unix socket's path: SQLite under gunicorn), each alert goes to the
    process that writes for every worker (bot/alerts/single_writer.py) instead, and is stored here
    only when that process cannot be reached.
    """

    def __init__(
        self, store: Store, *, fallback_channel: str, clock: Clock = system_clock, single_writer: str = ""
    ) -> None:
        self.store = store
        self.single_writer = WriterClient(single_writer) if single_writer else None
        self.unreachable = 0  # alerts stored here because the single writer could not be reached
        self.fallback_channel = fallback_channel
        self.clock = clock
        self._mutex = threading.Lock()
        self._queue: list[_Waiting] = []
        self._writing = False
        self.batches = 0  # transactions written, for tests and benchmarks

    def store_alert(self, alert: IncomingAlert) -> bool:
        """Store it (with whatever else is waiting); False if it was already stored."""
        if self.single_writer is not None:
            try:
                return self.single_writer.store_alert(alert)
            except WriterUnavailable as exc:
                self.unreachable += 1
                if self.unreachable == 1 or self.unreachable % 1000 == 0:  # a line, not one per callback
                    log.info("storing callbacks in this worker: the single writer is unavailable (%s)", exc)
        me = _Waiting(alert)
        with self._mutex:
            self._queue.append(me)
            leads = not self._writing
            self._writing = True
        if not leads:
            me.wake.acquire()  # released when our alert is written, or when the lead is ours
        if not me.done:
            self._lead()
        if me.error is not None:
            raise me.error
        return me.is_new

    def _lead(self) -> None:
        """Write what is queued (our own alert among it), wake its threads, pass the lead on."""
        with self._mutex:
            batch, self._queue = self._queue, []
        written = False
        try:
            self._write(batch)
            written = True
        finally:
            with self._mutex:
                successor = self._queue[0] if self._queue else None
                self._writing = successor is not None
            for waiting in batch:
                if not written and waiting.error is None:  # interrupted: never answer as if stored
                    waiting.error = RuntimeError("the alert was not written")
                waiting.done = True
                waiting.wake.release()  # each lock is held once, by its own thread or since it was made
            if successor is not None:
                successor.wake.release()

    def _write(self, batch: list[_Waiting]) -> None:
        self.batches += 1
        alerts = [waiting.alert for waiting in batch]
        outcomes = write_alerts(self.store, alerts, fallback_channel=self.fallback_channel, received=self.clock())
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                waiting.error = outcome
            else:
                waiting.is_new = outcome


def write_alerts(
    store: Store, batch: Sequence[IncomingAlert], *, fallback_channel: str, received: float
) -> list[bool | Exception]:
    """Store the alerts in one transaction; for each, whether it was new, or the error that kept it
    out. If the transaction fails, each alert is tried alone, so that it stands or falls by itself
    rather than with its neighbours. (AlertWriter and the single writer both write this way.)"""
    try:
        return list(store_alerts(store, batch, fallback_channel=fallback_channel, received=received))
    except Exception as exc:
        if len(batch) == 1:
            return [exc]
    return [write_alerts(store, [alert], fallback_channel=fallback_channel, received=received)[0] for alert in batch]


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


# Each text column's width: PostgreSQL refuses longer values (SQLite would store them), and a
# refused insert is a 503 on every retry, i.e. a lost alert.
_WIDTHS = {column.name: getattr(column.type, "length", None) or MAX_FIELD for column in alerts.c}


def _clip(value: str, column: str) -> str:
    return value[: _WIDTHS[column]]


def _token_key(token: str) -> str:
    """The dedupe key for an idempotency token; a token too long for the column is hashed."""
    key = "token:" + token
    if len(key) <= MAX_FIELD:
        return key
    return "token-sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()
