"""The watch stage of the scheduled pass (`python -m bot scheduled`, bot/reports/scheduler.py).

Only when some channel watches: one request for Twilio's Usage/Records/Today (every category,
PageSize=1000, however many channels and categories are watched), stored as a compact snapshot;
once per GMT day the Daily records of the last 28 days (cached in the database for every
process); the day's profiles (cached likewise); then `decide.decide`, and each alert stored
through the outbox (bot/alerts/outbox.py) so the relay delivers it like a trigger alert.

Exactly once with any number of passes at once: an alert and the update of its spike state
commit together, and the update is conditional on the state (`store.claim_alert`); the alert's
dedupe key, `spike:{channel}:{category}:{day}:{kind}`, is a second guard.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection

from bot.alerts.intake import store_generated_alert
from bot.model import IncomingAlert, Period, UsageRecord
from bot.store import Store
from bot.usage.errors import TwilioError
from bot.usage.source import RecordSource
from bot.watch import decide
from bot.watch import store as watch_store
from bot.watch.baseline import profiles_for
from bot.watch.model import (
    AlertKind,
    DailyTotal,
    Profile,
    Sensitivity,
    Snapshot,
    SpikeAlert,
    Totals,
    Watch,
    WatchSettings,
)
from bot.watch.render import render_spike, spike_sid
from bot.watch.store import WatchRow

log = logging.getLogger(__name__)

HISTORY_DAYS = 28  # days of Daily records and of stored snapshots a profile is built from
DAILY_CLAIM_STALE = 600.0  # a pass that claimed the Daily fetch this long ago and stored nothing died
SPIKE_KIND = "spike"


@dataclass
class WatchReport:
    """What the watch stage of one pass did."""

    watches: int = 0  # watch rows (0: nothing was fetched)
    categories: int = 0  # categories with usage today
    alerts: int = 0  # spike alerts stored for the relay
    taken_by_other_pass: int = 0  # alerts another pass stored first
    twilio_requests: int = 0  # Usage Records lists fetched (Today, and Daily once a day)
    error: str = ""

    def summary(self) -> str:
        if not self.watches:
            return "watch: nothing watched"
        text = (
            f"watch: {self.watches} watches, {self.categories} categories with usage, {self.alerts} spike alerts"
            f" ({self.taken_by_other_pass} taken by another pass), Twilio lists fetched {self.twilio_requests}"
        )
        return text + (f", error: {self.error}" if self.error else "")


def run_watch(store: Store, usage: RecordSource, *, now: datetime, settings: WatchSettings) -> WatchReport:
    """One check of every watch; a Twilio error is logged (no secret in it) and reported, and the
    next pass tries again: no user hears of it."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    report = WatchReport()
    rows = watch_store.list_watches(store)
    report.watches = len(rows)
    if not rows:
        return report
    try:
        records = usage.records(Period.TODAY)
    except TwilioError as exc:
        log.warning("watch: Twilio's Usage Records could not be fetched (%s); the next pass tries again", exc)
        report.error = f"Twilio: {exc.status or 'no answer'}"
        return report
    report.twilio_requests += 1
    snapshot = snapshot_of(records, now)
    report.categories = len(snapshot.totals)
    watch_store.save_snapshot(store, snapshot)
    day = now.date()
    today = watch_store.snapshots_between(store, day, day)
    daily_day, daily = _daily(store, usage, day, now, report)
    profiles = _profiles(store, day, daily_day, daily, settings, now)
    states = watch_store.load_states(store, day)
    alerts, new_states = decide.decide(watches_of(rows, snapshot), today, profiles, states, now=now, settings=settings)
    changes = {
        key: state.first_above_at
        for key, state in new_states.items()
        if states.get(key) is None or states[key].first_above_at != state.first_above_at
    }
    if changes:
        store.write(lambda conn: watch_store.save_first_above(conn, day, changes))
    descriptions = {r.category: r.description for r in records}
    for alert in alerts:
        details = render_spike(
            alert,
            description=descriptions.get(alert.verdict.category, ""),
            days=spark_days(daily, alert.verdict.category, day),
        )
        if store.write(lambda conn, alert=alert, details=details: _store_alert(conn, alert, details, now)):
            report.alerts += 1
            log.info("spike alert (%s) for %s stored for %s", alert.kind, alert.verdict.category, alert.channel)
        else:
            report.taken_by_other_pass += 1
    return report


def snapshot_of(records: Sequence[UsageRecord], now: datetime) -> Snapshot:
    """The categories with usage in Twilio's Today records (count and price > 0 where known)."""
    totals: dict[str, Totals] = {}
    for record in records:
        count = float(record.count) if record.count is not None and record.count.is_finite() else 0.0
        price = abs(float(record.price)) if record.price is not None and record.price.is_finite() else 0.0
        if (count > 0 or price > 0) and record.category and record.category not in totals:
            totals[record.category] = Totals(count, price)
    return Snapshot(now, totals)


def watches_of(rows: Sequence[WatchRow], latest: Snapshot) -> list[Watch]:
    """The watches as decide takes them, each (channel, category) once: a category a channel
    names is checked at its own sensitivity, the channel's every-category watch covers the rest."""
    by_channel: dict[str, list[WatchRow]] = defaultdict(list)
    for row in rows:
        by_channel[row.channel_id].append(row)
    watches = []
    for channel, channel_rows in sorted(by_channel.items()):
        named = {r.category: r.sensitivity for r in channel_rows if r.category}
        groups: dict[str, list[str]] = defaultdict(list)
        for category, sensitivity in named.items():
            groups[sensitivity].append(category)
        for row in channel_rows:
            if not row.category:
                every = Watch(channel, (), _sensitivity(row.sensitivity))
                groups[row.sensitivity] += [c for c in decide.watched_categories(every, latest) if c not in named]
        for sensitivity, categories in sorted(groups.items()):
            if categories:
                watches.append(Watch(channel, tuple(sorted(categories)), _sensitivity(sensitivity)))
    return watches


def _sensitivity(value: str) -> Sensitivity:
    try:
        return Sensitivity(value)
    except ValueError:
        return Sensitivity.NORMAL


def spark_days(daily: Sequence[DailyTotal], category: str, day: date) -> list[tuple[date, float | None]]:
    """(day, spend) of the 14 days before `day` from the Daily records; None when none are cached."""
    if not daily:
        return []
    spend = {d.day: d.price for d in daily if d.category == category}
    days = [day - timedelta(days=n) for n in range(14, 0, -1)]
    return [(d, spend.get(d, 0.0)) for d in days]


def _store_alert(conn: Connection, alert: SpikeAlert, details: dict[str, object], now: datetime) -> bool:
    """Claim the alert in its spike state and store it with its outbox row: one transaction."""
    verdict = alert.verdict
    escalation = alert.kind is AlertKind.ESCALATION
    claimed = watch_store.claim_alert(
        conn,
        channel_id=alert.channel,
        category=verdict.category,
        day=alert.day,
        escalation=escalation,
        excess=verdict.excess_price,
        first_above_at=verdict.started_at,
    )
    if not claimed:
        return False
    key = f"spike:{alert.channel}:{verdict.category}:{alert.day.isoformat()}:{alert.kind}"
    incoming = IncomingAlert(
        dedupe_key=key[:255],
        firing_key=None,
        trigger_sid=spike_sid(verdict.category),
        account_sid="",
        category=verdict.category,
        trigger_by="price",
        trigger_value=f"{verdict.usual_by_now.price:.2f}",
        current_value=f"{verdict.today.price:.2f}",
        recurring="daily",
        date_fired="",
        fired_at=now.timestamp(),
        requested_channel=alert.channel,
        params={},
    )
    return store_generated_alert(
        conn,
        incoming,
        channel=alert.channel,
        kind=SPIKE_KIND,
        details=json.dumps(details, separators=(",", ":")),
        at=now.timestamp(),
    )


# --- the day's Daily records and profiles -------------------------------------------------


def _daily(
    store: Store, usage: RecordSource, day: date, now: datetime, report: WatchReport
) -> tuple[date | None, list[DailyTotal]]:
    """The Daily records of the 28 days before `day`: fetched by one pass a day, cached for all."""
    cached = watch_store.cached_daily(store)
    if cached is not None and cached[0] == day:
        return cached
    at = now.timestamp()
    if not watch_store.claim_daily_fetch(store, day, now=at, stale_after=DAILY_CLAIM_STALE):
        # Another pass is fetching them: until it has, yesterday's copy (if any) will do.
        return cached if cached is not None else (None, [])
    try:
        records = usage.records(Period.DAILY, start=day - timedelta(days=HISTORY_DAYS), end=day - timedelta(days=1))
    except TwilioError as exc:
        watch_store.release_daily_claim(store)
        log.warning("watch: Twilio's Daily records could not be fetched (%s); the next pass tries again", exc)
        report.error = f"Twilio Daily: {exc.status or 'no answer'}"
        return cached if cached is not None else (None, [])
    report.twilio_requests += 1
    daily = [
        DailyTotal(
            r.start_date,
            r.category,
            float(r.count) if r.count is not None and r.count.is_finite() else 0.0,
            abs(float(r.price)) if r.price is not None and r.price.is_finite() else 0.0,
        )
        for r in records
        if r.start_date is not None and r.category
    ]
    store.write(lambda conn: watch_store.save_daily(conn, day, daily, now=at))
    return day, daily


def _profiles(
    store: Store,
    day: date,
    daily_day: date | None,
    daily: Sequence[DailyTotal],
    settings: WatchSettings,
    now: datetime,
) -> dict[str, Profile]:
    cached = watch_store.cached_profiles(store, day, daily_day)
    if cached is not None:
        return cached
    history = watch_store.snapshots_between(store, day - timedelta(days=HISTORY_DAYS), day - timedelta(days=1))
    profiles = profiles_for(day, history, daily, settings)
    watch_store.save_profiles(store, day, daily_day, profiles, now=now.timestamp())
    return profiles
