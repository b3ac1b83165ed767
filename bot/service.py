"""Answers parsed `/usage` commands. Shared by the Slack adapter and the command line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot import render
from bot.commands import USAGE_LINES
from bot.model import (
    Command,
    DateRange,
    HelpCommand,
    Message,
    ParseError,
    Period,
    SeriesQuery,
    UsageQuery,
    UsageRecord,
)
from bot.usage_client import TwilioError

log = logging.getLogger(__name__)


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
    """The bot's behaviour, independent of Slack and Flask."""

    def __init__(
        self,
        usage: RecordSource,
        *,
        sample: bool = False,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.usage = usage
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
        return render.render_error("That command is not available yet.")

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
