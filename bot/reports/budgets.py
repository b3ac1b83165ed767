"""Spend budgets per channel: a Twilio price trigger for the crossing, a projection for the warning.

A budget (`/usage budget $500 monthly [CATEGORY]`) is two things:

- a recurring Twilio Usage Trigger (`TriggerBy=price`, `TriggerValue` = the amount, `Recurring`
  daily or monthly) created through the same code path as `/usage trigger`, so Twilio itself
  alerts the channel when the money has actually been spent;
- an early warning: `python -m bot digests` projects the period's spend from what has been spent
  so far and warns the channel once per period when the projection crosses the budget.

Budget periods are Twilio's: GMT days and GMT calendar months, like the trigger's `Recurring`.

The projection (`project_spend`) is linear on elapsed time: spend so far × period length ÷ time
elapsed. Early in a period that extrapolates from too little (an hour of traffic, a fee charged
once at the start), so no projection is made until `MIN_ELAPSED_SECONDS` *and*
`MIN_ELAPSED_SHARE` of the period have passed (72 minutes of a day, a day and a half of a
month); until then the projection is the spend so far, which can never warn before the budget is
crossed — and crossing it is the trigger's job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError

from bot import audit
from bot.model import TOTAL_SPEND, CreateTrigger, UsageRecord, UsageTrigger
from bot.render.formats import format_money
from bot.reports.model import Budget, BudgetChange, BudgetCheck
from bot.store import Store
from bot.store.schema import budgets, digest_runs
from bot.usage.client import TwilioError, UsageClient

log = logging.getLogger(__name__)

PERIODS = ("daily", "monthly")
MIN_ELAPSED_SECONDS = 3600.0
MIN_ELAPSED_SHARE = 0.05
RUN_KIND = "budget"  # digest_runs.kind of a budget warning
_CENT = Decimal("0.01")


# --- periods and projection: pure ------------------------------------------------------


def budget_period(period: str, now: datetime) -> tuple[datetime, datetime, str]:
    """The GMT period containing `now`: (start, end — exclusive, period key)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    moment = now.astimezone(UTC)
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if period == "daily":
        return day, day + timedelta(days=1), day.date().isoformat()
    if period == "monthly":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end, f"{start.year}-{start.month:02d}"
    raise ValueError(f"unknown budget period {period!r}")


def projection_ready(period_start: datetime, period_end: datetime, now: datetime) -> bool:
    """Has enough of the period passed to extrapolate from it? (see the module docstring)"""
    length = (period_end - period_start).total_seconds()
    elapsed = (now - period_start).total_seconds()
    return elapsed >= max(MIN_ELAPSED_SECONDS, MIN_ELAPSED_SHARE * length)


def elapsed_share(period_start: datetime, period_end: datetime, now: datetime) -> float:
    length = (period_end - period_start).total_seconds()
    if length <= 0:
        return 1.0
    return min(1.0, max(0.0, (now - period_start).total_seconds() / length))


def project_spend(spent: Decimal, period_start: datetime, period_end: datetime, now: datetime) -> Decimal:
    """End-of-period spend at the current rate: spent × length ÷ elapsed, to the cent.

    Before enough of the period has passed (`projection_ready`) the answer is `spent` itself;
    at or after the end of the period it is `spent` too.
    """
    if now >= period_end or not projection_ready(period_start, period_end, now):
        return spent
    length = Decimal(str((period_end - period_start).total_seconds()))
    elapsed = Decimal(str((now - period_start).total_seconds()))
    try:
        return (spent * length / elapsed).quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # an absurd spend that quantize cannot hold
        return spent


def spent_in(records: Iterable[UsageRecord], category: str) -> tuple[Decimal, str]:
    """The price of `category` in `records` (summed if Twilio split it), and its currency."""
    wanted = category.strip().lower()
    total = Decimal(0)
    unit = "usd"
    for record in records:
        if record.category.strip().lower() == wanted and record.price is not None:
            total += record.price
            unit = record.price_unit or unit
    return total, unit


def check_budget(
    amount: Decimal,
    spent: Decimal,
    period_start: datetime,
    period_end: datetime,
    now: datetime,
    *,
    price_unit: str = "usd",
) -> BudgetCheck:
    """The budget against its period's spend so far and the projection."""
    return BudgetCheck(
        amount=amount,
        spent=spent,
        projected=project_spend(spent, period_start, period_end, now),
        share=elapsed_share(period_start, period_end, now),
        ready=projection_ready(period_start, period_end, now),
        price_unit=price_unit,
    )


# --- storage and the Twilio trigger -----------------------------------------------------


def _to_budget(row: Row) -> Budget:
    try:
        amount = Decimal(row.amount)
    except InvalidOperation:
        amount = Decimal(0)
    return Budget(
        id=row.id,
        channel_id=row.channel_id,
        period=row.period,
        category=row.category,
        amount=amount,
        trigger_sid=row.trigger_sid or "",
        created_by=row.created_by,
        created_at=row.created_at,
    )


def list_budgets(store: Store, channel_id: str | None = None) -> list[Budget]:
    """Every budget (or one channel's), by channel, period and category."""
    query = select(budgets).order_by(budgets.c.channel_id, budgets.c.period, budgets.c.category)
    if channel_id is not None:
        query = query.where(budgets.c.channel_id == channel_id)
    with store.engine.connect() as conn:
        return [_to_budget(row) for row in conn.execute(query)]


def get_budget(store: Store, channel_id: str, period: str, category: str) -> Budget | None:
    query = select(budgets).where(
        budgets.c.channel_id == channel_id, budgets.c.period == period, budgets.c.category == category
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return _to_budget(row) if row is not None else None


def _delete_trigger(triggers: UsageClient, store: Store, sid: str) -> None:
    """Delete a budget's trigger on Twilio; one that is already gone (20404) is fine."""
    if not sid:
        return
    try:
        triggers.delete_trigger(sid)
    except TwilioError as exc:
        if exc.status != 404 and exc.code != 20404:
            raise
        log.info("budget trigger %s was already gone on Twilio", sid)
    store.forget_trigger(sid)


def _drop(store: Store, budget: Budget, *, user_id: str, channel_id: str, detail: str) -> None:
    """Delete the budget (its warnings too) and put it in the audit trail."""
    with store.transaction() as conn:
        conn.execute(budgets.delete().where(budgets.c.id == budget.id))
        _forget_warnings(conn, budget.id)
    audit.record(
        store,
        user_id=user_id,
        channel_id=channel_id,
        action="budget.remove",
        target=f"{budget.period} {budget.category}",
        detail=detail,
    )


def _forget_warnings(conn: Connection, budget_id: int) -> None:

    # A changed (or removed) budget starts afresh: with a lower amount it may need to warn again
    # this period, and SQLite may hand a removed budget's id to the next one.
    conn.execute(digest_runs.delete().where(digest_runs.c.kind == RUN_KIND, digest_runs.c.subject_id == budget_id))


def trigger_command(amount: Decimal, period: str, category: str) -> CreateTrigger:
    """The Twilio trigger behind a budget: price reaches the amount, every day or month (GMT)."""
    what = "total spend" if category == TOTAL_SPEND else category
    name = f"Budget {format_money(amount, 'usd')} {period} · {what}"
    return CreateTrigger(category=category, value=f"{amount:f}", trigger_by="price", recurring=period, name=name[:64])


def set_budget(
    store: Store,
    triggers: UsageClient,
    *,
    channel_id: str,
    user_id: str,
    amount: Decimal,
    period: str,
    category: str | None,
    open_trigger: Callable[[CreateTrigger], UsageTrigger],
) -> BudgetChange:
    """Set (or replace) the channel's budget for `period` and `category`.

    `open_trigger` creates the Twilio trigger whose alerts come back to the channel (the service's
    shared trigger path). A budget being replaced loses its old trigger first; if creating the
    new one then fails, the old budget is removed too, so no budget is left without its trigger.
    """
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    category = (category or TOTAL_SPEND).strip().lower()
    existing = get_budget(store, channel_id, period, category)
    if existing is not None:
        _delete_trigger(triggers, store, existing.trigger_sid)
    try:
        trigger = open_trigger(trigger_command(amount, period, category))
    except Exception:
        if existing is not None:
            detail = "the old budget's trigger was deleted and the new one could not be created"
            _drop(store, existing, user_id=user_id, channel_id=channel_id, detail=detail)
        raise
    values = {
        "amount": str(amount),
        "trigger_sid": trigger.sid,
        "created_by": user_id,
        "created_at": time.time(),
    }
    where = (budgets.c.channel_id == channel_id, budgets.c.period == period, budgets.c.category == category)
    try:
        with store.transaction() as conn:
            updated = conn.execute(budgets.update().where(*where).values(**values))
            if updated.rowcount == 0:
                conn.execute(budgets.insert().values(channel_id=channel_id, period=period, category=category, **values))
    except IntegrityError:
        # Someone set the same budget at the same moment: theirs gives way to ours, trigger too.
        racer = get_budget(store, channel_id, period, category)
        if racer is not None and racer.trigger_sid != trigger.sid:
            _delete_trigger(triggers, store, racer.trigger_sid)
        with store.transaction() as conn:
            conn.execute(budgets.update().where(*where).values(**values))
    budget = get_budget(store, channel_id, period, category)
    assert budget is not None
    with store.transaction() as conn:
        _forget_warnings(conn, budget.id)
    detail = f"{amount} by price, trigger {trigger.sid}"
    if existing is not None:
        detail += f"; replaced {existing.amount}"
    audit.record(
        store, user_id=user_id, channel_id=channel_id, action="budget.set", target=f"{period} {category}", detail=detail
    )
    log.info("budget %s %s %s set in %s by %s", amount, period, category, channel_id, user_id)
    return BudgetChange(budget=budget, trigger=trigger, replaced=existing)


def remove_budget(
    store: Store, triggers: UsageClient, *, channel_id: str, user_id: str, period: str, category: str | None
) -> Budget | None:
    """Remove the channel's budget and its Twilio trigger; None when there was no such budget."""
    category = (category or TOTAL_SPEND).strip().lower()
    existing = get_budget(store, channel_id, period, category)
    if existing is None:
        return None
    _delete_trigger(triggers, store, existing.trigger_sid)
    detail = f"{existing.amount}, trigger {existing.trigger_sid or '-'}"
    _drop(store, existing, user_id=user_id, channel_id=channel_id, detail=detail)

    log.info("budget %s %s removed from %s by %s", period, category, channel_id, user_id)
    return existing
