"""The scheduled pass (`python -m bot scheduled`, a `clock:` process or a scheduler job): post every
digest and budget warning that is due, each exactly once, through the one poster (bot/slack.py);
check the spend-spike watches (bot/watch/watcher.py); and, once an hour, prune old rows.

Exactly once with any number of passes running: each run is claimed first (bot/reports/runs.py);
a stale claim is settled by looking for its run id in the channel before posting again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import SQLAlchemyError

from bot import audit
from bot.model import Message
from bot.reports import budgets, retention, runs
from bot.reports.digests import SharedRecords, fetch_digest
from bot.reports.render_budgets import render_budget_warning
from bot.reports.render_digests import render_digest
from bot.reports.runs import RunKind
from bot.reports.schedule import due_period
from bot.reports.subscriptions import list_subscriptions
from bot.slack import Marker, PostOutcome, SlackPoster
from bot.store import Store
from bot.usage.errors import TwilioError
from bot.usage.source import RecordSource
from bot.watch.model import WatchSettings
from bot.watch.watcher import WatchReport, run_watch

log = logging.getLogger(__name__)

METADATA_EVENT = "usage_digest"
POST_THREADS = 8


@dataclass
class RunReport:
    """What one pass did."""

    digests_due: int = 0  # subscriptions with a digest due now
    budgets_checked: int = 0  # budgets not yet warned this period, checked against Twilio
    posted: int = 0  # messages posted (digests and budget warnings)
    warnings: int = 0  # of which budget warnings
    settled: int = 0  # interrupted posts found already in their channel
    skipped: int = 0  # sent before, or being sent by another instance
    retry_later: int = 0  # left for a later pass (Twilio or Slack trouble)
    undeliverable: int = 0  # channel gone, bot not in it, message refused: given up, noted
    twilio_fetches: int = 0  # distinct Twilio lists fetched this pass
    pruned: retention.Pruned | None = None  # old rows deleted, when this pass pruned (hourly)
    watch: WatchReport | None = None  # the spend-spike watch stage
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            (
                f"digests due {self.digests_due}, budgets checked {self.budgets_checked}, posted {self.posted} "
                f"({self.warnings} budget warnings), settled {self.settled}, skipped {self.skipped}, "
                f"retry later {self.retry_later}, undeliverable {self.undeliverable}, "
                f"Twilio lists fetched {self.twilio_fetches}"
            )
            + (f"; retention: {self.pruned.summary()}" if self.pruned is not None else "")
            + (f"; {self.watch.summary()}" if self.watch is not None and self.watch.watches else "")
        )


@dataclass
class _Job:
    run_id: int
    kind: RunKind
    channel: str
    message: Message
    claimed_at: float


def run_due(
    store: Store,
    usage: RecordSource,
    poster: SlackPoster,
    *,
    now: datetime,
    tz: tzinfo,
    threads: int = POST_THREADS,
    retention_days: int = 0,
    watch_settings: WatchSettings | None = None,
) -> RunReport:
    """One pass: post every digest and budget warning that is due at `now` and not yet sent,
    check the spend-spike watches (bot/watch/watcher.py), then, at most once an hour, delete rows
    older than `retention_days` (0: keep everything; bot/reports/retention.py).

    Safe to run from any number of processes at once; every due digest goes out once.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = RunReport()
    shared = SharedRecords(usage)
    pass_started = time.monotonic()
    jobs = _digest_jobs(store, shared, poster, now, tz, report)
    jobs += _budget_jobs(store, shared, poster, now, report)
    _post_jobs(store, poster, jobs, now, report, threads=threads, pass_started=pass_started)
    report.twilio_fetches = shared.fetches
    report.watch = _watch_stage(store, usage, now, watch_settings or WatchSettings(), report)
    try:
        report.pruned = retention.prune_if_due(store, retention_days=retention_days, now=now.timestamp())
    except SQLAlchemyError as exc:  # the posts are done; pruning waits for a later pass
        log.warning("retention: deleting old rows failed (%s); a later pass tries again", type(exc).__name__)
        report.errors.append(f"retention: {type(exc).__name__}")
    return report


def _watch_stage(
    store: Store, usage: RecordSource, now: datetime, settings: WatchSettings, report: RunReport
) -> WatchReport | None:
    """The watch stage; whatever goes wrong in it is logged and leaves the rest of the pass alone
    (a Twilio error is handled inside, and the next pass tries again)."""
    try:
        watch = run_watch(store, usage, now=now, settings=settings)
    except Exception as exc:  # the digests are posted; the clock goes on
        log.exception("watch: the spend-spike check failed (%s); the next pass tries again", type(exc).__name__)
        report.errors.append(f"watch: {type(exc).__name__}")
        return None
    if watch.error:
        report.errors.append(watch.error)
    return watch


def _marker(run_id: int) -> Marker:
    return Marker(METADATA_EVENT, {"run": run_id})


def _settle_stale(store: Store, poster: SlackPoster, row: Row[Any], channel: str, at: float, report: RunReport) -> bool:
    """Take over a stale claim; True when it still has to be posted (by us)."""
    if not runs.take_over(store, row.id, at):
        report.skipped += 1
        return False
    if poster.already_posted(channel, _marker(row.id), row.claimed_at):
        runs.mark_sent(store, row.id, at)
        report.settled += 1
        log.info("run %s had reached %s before an interruption; marked sent", row.id, channel)
        return False
    return True


def _claim_or_settle(
    store: Store,
    poster: SlackPoster,
    row: Row[Any] | None,
    kind: RunKind,
    subject_id: int,
    key: str,
    channel: str,
    at: float,
    report: RunReport,
) -> int | None:
    """The run id this pass now owns and must post, or None (someone else has it, or it was
    already in the channel)."""
    if row is not None:
        return row.id if _settle_stale(store, poster, row, channel, at, report) else None
    claimed = runs.claim(store, kind, subject_id, key, at)
    if claimed is None:
        report.skipped += 1
    return claimed


def _digest_jobs(
    store: Store, shared: SharedRecords, poster: SlackPoster, now: datetime, tz: tzinfo, report: RunReport
) -> list[_Job]:
    at = now.timestamp()
    due = [(sub, key) for sub in list_subscriptions(store) if (key := due_period(now, tz, sub.cadence, sub.at_minutes))]
    report.digests_due = len(due)
    existing = runs.runs_for(store, RunKind.DIGEST, {key for _, key in due})
    messages: dict[tuple[str, str], Message | TwilioError] = {}

    def message_for(cadence: str, key: str) -> Message | TwilioError:
        # One digest per (cadence, period), whatever the number of channels.
        if (cadence, key) not in messages:
            try:
                messages[(cadence, key)] = render_digest(fetch_digest(shared, cadence, key, now))
            except TwilioError as exc:
                log.warning("Twilio error computing the %s digest %s: %s", cadence, key, exc)
                report.errors.append(f"{cadence} {key}: {exc}")
                messages[(cadence, key)] = exc
        return messages[(cadence, key)]

    jobs = []
    for sub, key in due:
        row = existing.get((sub.id, key))
        if row is not None and not runs.is_stale(row, at):
            report.skipped += 1
            continue
        message = message_for(sub.cadence, key)
        if isinstance(message, TwilioError):
            report.retry_later += 1  # nothing claimed yet (or the stale claim is left as it is)
            continue
        run_id = _claim_or_settle(store, poster, row, RunKind.DIGEST, sub.id, key, sub.channel_id, at, report)
        if run_id is not None:
            jobs.append(_Job(run_id, RunKind.DIGEST, sub.channel_id, message, at))
    return jobs


def _budget_jobs(
    store: Store, shared: SharedRecords, poster: SlackPoster, now: datetime, report: RunReport
) -> list[_Job]:
    at = now.timestamp()
    planned = []
    for budget in budgets.list_budgets(store):
        start, end, key = budgets.budget_period(budget.period, now)
        planned.append((budget, start, end, key))
    existing = runs.runs_for(store, RunKind.BUDGET_WARNING, {key for *_, key in planned})
    today = now.astimezone(UTC).date()
    jobs = []
    for budget, start, end, key in planned:
        row = existing.get((budget.id, key))
        if row is not None and not runs.is_stale(row, at):
            continue  # warned already this period (or being warned right now)
        report.budgets_checked += 1
        try:
            # Period to date, every category in one list: shared by all budgets of the period.
            records = shared.get(None, None, start.date(), today)
        except TwilioError as exc:
            report.retry_later += 1
            report.errors.append(f"budget {budget.id}: {exc}")
            continue
        spent, unit = budgets.spent_in(records, budget.category)
        check = budgets.check_budget(budget.amount, spent, start, end, now, price_unit=unit)
        if not check.warn:
            if row is not None and _settle_stale(store, poster, row, budget.channel_id, at, report):
                runs.release(store, row.id)  # an interrupted warning that is no longer true: drop it
            continue
        run_id = _claim_or_settle(
            store, poster, row, RunKind.BUDGET_WARNING, budget.id, key, budget.channel_id, at, report
        )
        if run_id is not None:
            warning = render_budget_warning(budget, check)
            jobs.append(_Job(run_id, RunKind.BUDGET_WARNING, budget.channel_id, warning, at))
    return jobs


def _post_jobs(
    store: Store,
    poster: SlackPoster,
    jobs: list[_Job],
    now: datetime,
    report: RunReport,
    *,
    threads: int,
    pass_started: float,
) -> None:
    # One worker per channel at a time (a channel may get a daily, a weekly and a monthly digest
    # and a warning on the same morning: Slack paces posts per channel), channels in parallel.
    by_channel: dict[str, list[_Job]] = {}
    for job in jobs:
        by_channel.setdefault(job.channel, []).append(job)
    lock = threading.Lock()

    def work(channel_jobs: list[_Job]) -> None:
        for job in channel_jobs:
            outcome = _post_one(store, poster, job, now, pass_started)
            with lock:
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome == "posted" and job.kind is RunKind.BUDGET_WARNING:
                    report.warnings += 1

    groups = list(by_channel.values())
    if len(groups) <= 1 or threads <= 1:
        for group in groups:
            work(group)
        return
    with ThreadPoolExecutor(min(threads, len(groups)), thread_name_prefix="digests") as pool:
        list(pool.map(work, groups))


def _post_one(store: Store, poster: SlackPoster, job: _Job, now: datetime, pass_started: float) -> str:
    """Post one claimed run; the RunReport field to count it in."""
    if time.monotonic() - pass_started > runs.STALE_CLAIM_SECONDS / 2 and not runs.still_ours(
        store, job.run_id, job.claimed_at
    ):
        # A very long pass: another instance may have taken this claim over as stale.
        return "skipped"
    result = poster.post(job.channel, job.message, _marker(job.run_id))
    outcome = result.outcome
    if outcome is PostOutcome.POSTED:
        runs.mark_sent(store, job.run_id, now.timestamp())
        log.info("%s run %s posted to %s (ts %s)", job.kind, job.run_id, job.channel, result.ts)
        return "posted"
    if outcome in (PostOutcome.RATE_LIMITED, PostOutcome.AUTH_ERROR):
        runs.release(store, job.run_id)  # certainly not posted
        log.warning(
            "Slack refused the %s for %s for now (%s); a later pass retries", job.kind, job.channel, result.error
        )
        return "retry_later"
    if outcome is PostOutcome.UNCERTAIN:
        log.warning("posting the %s to %s failed (%s); settled by a later pass", job.kind, job.channel, result.error)
        return "retry_later"
    _give_up(store, job, result.error, now)
    return "undeliverable"


def _give_up(store: Store, job: _Job, error: str, now: datetime) -> None:
    """The channel is gone, the bot cannot post there, or Slack refused the message itself:
    retrying would fail the same way. Mark the run sent, and note why in the audit trail."""
    log.error("%s run %s cannot be posted to %s: %s; not retried", job.kind, job.run_id, job.channel, error)
    runs.mark_sent(store, job.run_id, now.timestamp())
    store.write(
        lambda conn: audit.record(
            conn,
            at=now.timestamp(),
            user_id="",
            channel_id=job.channel,
            action=f"{job.kind}.undelivered",
            target=f"run {job.run_id}",
            detail=f"Slack: {error}",
        )
    )


def run_loop(pass_once: Callable[[], RunReport], interval: float, stop: threading.Event) -> None:
    """Run `pass_once` every `interval` seconds until `stop` is set (a `clock:` process)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = pass_once()
            log.info("scheduled pass: %s", report.summary())
        except Exception:  # the clock must outlive a database or network hiccup
            log.exception("scheduled pass failed; trying again next time")
        stop.wait(max(1.0, interval - (time.monotonic() - started)))
