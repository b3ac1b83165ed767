"""Answers parsed `/usage` commands. Shared by the Slack adapter and the command line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

from bot import render
from bot.alerts import failed_alerts
from bot.commands import USAGE_LINES
from bot.model import (
    Command,
    CreateTrigger,
    DateRange,
    DeleteTrigger,
    HelpCommand,
    ListFailedAlerts,
    ListTriggers,
    Message,
    ParseError,
    Period,
    SeriesQuery,
    UsageQuery,
    UsageRecord,
)
from bot.store import Store
from bot.usage_client import TwilioError, UsageClient

log = logging.getLogger(__name__)

_ADMINS_ONLY = "Only usage admins can create or delete triggers here (USAGE_ADMINS); ask one of them."


class RecordSource(Protocol):
    """What answering a query needs from Twilio: `UsageClient`, or the sandbox's sample account."""

    def records(
        self,
        period: Period | DateRange | None = None,
        category: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> list[UsageRecord]: ...


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
    ) -> None:
        self.usage = usage
        self.triggers = triggers
        self.store = store
        self.public_url = public_url.rstrip("/")
        self.admins = admins
        self.sample = sample
        self.today = today  # Twilio's periods are GMT, so "today" is the GMT date

    def quick_answer(self, command: Command | ParseError) -> Message | None:
        """The answer when it needs no I/O (help, bad input), else None."""
        if isinstance(command, ParseError):
            return render.render_parse_error(command)
        if isinstance(command, HelpCommand):
            return render.render_help(USAGE_LINES)
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
            return render.render_error(exc.user_message)

    def _answer(self, command: Command, invoker: Invoker) -> Message:
        if isinstance(command, UsageQuery):
            return self.usage_summary(command)
        if isinstance(command, SeriesQuery):
            return self.usage_series(command)
        if self.triggers is None or self.store is None:
            return render.render_error("Triggers and alerts are managed from Slack, with `/usage`.")
        if isinstance(command, CreateTrigger):
            return self.create_trigger(command, invoker)
        if isinstance(command, ListTriggers):
            return self.list_triggers(command)
        if isinstance(command, DeleteTrigger):
            return self.delete_trigger(command, invoker)
        if isinstance(command, ListFailedAlerts):
            return render.render_failed_alerts(failed_alerts(self.store))
        return render.render_error("That command is not available yet.")

    def may_manage_triggers(self, user_id: str) -> bool:
        return not self.admins or user_id in self.admins

    def create_trigger(self, command: CreateTrigger, invoker: Invoker) -> Message:
        assert self.triggers is not None and self.store is not None
        if not self.may_manage_triggers(invoker.user_id):
            return render.render_error(_ADMINS_ONLY)
        if not self.public_url:
            return render.render_error(
                "Triggers need the bot's public address (PUBLIC_URL) so Twilio can call it; "
                "ask whoever runs usage-bot to set it."
            )
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
        log.info("trigger %s created by %s for %s", trigger.sid, invoker.user_id, invoker.channel_id)
        return render.render_trigger_created(trigger, channel_id=invoker.channel_id, value_requested=command.value)

    def list_triggers(self, command: ListTriggers) -> Message:
        assert self.triggers is not None and self.store is not None
        found = self.triggers.list_triggers(command.category)
        owners = self.store.trigger_owners()
        return render.render_triggers(
            found,
            channels={sid: channel for sid, (channel, _) in owners.items()},
            creators={sid: user for sid, (_, user) in owners.items()},
        )

    def delete_trigger(self, command: DeleteTrigger, invoker: Invoker) -> Message:
        assert self.triggers is not None and self.store is not None
        if not self.may_manage_triggers(invoker.user_id):
            return render.render_error(_ADMINS_ONLY)
        self.triggers.delete_trigger(command.sid)
        self.store.forget_trigger(command.sid)
        log.info("trigger %s deleted by %s", command.sid, invoker.user_id)
        return render.render_trigger_deleted(command.sid)

    def usage_summary(self, query: UsageQuery) -> Message:
        records = self.usage.records(query.period, query.category)
        message = render.render_summary(
            records,
            query.period,
            category=query.category,
            show_all=query.show_all,
            public=query.public,
            sample=self.sample,
        )
        return message

    def usage_series(self, query: SeriesQuery) -> Message:
        start, end = series_range(query.period, query.count, self.today())
        category = query.category or "totalprice"
        records = self.usage.records(query.period, category, start=start, end=end)
        return render.render_series(
            records, query.period, category=query.category, count=query.count, public=query.public, sample=self.sample
        )


def series_range(period: Period, count: int, today: date) -> tuple[date, date]:
    """The GMT dates covering the last `count` days or months, today's included."""
    if period is Period.DAILY:
        return today - timedelta(days=count - 1), today
    month_index = today.year * 12 + today.month - 1 - (count - 1)
    return date(month_index // 12, month_index % 12 + 1, 1), today
