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
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Row, select
from sqlalchemy.exc import IntegrityError

from bot import audit
from bot.alerts import triggers
from bot.model import TOTAL_SPEND, UsageRecord, UsageTrigger
from bot.render.formats import format_money
from bot.reports import runs
from bot.reports.model import Budget, BudgetChange, BudgetCheck
from bot.reports.runs import RunKind
from bot.store import Store
from bot.store.schema import budgets
from bot.usage.client import UsageClient
from bot.usage.errors import TwilioError

log = logging.getLogger(__name__)

PERIODS = ("daily", "monthly")
MIN_ELAPSED_SECONDS = 3600.0
MIN_ELAPSED_SHARE = 0.05
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


# --- the repository -----------------------------------------------------------------------


def _to_budget(row: Row[Any]) -> Budget:
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


def _get(conn: Connection, channel_id: str, period: str, category: str) -> Budget | None:
    query = select(budgets).where(
        budgets.c.channel_id == channel_id, budgets.c.period == period, budgets.c.category == category
    )
    row = conn.execute(query).first()
    return _to_budget(row) if row is not None else None


def get_budget(store: Store, channel_id: str, period: str, category: str) -> Budget | None:
    with store.engine.connect() as conn:
        return _get(conn, channel_id, period, category)


def _drop(conn: Connection, budget: Budget, *, user_id: str, channel_id: str, detail: str, now: float) -> None:
    """Delete the budget, its trigger row and its warnings, and put it in the audit trail."""
    conn.execute(budgets.delete().where(budgets.c.id == budget.id))
    runs.forget(conn, RunKind.BUDGET_WARNING, budget.id)
    triggers.mark_deleted(conn, budget.trigger_sid, user_id=user_id, now=now)
    audit.record(
        conn,
        at=now,
        user_id=user_id,
        channel_id=channel_id,
        action="budget.remove",
        target=f"{budget.period} {budget.category}",
        detail=detail,
    )


def trigger_spec(amount: Decimal, period: str, category: str) -> triggers.TriggerSpec:
    """The Twilio trigger behind a budget: price reaches the amount, every day or month (GMT)."""
    what = "total spend" if category == TOTAL_SPEND else category
    name = f"Budget {format_money(amount, 'usd')} {period} · {what}"
    return triggers.TriggerSpec(
        category=category, value=f"{amount:f}", trigger_by="price", recurring=period, name=name[:64]
    )


# --- use cases -----------------------------------------------------------------------------


def set_budget(
    store: Store,
    twilio: UsageClient,
    *,
    public_url: str,
    channel_id: str,
    user_id: str,
    amount: Decimal,
    period: str,
    category: str | None,
    now: float,
) -> BudgetChange:
    """Set (or replace) the channel's budget for `period` and `category`.

    The new trigger, the budget row, their audit entries and the reset of this budget's
    warnings commit as one transaction. A budget being replaced loses its old trigger first;
    if the new one then cannot be set up, the old budget is removed too, so no budget is left
    without its trigger. The same budget again, its trigger still on Twilio, changes nothing
    (`BudgetChange.already`).
    """
    if period not in PERIODS:
        raise ValueError(f"unknown budget period {period!r}")
    category = (category or TOTAL_SPEND).strip().lower()
    same = _unchanged(store, twilio, channel_id=channel_id, period=period, category=category, amount=amount)
    if same is not None:
        return same

    def attempt() -> BudgetChange:
        existing = get_budget(store, channel_id, period, category)
        if existing is not None:
            triggers.delete_on_twilio(twilio, existing.trigger_sid)
        values = {"amount": str(amount), "created_by": user_id, "created_at": now}
        where = (budgets.c.channel_id == channel_id, budgets.c.period == period, budgets.c.category == category)
        saved: list[Budget] = []

        def save_budget(conn: Connection, trigger: UsageTrigger) -> None:
            if existing is not None:
                triggers.mark_deleted(conn, existing.trigger_sid, user_id=user_id, now=now)
            if conn.execute(budgets.update().where(*where).values(trigger_sid=trigger.sid, **values)).rowcount == 0:
                row = {"channel_id": channel_id, "period": period, "category": category}
                conn.execute(budgets.insert().values(trigger_sid=trigger.sid, **row, **values))
            budget = _get(conn, channel_id, period, category)
            assert budget is not None
            runs.forget(conn, RunKind.BUDGET_WARNING, budget.id)
            detail = f"{amount} by price, trigger {trigger.sid}"
            if existing is not None:
                detail += f"; replaced {existing.amount}"
            target = f"{period} {category}"
            audit.record(
                conn, at=now, user_id=user_id, channel_id=channel_id, action="budget.set", target=target, detail=detail
            )
            saved.append(budget)

        spec = trigger_spec(amount, period, category)
        try:
            trigger = triggers.open_trigger(
                store,
                twilio,
                spec,
                public_url=public_url,
                channel_id=channel_id,
                user_id=user_id,
                now=now,
                also=save_budget,
            )
        except Exception:
            if existing is not None:
                detail = "the old budget's trigger was deleted and the new one could not be created"
                store.write(
                    lambda conn: _drop(conn, existing, user_id=user_id, channel_id=channel_id, detail=detail, now=now)
                )
            raise
        log.info("budget %s %s %s set in %s by %s", amount, period, category, channel_id, user_id)
        return BudgetChange(budget=saved[-1], trigger=trigger, replaced=existing)

    try:
        return attempt()
    except IntegrityError:
        # Someone set the same budget at the same moment: theirs gives way to ours, trigger too.
        return attempt()


def _unchanged(
    store: Store, twilio: UsageClient, *, channel_id: str, period: str, category: str, amount: Decimal
) -> BudgetChange | None:
    """The channel's budget when it is already exactly this one and Twilio still has its trigger."""
    existing = get_budget(store, channel_id, period, category)
    if existing is None or existing.amount != amount or not existing.trigger_sid:
        return None
    try:
        trigger = twilio.fetch_trigger(existing.trigger_sid)
    except TwilioError as exc:
        if not triggers.is_gone(exc):
            raise
        log.info("budget trigger %s was deleted outside Slack; setting the budget up again", existing.trigger_sid)
        return None
    return BudgetChange(budget=existing, trigger=trigger, already=True)


def remove_budget(
    store: Store, twilio: UsageClient, *, channel_id: str, user_id: str, period: str, category: str | None, now: float
) -> Budget | None:
    """Remove the channel's budget and its Twilio trigger; None when there was no such budget."""
    category = (category or TOTAL_SPEND).strip().lower()
    existing = get_budget(store, channel_id, period, category)
    if existing is None:
        return None
    triggers.delete_on_twilio(twilio, existing.trigger_sid)
    detail = f"{existing.amount}, trigger {existing.trigger_sid or '-'}"
    store.write(lambda conn: _drop(conn, existing, user_id=user_id, channel_id=channel_id, detail=detail, now=now))
    log.info("budget %s %s removed from %s by %s", period, category, channel_id, user_id)
    return existing
