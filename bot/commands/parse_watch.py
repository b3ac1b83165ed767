"""The spend-spike watch: `/usage watch on [CATEGORY …] [sensitivity low|normal|high]`,
`/usage watch off [CATEGORY …]` and `/usage watch`."""

from __future__ import annotations

import difflib
from datetime import date

from bot.commands.forms import USAGE_WATCH, USAGE_WATCH_OFF, USAGE_WATCH_ON
from bot.commands.types import ParseError, ShowWatch, WatchOff, WatchOn
from bot.commands.words import quote, unknown_category
from bot.usage.categories import resolve_category

SENSITIVITIES = ("low", "normal", "high")
_ON = frozenset({"on", "start"})
_OFF = frozenset({"off", "stop"})
# More categories than this in one command is surely a paste gone wrong.
MAX_WATCH_CATEGORIES = 20


def parse_watch(args: list[str], today: date | None) -> WatchOn | WatchOff | ShowWatch | ParseError:
    if not args:
        return ShowWatch()
    verb, rest = args[0].lower(), args[1:]
    if verb in _ON:
        return _parse_on(rest)
    if verb in _OFF:
        return _parse_off(rest)
    if resolve_category(verb) is not None:
        return ParseError(f"Say `on` first, e.g. `/usage watch on {resolve_category(verb)}`.", USAGE_WATCH_ON)
    close = difflib.get_close_matches(verb, ("on", "off"), n=1, cutoff=0.5) if len(verb) < 10 else []
    return ParseError(
        f"I don't understand {quote(args[0])} after `watch`; say `watch on`, `watch off` or just `watch`.",
        USAGE_WATCH,
        tuple(close),
    )


def _parse_on(args: list[str]) -> WatchOn | ParseError:
    categories: list[str] = []
    sensitivity: str | None = None
    i = 0
    while i < len(args):
        original = args[i]
        word = original.lower()
        i += 1
        if word == "sensitivity":
            choice = args[i].lower() if i < len(args) else ""
            i += 1
            if not choice:
                return ParseError("Say `low`, `normal` or `high` after `sensitivity`.", USAGE_WATCH_ON)
            if choice not in SENSITIVITIES:
                return ParseError(
                    f"Sensitivity is `low`, `normal` or `high`, not {quote(args[i - 1])}.", USAGE_WATCH_ON
                )
            if sensitivity is not None and sensitivity != choice:
                return ParseError("Say the sensitivity only once.", USAGE_WATCH_ON)
            sensitivity = choice
            continue
        if word in SENSITIVITIES:
            return ParseError(
                f"Say `sensitivity {word}`, e.g. `/usage watch on sms sensitivity {word}`.", USAGE_WATCH_ON
            )
        if (error := _add_category(categories, original, USAGE_WATCH_ON)) is not None:
            return error
    return WatchOn(tuple(categories), sensitivity)


def _parse_off(args: list[str]) -> WatchOff | ParseError:
    categories: list[str] = []
    for original in args:
        if original.lower() == "sensitivity":
            return ParseError(
                "`watch off` takes categories only; to change the sensitivity, say `/usage watch on … sensitivity …`.",
                USAGE_WATCH_OFF,
            )
        if (error := _add_category(categories, original, USAGE_WATCH_OFF)) is not None:
            return error
    return WatchOff(tuple(categories))


def _add_category(categories: list[str], word: str, usage: str) -> ParseError | None:
    """Add the category `word` names (an alias resolves as everywhere else) unless it is there."""
    found = resolve_category(word)
    if found is None:
        return unknown_category(word, usage)  # also says what is wrong with a mention or link
    if found not in categories:
        if len(categories) == MAX_WATCH_CATEGORIES:
            return ParseError(f"Name at most {MAX_WATCH_CATEGORIES} categories in one command.", usage)
        categories.append(found)
    return None
