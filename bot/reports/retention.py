"""Retention: the scheduled pass (bot/reports/scheduler.py) deletes what has served its purpose,
so the database stays about RETENTION_DAYS' worth of rows however long the bot runs.

What goes (README, "Retention"): alerts delivered more than RETENTION_DAYS ago with their outbox
rows; digest and budget-warning runs sent that long ago (kept at least `REPORT_RUN_MIN_DAYS`);
audit entries older than max(RETENTION_DAYS, `AUDIT_MIN_DAYS`); the spend-spike watch's usage
snapshots and spike states of GMT days more than `WATCH_DAYS` ago (bot/watch/store.py).
Pending, sending, held and failed alerts are never deleted by age, nor are channel rows (one per
channel, needed by the relay). Each repository owns its DELETE (bot/alerts/outbox.py,
bot/reports/runs.py, bot/audit.py, bot/watch/store.py); this
module decides when and up to when, and deletes in bounded batches, one transaction each, so a
big first prune never holds SQLite's single writer lock for long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from bot import audit
from bot.alerts import outbox
from bot.reports import runs
from bot.store import Store, set_state
from bot.store.schema import state
from bot.watch import store as watch_store

log = logging.getLogger(__name__)

DAY = 86_400.0
# Pruning runs at most once an hour, whatever the number or frequency of scheduled passes.
PRUNE_EVERY_SECONDS = 3_600.0
LAST_RUN_STATE = "retention_last_run"  # state row: Unix seconds of the last pruning
BATCH_ROWS = 1_000  # rows deleted per transaction
# The audit trail answers "who turned our alerting off?" over a year.
AUDIT_MIN_DAYS = 365
# A run row is what stops a second copy of its report: a month's budget warning, claimed as early
# as the 1st, must stay until the month is over (bot/reports/budgets.py), so runs outlive any
# period they can claim.
REPORT_RUN_MIN_DAYS = 35
# The watch builds what is usual from the last 28 days of snapshots; 35 days keep a margin and
# bound its storage (bench/WATCH_STORAGE.md), whatever RETENTION_DAYS says (other than 0).
WATCH_DAYS = 35


@dataclass(frozen=True)
class Cutoffs:
    """Unix seconds: rows older than these go."""

    alerts_sent_before: float
    runs_sent_before: float
    audit_before: float
    watch_before_day: date  # usage snapshots and spike states of GMT days before this one


@dataclass
class Pruned:
    """What one pruning deleted."""

    alerts: int = 0  # delivered alerts, each with its outbox row
    report_runs: int = 0
    audit_entries: int = 0
    usage_snapshots: int = 0
    spike_states: int = 0

    def summary(self) -> str:
        text = (
            f"deleted {self.alerts} delivered alerts, {self.report_runs} report runs, "
            f"{self.audit_entries} audit entries"
        )
        if self.usage_snapshots or self.spike_states:
            text += f", {self.usage_snapshots} usage snapshots, {self.spike_states} spike states"
        return text


def cutoffs(retention_days: int, now: float) -> Cutoffs | None:
    """Up to when each kind of row is deleted at `now`; None when RETENTION_DAYS is 0 (keep all)."""
    if retention_days <= 0:
        return None
    return Cutoffs(
        alerts_sent_before=now - retention_days * DAY,
        runs_sent_before=now - max(retention_days, REPORT_RUN_MIN_DAYS) * DAY,
        audit_before=now - max(retention_days, AUDIT_MIN_DAYS) * DAY,
        watch_before_day=(datetime.fromtimestamp(now, UTC) - timedelta(days=WATCH_DAYS)).date(),
    )


def is_due(last_run: str | None, now: float) -> bool:
    """Whether to prune at `now`, given the stored time of the last pruning."""
    try:
        last = float(last_run or "")
    except ValueError:
        return True
    # A time ahead of `now` (another machine's clock, or a clock set back) is not trusted.
    return not now - PRUNE_EVERY_SECONDS < last <= now


def prune_if_due(store: Store, *, retention_days: int, now: float) -> Pruned | None:
    """Prune when RETENTION_DAYS is set and the last pruning is an hour old; None when not."""
    limits = cutoffs(retention_days, now)
    if limits is None or not _claim(store, now):
        return None
    pruned = prune(store, limits)
    log.info("retention (%d days): %s", retention_days, pruned.summary())
    return pruned


def prune(store: Store, limits: Cutoffs) -> Pruned:
    """Delete everything older than `limits`, `BATCH_ROWS` rows per transaction."""
    return Pruned(
        alerts=_in_batches(
            store, lambda conn: outbox.prune_sent(conn, sent_before=limits.alerts_sent_before, limit=BATCH_ROWS)
        ),
        report_runs=_in_batches(
            store, lambda conn: runs.prune_sent(conn, sent_before=limits.runs_sent_before, limit=BATCH_ROWS)
        ),
        audit_entries=_in_batches(store, lambda conn: audit.prune(conn, before=limits.audit_before, limit=BATCH_ROWS)),
        usage_snapshots=_in_batches(
            store,
            lambda conn: watch_store.prune_snapshots(conn, before_day=limits.watch_before_day, limit=BATCH_ROWS),
        ),
        spike_states=store.write(lambda conn: watch_store.prune_states(conn, before_day=limits.watch_before_day)),
    )


def _in_batches(store: Store, delete_batch: Callable[[Connection], int]) -> int:
    total = 0
    while True:
        deleted = store.write(delete_batch)
        total += deleted
        if deleted < BATCH_ROWS:
            return total


def _claim(store: Store, now: float) -> bool:
    """Record this pruning, unless one ran within the hour; True when this pass is to prune.

    Of passes running at once, one prunes and the others see its time: the state row is read
    FOR UPDATE (PostgreSQL; SQLite has one writer at a time anyway), so the others wait for this
    transaction and then read the new time; the very first time, when there is no row to lock,
    the row is inserted only if no other pass inserted it meanwhile.
    """

    def claim(conn: Connection) -> bool:
        last = conn.execute(
            select(state.c.value).where(state.c.key == LAST_RUN_STATE).with_for_update()
        ).scalar_one_or_none()
        if not is_due(last, now):
            return False
        if last is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            # RETURNING: with ON CONFLICT DO NOTHING, a row comes back only when this one went in.
            first = dialect.insert(state).on_conflict_do_nothing().returning(state.c.key)
            return conn.execute(first.values(key=LAST_RUN_STATE, value=repr(now), updated_at=now)).first() is not None
        set_state(conn, LAST_RUN_STATE, repr(now), now=now)
        return True

    return store.write(claim)
