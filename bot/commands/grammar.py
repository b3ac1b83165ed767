"""The `/usage` command grammar: slash-command text in, a typed command or ParseError out.

`parse_command` reads the first word and hands the rest to that command's sub-grammar, through
the command-word table at the end of this module:

- `parse_queries`: today, yesterday, this-month, last-month, all-time, a date range, daily, monthly
- `parse_alerting`: trigger, triggers, untrigger, alerts, audit
- `parse_reports`: digest, digests, budget, budgets
- `parse_watch`: watch (the spend-spike watch)
- here: help, and the error for an unknown command word

`parse_command` is pure: no I/O beyond the cached category list, and it never raises for any
string, so the Slack adapter can call it inside the 3-second acknowledgement. How messages
quote the user's words is in `words`; the forms they point to are in `forms`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import date
from functools import partial

from bot.commands.forms import USAGE_HELP, USAGE_PERIOD
from bot.commands.parse_alerting import (
    parse_alerts,
    parse_audit,
    parse_trigger,
    parse_triggers,
    parse_untrigger,
)
from bot.commands.parse_queries import parse_period_query, parse_range, parse_series
from bot.commands.parse_reports import parse_budget, parse_budgets, parse_digest, parse_digests
from bot.commands.parse_watch import parse_watch
from bot.commands.types import Command, HelpCommand, ParseError
from bot.commands.words import ECHO_LIMIT, is_slack_token, quote
from bot.model import Period
from bot.usage.categories import resolve_category

# Slack slash-command text is at most a few thousand characters; a real command is under 200.
MAX_TEXT_LENGTH = 1000

# A sub-grammar: the words after the command word, and today (GMT) when the caller knows it.
Handler = Callable[[list[str], date | None], Command | ParseError]


# --- entry point --------------------------------------------------------------


def parse_command(text: str, today: date | None = None) -> Command | ParseError:
    """Parse the text after `/usage`. `today` is the GMT date; without it, a date range that starts
    in the future is not refused."""
    if len(text) > MAX_TEXT_LENGTH:
        return ParseError(
            f"That is too long for a `/usage` command ({len(text):,} characters; the limit is {MAX_TEXT_LENGTH:,}).",
            usage=USAGE_HELP,
        )
    words = _join_two_word_periods(_slack_unescape(text).split())
    if not words:
        return HelpCommand()
    head, args = words[0], words[1:]
    handler = _HANDLERS.get(head.lower())
    if handler is not None:
        return handler(args, today)
    # Anything that starts like a number (even `２０２６`) was meant as a date.
    if head[0].isdigit() or head.startswith(".") or ".." in head:
        return parse_range(head, args, today)
    return _unknown_command(head)


def _slack_unescape(text: str) -> str:
    # Slack escapes exactly these three; `&amp;` goes last so `&amp;lt;` stays `&lt;`.
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _join_two_word_periods(words: list[str]) -> list[str]:
    # People type `this month` as often as `this-month`.
    if len(words) >= 2 and (words[0].lower(), words[1].lower()) in {
        ("this", "month"),
        ("last", "month"),
        ("all", "time"),
    }:
        return [f"{words[0]}-{words[1]}", *words[2:]]
    return words


def _unknown_command(head: str) -> ParseError:
    word = head.lower()
    category = resolve_category(word)
    if category is not None:
        return ParseError(f"Say which period first, e.g. `/usage today {category}`.", USAGE_PERIOD)
    if is_slack_token(head):
        return ParseError(f"I don't understand {quote(head)}; see `/usage help`.", USAGE_HELP)
    suggestions = difflib.get_close_matches(word, _COMMAND_WORDS, n=3, cutoff=0.6) if len(word) < 40 else []
    return ParseError(f"I don't know the command {quote(head)}; see `/usage help`.", USAGE_HELP, tuple(suggestions))


# --- help -----------------------------------------------------------------------


def _parse_help(args: list[str], today: date | None) -> HelpCommand:
    if not args:
        return HelpCommand()
    # `help this_month` is help on `this-month`; anything else is passed on, shortened.
    topic = args[0].lower()
    return HelpCommand(topic=_CANONICAL_COMMANDS.get(topic, topic[:ECHO_LIMIT]))


# --- the command words ----------------------------------------------------------

# The words that name a Twilio period, mapped to it: `today` and the like ask for one period,
# `daily` and `monthly` for a series of days or months. Messages quote the word as it is here.
_PERIOD_WORDS = {
    "today": Period.TODAY,
    "yesterday": Period.YESTERDAY,
    "this-month": Period.THIS_MONTH,
    "last-month": Period.LAST_MONTH,
    "all-time": Period.ALL_TIME,
}
_SERIES_WORDS = {"daily": Period.DAILY, "monthly": Period.MONTHLY}

# Other spellings of a command word, mapped to the one help shows.
_CANONICAL_COMMANDS = {
    "?": "help",
    "thismonth": "this-month",
    "this_month": "this-month",
    "lastmonth": "last-month",
    "last_month": "last-month",
    "alltime": "all-time",
    "all_time": "all-time",
    "alert": "alerts",
    "watches": "watch",
}

_HANDLERS: dict[str, Handler] = {
    "help": _parse_help,
    **{verb: partial(parse_period_query, period, verb) for verb, period in _PERIOD_WORDS.items()},
    **{verb: partial(parse_series, period, verb) for verb, period in _SERIES_WORDS.items()},
    "trigger": parse_trigger,
    "triggers": parse_triggers,
    "untrigger": parse_untrigger,
    "alerts": parse_alerts,
    "digest": parse_digest,
    "digests": parse_digests,
    "budget": parse_budget,
    "budgets": parse_budgets,
    "audit": parse_audit,
    "watch": parse_watch,
}
_COMMAND_WORDS = tuple(_HANDLERS)
_HANDLERS.update({alias: _HANDLERS[canonical] for alias, canonical in _CANONICAL_COMMANDS.items()})
