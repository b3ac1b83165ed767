"""Usage digests: subscriptions, when each is due, what it says, and sending each exactly once.

`/usage digest daily|weekly|monthly [at HH:MM]` subscribes a channel; `python -m bot digests`
(a PaaS scheduler job or a `clock:` process, every few minutes) calls `run_due`, which posts
the digests that are due and the budget warnings (bot/budgets.py) that are needed.

When a digest is due (`due_period`, pure): send times are wall-clock times in USAGE_TIMEZONE. A
daily digest is due from `at` each local day and covers yesterday; a weekly one from `at` on
Mondays, covering the previous Monday–Sunday; a monthly one from `at` on the 1st, covering the
previous month. A digest missed while nothing ran is still sent later the same local day, never
for an older period. The figures are Twilio's, whose days are GMT: a digest covers the GMT
dates of the same calendar dates, and says so.

Exactly once, with any number of instances running `run_due`: a digest is *claimed* by
inserting its `digest_runs` row (kind, subject, period key); the unique constraint lets one
instance win. The winner posts with the run id in the message metadata, then marks the row
sent. A row left "claimed" for `STALE_CLAIM_SECONDS` (a crash, or a post whose outcome is
unknown) is taken over by a later pass, which first looks for the run id in the channel's
history — the way AlertRelay settles an interrupted batch — and posts only if it is not there.

Twilio usage is per account, not per channel: within one pass every list of records is fetched
once (`SharedRecords`) and each (cadence, period) digest is computed once, so 1,000 channels
subscribed to the same cadence cost the same three requests as one.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import audit
from bot.model import TOTAL_SPEND, Message, Period, UsageRecord
from bot.render.budgets import render_budget_warning
from bot.render.digests import render_digest
from bot.reports import budgets
from bot.reports.model import DigestReport, Mover, Subscription
from bot.store import Store
from bot.store.schema import digest_runs, digests
from bot.usage.client import TwilioError
from bot.usage.source import RecordSource

log = logging.getLogger(__name__)

CADENCES = ("daily", "weekly", "monthly")
DEFAULT_AT_MINUTES = 9 * 60
RUN_KIND = "digest"
METADATA_EVENT = "usage_digest"
# A claim this old is presumed dead (the post takes at most 10 s, the HTTP timeout).
STALE_CLAIM_SECONDS = 600.0
DAILY_SPARK_DAYS = 14
MAX_MOVERS = 5
POST_THREADS = 8

CHANNEL_ERRORS = frozenset({"channel_not_found", "is_archived", "not_in_channel"})
AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope"}
)


# --- subscriptions ---------------------------------------------------------------------


def _to_subscription(row: Row) -> Subscription:
    return Subscription(row.id, row.channel_id, row.cadence, row.at_minutes, row.created_by, row.created_at)


def _check(cadence: str, at_minutes: int) -> None:
    if cadence not in CADENCES:
        raise ValueError(f"unknown cadence {cadence!r}")
    if not 0 <= at_minutes < 24 * 60:
        raise ValueError(f"at_minutes {at_minutes} is not a time of day")


def subscribe(
    store: Store, *, channel_id: str, cadence: str, at_minutes: int = DEFAULT_AT_MINUTES, user_id: str
) -> tuple[Subscription, Subscription | None]:
    """Subscribe the channel (one subscription per channel and cadence: a second one replaces
    the first's time). Returns the subscription and the one it replaced, if any."""
    _check(cadence, at_minutes)
    where = (digests.c.channel_id == channel_id, digests.c.cadence == cadence)
    values = {"at_minutes": at_minutes, "created_by": user_id, "created_at": _time.time()}
    previous = _get(store, channel_id, cadence)
    try:
        with store.transaction() as conn:
            if conn.execute(update(digests).where(*where).values(**values)).rowcount == 0:
                conn.execute(insert(digests).values(channel_id=channel_id, cadence=cadence, **values))
    except IntegrityError:  # subscribed at the same moment from elsewhere: ours is the later word
        with store.transaction() as conn:
            conn.execute(update(digests).where(*where).values(**values))
    current = _get(store, channel_id, cadence)
    assert current is not None
    audit.record(
        store,
        user_id=user_id,
        channel_id=channel_id,
        action="digest.subscribe",
        target=cadence,
        detail=f"at {format_minutes(at_minutes)}"
        + (f", was {format_minutes(previous.at_minutes)}" if previous else ""),
    )
    return current, previous


def unsubscribe(store: Store, *, channel_id: str, user_id: str) -> list[Subscription]:
    """Remove every digest of the channel; returns what was removed."""
    removed = list_subscriptions(store, channel_id)
    if removed:
        with store.transaction() as conn:
            conn.execute(delete(digests).where(digests.c.id.in_([s.id for s in removed])))
        audit.record(
            store,
            user_id=user_id,
            channel_id=channel_id,
            action="digest.unsubscribe",
            target=", ".join(s.cadence for s in removed),
        )
    return removed


def list_subscriptions(store: Store, channel_id: str | None = None) -> list[Subscription]:
    """Every subscription (or one channel's), by channel, then daily, weekly, monthly."""
    query = select(digests)
    if channel_id is not None:
        query = query.where(digests.c.channel_id == channel_id)
    with store.engine.connect() as conn:
        subs = [_to_subscription(row) for row in conn.execute(query)]
    return sorted(subs, key=lambda s: (s.channel_id, CADENCES.index(s.cadence) if s.cadence in CADENCES else 9))


def _get(store: Store, channel_id: str, cadence: str) -> Subscription | None:
    query = select(digests).where(digests.c.channel_id == channel_id, digests.c.cadence == cadence)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _to_subscription(row) if row is not None else None


def format_minutes(at_minutes: int) -> str:
    return f"{at_minutes // 60:02d}:{at_minutes % 60:02d}"


# --- when: pure --------------------------------------------------------------------------


def due_period(now: datetime, tz: tzinfo, cadence: str, at_minutes: int) -> str | None:
    """The period key of the digest due at `now`, or None.

    Keys: daily "2026-11-24" (the day covered), weekly "2026-W47" (ISO week covered), monthly
    "2026-11" (the month covered). Due from `at_minutes` local wall-clock time until the end of
    the local day: on a day when the clocks skip `at` (spring forward), from the first minute
    after it; on a day when `at` happens twice, the key is the same both times.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    _check(cadence, at_minutes)
    local = now.astimezone(tz)
    if local.hour * 60 + local.minute < at_minutes:
        return None
    today = local.date()
    if cadence == "daily":
        return (today - timedelta(days=1)).isoformat()
    if cadence == "weekly":
        if today.weekday() != 0:
            return None
        year, week, _ = (today - timedelta(days=7)).isocalendar()
        return f"{year}-W{week:02d}"
    if today.day != 1:
        return None
    last = today - timedelta(days=1)
    return f"{last.year}-{last.month:02d}"


def _send_day(cadence: str, day: date) -> bool:
    return cadence == "daily" or (cadence == "weekly" and day.weekday() == 0) or (cadence == "monthly" and day.day == 1)


def next_due(now: datetime, tz: tzinfo, cadence: str, at_minutes: int, *, current_sent: bool = False) -> datetime:
    """When this subscription's next digest goes out, in `tz`: `now` when one is due and not yet
    sent (it goes with the next run of `python -m bot digests`), else the next send time."""
    local = now.astimezone(tz)
    if not current_sent and due_period(now, tz, cadence, at_minutes) is not None:
        return local
    minutes = local.hour * 60 + local.minute
    for offset in range(0, 63):
        day = local.date() + timedelta(days=offset)
        if not _send_day(cadence, day) or (offset == 0 and minutes >= at_minutes):
            continue
        return datetime.combine(day, time(at_minutes // 60, at_minutes % 60), tzinfo=tz)
    raise AssertionError("a monthly send day comes within 62 days")  # pragma: no cover


def current_sent(store: Store, sub: Subscription, now: datetime, tz: tzinfo) -> bool:
    """Has the digest due now, if any, been sent (or claimed) already?"""
    key = due_period(now, tz, sub.cadence, sub.at_minutes)
    if key is None:
        return False
    query = select(digest_runs.c.id).where(
        digest_runs.c.kind == RUN_KIND, digest_runs.c.subject_id == sub.id, digest_runs.c.period_key == key
    )
    with store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def period_range(cadence: str, period_key: str) -> tuple[date, date]:
    """The GMT dates (inclusive) a digest covers."""
    if cadence == "daily":
        day = date.fromisoformat(period_key)
        return day, day
    if cadence == "weekly":
        year, week = period_key.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
        return monday, monday + timedelta(days=6)
    year, month = (int(x) for x in period_key.split("-"))
    start = date(year, month, 1)
    return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def previous_range(cadence: str, start: date, end: date) -> tuple[date, date]:
    """The period before: the day, the week, or the calendar month before."""
    if cadence == "monthly":
        last = start - timedelta(days=1)
        return last.replace(day=1), last
    length = (end - start).days + 1
    return start - timedelta(days=length), end - timedelta(days=length)


def spark_range(cadence: str, start: date, end: date) -> tuple[date, date]:
    """The days the sparkline shows: the period itself, or the last 14 days for a daily digest."""
    if cadence == "daily":
        return end - timedelta(days=DAILY_SPARK_DAYS - 1), end
    return start, end


# --- what: the digest --------------------------------------------------------------------


def _prices(records: Iterable[UsageRecord]) -> dict[str, tuple[Decimal, str]]:
    """category → (price, description), summed where Twilio split a category over records."""
    out: dict[str, tuple[Decimal, str]] = {}
    for record in records:
        category = record.category.strip().lower()
        if not category or record.price is None:
            continue
        price, description = out.get(category, (Decimal(0), ""))
        out[category] = (price + record.price, description or record.description)
    return out


def _has_ancestor(category: str, present: set[str]) -> bool:
    """`sms-outbound-longcode` has `sms-outbound` or `sms` among `present`: its spend is counted there."""
    parts = category.split("-")
    return any("-".join(parts[:i]) in present for i in range(1, len(parts)))


def biggest_movers(
    current: Sequence[UsageRecord], previous: Sequence[UsageRecord], limit: int = MAX_MOVERS
) -> tuple[Mover, ...]:
    """The categories whose spend changed most (by amount, up or down), top `limit`.

    `totalprice` is left out, and so is a subcategory whose parent category is in the records
    (`sms-outbound` when `sms` is there), so no spend is counted twice.
    """
    now, before = _prices(current), _prices(previous)
    present = (set(now) | set(before)) - {TOTAL_SPEND}
    movers = []
    for category in present:
        if _has_ancestor(category, present):
            continue
        price_now, description = now.get(category, (Decimal(0), ""))
        price_before, description_before = before.get(category, (Decimal(0), ""))
        if price_now != price_before:
            movers.append(Mover(category, description or description_before, price_now, price_before))
    movers.sort(key=lambda m: (-abs(m.change), m.category))
    return tuple(movers[:limit])


def build_digest(
    cadence: str,
    period_key: str,
    current: Sequence[UsageRecord],
    previous: Sequence[UsageRecord],
    daily: Sequence[UsageRecord],
    *,
    now: datetime,
) -> DigestReport:
    """The digest from the records of the period, of the period before, and the daily totals."""
    start, end = period_range(cadence, period_key)
    previous_start, previous_end = previous_range(cadence, start, end)
    spark_start, spark_end = spark_range(cadence, start, end)
    total_record = next((r for r in current if r.category.strip().lower() == TOTAL_SPEND), None)
    previous_record = next((r for r in previous if r.category.strip().lower() == TOTAL_SPEND), None)
    by_day: dict[date, Decimal] = {}
    for record in daily:
        if record.category.strip().lower() == TOTAL_SPEND and record.start_date and record.price is not None:
            by_day[record.start_date] = by_day.get(record.start_date, Decimal(0)) + record.price
    days = tuple(
        (spark_start + timedelta(days=i), by_day.get(spark_start + timedelta(days=i)))
        for i in range((spark_end - spark_start).days + 1)
    )
    unit = (total_record or previous_record or next(iter(current), None) or UsageRecord("")).price_unit or "usd"
    end_of_period = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)
    return DigestReport(
        cadence=cadence,
        period_key=period_key,
        start=start,
        end=end,
        previous_start=previous_start,
        previous_end=previous_end,
        total=total_record.price if total_record else None,
        previous_total=previous_record.price if previous_record else None,
        price_unit=unit,
        movers=biggest_movers(current, previous),
        daily=days,
        as_of=total_record.as_of if total_record else "",
        complete=now >= end_of_period,
    )


class SharedRecords:
    """Twilio records fetched at most once per pass for each (resource, range, category).

    Thread-safe: concurrent askers for the same list wait for one request. A failure is
    remembered too, so a Twilio outage costs one request per list, not one per channel.
    """

    def __init__(self, usage: RecordSource) -> None:
        self._usage = usage
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self.fetches = 0

    def get(self, period: Period | None, category: str | None, start: date, end: date) -> list[UsageRecord]:
        key = (period, category, start, end)
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:
            if not entry.done:
                with self._lock:
                    self.fetches += 1
                try:
                    entry.value = self._usage.records(period, category, start=start, end=end)
                except TwilioError as exc:
                    entry.error = exc
                entry.done = True
        if entry.error is not None:
            raise entry.error
        return entry.value


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    value: list[UsageRecord] = field(default_factory=list)
    error: TwilioError | None = None


def fetch_digest(records: SharedRecords, cadence: str, period_key: str, now: datetime) -> DigestReport:
    """Three requests at most: the period and the one before (every category, `Records.json`
    with StartDate/EndDate), and the daily totals for the sparkline (`Daily.json`, totalprice)."""
    start, end = period_range(cadence, period_key)
    previous_start, previous_end = previous_range(cadence, start, end)
    spark_start, spark_end = spark_range(cadence, start, end)
    current = records.get(None, None, start, end)
    previous = records.get(None, None, previous_start, previous_end)
    daily = records.get(Period.DAILY, TOTAL_SPEND, spark_start, spark_end)
    return build_digest(cadence, period_key, current, previous, daily, now=now)


# --- sending, exactly once ---------------------------------------------------------------


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
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"digests due {self.digests_due}, budgets checked {self.budgets_checked}, posted {self.posted} "
            f"({self.warnings} budget warnings), settled {self.settled}, skipped {self.skipped}, "
            f"retry later {self.retry_later}, undeliverable {self.undeliverable}, "
            f"Twilio lists fetched {self.twilio_fetches}"
        )


@dataclass
class _Job:
    run_id: int
    kind: str
    channel: str
    message: Message
    claimed_at: float


def run_due(
    store: Store,
    usage: RecordSource,
    poster: WebClient,
    lookup: WebClient,
    *,
    now: datetime,
    tz: tzinfo,
    threads: int = POST_THREADS,
) -> RunReport:
    """One pass: post every digest and budget warning that is due at `now` and not yet sent.

    `poster` posts and should not retry by itself (a resent post could land twice: see
    make_slack_clients); `lookup` reads channel history to settle interrupted posts. Safe to run from any number of
    processes at once; every due digest goes out once.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    report = RunReport()
    shared = SharedRecords(usage)
    pass_started = _time.monotonic()
    jobs = _digest_jobs(store, shared, lookup, now, tz, report)
    jobs += _budget_jobs(store, shared, lookup, now, report)
    _post_jobs(store, poster, lookup, jobs, now, report, threads=threads, pass_started=pass_started)
    report.twilio_fetches = shared.fetches
    return report


def _runs(store: Store, kind: str, keys: set[str]) -> dict[tuple[int, str], Row]:
    if not keys:
        return {}
    query = select(digest_runs).where(digest_runs.c.kind == kind, digest_runs.c.period_key.in_(sorted(keys)))
    with store.engine.connect() as conn:
        return {(row.subject_id, row.period_key): row for row in conn.execute(query)}


def _claim(store: Store, kind: str, subject_id: int, period_key: str, at: float) -> int | None:
    """Insert the run row; None when another instance inserted it first (the unique constraint)."""
    try:
        with store.transaction() as conn:
            result = conn.execute(
                insert(digest_runs).values(
                    kind=kind, subject_id=subject_id, period_key=period_key, status="claimed", claimed_at=at
                )
            )
            return int(result.inserted_primary_key[0])
    except IntegrityError:
        return None


def _take_over(store: Store, run_id: int, at: float) -> bool:
    """Take a stale claim; False when it is not stale any more (another instance took it)."""
    with store.transaction() as conn:
        result = conn.execute(
            update(digest_runs)
            .where(
                digest_runs.c.id == run_id,
                digest_runs.c.status == "claimed",
                digest_runs.c.claimed_at < at - STALE_CLAIM_SECONDS,
            )
            .values(claimed_at=at)
        )
        return result.rowcount == 1


def _still_ours(store: Store, run_id: int, claimed_at: float) -> bool:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(digest_runs.c.status, digest_runs.c.claimed_at).where(digest_runs.c.id == run_id)
        ).first()
    return row is not None and row.status == "claimed" and row.claimed_at == claimed_at


def _mark_sent(store: Store, run_id: int, at: float) -> None:
    with store.transaction() as conn:
        conn.execute(
            update(digest_runs)
            .where(digest_runs.c.id == run_id, digest_runs.c.status == "claimed")
            .values(status="sent", sent_at=at)
        )


def _release(store: Store, run_id: int) -> None:
    """Nothing was posted (Twilio failed, Slack said 429 or rejected the token): let a later pass
    claim it afresh rather than wait for the claim to go stale."""
    with store.transaction() as conn:
        conn.execute(delete(digest_runs).where(digest_runs.c.id == run_id, digest_runs.c.status == "claimed"))


def _already_posted(lookup: WebClient, channel: str, run_id: int, since: float) -> bool:
    """Did an interrupted attempt reach Slack? Look for the run id in the channel's metadata."""
    try:
        history = lookup.conversations_history(
            channel=channel, oldest=f"{since - 60:.6f}", include_all_metadata=True, limit=200
        )
    except Exception as exc:  # as AlertRelay does: a lookup that fails means posting again
        log.warning("could not check %s for an interrupted digest (%s); posting again", channel, exc)
        return False
    for message in history.get("messages") or []:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == METADATA_EVENT and str(payload.get("run")) == str(run_id):
            return True
    return False


def _settle_stale(store: Store, lookup: WebClient, row: Row, channel: str, at: float, report: RunReport) -> bool:
    """Take over a stale claim; True when it still has to be posted (by us)."""
    if not _take_over(store, row.id, at):
        report.skipped += 1
        return False
    if _already_posted(lookup, channel, row.id, row.claimed_at):
        _mark_sent(store, row.id, at)
        report.settled += 1
        log.info("run %s had reached %s before an interruption; marked sent", row.id, channel)
        return False
    return True


def _digest_jobs(
    store: Store, shared: SharedRecords, lookup: WebClient, now: datetime, tz: tzinfo, report: RunReport
) -> list[_Job]:
    at = now.timestamp()
    due = [(sub, key) for sub in list_subscriptions(store) if (key := due_period(now, tz, sub.cadence, sub.at_minutes))]
    report.digests_due = len(due)
    existing = _runs(store, RUN_KIND, {key for _, key in due})
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
        stale = row is not None and row.status == "claimed" and row.claimed_at < at - STALE_CLAIM_SECONDS
        if row is not None and not stale:
            report.skipped += 1
            continue
        message = message_for(sub.cadence, key)
        if isinstance(message, TwilioError):
            report.retry_later += 1  # nothing claimed yet (or the stale claim is left as it is)
            continue
        if row is not None:
            if not _settle_stale(store, lookup, row, sub.channel_id, at, report):
                continue
            run_id = row.id
        else:
            claimed = _claim(store, RUN_KIND, sub.id, key, at)
            if claimed is None:
                report.skipped += 1
                continue
            run_id = claimed
        jobs.append(_Job(run_id, RUN_KIND, sub.channel_id, message, at))
    return jobs


def _budget_jobs(
    store: Store, shared: SharedRecords, lookup: WebClient, now: datetime, report: RunReport
) -> list[_Job]:
    at = now.timestamp()
    planned = []
    for budget in budgets.list_budgets(store):
        start, end, key = budgets.budget_period(budget.period, now)
        planned.append((budget, start, end, key))
    existing = _runs(store, budgets.RUN_KIND, {key for *_, key in planned})
    today = now.astimezone(UTC).date()
    jobs = []
    for budget, start, end, key in planned:
        row = existing.get((budget.id, key))
        stale = row is not None and row.status == "claimed" and row.claimed_at < at - STALE_CLAIM_SECONDS
        if row is not None and not stale:
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
            if row is not None and _settle_stale(store, lookup, row, budget.channel_id, at, report):
                _release(store, row.id)  # an interrupted warning that is no longer true: drop it
            continue
        if row is not None:
            if not _settle_stale(store, lookup, row, budget.channel_id, at, report):
                continue
            run_id = row.id
        else:
            claimed = _claim(store, budgets.RUN_KIND, budget.id, key, at)
            if claimed is None:
                report.skipped += 1
                continue
            run_id = claimed
        jobs.append(_Job(run_id, budgets.RUN_KIND, budget.channel_id, render_budget_warning(budget, check), at))
    return jobs


def _post_jobs(
    store: Store,
    poster: WebClient,
    lookup: WebClient,
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
            outcome = _post_one(store, poster, lookup, job, now, pass_started)
            with lock:
                setattr(report, outcome, getattr(report, outcome) + 1)
                if outcome == "posted" and job.kind == budgets.RUN_KIND:
                    report.warnings += 1

    groups = list(by_channel.values())
    if len(groups) <= 1 or threads <= 1:
        for group in groups:
            work(group)
        return
    with ThreadPoolExecutor(min(threads, len(groups)), thread_name_prefix="digests") as pool:
        list(pool.map(work, groups))


def _post_one(store: Store, poster: WebClient, lookup: WebClient, job: _Job, now: datetime, pass_started: float) -> str:
    """Post one claimed run; the RunReport field to count it in."""
    if _time.monotonic() - pass_started > STALE_CLAIM_SECONDS / 2 and not _still_ours(
        store, job.run_id, job.claimed_at
    ):
        # A very long pass: another instance may have taken this claim over as stale.
        return "skipped"
    joined = False
    while True:
        try:
            response = poster.chat_postMessage(
                channel=job.channel,
                text=job.message.text,
                blocks=job.message.blocks,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"run": job.run_id}},
                unfurl_links=False,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
            if error == "not_in_channel" and not joined and _join(lookup, job.channel):
                joined = True
                continue
            if status == 429 or error in AUTH_ERRORS:
                _release(store, job.run_id)  # certainly not posted
                log.warning(
                    "Slack refused the %s for %s for now (%s); a later pass retries",
                    job.kind,
                    job.channel,
                    error or status,
                )
                return "retry_later"
            if status >= 500:
                log.warning("Slack answered %s posting to %s; settled by a later pass", status, job.channel)
                return "retry_later"
            _give_up(store, job, error or f"HTTP {status}", now)
            return "undeliverable"
        except Exception as exc:  # timeout or connection error: the post may or may not have landed
            log.warning("posting the %s to %s failed (%s); settled by a later pass", job.kind, job.channel, exc)
            return "retry_later"
        _mark_sent(store, job.run_id, now.timestamp())
        log.info("%s run %s posted to %s (ts %s)", job.kind, job.run_id, job.channel, response.get("ts"))
        return "posted"


def _join(lookup: WebClient, channel: str) -> bool:
    """A public channel the bot is not in yet: join it (channels:join), as AlertRelay does."""
    try:
        lookup.conversations_join(channel=channel)
        return True
    except Exception as exc:
        log.info("could not join %s: %s", channel, exc)
        return False


def _give_up(store: Store, job: _Job, error: str, now: datetime) -> None:
    """The channel is gone, the bot cannot post there, or Slack refused the message itself:
    retrying would fail the same way. Mark the run sent, and note why in the audit trail."""
    log.error("%s run %s cannot be posted to %s: %s; not retried", job.kind, job.run_id, job.channel, error)
    _mark_sent(store, job.run_id, now.timestamp())
    audit.record(
        store,
        user_id="",
        channel_id=job.channel,
        action=f"{job.kind}.undelivered",
        target=f"run {job.run_id}",
        detail=f"Slack: {error}",
    )


def run_loop(pass_once: Callable[[], RunReport], interval: float, stop: threading.Event) -> None:
    """Run `pass_once` every `interval` seconds until `stop` is set (a `clock:` process)."""
    while not stop.is_set():
        started = _time.monotonic()
        try:
            report = pass_once()
            log.info("digests pass: %s", report.summary())
        except Exception:  # the clock must outlive a database or network hiccup
            log.exception("digests pass failed; trying again next time")
        stop.wait(max(1.0, interval - (_time.monotonic() - started)))
