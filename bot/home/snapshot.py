"""What the App Home shows from Twilio, fetched at most once a minute however many people look.

A snapshot is three Twilio requests: this month's total spend (`Records/ThisMonth`), the last 14
days of total spend (`Records/Daily`, today included) and the account's usage triggers. The
`HomeCache` keeps the newest snapshot in the process and in the `state` table:

- within a process, one thread fetches while the others wait for its answer (a lock);
- across processes, whoever finds the snapshot in `state` older than a minute first claims the
  refresh (a conditional update of a `state` row); the others use the snapshot they find, or wait
  a few seconds for the one being fetched.

A Twilio error does not throw away the last good figures: the snapshot keeps them and says when
Twilio failed, and is itself kept for the minute, so a Twilio outage is not hammered either.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import SQLAlchemyError

from bot.clock import Clock
from bot.commands.queries import pace_line
from bot.model import TOTAL_SPEND, Period, UsageTrigger
from bot.store import Store
from bot.store.database import set_state
from bot.store.schema import state
from bot.usage.client import UsageClient
from bot.usage.errors import TwilioError

log = logging.getLogger(__name__)

TTL_SECONDS = 60.0  # Twilio is asked at most this often for the Home tab
SPARK_DAYS = 14
SNAPSHOT_KEY = "home.snapshot"
CLAIM_KEY = "home.refresh"
# How long a process that lost the refresh claim waits for the winner's snapshot.
WAIT_FOR_OTHER = 5.0


@dataclass(frozen=True)
class TriggerFigures:
    """One Twilio usage trigger as Home shows it."""

    sid: str
    category: str
    trigger_value: str
    current_value: str
    trigger_by: str
    recurring: str
    friendly_name: str = ""
    callback_url: str = ""
    date_fired: str = ""  # ISO 8601, "" when it never fired

    def as_trigger(self) -> UsageTrigger:
        fired = datetime.fromisoformat(self.date_fired) if self.date_fired else None
        return UsageTrigger(
            sid=self.sid,
            usage_category=self.category,
            trigger_value=self.trigger_value,
            current_value=self.current_value,
            trigger_by=self.trigger_by,
            recurring=self.recurring,
            friendly_name=self.friendly_name,
            callback_url=self.callback_url,
            date_fired=fired,
        )


@dataclass(frozen=True)
class Snapshot:
    """Twilio's figures for Home, and when they were fetched. Money is kept as text (exact)."""

    fetched_at: float
    price_unit: str = "usd"
    today: str | None = None
    month: str | None = None
    pace: str = ""  # the "on pace for" line, worded when fetched
    daily: list[tuple[str, str | None]] = field(default_factory=list)  # (GMT date, spend)
    triggers: list[TriggerFigures] = field(default_factory=list)
    usage_at: float | None = None  # when the spend figures were fetched (older than fetched_at after an error)
    triggers_at: float | None = None
    usage_error: str = ""  # what went wrong with the newest attempt, for a short note in the view
    triggers_error: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Snapshot | None:
        try:
            data = json.loads(text)
            data["daily"] = [(str(day), None if spend is None else str(spend)) for day, spend in data["daily"]]
            data["triggers"] = [TriggerFigures(**t) for t in data["triggers"]]
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None


def fetch_snapshot(twilio: UsageClient, now: float, previous: Snapshot | None = None) -> Snapshot:
    """Ask Twilio (three requests); a failed part keeps `previous`'s figures and says why."""
    moment = datetime.fromtimestamp(now, UTC)
    today = moment.date()
    snap = replace(previous, fetched_at=now) if previous is not None else Snapshot(fetched_at=now)
    try:
        snap = replace(snap, **_spend(twilio, today, moment), usage_at=now, usage_error="")
    except TwilioError as exc:
        log.warning("Home: Twilio usage unavailable: %s", exc)
        snap = replace(snap, usage_error=exc.user_message)
    try:
        found = twilio.list_triggers()
        figures = [_trigger_figures(t) for t in found]
        snap = replace(snap, triggers=figures, triggers_at=now, triggers_error="")
    except TwilioError as exc:
        log.warning("Home: Twilio triggers unavailable: %s", exc)
        snap = replace(snap, triggers_error=exc.user_message)
    return snap


def _spend(twilio: UsageClient, today: date, moment: datetime) -> dict[str, Any]:
    month = twilio.records(Period.THIS_MONTH, TOTAL_SPEND)
    start = today - timedelta(days=SPARK_DAYS - 1)
    daily = twilio.records(Period.DAILY, TOTAL_SPEND, start=start, end=today)
    by_day: dict[date, Decimal | None] = {}
    unit = "usd"
    for record in daily:
        if record.start_date is not None:
            by_day[record.start_date] = record.price
            unit = record.price_unit or unit
    total = next((r for r in month if r.category.strip().lower() == TOTAL_SPEND), None)
    if total is not None:
        unit = total.price_unit or unit
    pace = pace_line(month, moment)
    days = [start + timedelta(days=i) for i in range(SPARK_DAYS)]
    return {
        "price_unit": unit,
        "month": _text(total.price) if total is not None else None,
        "today": _text(by_day.get(today)),
        "pace": pace.text if pace is not None else "",
        "daily": [(day.isoformat(), _text(by_day.get(day))) for day in days],
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _trigger_figures(trigger: UsageTrigger) -> TriggerFigures:
    return TriggerFigures(
        sid=trigger.sid,
        category=trigger.usage_category,
        trigger_value=trigger.trigger_value,
        current_value=trigger.current_value,
        trigger_by=trigger.trigger_by,
        recurring=trigger.recurring,
        friendly_name=trigger.friendly_name,
        callback_url=trigger.callback_url,
        date_fired=trigger.date_fired.isoformat() if trigger.date_fired is not None else "",
    )


class HomeCache:
    """The newest Snapshot, refreshed at most once per TTL_SECONDS across threads and processes."""

    def __init__(
        self,
        store: Store,
        twilio: UsageClient,
        clock: Clock,
        *,
        ttl: float = TTL_SECONDS,
        wait_for_other: float = WAIT_FOR_OTHER,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.store = store
        self.twilio = twilio
        self.clock = clock
        self.ttl = ttl
        self.wait_for_other = wait_for_other
        self._sleep = sleep
        self._lock = threading.Lock()
        self._memory: Snapshot | None = None

    def get(self) -> Snapshot | None:
        """The current snapshot; None only when no process could fetch one in time."""
        with self._lock:  # one fetch per process at a time; the others wait for its result
            now = self.clock()
            if self._fresh(self._memory, now):
                return self._memory
            stored = self._stored()
            if self._fresh(stored, now):
                self._memory = stored
                return stored
            previous = _newest(self._memory, stored)
            if not self._claim(now):
                found = self._wait_for_other(previous)
                self._memory = found or previous
                return self._memory
            snap = fetch_snapshot(self.twilio, now, previous)
            self._memory = snap
            self._save(snap)
            return snap

    def _fresh(self, snap: Snapshot | None, now: float) -> bool:
        return snap is not None and 0 <= now - snap.fetched_at < self.ttl

    def _stored(self) -> Snapshot | None:
        try:
            text = self.store.get_state(SNAPSHOT_KEY)
        except SQLAlchemyError as exc:
            log.warning("Home: could not read the cached snapshot (%s)", type(exc).__name__)
            return None
        return Snapshot.from_json(text) if text else None

    def _claim(self, now: float) -> bool:
        """This process fetches the next snapshot, unless another claimed it within the TTL. If
        the database cannot say, fetch: Home with figures beats a second request to Twilio."""

        def claim(conn: Connection) -> bool:
            moved = conn.execute(
                state.update()
                .where(state.c.key == CLAIM_KEY, state.c.updated_at <= now - self.ttl)
                .values(value="", updated_at=now)
            )
            if moved.rowcount:
                return True
            if conn.execute(select(state.c.key).where(state.c.key == CLAIM_KEY)).first() is not None:
                return False
            conn.execute(insert(state).values(key=CLAIM_KEY, value="", updated_at=now))
            return True

        try:
            return self.store.write(claim)
        except SQLAlchemyError as exc:
            log.warning("Home: could not claim the refresh (%s); fetching anyway", type(exc).__name__)
            return True

    def _wait_for_other(self, previous: Snapshot | None) -> Snapshot | None:
        """Another process is fetching: its snapshot, once saved, or None after a few seconds."""
        before = previous.fetched_at if previous is not None else -1.0
        deadline = time.monotonic() + self.wait_for_other
        while True:
            stored = self._stored()
            if stored is not None and stored.fetched_at > before:
                return stored
            if previous is not None or time.monotonic() >= deadline:
                return None  # stale figures now beat fresh ones later
            self._sleep(0.2)

    def _save(self, snap: Snapshot) -> None:
        try:
            self.store.write(lambda conn: set_state(conn, SNAPSHOT_KEY, snap.to_json(), now=snap.fetched_at))
        except SQLAlchemyError as exc:
            log.warning("Home: could not store the snapshot (%s)", type(exc).__name__)


def _newest(a: Snapshot | None, b: Snapshot | None) -> Snapshot | None:
    if a is None or b is None:
        return a or b
    return a if a.fetched_at >= b.fetched_at else b
