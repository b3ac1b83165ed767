"""Answering usage queries: a summary of a period, per subaccount (`by-account`), or a series.

Pure of Slack: each function asks Twilio (or the sample account) and returns a `Message`.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

from bot.commands.help import render_error
from bot.commands.types import SeriesQuery, UsageQuery
from bot.model import TOTAL_SPEND, Account, Message, Period, UsageRecord
from bot.reports import budgets
from bot.reports.render_budgets import render_pace_line, with_pace_line
from bot.usage.errors import TwilioError
from bot.usage.render import render_series, render_summary
from bot.usage.render_accounts import render_by_account
from bot.usage.source import AccountSource, RecordSource

log = logging.getLogger(__name__)

# Subaccount requests in flight at once for one `by-account` answer: 50 subaccounts take about
# 7 round trips instead of 50, while one command cannot hog the client's 32-connection pool.
ACCOUNT_THREADS = 8


def usage_summary(usage: RecordSource, query: UsageQuery, *, sample: bool, now: datetime) -> Message:
    """`/usage today`, `/usage this-month sms`, a date range: one request, or one per account."""
    if query.by_account:
        return usage_by_account(usage, query)
    records = usage.records(query.period, query.category)
    message = render_summary(
        records,
        query.period,
        category=query.category,
        show_all=query.show_all,
        public=query.public,
        sample=sample,
    )
    if query.period is Period.THIS_MONTH:
        pace = pace_line(records, now)
        if pace is not None:
            message = with_pace_line(message, pace)
    return message


def usage_by_account(usage: RecordSource, query: UsageQuery) -> Message:
    """The family total, the main account's own usage, and each subaccount's (`by-account`)."""
    source = usage
    if not isinstance(source, AccountSource):
        return render_error("`by-account` needs a real Twilio account; the sample one has no subaccounts.")
    category = query.category or TOTAL_SPEND
    # Twilio has no per-subaccount breakdown in one call: one request per subaccount, run a
    # few at a time. The two main-account requests share the pool with them.
    pool = ThreadPoolExecutor(max_workers=ACCOUNT_THREADS, thread_name_prefix="usage-account")
    try:
        family = pool.submit(source.records, query.period, category)  # default: subaccounts included
        own = pool.submit(source.records, query.period, category, include_subaccounts=False)
        pending: list[tuple[Account, Future[list[UsageRecord]]]] = []
        for account in source.subaccounts():
            # A subaccount has no subaccounts of its own; false says "this account only" outright.
            records = pool.submit(
                source.records, query.period, category, include_subaccounts=False, account_sid=account.sid
            )
            pending.append((account, records))
        family_records, own_records = family.result(), own.result()
        per_account = [(account, _records_or_none(account, future)) for account, future in pending]
    finally:
        # On success everything is done; on a failure, queued requests are dropped and the
        # error answer is not held up by the ones still running.
        pool.shutdown(wait=False, cancel_futures=True)
    return render_by_account(
        query.period,
        family=family_records,
        main=own_records,
        main_sid=source.account_sid,
        subaccounts=per_account,
        category=query.category,
        public=query.public,
    )


def usage_series(usage: RecordSource, query: SeriesQuery, *, sample: bool, today: date) -> Message:
    """`/usage daily sms 14`: one line a day (or month)."""
    start, end = series_range(query.period, query.count, today)
    category = query.category or TOTAL_SPEND
    records = usage.records(query.period, category, start=start, end=end)
    return render_series(
        records, query.period, category=query.category, count=query.count, public=query.public, sample=sample
    )


def pace_line(records: list[UsageRecord], now: datetime) -> Message | None:
    """The "on pace for …" line for this month, from the totalprice record already fetched (no extra
    request): its spend, projected to the end of the GMT month at the rate so far. The record's
    `as_of` is the moment the figures are current to; without one, `now`."""
    total = next((r for r in records if r.category.strip().lower() == TOTAL_SPEND), None)
    if total is None or total.price is None:
        return None
    if total.as_of:
        try:
            stamp = datetime.fromisoformat(total.as_of.strip())
            now = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
        except ValueError:
            pass
    # The month is the record's own (its start date), else the one `as_of` falls in.
    first = total.start_date
    anchor = datetime(first.year, first.month, 1, tzinfo=UTC) if first is not None else now
    start, end, _ = budgets.budget_period("monthly", anchor)
    now = min(max(now, start), end)
    if now >= end:
        return None  # the month is over: nothing to project
    return render_pace_line(
        total.price,
        budgets.project_spend(total.price, start, end, now),
        total.price_unit,
        share=budgets.elapsed_share(start, end, now),
        ready=budgets.projection_ready(start, end, now),
    )


def _records_or_none(account: Account, future: Future[list[UsageRecord]]) -> list[UsageRecord] | None:
    """A subaccount's records, or None when Twilio would not give them (a closed account answers
    403/404): one such account must not cost the whole answer."""
    try:
        return future.result()
    except TwilioError as exc:
        log.warning("usage of subaccount %s unavailable: %s", account.sid, exc)
        return None


def series_range(period: Period, count: int, today: date) -> tuple[date, date]:
    """The GMT dates covering the last `count` days or months, today's included."""
    if period is Period.DAILY:
        return today - timedelta(days=count - 1), today
    month_index = today.year * 12 + today.month - 1 - (count - 1)
    return date(month_index // 12, month_index % 12 + 1, 1), today
