"""Twilio usage categories: the known list, friendly aliases, and "did you mean" suggestions.

Twilio itself accepts any category string (its enum was dropped in 2025), so the list in
`bot/data/usage_categories.txt` is advisory. The bot still uses it to catch typos before a
request goes out, and to offer close matches.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from types import MappingProxyType

from bot.model import TOTAL_SPEND

# Friendly words people type, mapped to the Twilio category they mean.
ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {
        "messages": "sms",
        "message": "sms",
        "texts": "sms",
        "text": "sms",
        "spend": TOTAL_SPEND,
        "cost": TOTAL_SPEND,
        "costs": TOTAL_SPEND,
        "total": TOTAL_SPEND,
        "price": TOTAL_SPEND,
        "money": TOTAL_SPEND,
        "voice": "calls",
        "call": "calls",
        "mms": "mms",
        "numbers": "phonenumbers",
        "number": "phonenumbers",
        "recordings": "recordings",
        "recording": "recordings",
        "whatsapp": "channels-whatsapp",
        "lookups": "lookups",
        "lookup": "lookups",
    }
)

# Suggestions beyond this length are pointless (nothing in the list is that long) and slow.
_MAX_SUGGEST_LEN = 60


@functools.cache
def known_categories() -> tuple[str, ...]:
    """Every category in the bundled list, in Twilio's spec order (read once)."""
    text = resources.files("bot").joinpath("data/usage_categories.txt").read_text(encoding="utf-8")
    seen: dict[str, None] = {}
    for line in text.splitlines():
        name = line.strip().lower()
        if name and not name.startswith("#"):
            seen[name] = None
    return tuple(seen)


@functools.cache
def _category_set() -> frozenset[str]:
    return frozenset(known_categories())


def _normalise(word: str) -> str:
    # No Twilio category has an underscore, so `sms_inbound` can only mean `sms-inbound`.
    return word.strip().lower().replace("_", "-")


def resolve_category(word: str) -> str | None:
    """The canonical category for an alias or a known category name, else None."""
    key = _normalise(word)
    if key in ALIASES:
        return ALIASES[key]
    if key in _category_set():
        return key
    return None


def suggest_categories(word: str, limit: int = 3) -> list[str]:
    """Up to `limit` canonical categories that look like `word`, best first, no repeats."""
    key = _normalise(word)
    if not key or limit <= 0 or len(key) > _MAX_SUGGEST_LEN:
        return []
    candidates = [*ALIASES, *known_categories()]
    suggestions: list[str] = []
    # Ask difflib for a few extra: several aliases can collapse into one category.
    for match in difflib.get_close_matches(key, candidates, n=limit * 3, cutoff=0.6):
        canonical = ALIASES.get(match, match)
        if canonical not in suggestions:
            suggestions.append(canonical)
        if len(suggestions) == limit:
            break
    return suggestions
