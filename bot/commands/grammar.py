"""The `/usage` command grammar: slash-command text in, a typed command or ParseError out.

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

from bot.model import (
    TOTAL_SPEND,
    Command,
    CreateTrigger,
    DateRange,
    DeleteTrigger,
    HelpCommand,
    ListBudgets,
    ListDigests,
    ListFailedAlerts,
    ListTriggers,
    ParseError,
    Period,
    RemoveBudget,
    SeriesQuery,
    SetBudget,
    ShowAudit,
    SubscribeDigest,
    UnsubscribeDigest,
    UsageQuery,
)
from bot.usage.categories import resolve_category, suggest_categories

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
USAGE_DIGEST = "/usage digest daily|weekly|monthly [at HH:MM]"
USAGE_DIGEST_OFF = "/usage digest off"
USAGE_DIGESTS = "/usage digests"
USAGE_BUDGET = "/usage budget AMOUNT daily|monthly [CATEGORY]"
USAGE_BUDGET_OFF = "/usage budget off daily|monthly [CATEGORY]"
USAGE_BUDGETS = "/usage budgets"
USAGE_AUDIT = "/usage audit [N]"

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
    (
        USAGE_DIGEST,
        "Post a usage summary to this channel every day, week or month, "
        "at HH:MM on the 24-hour clock (default 09:00, the bot's time zone).",
    ),
    (USAGE_DIGEST_OFF, "Stop this channel's digests."),
    (USAGE_DIGESTS, "List the digests."),
    (
        USAGE_BUDGET,
        "Set a daily or monthly spend budget, in total or for one category. AMOUNT is dollars: `500`, `$1,250.50`.",
    ),
    (USAGE_BUDGET_OFF, "Remove a budget."),
    (USAGE_BUDGETS, "List the budgets."),
    (USAGE_AUDIT, "Who created, deleted or subscribed what: the last N entries (default 20, up to 100)."),
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
# A time of day on the 24-hour clock: `9`, `9:30`, `09:30` (ASCII digits only).
_TIME_OF_DAY = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?")
# The same on a 12-hour clock (`5pm`, `5:30p.m.`), recognised only to say how to write it.
_TIME_12H = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?\.?([ap])\.?m\.?")
_AM_PM = frozenset({"am", "pm", "a.m.", "p.m."})
_CADENCES = {
    "daily": "daily",
    "day": "daily",
    "weekly": "weekly",
    "week": "weekly",
    "monthly": "monthly",
    "month": "monthly",
}
_DIGEST_OFF = frozenset({"off", "stop"})
_BUDGET_PERIODS = {"daily": "daily", "day": "daily", "monthly": "monthly", "month": "monthly"}
# Periods people may try that budgets don't have.
_OTHER_PERIODS = frozenset({"hourly", "hour", "weekly", "week", "yearly", "year", "annual", "annually"})
_BUDGET_OFF = frozenset({"off", "remove", "delete"})
# A currency word that may follow a plain amount: `budget 500 usd monthly`.
_CURRENCY_WORDS = frozenset({"usd", "dollars"})
# A budget above a billion dollars is surely a typo.
MAX_BUDGET = Decimal(10) ** 9
MAX_AUDIT_ENTRIES = 100

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


# --- digest | digests -------------------------------------------------------------


def _parse_digest(args: list[str], today: date | None) -> SubscribeDigest | UnsubscribeDigest | ParseError:
    """`digest daily|weekly|monthly [at HH:MM]` in either order, or `digest off`."""
    if not args:
        return ParseError(
            "Say how often, e.g. `/usage digest daily at 09:30` (or `/usage digest off` to stop).", USAGE_DIGEST
        )
    if args[0].lower() in _DIGEST_OFF:
        if len(args) > 1:
            return ParseError(
                f"`digest off` stops every digest in this channel and takes nothing more; "
                f"I don't understand {_q(args[1])}.",
                USAGE_DIGEST_OFF,
            )
        return UnsubscribeDigest()
    cadence: str | None = None
    at_minutes: int | None = None
    i = 0
    while i < len(args):
        original = args[i]
        word = original.lower()
        i += 1
        if word == "at" or _looks_numeric(word):
            if word == "at":
                if i >= len(args):
                    return ParseError("Say the time after `at`, e.g. `at 09:30`.", USAGE_DIGEST)
                original = args[i]
                i += 1
            # `at 5 pm`: read the two words as one, to explain the 24-hour clock.
            if i < len(args) and args[i].lower() in _AM_PM:
                original += args[i]
                i += 1
            if at_minutes is not None:
                return ParseError("Say the time only once.", USAGE_DIGEST)
            minutes = _parse_time_of_day(original)
            if isinstance(minutes, ParseError):
                return minutes
            at_minutes = minutes
            continue
        if word == "every":
            choice = args[i].lower() if i < len(args) else ""
            i += 1
            found = _CADENCES.get(choice)
            if found is None:
                shown = f"not {_q(args[i - 1])}" if choice else "after `every`"
                return ParseError(f"Digests go out `every day`, `every week` or `every month`, {shown}.", USAGE_DIGEST)
        elif word in _CADENCES:
            found = _CADENCES[word]
        elif word in _DIGEST_OFF:
            return ParseError("Say `/usage digest off` on its own to stop this channel's digests.", USAGE_DIGEST_OFF)
        elif resolve_category(word) is not None:
            return ParseError(f"A digest covers every category; leave out {_q(original)}.", USAGE_DIGEST)
        elif cadence is None and not _is_slack_token(original):
            close = difflib.get_close_matches(word, ("daily", "weekly", "monthly"), n=1, cutoff=0.75)
            return ParseError(
                f"Digests go out `daily`, `weekly` or `monthly`, not {_q(original)}.", USAGE_DIGEST, tuple(close)
            )
        else:
            return _unknown_word(
                original, after="digest", usage=USAGE_DIGEST, flags=("at", "every", *_CADENCES), category_free=False
            )
        if cadence is not None and cadence != found:
            return ParseError("Say how often the digest goes out only once.", USAGE_DIGEST)
        cadence = found
    if cadence is None:
        at = "" if at_minutes is None else f" at {at_minutes // 60:02d}:{at_minutes % 60:02d}"
        return ParseError(
            f"Say how often: `daily`, `weekly` or `monthly`, e.g. `/usage digest daily{at}`.", USAGE_DIGEST
        )
    if at_minutes is None:
        return SubscribeDigest(cadence)
    return SubscribeDigest(cadence, at_minutes)


def _parse_time_of_day(word: str) -> int | ParseError:
    """`9`, `9:30` or `09:30` on the 24-hour clock, as minutes after midnight."""
    text = word.lower()
    twelve = _TIME_12H.fullmatch(text)
    if twelve is not None:
        hour, minute = int(twelve[1]), int(twelve[2] or 0)
        if 1 <= hour <= 12 and minute <= 59:
            hour = hour % 12 + (12 if twelve[3] == "p" else 0)
            at = f"at {hour:02d}:{minute:02d}"
            return ParseError(f"Use the 24-hour clock: `{at}` rather than {_q(word)}.", USAGE_DIGEST, (at,))
    shape = _TIME_OF_DAY.fullmatch(text)
    if shape is None:
        return ParseError(
            f"{_q(word)} isn't a time of day; write HH:MM on the 24-hour clock, e.g. `at 17:30`.", USAGE_DIGEST
        )
    hour, minute = int(shape[1]), int(shape[2] or 0)
    if hour > 23:
        return ParseError(f"{_q(word)} isn't a time of day: hours go from 0 to 23.", USAGE_DIGEST)
    if minute > 59:
        return ParseError(f"{_q(word)} isn't a time of day: minutes go from 00 to 59.", USAGE_DIGEST)
    return hour * 60 + minute


def _parse_digests(args: list[str], today: date | None) -> ListDigests | ParseError:
    if args:
        suggestions = ("digest off",) if args[0].lower() in _DIGEST_OFF else ()
        return ParseError(
            f"`digests` takes nothing more; I don't understand {_q(args[0])}.", USAGE_DIGESTS, suggestions
        )
    return ListDigests()


# --- budget | budgets -------------------------------------------------------------


def _parse_budget(args: list[str], today: date | None) -> SetBudget | RemoveBudget | ParseError:
    """`budget AMOUNT daily|monthly [CATEGORY]` in any order, or `budget off daily|monthly [CATEGORY]`."""
    if not args:
        return ParseError("Say the amount and period, e.g. `/usage budget $500 monthly`.", USAGE_BUDGET)
    removing = args[0].lower() in _BUDGET_OFF
    words = args[1:] if removing else args
    usage = USAGE_BUDGET_OFF if removing else USAGE_BUDGET
    amount: Decimal | None = None
    amount_text = ""
    period: str | None = None
    category: str | None = None
    i = 0
    while i < len(words):
        original = words[i]
        word = original.lower()
        i += 1
        if word in ("every", "per"):
            choice = words[i].lower() if i < len(words) else ""
            i += 1
            found = _BUDGET_PERIODS.get(choice)
            if found is None:
                shown = f"not {_q(words[i - 1])}" if choice else f"after `{word}`"
                return ParseError(f"Budgets are per day or per month (`daily` or `monthly`), {shown}.", usage)
        elif word in _BUDGET_PERIODS:
            found = _BUDGET_PERIODS[word]
        elif word in _OTHER_PERIODS:
            return ParseError(f"Budgets are `daily` or `monthly`, not {_q(original)}.", usage)
        elif word[0] in "$+-" or word[0].isdigit() or _looks_numeric(word):
            if removing:
                return ParseError(
                    "`budget off` takes no amount; say which budget, e.g. `/usage budget off monthly`.", usage
                )
            if amount is not None:
                return ParseError("Give the amount only once.", usage)
            parsed = _parse_budget_amount(original)
            if isinstance(parsed, ParseError):
                return parsed
            amount, amount_text = parsed, original
            # `500 usd`: the currency as a word of its own.
            if i < len(words) and words[i].lower() in _CURRENCY_WORDS and original[0] != "$":
                i += 1
            continue
        elif (found_category := resolve_category(word)) is not None:
            if category is not None and category != found_category:
                return ParseError(f"One category at a time, please (got `{category}` and `{found_category}`).", usage)
            category = found_category
            continue
        elif word in _BUDGET_OFF:
            return ParseError(
                "To remove a budget, put `off` first, e.g. `/usage budget off monthly`.", USAGE_BUDGET_OFF
            )
        else:
            return _unknown_word(
                original,
                after="budget off" if removing else "budget",
                usage=usage,
                flags=("daily", "monthly", "every", "off"),
                category_free=category is None,
            )
        if period is not None and period != found:
            return ParseError("Say `daily` or `monthly` only once.", usage)
        period = found
    # No category means total spend: `budget $500 monthly spend` is the same budget as without `spend`.
    if category == TOTAL_SPEND:
        category = None
    for_category = f" {category}" if category else ""
    if removing:
        if period is None:
            return ParseError(
                f"Say which budget to remove, e.g. `/usage budget off monthly{for_category}` "
                "(`/usage budgets` lists them).",
                USAGE_BUDGET_OFF,
            )
        return RemoveBudget(period, category)
    if amount is None:
        return ParseError(
            f"Say the amount, e.g. `/usage budget $500 {period or 'monthly'}{for_category}`.", USAGE_BUDGET
        )
    if period is None:
        return ParseError(
            f"Say whether {_q(amount_text)} is a `daily` or `monthly` budget, "
            f"e.g. `/usage budget {_safe(amount_text)} monthly{for_category}`.",
            USAGE_BUDGET,
        )
    return SetBudget(amount, period, category)


def _parse_budget_amount(word: str) -> Decimal | ParseError:
    """Dollars: `500`, `$500`, `500usd`, `$1,250.50`. More than zero, at most a billion, whole cents."""
    text = word
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    if text.startswith("$"):
        text = text[1:]
    elif text.lower().endswith("usd"):
        text = text[:-3]
    if text.startswith("-"):
        negative, text = True, text[1:]
    text = _drop_thousands_commas(text)
    if not _DECIMAL.fullmatch(text):
        return ParseError(f"{_q(word)} isn't an amount; use dollars like `500`, `$500` or `$1,250.50`.", USAGE_BUDGET)
    number = Decimal(text)
    if negative or number <= 0:
        return ParseError(f"A budget must be more than zero, not {_q(word)}.", USAGE_BUDGET)
    if number > MAX_BUDGET:
        return ParseError(f"{_q(word)} is too large for a budget; the most is `$1,000,000,000`.", USAGE_BUDGET)
    _, _, decimals = text.partition(".")
    if len(decimals) > 2:
        return ParseError(f"{_q(word)} has fractions of a cent; use at most 2 decimal places.", USAGE_BUDGET)
    return number


def _parse_budgets(args: list[str], today: date | None) -> ListBudgets | ParseError:
    if args:
        return ParseError(f"`budgets` takes nothing more; I don't understand {_q(args[0])}.", USAGE_BUDGETS)
    return ListBudgets()


# --- audit ------------------------------------------------------------------------


def _parse_audit(args: list[str], today: date | None) -> ShowAudit | ParseError:
    if not args:
        return ShowAudit()
    if len(args) > 1:
        return ParseError(f"`audit` takes at most one number; I don't understand {_q(args[1])}.", USAGE_AUDIT)
    word = args[0]
    # Length check first: int() of a huge digit string is slow and pointless.
    if not word.isascii() or not word.isdigit() or len(word) > 3 or not 1 <= int(word) <= MAX_AUDIT_ENTRIES:
        return ParseError(
            f"`audit` takes a number of entries from 1 to {MAX_AUDIT_ENTRIES}, not {_q(word)}.", USAGE_AUDIT
        )
    return ShowAudit(int(word))


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
    "digest": _parse_digest,
    "digests": _parse_digests,
    "budget": _parse_budget,
    "budgets": _parse_budgets,
    "audit": _parse_audit,
}
_COMMAND_WORDS = tuple(_HANDLERS)
_HANDLERS.update({alias: _HANDLERS[canonical] for alias, canonical in _CANONICAL_COMMANDS.items()})
