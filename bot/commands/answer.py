"""Answers parsed `/usage` commands. Shared by the Slack adapter and the command line."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from bot import audit
from bot.alerts import mute as snooze
from bot.alerts.buttons import SNOOZE_DURATIONS, ActionId, parse_alert_button_value, parse_triggers_page_value
from bot.alerts.receive import failed_alerts
from bot.commands.grammar import USAGE_LINES
from bot.model import (
    TOTAL_SPEND,
    Account,
    Command,
    CreateTrigger,
    DeleteTrigger,
    HelpCommand,
    ListBudgets,
    ListDigests,
    ListFailedAlerts,
    ListTriggers,
    Message,
    ParseError,
    Period,
    RemoveBudget,
    SeriesQuery,
    SetBudget,
    ShowAudit,
    SubscribeDigest,
    UnsubscribeDigest,
    UsageQuery,
    UsageRecord,
    UsageTrigger,
)
from bot.render.alerts import action_note, alert_actions, annotate_alert, render_failed_alerts
from bot.render.audit import render_audit
from bot.render.budgets import (
    render_budget_removed,
    render_budget_set,
    render_budgets_list,
    render_pace_line,
    with_pace_line,
)
from bot.render.by_account import render_by_account
from bot.render.digests import render_digest_subscribed, render_digest_unsubscribed, render_digests_list
from bot.render.help import render_error, render_help, render_parse_error
from bot.render.triggers import render_trigger_created, render_trigger_deleted, render_triggers
from bot.render.usage import render_series, render_summary
from bot.reports import budgets, digests
from bot.store import Store
from bot.usage.client import TwilioError, UsageClient
from bot.usage.source import AccountSource, RecordSource

log = logging.getLogger(__name__)

_ADMINS_ONLY = "Only usage admins can create or delete triggers here (USAGE_ADMINS); ask one of them."


# Subaccount requests in flight at once for one `by-account` answer: 50 subaccounts take about
# 7 round trips instead of 50, while one command cannot hog the client's 32-connection pool.
ACCOUNT_THREADS = 8


@dataclass(frozen=True)
class ActionOutcome:
    """After a button click: new blocks for the message it was on, and/or a private reply."""

    blocks: list[dict[str, Any]] | None = None
    reply: Message | None = None


@dataclass(frozen=True)
class Invoker:
    """Who typed the command, and where."""

    user_id: str = ""
    channel_id: str = ""


class UsageBot:
    """The bot's behaviour, independent of Slack and Flask.

    Without a `triggers` client and a `store` (the command line, the sandbox) it answers usage
    queries only.
    """

    def __init__(
        self,
        usage: RecordSource,
        *,
        triggers: UsageClient | None = None,
        store: Store | None = None,
        public_url: str = "",
        admins: frozenset[str] = frozenset(),
        sample: bool = False,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        timezone: str = "UTC",
    ) -> None:
        self.usage = usage
        self.triggers = triggers
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.admins = admins
        self.sample = sample
        self.today = today  # Twilio's periods are GMT, so "today" is the GMT date
        self.timezone = timezone  # USAGE_TIMEZONE: digest send times

    def quick_answer(self, command: Command | ParseError) -> Message | None:
        """The answer when it needs no I/O (help, bad input), else None."""
        if isinstance(command, ParseError):
            return render_parse_error(command)
        if isinstance(command, HelpCommand):
            return help_message()
        return None

    def answer(self, command: Command | ParseError, invoker: Invoker | None = None) -> Message:
        """The full answer to a command. Platform errors become a message, never an exception."""
        quick = self.quick_answer(command)
        if quick is not None:
            return quick
        try:
            return self._answer(command, invoker or Invoker())
        except TwilioError as exc:
            log.warning("Twilio error answering %s: %s", type(command).__name__, exc)
            return render_error(exc.user_message)

    def _answer(self, command: Command, invoker: Invoker) -> Message:
        if isinstance(command, UsageQuery):
            return self.usage_summary(command)
        if isinstance(command, SeriesQuery):
            return self.usage_series(command)
        if self.triggers is None or self.store is None:
            return render_error("Triggers and alerts are managed from Slack, with `/usage`.")
        if isinstance(command, CreateTrigger):
            return self.create_trigger(command, invoker)
        if isinstance(command, ListTriggers):
            return self.list_triggers(command)
        if isinstance(command, DeleteTrigger):
            return self.delete_trigger(command, invoker)
        if isinstance(command, ListFailedAlerts):
            return render_failed_alerts(failed_alerts(self.store))
        if isinstance(command, ShowAudit):
            return render_audit(audit.latest(self.store, command.count))
        if isinstance(command, SubscribeDigest | UnsubscribeDigest | ListDigests):
            return self.manage_digests(command, invoker)
        if isinstance(command, SetBudget):
            return self.set_budget(command, invoker)
        if isinstance(command, RemoveBudget):
            return self.remove_budget(command, invoker)
        if isinstance(command, ListBudgets):
            return self.list_budgets(invoker)
        return render_error("That command is not available yet.")

    def may_manage_triggers(self, user_id: str) -> bool:
        return not self.admins or user_id in self.admins

    def create_trigger(self, command: CreateTrigger, invoker: Invoker) -> Message:
        refusal = self._trigger_refusal(invoker)
        if refusal is not None:
            return refusal
        trigger = self.open_trigger(command, invoker)
        return render_trigger_created(trigger, channel_id=invoker.channel_id, value_requested=command.value)

    def _trigger_refusal(self, invoker: Invoker) -> Message | None:
        """Why this user cannot create a trigger here (not an admin, no PUBLIC_URL), or None."""
        if not self.may_manage_triggers(invoker.user_id):
            return render_error(_ADMINS_ONLY)
        if not self.public_url:
            return render_error(
                "Triggers need the bot's public address (PUBLIC_URL) so Twilio can call it; "
                "ask whoever runs usage-bot to set it."
            )
        return None

    def open_trigger(self, command: CreateTrigger, invoker: Invoker) -> UsageTrigger:
        """Create a Twilio trigger whose alerts come back to the invoker's channel, and remember
        who made it. Shared by `/usage trigger` and budgets; permission checks are the caller's."""
        assert self.triggers is not None and self.store is not None
        callback_url = f"{self.public_url}/twilio/usage-triggers?{urlencode({'channel': invoker.channel_id})}"
        trigger = self.triggers.create_trigger(
            command.category,
            command.value,
            callback_url=callback_url,
            trigger_by=command.trigger_by,
            recurring=command.recurring,
            friendly_name=command.name,
        )
        self.store.save_trigger(
            sid=trigger.sid,
            channel_id=invoker.channel_id,
            created_by=invoker.user_id,
            category=command.category,
            value_requested=command.value,
            friendly_name=command.name,
        )
        audit.record(
            self.store,
            user_id=invoker.user_id,
            channel_id=invoker.channel_id,
            action="trigger.create",
            target=trigger.sid,
            detail=f"{command.category} {command.value} by {command.trigger_by} {command.recurring or 'once'}".strip(),
        )
        log.info("trigger %s created by %s for %s", trigger.sid, invoker.user_id, invoker.channel_id)
        return trigger

    def list_triggers(self, command: ListTriggers, *, page: int = 0, note: str = "") -> Message:
        assert self.triggers is not None and self.store is not None
        found = self.triggers.list_triggers(command.category)
        owners = self.store.trigger_owners()
        return render_triggers(
            found,
            channels={sid: channel for sid, (channel, _) in owners.items()},
            creators={sid: user for sid, (_, user) in owners.items()},
            page=page,
            category=command.category,
            note=note,
        )

    def delete_trigger(self, command: DeleteTrigger, invoker: Invoker) -> Message:
        assert self.triggers is not None and self.store is not None
        if not self.may_manage_triggers(invoker.user_id):
            return render_error(_ADMINS_ONLY)
        try:
            self.triggers.delete_trigger(command.sid)
        except TwilioError as exc:
            # Gone already (deleted elsewhere, or our own retried DELETE): the user's wish holds.
            if exc.status != 404 or self.store.trigger_owners().get(command.sid) is None:
                raise
        self.store.forget_trigger(command.sid)
        audit.record(
            self.store,
            user_id=invoker.user_id,
            channel_id=invoker.channel_id,
            action="trigger.delete",
            target=command.sid,
        )
        log.info("trigger %s deleted by %s", command.sid, invoker.user_id)
        return render_trigger_deleted(command.sid)

    # --- buttons ---------------------------------------------------------------------------

    def act_on_alert(self, action_id: str, value: str, invoker: Invoker, blocks: list[dict[str, Any]]) -> ActionOutcome:
        """A click on an alert's buttons: what the alert message becomes, and what the clicker is told."""
        assert self.store is not None
        sid, category, recurring = parse_alert_button_value(value)
        now = time.time()
        try:
            if action_id in SNOOZE_DURATIONS:
                seconds = SNOOZE_DURATIONS[action_id]
                hours = f"{seconds // 3600} h"
                snooze.snooze(
                    self.store, trigger_sid=sid, channel=invoker.channel_id, seconds=seconds, user_id=invoker.user_id
                )
                audit.record(
                    self.store,
                    user_id=invoker.user_id,
                    channel_id=invoker.channel_id,
                    action="snooze",
                    target=sid,
                    detail=hours,
                )
                note = action_note(":zzz:", f"Snoozed for {hours}", invoker.user_id, now)
                actions = alert_actions(sid, category, recurring, snoozed=True)
                return ActionOutcome(blocks=annotate_alert(blocks, note, actions))
            if action_id == ActionId.UNSNOOZE:
                snooze.unsnooze(self.store, trigger_sid=sid, channel=invoker.channel_id)
                audit.record(
                    self.store, user_id=invoker.user_id, channel_id=invoker.channel_id, action="unsnooze", target=sid
                )
                note = action_note(":bell:", "Unsnoozed", invoker.user_id, now)
                actions = alert_actions(sid, category, recurring, snoozed=False)
                return ActionOutcome(blocks=annotate_alert(blocks, note, actions))
            if action_id == ActionId.SHOW_USAGE:
                period = {"daily": Period.TODAY, "monthly": Period.THIS_MONTH}.get(recurring, Period.ALL_TIME)
                return ActionOutcome(reply=self.usage_summary(UsageQuery(period, category or None)))
            if action_id == ActionId.DELETE_TRIGGER:
                result = self.delete_trigger(DeleteTrigger(sid), invoker)
                if result.error:
                    return ActionOutcome(reply=result)
                note = action_note(":wastebasket:", "Trigger deleted", invoker.user_id, now)
                return ActionOutcome(blocks=annotate_alert(blocks, note, None))
        except TwilioError as exc:
            return ActionOutcome(reply=render_error(exc.user_message))
        return ActionOutcome(reply=render_error("That button is no longer supported."))

    def act_on_trigger_list(self, action_id: str, value: str, invoker: Invoker) -> Message:
        """A click in `/usage triggers`: a page change or a deletion; the list as it is now."""
        try:
            if action_id == ActionId.TRIGGERS_DELETE:
                sid, _, page_value = value.partition("|")
                category, page = parse_triggers_page_value(page_value)
                result = self.delete_trigger(DeleteTrigger(sid), invoker)
                if result.error:
                    return result
                note = action_note(":wastebasket:", f"Deleted `{sid}`", invoker.user_id, time.time())
                return self.list_triggers(ListTriggers(category), page=page, note=note)
            category, page = parse_triggers_page_value(value)
            return self.list_triggers(ListTriggers(category), page=page)
        except TwilioError as exc:
            return render_error(exc.user_message)

    def usage_summary(self, query: UsageQuery) -> Message:
        if query.by_account:
            return self.usage_by_account(query)
        records = self.usage.records(query.period, query.category)
        message = render_summary(
            records,
            query.period,
            category=query.category,
            show_all=query.show_all,
            public=query.public,
            sample=self.sample,
        )
        if query.period is Period.THIS_MONTH:
            pace = pace_line(records)
            if pace is not None:
                message = with_pace_line(message, pace)
        return message

    def usage_by_account(self, query: UsageQuery) -> Message:
        """The family total, the main account's own usage, and each subaccount's (`by-account`)."""
        source = self.usage
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

    def usage_series(self, query: SeriesQuery) -> Message:
        start, end = series_range(query.period, query.count, self.today())
        category = query.category or TOTAL_SPEND
        records = self.usage.records(query.period, category, start=start, end=end)
        return render_series(
            records, query.period, category=query.category, count=query.count, public=query.public, sample=self.sample
        )

    # --- digests and budgets -----------------------------------------------------------------

    def manage_digests(self, command: SubscribeDigest | UnsubscribeDigest | ListDigests, invoker: Invoker) -> Message:
        """Subscribing is open to everyone: a digest only reads usage into the channel."""
        assert self.store is not None
        tz = ZoneInfo(self.timezone)
        if isinstance(command, ListDigests):
            subs = digests.list_subscriptions(self.store)
            return render_digests_list(subs, tz_name=self.timezone, channel_id=invoker.channel_id)
        if isinstance(command, UnsubscribeDigest):
            removed = digests.unsubscribe(self.store, channel_id=invoker.channel_id, user_id=invoker.user_id)
            return render_digest_unsubscribed(removed)
        sub, replaced = digests.subscribe(
            self.store,
            channel_id=invoker.channel_id,
            cadence=command.cadence,
            at_minutes=command.at_minutes,
            user_id=invoker.user_id,
        )
        now = datetime.now(UTC)
        next_at = digests.next_due(
            now, tz, sub.cadence, sub.at_minutes, current_sent=digests.current_sent(self.store, sub, now, tz)
        )
        return render_digest_subscribed(sub, replaced=replaced, tz_name=self.timezone, next_at=next_at, now=now)

    def set_budget(self, command: SetBudget, invoker: Invoker) -> Message:
        """A budget is a Twilio price trigger (so it goes through the trigger permissions) plus the
        early warning that `python -m bot digests` checks."""
        assert self.triggers is not None and self.store is not None
        refusal = self._trigger_refusal(invoker)
        if refusal is not None:
            return refusal
        change = budgets.set_budget(
            self.store,
            self.triggers,
            channel_id=invoker.channel_id,
            user_id=invoker.user_id,
            amount=command.amount,
            period=command.period,
            category=command.category,
            open_trigger=lambda trigger: self.open_trigger(trigger, invoker),
        )
        return render_budget_set(change, channel_id=invoker.channel_id)

    def remove_budget(self, command: RemoveBudget, invoker: Invoker) -> Message:
        assert self.triggers is not None and self.store is not None
        if not self.may_manage_triggers(invoker.user_id):
            return render_error(_ADMINS_ONLY)
        removed = budgets.remove_budget(
            self.store,
            self.triggers,
            channel_id=invoker.channel_id,
            user_id=invoker.user_id,
            period=command.period,
            category=command.category,
        )
        return render_budget_removed(removed, period=command.period, category=command.category)

    def list_budgets(self, invoker: Invoker) -> Message:
        """Every budget, with its spend so far and pace (one Twilio request per budget period)."""
        assert self.store is not None
        found = budgets.list_budgets(self.store)
        checks: dict[int, budgets.BudgetCheck] = {}
        now = datetime.now(UTC)
        try:
            for period in sorted({b.period for b in found}):
                start, end, _ = budgets.budget_period(period, now)
                records = self.usage.records(None, None, start=start.date(), end=now.date())
                for budget in (b for b in found if b.period == period):
                    spent, unit = budgets.spent_in(records, budget.category)
                    checks[budget.id] = budgets.check_budget(budget.amount, spent, start, end, now, price_unit=unit)
        except TwilioError as exc:
            log.warning("budgets listed without spend: %s", exc)
            checks = {}
        return render_budgets_list(found, checks=checks, channel_id=invoker.channel_id)


def pace_line(records: list[UsageRecord]) -> Message | None:
    """The "on pace for …" line for this month, from the totalprice record already fetched (no extra
    request): its spend, projected to the end of the GMT month at the rate so far. The record's
    `as_of` is the moment the figures are current to; without one, now."""
    total = next((r for r in records if r.category.strip().lower() == TOTAL_SPEND), None)
    if total is None or total.price is None:
        return None
    now = datetime.now(UTC)
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


@functools.cache
def help_message() -> Message:
    """The help is the same for everyone, and the commonest quick answer: render it once.
    Callers must not modify it."""
    return render_help(USAGE_LINES)


def series_range(period: Period, count: int, today: date) -> tuple[date, date]:
    """The GMT dates covering the last `count` days or months, today's included."""
    if period is Period.DAILY:
        return today - timedelta(days=count - 1), today
    month_index = today.year * 12 + today.month - 1 - (count - 1)
    return date(month_index // 12, month_index % 12 + 1, 1), today
