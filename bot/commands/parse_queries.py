"""The usage queries: `/usage today|yesterday|this-month|last-month|all-time …`, a date range
`/usage YYYY-MM-DD..YYYY-MM-DD …`, and the series `/usage daily|monthly …`.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from bot.commands.forms import USAGE_PERIOD, USAGE_RANGE, USAGE_SERIES
from bot.commands.types import ParseError, SeriesQuery, UsageQuery
from bot.commands.words import looks_numeric, quote, unknown_word
from bot.model import DateRange, Period
from bot.usage.categories import resolve_category

_QUERY_FLAGS = ("all", "public", "by-account")
_BY_ACCOUNT = frozenset({"by-account", "by_account", "byaccount"})
# Per series: the default number of lines, the most, and what a line is.
_SERIES_LIMITS = {Period.DAILY: (7, 31, "days"), Period.MONTHLY: (6, 24, "months")}


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
            return unknown_word(
                args[i - 1], after=after, usage=usage, flags=_QUERY_FLAGS, category_free=options.category is None
            )
    return options


def parse_period_query(period: Period, verb: str, args: list[str], today: date | None) -> UsageQuery | ParseError:
    """`today|yesterday|… [CATEGORY] [all] [public] [by-account]`; `verb` is the command word, as help shows it."""
    options = _parse_query_options(args, after=verb, usage=USAGE_PERIOD)
    if isinstance(options, ParseError):
        return options
    return UsageQuery(period, options.category, options.show_all, options.public, options.by_account)


def parse_range(head: str, args: list[str], today: date | None) -> UsageQuery | ParseError:
    """`YYYY-MM-DD..YYYY-MM-DD` or a single `YYYY-MM-DD`, then the usual options."""
    # A Mac may turn `..` into an ellipsis.
    start_text, separator, end_text = head.replace("…", "..").partition("..")
    if not separator:
        end_text = start_text
    if not start_text:
        return ParseError(f"The range {quote(head)} has no start date.", USAGE_RANGE)
    if not end_text:
        return ParseError(f"The range {quote(head)} has no end date.", USAGE_RANGE)
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
        return ParseError(f"{quote(text)} isn't a date; write dates as YYYY-MM-DD, e.g. `2026-11-01`.", USAGE_RANGE)
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


def parse_series(period: Period, verb: str, args: list[str], today: date | None) -> SeriesQuery | ParseError:
    """`daily|monthly [CATEGORY] [N] [public]`, in any order; `verb` is the command word."""
    default, maximum, unit = _SERIES_LIMITS[period]
    category: str | None = None
    count: int | None = None
    public = False
    for original in args:
        word = original.lower()
        if word == "public":
            public = True
        elif looks_numeric(word):
            if count is not None:
                return ParseError(f"Give the number of {unit} only once.", USAGE_SERIES)
            # Length check first: int() of a huge digit string is slow and pointless.
            if not word.isascii() or not word.isdigit() or len(word) > 3 or not 1 <= int(word) <= maximum:
                return ParseError(
                    f"`{verb}` takes a whole number of {unit} from 1 to {maximum}, not {quote(original)}.",
                    USAGE_SERIES,
                )
            count = int(word)
        elif (found := resolve_category(word)) is not None:
            if category is not None and category != found:
                return ParseError(f"One category at a time, please (got `{category}` and `{found}`).", USAGE_SERIES)
            category = found
        else:
            return unknown_word(
                original, after=verb, usage=USAGE_SERIES, flags=("public",), category_free=category is None
            )
    return SeriesQuery(period, category, default if count is None else count, public)
