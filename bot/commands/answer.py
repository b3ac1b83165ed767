"""Answers parsed `/usage` commands and button clicks. Shared by the Slack adapter and the CLI.

`QueryBot` answers usage queries only (the command line, the sandbox); `UsageBot` adds what
needs the database and Twilio's triggers. Each command type maps to one handler in a table;
each handler calls one use case (bot/usage/queries.py, bot/alerts/triggers.py,
bot/reports/budgets.py, bot/reports/subscriptions.py) and renders its result. Who may do what is
bot/commands/permissions.py's; a Slack request already handled is bot/commands/handled.py's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from bot import audit
from bot.alerts import mute, triggers
from bot.alerts.buttons import (
    SNOOZE_DURATIONS,
    ActionId,
    parse_alert_button_value,
    parse_trigger_delete_value,
    parse_triggers_page_value,
)
from bot.alerts.outbox import failed_alerts
from bot.alerts.render import action_note, alert_actions, annotate_alert, offers_delete, render_failed_alerts
from bot.alerts.render_triggers import render_trigger_created, render_trigger_deleted, render_triggers
from bot.clock import Clock, gmt_today, system_clock, utc_now
from bot.commands import handled, queries
from bot.commands.forms import USAGE_LINES
from bot.commands.help import render_error, render_help, render_parse_error
from bot.commands.permissions import Guarded, Permissions, snooze_seconds
from bot.commands.types import (
    Command,
    CreateTrigger,
    DeleteTrigger,
    HelpCommand,
    ListBudgets,
    ListDigests,
    ListFailedAlerts,
    ListTriggers,
    ParseError,
    RemoveBudget,
    SeriesQuery,
    SetBudget,
    ShowAudit,
    SubscribeDigest,
    UnsubscribeDigest,
    UsageQuery,
)
from bot.commands.watch import WatchCommands, is_spike_alert
from bot.model import Message, Period
from bot.render.audit import render_audit
from bot.reports import budgets, runs, subscriptions
from bot.reports.render_budgets import render_budget_removed, render_budget_set, render_budgets_list
from bot.reports.render_digests import render_digest_subscribed, render_digest_unsubscribed, render_digests_list
from bot.reports.runs import RunKind
from bot.reports.schedule import due_period, next_due
from bot.store import Store
from bot.usage.client import UsageClient
from bot.usage.errors import TwilioError
from bot.usage.source import RecordSource

log = logging.getLogger(__name__)

NO_PUBLIC_URL = (
    "Triggers need the bot's public address (PUBLIC_URL) so Twilio can call it; ask whoever runs usage-bot to set it."
)
SLACK_ONLY = "Triggers and alerts are managed from Slack, with `/usage`."


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


Handler = Callable[[Any, Invoker], Message]


class QueryBot:
    """Answers usage queries from Twilio (or the sample account); knows nothing of Slack."""

    def __init__(self, usage: RecordSource, *, sample: bool = False, clock: Clock = system_clock) -> None:
        self.usage = usage
        self.sample = sample
        self.clock = clock
        self.handlers: dict[type, Handler] = {
            UsageQuery: lambda query, _: queries.usage_summary(
                self.usage, query, sample=self.sample, now=utc_now(self.clock)
            ),
            SeriesQuery: lambda query, _: queries.usage_series(
                self.usage, query, sample=self.sample, today=self.today()
            ),
        }

    def today(self) -> date:
        """Today's GMT date: Twilio's usage periods are GMT."""
        return gmt_today(self.clock)

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
        handler = self.handlers.get(type(command))
        if handler is None:
            return render_error(SLACK_ONLY)
        try:
            return handler(command, invoker or Invoker())
        except TwilioError as exc:
            log.warning("Twilio error answering %s: %s", type(command).__name__, exc)
            return render_error(exc.user_message)


class UsageBot(QueryBot):
    """Everything `/usage` does in Slack: queries, triggers, alerts, digests, budgets, audit."""

    def __init__(
        self,
        twilio: UsageClient,
        *,
        store: Store,
        public_url: str = "",
        admins: frozenset[str] = frozenset(),
        timezone: str = "UTC",
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(twilio, clock=clock)
        self.twilio = twilio
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.admins = admins
        self.permissions = Permissions(store, admins, clock)
        self.timezone = timezone  # USAGE_TIMEZONE: digest send times
        self.handlers.update(
            {
                CreateTrigger: self.create_trigger,
                ListTriggers: lambda command, _: self.list_triggers(command),
                DeleteTrigger: self.delete_trigger,
                ListFailedAlerts: lambda _, __: render_failed_alerts(failed_alerts(self.store)),
                ShowAudit: lambda command, _: render_audit(audit.latest(self.store, command.count)),
                SubscribeDigest: self.subscribe_digest,
                UnsubscribeDigest: self.unsubscribe_digest,
                ListDigests: self.list_digests,
                SetBudget: self.set_budget,
                RemoveBudget: self.remove_budget,
                ListBudgets: self.list_budgets,
            }
        )
        self.watch = WatchCommands(self)  # /usage watch … and spike alerts' buttons
        self.handlers.update(self.watch.handlers())

    def claim_request(self, key: str) -> bool:
        """False when this Slack request (handled.request_key) was handled already: a retry or a
        double submit, to acknowledge without doing the work again."""
        return handled.first_time(self.store, key, now=self.clock())

    def _refusal(self, action: Guarded, invoker: Invoker, target: str = "") -> Message | None:
        """Why this user cannot take `action` here (audited), or None."""
        return self.permissions.check(action, user_id=invoker.user_id, channel_id=invoker.channel_id, target=target)

    # --- triggers ------------------------------------------------------------------------------

    def create_trigger(self, command: CreateTrigger, invoker: Invoker) -> Message:
        """A trigger identical to one this channel has already (Twilio still has it) is not made again."""
        target = f"{command.category} {command.value}"
        if (refusal := self._refusal(Guarded.TRIGGER_CREATE, invoker, target)) is not None:
            return refusal
        if not self.public_url:
            return render_error(NO_PUBLIC_URL)
        trigger, already = triggers.create_trigger(
            self.store,
            self.twilio,
            command,
            public_url=self.public_url,
            channel_id=invoker.channel_id,
            user_id=invoker.user_id,
            now=self.clock(),
        )
        return render_trigger_created(
            trigger, channel_id=invoker.channel_id, value_requested=command.value, already=already
        )

    def list_triggers(self, command: ListTriggers, *, page: int = 0, note: str = "") -> Message:
        found = self.twilio.list_triggers(command.category)
        owners = triggers.owners(self.store)
        return render_triggers(
            found,
            channels={sid: channel for sid, (channel, _) in owners.items()},
            creators={sid: user for sid, (_, user) in owners.items()},
            page=page,
            category=command.category,
            note=note,
        )

    def delete_trigger(self, command: DeleteTrigger, invoker: Invoker) -> Message:
        if (refusal := self._refusal(Guarded.TRIGGER_DELETE, invoker, command.sid)) is not None:
            return refusal
        triggers.delete_trigger(
            self.store,
            self.twilio,
            command.sid,
            user_id=invoker.user_id,
            channel_id=invoker.channel_id,
            now=self.clock(),
        )
        return render_trigger_deleted(command.sid)

    # --- buttons ---------------------------------------------------------------------------

    def act_on_alert(self, action_id: str, value: str, invoker: Invoker, blocks: list[dict[str, Any]]) -> ActionOutcome:
        """A click on an alert's buttons: what the alert message becomes, and what the clicker is told."""
        sid, category, recurring = parse_alert_button_value(value)
        if is_spike_alert(sid):
            return ActionOutcome(*self.watch.act_on_spike_alert(action_id, value, invoker, blocks))
        now = self.clock()
        deletable = offers_delete(blocks)  # the buttons that change keep the message's Delete, or its lack
        try:
            if action_id in SNOOZE_DURATIONS:
                hours = f"{self.snooze(sid, invoker, SNOOZE_DURATIONS[action_id]) // 3600} h"
                note = action_note(":zzz:", f"Snoozed for {hours}", invoker.user_id, now)
                actions = alert_actions(sid, category, recurring, snoozed=True, deletable=deletable)
                return ActionOutcome(blocks=annotate_alert(blocks, note, actions))
            if action_id == ActionId.UNSNOOZE:
                self._unsnooze(sid, invoker)
                note = action_note(":bell:", "Unsnoozed", invoker.user_id, now)
                actions = alert_actions(sid, category, recurring, snoozed=False, deletable=deletable)
                return ActionOutcome(blocks=annotate_alert(blocks, note, actions))
            if action_id == ActionId.SHOW_USAGE:
                period = {"daily": Period.TODAY, "monthly": Period.THIS_MONTH}.get(recurring, Period.ALL_TIME)
                return ActionOutcome(reply=self.handlers[UsageQuery](UsageQuery(period, category or None), invoker))
            if action_id == ActionId.DELETE_TRIGGER:
                result = self.delete_trigger(DeleteTrigger(sid), invoker)
                if result.error:
                    return ActionOutcome(reply=result)
                note = action_note(":wastebasket:", "Trigger deleted", invoker.user_id, now)
                return ActionOutcome(blocks=annotate_alert(blocks, note, None))
        except TwilioError as exc:
            return ActionOutcome(reply=render_error(exc.user_message))
        return ActionOutcome(reply=render_error("That button is no longer supported."))

    def snooze(self, sid: str, invoker: Invoker, seconds: float) -> int:
        """Snooze a trigger's alerts in the invoker's channel, audited. Open to everyone, so capped:
        never longer than permissions.MAX_SNOOZE_SECONDS, whatever is asked. Returns the seconds."""
        now, user, channel = self.clock(), invoker.user_id, invoker.channel_id
        capped = snooze_seconds(seconds)
        detail = f"{capped // 3600} h" if capped % 3600 == 0 else f"{capped} s"

        def change(conn: Any) -> None:
            mute.snooze(conn, trigger_sid=sid, channel=channel, until=now + capped, user_id=user, now=now)
            audit.record(conn, at=now, user_id=user, channel_id=channel, action="snooze", target=sid, detail=detail)

        self.store.write(change)
        return capped

    def _unsnooze(self, sid: str, invoker: Invoker) -> None:
        now, user, channel = self.clock(), invoker.user_id, invoker.channel_id

        def change(conn: Any) -> None:
            mute.unsnooze(conn, trigger_sid=sid, channel=channel, now=now)
            audit.record(conn, at=now, user_id=user, channel_id=channel, action="unsnooze", target=sid)

        self.store.write(change)

    def act_on_trigger_list(self, action_id: str, value: str, invoker: Invoker) -> Message:
        """A click in `/usage triggers`: a page change or a deletion; the list as it is now."""
        try:
            if action_id == ActionId.TRIGGERS_DELETE:
                sid, category, page = parse_trigger_delete_value(value)
                result = self.delete_trigger(DeleteTrigger(sid), invoker)
                if result.error:
                    return result
                note = action_note(":wastebasket:", f"Deleted `{sid}`", invoker.user_id, self.clock())
                return self.list_triggers(ListTriggers(category), page=page, note=note)
            category, page = parse_triggers_page_value(value)
            return self.list_triggers(ListTriggers(category), page=page)
        except TwilioError as exc:
            return render_error(exc.user_message)

    # --- digests and budgets -----------------------------------------------------------------

    def list_digests(self, _: ListDigests, invoker: Invoker) -> Message:
        subs = subscriptions.list_subscriptions(self.store)
        return render_digests_list(subs, tz_name=self.timezone, channel_id=invoker.channel_id)

    def unsubscribe_digest(self, _: UnsubscribeDigest, invoker: Invoker) -> Message:
        if (refusal := self._refusal(Guarded.DIGEST_UNSUBSCRIBE, invoker)) is not None:
            return refusal
        removed = subscriptions.unsubscribe(
            self.store, channel_id=invoker.channel_id, user_id=invoker.user_id, now=self.clock()
        )
        return render_digest_unsubscribed(removed)

    def subscribe_digest(self, command: SubscribeDigest, invoker: Invoker) -> Message:
        """Admins only when USAGE_ADMINS is set, like `digest off`: whoever may start a digest
        may stop one. The same subscription again is answered "already subscribed"."""
        if (refusal := self._refusal(Guarded.DIGEST_SUBSCRIBE, invoker, command.cadence)) is not None:
            return refusal
        tz = ZoneInfo(self.timezone)
        sub, replaced = subscriptions.subscribe(
            self.store,
            channel_id=invoker.channel_id,
            cadence=command.cadence,
            at_minutes=command.at_minutes,
            user_id=invoker.user_id,
            now=self.clock(),
        )
        now = utc_now(self.clock)
        key = due_period(now, tz, sub.cadence, sub.at_minutes)
        current_sent = key is not None and runs.exists(self.store, RunKind.DIGEST, sub.id, key)
        next_at = next_due(now, tz, sub.cadence, sub.at_minutes, current_sent=current_sent)
        already = subscriptions.already_subscribed(sub, replaced)
        return render_digest_subscribed(
            sub, replaced=replaced, tz_name=self.timezone, next_at=next_at, now=now, already=already
        )

    def set_budget(self, command: SetBudget, invoker: Invoker) -> Message:
        """A budget is a Twilio price trigger plus the early warning that `python -m bot digests`
        checks. The same budget again is answered "already set"."""
        target = f"{command.period} {command.category or ''}".strip()
        if (refusal := self._refusal(Guarded.BUDGET_SET, invoker, target)) is not None:
            return refusal
        if not self.public_url:
            return render_error(NO_PUBLIC_URL)
        change = budgets.set_budget(
            self.store,
            self.twilio,
            public_url=self.public_url,
            channel_id=invoker.channel_id,
            user_id=invoker.user_id,
            amount=command.amount,
            period=command.period,
            category=command.category,
            now=self.clock(),
        )
        return render_budget_set(change, channel_id=invoker.channel_id)

    def remove_budget(self, command: RemoveBudget, invoker: Invoker) -> Message:
        target = f"{command.period} {command.category or ''}".strip()
        if (refusal := self._refusal(Guarded.BUDGET_REMOVE, invoker, target)) is not None:
            return refusal
        removed = budgets.remove_budget(
            self.store,
            self.twilio,
            channel_id=invoker.channel_id,
            user_id=invoker.user_id,
            period=command.period,
            category=command.category,
            now=self.clock(),
        )
        return render_budget_removed(removed, period=command.period, category=command.category)

    def list_budgets(self, _: ListBudgets, invoker: Invoker) -> Message:
        """Every budget, with its spend so far and pace (one Twilio request per budget period)."""
        found = budgets.list_budgets(self.store)
        checks: dict[int, budgets.BudgetCheck] = {}
        now = utc_now(self.clock)
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


@functools.cache
def help_message() -> Message:
    """The help is the same for everyone, and the commonest quick answer: render it once.
    Callers must not modify it."""
    return render_help(USAGE_LINES)
