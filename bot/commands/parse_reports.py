"""Reports sent to a channel: `/usage digest …` and `digests`, `/usage budget …` and `budgets`."""

from __future__ import annotations

import difflib
import re
from datetime import date
from decimal import Decimal

from bot.commands.forms import (
    USAGE_BUDGET,
    USAGE_BUDGET_OFF,
    USAGE_BUDGETS,
    USAGE_DIGEST,
    USAGE_DIGEST_OFF,
    USAGE_DIGESTS,
)
from bot.commands.types import (
    ListBudgets,
    ListDigests,
    ParseError,
    RemoveBudget,
    SetBudget,
    SubscribeDigest,
    UnsubscribeDigest,
)
from bot.commands.words import DECIMAL, drop_thousands_commas, is_slack_token, looks_numeric, quote, safe, unknown_word
from bot.model import TOTAL_SPEND
from bot.usage.categories import resolve_category

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


# --- digest | digests -------------------------------------------------------------


def parse_digest(args: list[str], today: date | None) -> SubscribeDigest | UnsubscribeDigest | ParseError:
    """`digest daily|weekly|monthly [at HH:MM]` in either order, or `digest off`."""
    if not args:
        return ParseError(
            "Say how often, e.g. `/usage digest daily at 09:30` (or `/usage digest off` to stop).", USAGE_DIGEST
        )
    if args[0].lower() in _DIGEST_OFF:
        if len(args) > 1:
            return ParseError(
                f"`digest off` stops every digest in this channel and takes nothing more; "
                f"I don't understand {quote(args[1])}.",
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
        if word == "at" or looks_numeric(word):
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
                shown = f"not {quote(args[i - 1])}" if choice else "after `every`"
                return ParseError(f"Digests go out `every day`, `every week` or `every month`, {shown}.", USAGE_DIGEST)
        elif word in _CADENCES:
            found = _CADENCES[word]
        elif word in _DIGEST_OFF:
            return ParseError("Say `/usage digest off` on its own to stop this channel's digests.", USAGE_DIGEST_OFF)
        elif resolve_category(word) is not None:
            return ParseError(f"A digest covers every category; leave out {quote(original)}.", USAGE_DIGEST)
        elif cadence is None and not is_slack_token(original):
            close = difflib.get_close_matches(word, ("daily", "weekly", "monthly"), n=1, cutoff=0.75)
            return ParseError(
                f"Digests go out `daily`, `weekly` or `monthly`, not {quote(original)}.", USAGE_DIGEST, tuple(close)
            )
        else:
            return unknown_word(
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
            return ParseError(f"Use the 24-hour clock: `{at}` rather than {quote(word)}.", USAGE_DIGEST, (at,))
    shape = _TIME_OF_DAY.fullmatch(text)
    if shape is None:
        return ParseError(
            f"{quote(word)} isn't a time of day; write HH:MM on the 24-hour clock, e.g. `at 17:30`.", USAGE_DIGEST
        )
    hour, minute = int(shape[1]), int(shape[2] or 0)
    if hour > 23:
        return ParseError(f"{quote(word)} isn't a time of day: hours go from 0 to 23.", USAGE_DIGEST)
    if minute > 59:
        return ParseError(f"{quote(word)} isn't a time of day: minutes go from 00 to 59.", USAGE_DIGEST)
    return hour * 60 + minute


def parse_digests(args: list[str], today: date | None) -> ListDigests | ParseError:
    if args:
        suggestions = ("digest off",) if args[0].lower() in _DIGEST_OFF else ()
        return ParseError(
            f"`digests` takes nothing more; I don't understand {quote(args[0])}.", USAGE_DIGESTS, suggestions
        )
    return ListDigests()


# --- budget | budgets -------------------------------------------------------------


def parse_budget(args: list[str], today: date | None) -> SetBudget | RemoveBudget | ParseError:
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
                shown = f"not {quote(words[i - 1])}" if choice else f"after `{word}`"
                return ParseError(f"Budgets are per day or per month (`daily` or `monthly`), {shown}.", usage)
        elif word in _BUDGET_PERIODS:
            found = _BUDGET_PERIODS[word]
        elif word in _OTHER_PERIODS:
            return ParseError(f"Budgets are `daily` or `monthly`, not {quote(original)}.", usage)
        elif word[0] in "$+-" or word[0].isdigit() or looks_numeric(word):
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
            return unknown_word(
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
            f"Say whether {quote(amount_text)} is a `daily` or `monthly` budget, "
            f"e.g. `/usage budget {safe(amount_text)} monthly{for_category}`.",
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
    text = drop_thousands_commas(text)
    if not DECIMAL.fullmatch(text):
        return ParseError(
            f"{quote(word)} isn't an amount; use dollars like `500`, `$500` or `$1,250.50`.", USAGE_BUDGET
        )
    number = Decimal(text)
    if negative or number <= 0:
        return ParseError(f"A budget must be more than zero, not {quote(word)}.", USAGE_BUDGET)
    if number > MAX_BUDGET:
        return ParseError(f"{quote(word)} is too large for a budget; the most is `$1,000,000,000`.", USAGE_BUDGET)
    _, _, decimals = text.partition(".")
    if len(decimals) > 2:
        return ParseError(f"{quote(word)} has fractions of a cent; use at most 2 decimal places.", USAGE_BUDGET)
    return number


def parse_budgets(args: list[str], today: date | None) -> ListBudgets | ParseError:
    if args:
        return ParseError(f"`budgets` takes nothing more; I don't understand {quote(args[0])}.", USAGE_BUDGETS)
    return ListBudgets()
