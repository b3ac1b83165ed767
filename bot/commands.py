"""The `/usage` command grammar (SPEC §4): slash-command text in, a typed command or ParseError out.

`parse_command` is pure: no I/O beyond the cached category list, and it never raises for any
string, so the Slack adapter can call it inside the 3-second acknowledgement.

Every ParseError message is one short Slack mrkdwn sentence. Words the user typed are quoted
in backticks, cut to about 30 characters and Slack-escaped (`&`, `<`, `>`), so a message can be
sent as it is without echoing a mention or a 4,000-character paste back into the channel.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial

from bot.categories import resolve_category, suggest_categories
from bot.model import (
    Command,
    CreateTrigger,
    DateRange,
    DeleteTrigger,
    HelpCommand,
    ListFailedAlerts,
    ListTriggers,
    ParseError,
    Period,
    SeriesQuery,
    UsageQuery,
)

# --- the forms, as help and error messages show them -------------------------

USAGE_HELP = "/usage help [TOPIC]"
USAGE_PERIOD = "/usage today|yesterday|this-month|last-month|all-time [CATEGORY] [all] [public] [by-account]"
USAGE_RANGE = "/usage YYYY-MM-DD..YYYY-MM-DD [CATEGORY] [all] [public]"
USAGE_SERIES = "/usage daily|monthly [CATEGORY] [N] [public]"
USAGE_TRIGGER = "/usage trigger CATEGORY VALUE [by count|usage|price] [every day|month|year] [name TEXT]"
USAGE_TRIGGERS = "/usage triggers [CATEGORY]"
USAGE_UNTRIGGER = "/usage untrigger UT…"
USAGE_TRIGGER_DELETE = "/usage trigger delete UT…"
USAGE_ALERTS = "/usage alerts failed"

USAGE_LINES: tuple[tuple[str, str], ...] = (
    (USAGE_HELP, "Show this help, or help on one command."),
    (
        "/usage today|yesterday|this-month|last-month|all-time [CATEGORY] [all] [public]",
        "Usage and spend for a period (GMT). `all` lists every category; `public` posts to the channel.",
    ),
    ("/usage today|… by-account", "The same, broken down per subaccount."),
    (USAGE_RANGE, "Usage between two dates, both included (GMT). One date alone means that day."),
    (USAGE_SERIES, "One line per day (last N, default 7, up to 31) or per month (default 6, up to 24)."),
    (
        USAGE_TRIGGER,
        "Set a Twilio usage trigger: VALUE is `1000`, `+1000` (from current usage) or `$25`. "
        "The alert comes to this channel.",
    ),
    (USAGE_TRIGGERS, "List the usage triggers, optionally for one category."),
    (USAGE_UNTRIGGER, "Delete a usage trigger (also `/usage trigger delete UT…`)."),
    (USAGE_ALERTS, "Alerts that could not be delivered to Slack."),
)

# Slack slash-command text is at most a few thousand characters; a real command is under 200.
MAX_TEXT_LENGTH = 1000
# Longest a user's word is quoted back in a message.
_ECHO_LIMIT = 30
# Twilio's FriendlyName limit.
MAX_TRIGGER_NAME = 64
# A threshold above this is surely a typo (a trillion messages, minutes or dollars).
MAX_TRIGGER_VALUE = Decimal(10) ** 12

_SERIES_LIMITS = {Period.DAILY: (7, 31, "days"), Period.MONTHLY: (6, 24, "months")}
_TRIGGER_BY = ("count", "usage", "price")
# `every day` and the single words `daily` etc. both set Twilio's Recurring parameter.
_RECURRING_WORDS = {"daily": "daily", "monthly": "monthly", "yearly": "yearly"}
_EVERY = {"day": "daily", "month": "monthly", "year": "yearly", **_RECURRING_WORDS}
_QUERY_FLAGS = ("all", "public", "by-account")
_BY_ACCOUNT = frozenset({"by-account", "by_account", "byaccount"})
# A Twilio Usage Trigger SID: "UT" and 32 hex digits.
_TRIGGER_SID = re.compile(r"UT[0-9a-fA-F]{32}")
# A plain positive decimal number, ASCII digits only (so no `1e9999`, `nan`, `٣` or `-5`).
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
# In the spec but without a command type in bot.model yet.
_NOT_YET = frozenset({"digest", "digests", "budget", "budgets", "audit"})

Handler = Callable[[list[str], date | None], Command | ParseError]


# --- entry point --------------------------------------------------------------


def parse_command(text: str, today: date | None = None) -> Command | ParseError:
    """Parse the text after `/usage`. `today` (GMT) enables the "starts in the future" check."""
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
        return _parse_range(head, args, today)
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


# --- quoting user input in messages --------------------------------------------


def _safe(word: str) -> str:
    """`word` made safe to quote: short, printable, no backticks, Slack-escaped."""
    short = word if len(word) <= _ECHO_LIMIT else word[: _ECHO_LIMIT - 1] + "…"
    short = "".join(c if c.isprintable() and c != "`" else "?" for c in short)
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _q(word: str) -> str:
    """`word` quoted in backticks, made safe."""
    return f"`{_safe(word)}`"


def _is_slack_token(word: str) -> bool:
    # `<@U123|name>`, `<#C123|general>`, `<https://…>`, `<!here>`: escaped mentions and links.
    return word.startswith("<")


def _unknown_word(word: str, *, after: str, usage: str, flags: tuple[str, ...], category_free: bool) -> ParseError:
    """The error for a word that is neither a category nor an option where it stands."""
    if _is_slack_token(word):
        return ParseError(
            f"I don't understand {_q(word)}: mentions, channels and links aren't part of `/usage`.", usage
        )
    close_flags = difflib.get_close_matches(word.lower(), flags, n=2, cutoff=0.75)
    if close_flags:
        return ParseError(f"I don't understand {_q(word)} after `{after}`.", usage, tuple(close_flags))
    if category_free:
        return _unknown_category(word, usage)
    return ParseError(f"I don't understand {_q(word)} after `{after}`.", usage)


def _unknown_category(word: str, usage: str) -> ParseError:
    if _is_slack_token(word):
        return ParseError(
            f"I don't understand {_q(word)}: mentions, channels and links aren't part of `/usage`.", usage
        )
    return ParseError(f"Unknown category {_q(word)}.", usage, tuple(suggest_categories(word)))


def _unknown_command(head: str) -> ParseError:
    word = head.lower()
    category = resolve_category(word)
    if category is not None:
        return ParseError(f"Say which period first, e.g. `/usage today {category}`.", USAGE_PERIOD)
    if word in _NOT_YET:
        return ParseError(f"`/usage {word}` isn't available yet.", USAGE_HELP)
    if _is_slack_token(head):
        return ParseError(f"I don't understand {_q(head)}; see `/usage help`.", USAGE_HELP)
    suggestions = difflib.get_close_matches(word, _COMMAND_WORDS, n=3, cutoff=0.6) if len(word) < 40 else []
    return ParseError(f"I don't know the command {_q(head)}; see `/usage help`.", USAGE_HELP, tuple(suggestions))


# --- help -----------------------------------------------------------------------


def _parse_help(args: list[str], today: date | None) -> HelpCommand:
    if not args:
        return HelpCommand()
    # `help this_month` is help on `this-month`; anything else is passed on, shortened.
    topic = args[0].lower()
    return HelpCommand(topic=_CANONICAL_COMMANDS.get(topic, topic[:_ECHO_LIMIT]))


# --- today | yesterday | this-month | last-month | all-time | date range --------


@dataclass
class _QueryOptions:
    category: str | None = None
    show_all: bool = False
    public: bool = False
    by_account: bool = False


def _parse_query_options(args: list[str], *, after: str, usage: str) -> _QueryOptions | ParseError:
    """`[CATEGORY] [all] [public] [by-account]`, in any order."""
    options = _QueryOptions()
    i = 0
    while i < len(args):
        word = args[i].lower()
        i += 1
        if word == "all":
            options.show_all = True
        elif word == "public":
            options.public = True
        elif word in _BY_ACCOUNT:
            options.by_account = True
        elif word == "by":
            # Also accept the two words `by account`.
            if i < len(args) and args[i].lower() in ("account", "accounts"):
                options.by_account = True
                i += 1
            else:
                return ParseError("Use `by-account` for a per-subaccount breakdown.", usage)
        elif (category := resolve_category(word)) is not None:
            if options.category is not None and options.category != category:
                return ParseError(f"One category at a time, please (got `{options.category}` and `{category}`).", usage)
            options.category = category
        else:
            return _unknown_word(
                args[i - 1], after=after, usage=usage, flags=_QUERY_FLAGS, category_free=options.category is None
            )
    return options


def _parse_period_query(period: Period, args: list[str], today: date | None) -> UsageQuery | ParseError:
    options = _parse_query_options(args, after=_PERIOD_WORDS[period], usage=USAGE_PERIOD)
    if isinstance(options, ParseError):
        return options
    return UsageQuery(period, options.category, options.show_all, options.public, options.by_account)


def _parse_range(head: str, args: list[str], today: date | None) -> UsageQuery | ParseError:
    """`YYYY-MM-DD..YYYY-MM-DD` or a single `YYYY-MM-DD`, then the usual options."""
    # A Mac may turn `..` into an ellipsis.
    start_text, separator, end_text = head.replace("…", "..").partition("..")
    if not separator:
        end_text = start_text
    if not start_text:
        return ParseError(f"The range {_q(head)} has no start date.", USAGE_RANGE)
    if not end_text:
        return ParseError(f"The range {_q(head)} has no end date.", USAGE_RANGE)
    start = _parse_date(start_text)
    if isinstance(start, ParseError):
        return start
    end = _parse_date(end_text)
    if isinstance(end, ParseError):
        return end
    if start > end:
        return ParseError(
            f"That range ends before it starts; did you mean `{end.isoformat()}..{start.isoformat()}`?", USAGE_RANGE
        )
    if today is not None and start > today:
        return ParseError(
            f"That range starts in the future (`{start.isoformat()}`; today is `{today.isoformat()}` GMT).",
            USAGE_RANGE,
        )
    if args and isinstance(_parse_date(args[0]), date):
        # `/usage 2026-11-01 2026-11-20`: the user meant a range.
        return ParseError(
            f"Write a range with two dots and no spaces, e.g. `{start.isoformat()}..{args[0]}`.", USAGE_RANGE
        )
    label = start.isoformat() if start == end else f"{start.isoformat()}..{end.isoformat()}"
    options = _parse_query_options(args, after=label, usage=USAGE_RANGE)
    if isinstance(options, ParseError):
        return options
    return UsageQuery(DateRange(start, end), options.category, options.show_all, options.public, options.by_account)


def _parse_date(text: str) -> date | ParseError:
    """A strict `YYYY-MM-DD` (date.fromisoformat would also take `20261101` and week dates)."""
    shape_ok = len(text) == 10 and text[4] == "-" and text[7] == "-"
    digits = text[:4] + text[5:7] + text[8:]
    if not shape_ok or not all(c in "0123456789" for c in digits):
        return ParseError(f"{_q(text)} isn't a date; write dates as YYYY-MM-DD, e.g. `2026-11-01`.", USAGE_RANGE)
    year, month, day = int(text[:4]), int(text[5:7]), int(text[8:])
    if year < 1 or not 1 <= month <= 12:
        return ParseError(f"`{text}` isn't a real date.", USAGE_RANGE)
    try:
        return date(year, month, day)
    except ValueError:
        days = calendar.monthrange(year, month)[1]
        month_name = calendar.month_name[month]
        return ParseError(f"`{text}` isn't a real date: {month_name} {year} has {days} days.", USAGE_RANGE)


# --- daily | monthly ------------------------------------------------------------


def _parse_series(period: Period, args: list[str], today: date | None) -> SeriesQuery | ParseError:
    """`daily|monthly [CATEGORY] [N] [public]`, in any order."""
    default, maximum, unit = _SERIES_LIMITS[period]
    after = _PERIOD_WORDS[period]
    category: str | None = None
    count: int | None = None
    public = False
    for original in args:
        word = original.lower()
        if word == "public":
            public = True
        elif _looks_numeric(word):
            if count is not None:
                return ParseError(f"Give the number of {unit} only once.", USAGE_SERIES)
            # Length check first: int() of a huge digit string is slow and pointless.
            if not word.isascii() or not word.isdigit() or len(word) > 3 or not 1 <= int(word) <= maximum:
                return ParseError(
                    f"`{after}` takes a whole number of {unit} from 1 to {maximum}, not {_q(original)}.",
                    USAGE_SERIES,
                )
            count = int(word)
        elif (found := resolve_category(word)) is not None:
            if category is not None and category != found:
                return ParseError(f"One category at a time, please (got `{category}` and `{found}`).", USAGE_SERIES)
            category = found
        else:
            return _unknown_word(
                original, after=after, usage=USAGE_SERIES, flags=("public",), category_free=category is None
            )
    return SeriesQuery(period, category, default if count is None else count, public)


def _looks_numeric(word: str) -> bool:
    """True for words that are clearly meant as numbers: `7`, `-5`, `+30`, `$25`, `2.5`."""
    stripped = word.lstrip("+-$")
    return bool(stripped) and stripped[0] in "0123456789"


# --- trigger | triggers | untrigger ---------------------------------------------


@dataclass(frozen=True)
class _TriggerValue:
    text: str  # as Twilio takes it: "1000", "+1000", "25.50"
    is_money: bool


def _parse_trigger(args: list[str], today: date | None) -> CreateTrigger | DeleteTrigger | ParseError:
    """`trigger CATEGORY VALUE [by …] [every …] [name TEXT…]`, or `trigger delete UT…`."""
    if args and args[0].lower() == "delete":
        return _parse_delete(args[1:], verb="trigger delete", usage=USAGE_TRIGGER_DELETE)
    if not args:
        return ParseError("Say which category and value, e.g. `/usage trigger sms +1000`.", USAGE_TRIGGER)
    category = resolve_category(args[0])
    if category is None:
        if _looks_numeric(args[0]):
            return ParseError(
                f"Put the category before the value, e.g. `/usage trigger sms {_safe(args[0])}`.", USAGE_TRIGGER
            )
        return _unknown_category(args[0], USAGE_TRIGGER)
    if len(args) < 2:
        return ParseError(f"Say the value to trigger at, e.g. `/usage trigger {category} 1000`.", USAGE_TRIGGER)
    value = _parse_trigger_value(args[1])
    if isinstance(value, ParseError):
        return value
    options = _parse_trigger_options(args[2:])
    if isinstance(options, ParseError):
        return options
    trigger_by, recurring, name = options
    if value.is_money and trigger_by not in (None, "price"):
        return ParseError(
            f"{_q(args[1])} is money, so the trigger compares price; drop `by {trigger_by}` or give a plain number.",
            USAGE_TRIGGER,
        )
    if trigger_by is None:
        trigger_by = "price" if value.is_money else "count"
    return CreateTrigger(category, value.text, trigger_by, recurring, name)


def _parse_trigger_value(word: str) -> _TriggerValue | ParseError:
    """`1000`, `+1000`, `12.5`, `1,000`, and money: `$25`, `$25.50`, `25usd` (also `+$25`)."""
    text = word
    sign = ""
    if text.startswith("+"):
        sign, text = "+", text[1:]
    is_money = False
    if text.startswith("$"):
        is_money, text = True, text[1:]
    elif text.lower().endswith("usd"):
        is_money, text = True, text[:-3]
    text = _drop_thousands_commas(text)
    if text.startswith("-"):
        return ParseError(f"The trigger value must be more than zero, not {_q(word)}.", USAGE_TRIGGER)
    if not _DECIMAL.fullmatch(text):
        return ParseError(
            f"{_q(word)} isn't a trigger value; use a number like `1000`, `+1000` or `$25`.", USAGE_TRIGGER
        )
    number = Decimal(text)
    if number <= 0:
        return ParseError(f"The trigger value must be more than zero, not {_q(word)}.", USAGE_TRIGGER)
    if number > MAX_TRIGGER_VALUE:
        return ParseError(f"{_q(word)} is too large for a trigger value.", USAGE_TRIGGER)
    _, _, decimals = text.partition(".")
    if is_money and len(decimals) > 2:
        return ParseError(f"{_q(word)} has fractions of a cent; use at most 2 decimal places.", USAGE_TRIGGER)
    if len(decimals) > 6:
        return ParseError(f"{_q(word)} has too many decimal places (6 at most).", USAGE_TRIGGER)
    return _TriggerValue(sign + text, is_money)


def _drop_thousands_commas(text: str) -> str:
    # `1,000` and `1,000.50` are fine; `1,00` is probably a European decimal, so leave it to fail.
    whole, dot, fraction = text.partition(".")
    groups = whole.split(",")
    if len(groups) > 1 and 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups) + dot + fraction
    return text


def _parse_trigger_options(args: list[str]) -> tuple[str | None, str, str] | ParseError:
    """`[by count|usage|price] [every day|month|year] [name TEXT…]` in any order; `name` takes the rest."""
    trigger_by: str | None = None
    recurring = ""
    i = 0
    while i < len(args):
        word = args[i].lower()
        i += 1
        if word == "name":
            name = " ".join(args[i:])
            if not name:
                return ParseError("Say the name after `name`, e.g. `name Too many texts`.", USAGE_TRIGGER)
            if len(name) > MAX_TRIGGER_NAME:
                return ParseError(
                    f"The name is {len(name)} characters; Twilio allows {MAX_TRIGGER_NAME} at most.", USAGE_TRIGGER
                )
            return trigger_by, recurring, name
        if word == "by":
            choice = args[i].lower() if i < len(args) else ""
            i += 1
            if choice not in _TRIGGER_BY:
                shown = f"not {_q(args[i - 1])}" if choice else "after `by`"
                return ParseError(f"Say `by count`, `by usage` or `by price`, {shown}.", USAGE_TRIGGER)
            if trigger_by is not None and trigger_by != choice:
                return ParseError("Say `by …` only once.", USAGE_TRIGGER)
            trigger_by = choice
        elif word == "every" or word in _RECURRING_WORDS:
            if word == "every":
                choice = args[i].lower() if i < len(args) else ""
                i += 1
                every = _EVERY.get(choice)
                if every is None:
                    shown = f"not {_q(args[i - 1])}" if choice else "after `every`"
                    return ParseError(
                        f"Triggers can repeat `every day`, `every month` or `every year`, {shown}.", USAGE_TRIGGER
                    )
            else:
                every = _RECURRING_WORDS[word]
            if recurring and recurring != every:
                return ParseError("Say how often the trigger repeats only once.", USAGE_TRIGGER)
            recurring = every
        else:
            return _unknown_word(
                args[i - 1],
                after="trigger",
                usage=USAGE_TRIGGER,
                flags=("by", "every", "name", *_RECURRING_WORDS),
                category_free=False,
            )
    return trigger_by, recurring, ""


def _parse_triggers(args: list[str], today: date | None) -> ListTriggers | ParseError:
    if not args:
        return ListTriggers()
    category = resolve_category(args[0])
    if category is None:
        return _unknown_category(args[0], USAGE_TRIGGERS)
    if len(args) > 1:
        return ParseError(f"`triggers` takes at most one category; I don't understand {_q(args[1])}.", USAGE_TRIGGERS)
    return ListTriggers(category)


def _parse_untrigger(args: list[str], today: date | None) -> DeleteTrigger | ParseError:
    return _parse_delete(args, verb="untrigger", usage=USAGE_UNTRIGGER)


def _parse_delete(args: list[str], *, verb: str, usage: str) -> DeleteTrigger | ParseError:
    if not args:
        return ParseError(
            f"Say which trigger to delete, e.g. `/usage {verb} UT…` (`/usage triggers` lists them).", usage
        )
    if len(args) > 1:
        return ParseError(f"`{verb}` takes one trigger SID; I don't understand {_q(args[1])}.", usage)
    sid = args[0]
    if not _TRIGGER_SID.fullmatch(sid):
        return ParseError(f"{_q(sid)} isn't a trigger SID; those are `UT` and 32 hex digits.", usage)
    # Twilio SIDs are lower-case hex; accept a shouted copy.
    return DeleteTrigger("UT" + sid[2:].lower())


# --- alerts ---------------------------------------------------------------------


def _parse_alerts(args: list[str], today: date | None) -> ListFailedAlerts | ParseError:
    if not args:
        return ParseError("Did you mean `/usage alerts failed`?", USAGE_ALERTS)
    if args[0].lower() != "failed":
        return ParseError(f"I don't understand {_q(args[0])} after `alerts`.", USAGE_ALERTS)
    if len(args) > 1:
        return ParseError(f"I don't understand {_q(args[1])} after `alerts failed`.", USAGE_ALERTS)
    return ListFailedAlerts()


# --- dispatch -------------------------------------------------------------------

_PERIOD_WORDS = {
    Period.TODAY: "today",
    Period.YESTERDAY: "yesterday",
    Period.THIS_MONTH: "this-month",
    Period.LAST_MONTH: "last-month",
    Period.ALL_TIME: "all-time",
    Period.DAILY: "daily",
    Period.MONTHLY: "monthly",
}

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
}

_HANDLERS: dict[str, Handler] = {
    "help": _parse_help,
    "today": partial(_parse_period_query, Period.TODAY),
    "yesterday": partial(_parse_period_query, Period.YESTERDAY),
    "this-month": partial(_parse_period_query, Period.THIS_MONTH),
    "last-month": partial(_parse_period_query, Period.LAST_MONTH),
    "all-time": partial(_parse_period_query, Period.ALL_TIME),
    "daily": partial(_parse_series, Period.DAILY),
    "monthly": partial(_parse_series, Period.MONTHLY),
    "trigger": _parse_trigger,
    "triggers": _parse_triggers,
    "untrigger": _parse_untrigger,
    "alerts": _parse_alerts,
}
_COMMAND_WORDS = tuple(_HANDLERS)
_HANDLERS.update({alias: _HANDLERS[canonical] for alias, canonical in _CANONICAL_COMMANDS.items()})
