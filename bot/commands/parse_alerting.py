"""Usage triggers and what follows from them: `/usage trigger …`, `triggers`, `untrigger`
(also `trigger delete`), `alerts failed`, and the audit trail `/usage audit`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.commands.forms import (
    USAGE_ALERTS,
    USAGE_AUDIT,
    USAGE_TRIGGER,
    USAGE_TRIGGER_DELETE,
    USAGE_TRIGGERS,
    USAGE_UNTRIGGER,
)
from bot.commands.types import CreateTrigger, DeleteTrigger, ListFailedAlerts, ListTriggers, ParseError, ShowAudit
from bot.commands.words import (
    DECIMAL,
    drop_thousands_commas,
    looks_numeric,
    quote,
    safe,
    unknown_category,
    unknown_word,
)
from bot.usage.categories import resolve_category

# Twilio's FriendlyName limit.
MAX_TRIGGER_NAME = 64
# A threshold above this is surely a typo (a trillion messages, minutes or dollars).
MAX_TRIGGER_VALUE = Decimal(10) ** 12
_TRIGGER_BY = ("count", "usage", "price")
# `every day` and the single words `daily` etc. both set Twilio's Recurring parameter.
_RECURRING_WORDS = {"daily": "daily", "monthly": "monthly", "yearly": "yearly"}
_EVERY = {"day": "daily", "month": "monthly", "year": "yearly", **_RECURRING_WORDS}
# A Twilio Usage Trigger SID: "UT" and 32 hex digits.
_TRIGGER_SID = re.compile(r"UT[0-9a-fA-F]{32}")
MAX_AUDIT_ENTRIES = 100


# --- trigger | triggers | untrigger ---------------------------------------------


@dataclass(frozen=True)
class _TriggerValue:
    text: str  # as Twilio takes it: "1000", "+1000", "25.50"
    is_money: bool


def parse_trigger(args: list[str], today: date | None) -> CreateTrigger | DeleteTrigger | ParseError:
    """`trigger CATEGORY VALUE [by …] [every …] [name TEXT…]`, or `trigger delete UT…`."""
    if args and args[0].lower() == "delete":
        return _parse_delete(args[1:], verb="trigger delete", usage=USAGE_TRIGGER_DELETE)
    if not args:
        return ParseError("Say which category and value, e.g. `/usage trigger sms +1000`.", USAGE_TRIGGER)
    category = resolve_category(args[0])
    if category is None:
        if looks_numeric(args[0]):
            return ParseError(
                f"Put the category before the value, e.g. `/usage trigger sms {safe(args[0])}`.", USAGE_TRIGGER
            )
        return unknown_category(args[0], USAGE_TRIGGER)
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
            f"{quote(args[1])} is money, so the trigger compares price; drop `by {trigger_by}` or give a plain number.",
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
    text = drop_thousands_commas(text)
    if text.startswith("-"):
        return ParseError(f"The trigger value must be more than zero, not {quote(word)}.", USAGE_TRIGGER)
    if not DECIMAL.fullmatch(text):
        return ParseError(
            f"{quote(word)} isn't a trigger value; use a number like `1000`, `+1000` or `$25`.", USAGE_TRIGGER
        )
    number = Decimal(text)
    if number <= 0:
        return ParseError(f"The trigger value must be more than zero, not {quote(word)}.", USAGE_TRIGGER)
    if number > MAX_TRIGGER_VALUE:
        return ParseError(f"{quote(word)} is too large for a trigger value.", USAGE_TRIGGER)
    _, _, decimals = text.partition(".")
    if is_money and len(decimals) > 2:
        return ParseError(f"{quote(word)} has fractions of a cent; use at most 2 decimal places.", USAGE_TRIGGER)
    if len(decimals) > 6:
        return ParseError(f"{quote(word)} has too many decimal places (6 at most).", USAGE_TRIGGER)
    return _TriggerValue(sign + text, is_money)


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
                shown = f"not {quote(args[i - 1])}" if choice else "after `by`"
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
                    shown = f"not {quote(args[i - 1])}" if choice else "after `every`"
                    return ParseError(
                        f"Triggers can repeat `every day`, `every month` or `every year`, {shown}.", USAGE_TRIGGER
                    )
            else:
                every = _RECURRING_WORDS[word]
            if recurring and recurring != every:
                return ParseError("Say how often the trigger repeats only once.", USAGE_TRIGGER)
            recurring = every
        else:
            return unknown_word(
                args[i - 1],
                after="trigger",
                usage=USAGE_TRIGGER,
                flags=("by", "every", "name", *_RECURRING_WORDS),
                category_free=False,
            )
    return trigger_by, recurring, ""


def parse_triggers(args: list[str], today: date | None) -> ListTriggers | ParseError:
    if not args:
        return ListTriggers()
    category = resolve_category(args[0])
    if category is None:
        return unknown_category(args[0], USAGE_TRIGGERS)
    if len(args) > 1:
        return ParseError(
            f"`triggers` takes at most one category; I don't understand {quote(args[1])}.", USAGE_TRIGGERS
        )
    return ListTriggers(category)


def parse_untrigger(args: list[str], today: date | None) -> DeleteTrigger | ParseError:
    return _parse_delete(args, verb="untrigger", usage=USAGE_UNTRIGGER)


def _parse_delete(args: list[str], *, verb: str, usage: str) -> DeleteTrigger | ParseError:
    if not args:
        return ParseError(
            f"Say which trigger to delete, e.g. `/usage {verb} UT…` (`/usage triggers` lists them).", usage
        )
    if len(args) > 1:
        return ParseError(f"`{verb}` takes one trigger SID; I don't understand {quote(args[1])}.", usage)
    sid = args[0]
    if not _TRIGGER_SID.fullmatch(sid):
        return ParseError(f"{quote(sid)} isn't a trigger SID; those are `UT` and 32 hex digits.", usage)
    # Twilio SIDs are lower-case hex; accept a shouted copy.
    return DeleteTrigger("UT" + sid[2:].lower())


# --- alerts ---------------------------------------------------------------------


def parse_alerts(args: list[str], today: date | None) -> ListFailedAlerts | ParseError:
    if not args:
        return ParseError("Did you mean `/usage alerts failed`?", USAGE_ALERTS)
    if args[0].lower() != "failed":
        return ParseError(f"I don't understand {quote(args[0])} after `alerts`.", USAGE_ALERTS)
    if len(args) > 1:
        return ParseError(f"I don't understand {quote(args[1])} after `alerts failed`.", USAGE_ALERTS)
    return ListFailedAlerts()


# --- audit ------------------------------------------------------------------------


def parse_audit(args: list[str], today: date | None) -> ShowAudit | ParseError:
    if not args:
        return ShowAudit()
    if len(args) > 1:
        return ParseError(f"`audit` takes at most one number; I don't understand {quote(args[1])}.", USAGE_AUDIT)
    word = args[0]
    # Length check first: int() of a huge digit string is slow and pointless.
    if not word.isascii() or not word.isdigit() or len(word) > 3 or not 1 <= int(word) <= MAX_AUDIT_ENTRIES:
        return ParseError(
            f"`audit` takes a number of entries from 1 to {MAX_AUDIT_ENTRIES}, not {quote(word)}.", USAGE_AUDIT
        )
    return ShowAudit(int(word))
