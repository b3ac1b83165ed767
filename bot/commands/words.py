"""What every `/usage` sub-grammar shares: quoting the user's words back, and the errors for a
word that fits nowhere.

Every ParseError message is one short Slack mrkdwn sentence. Words the user typed are quoted
in backticks, cut to about 30 characters and Slack-escaped (`&`, `<`, `>`), so a message can be
sent as it is without echoing a mention or a 4,000-character paste back into the channel.

This module imports no sub-grammar, so each of them can import it without a cycle.
"""

from __future__ import annotations

import difflib
import re

from bot.commands.types import ParseError
from bot.usage.categories import suggest_categories

# Longest a user's word is quoted back in a message.
ECHO_LIMIT = 30
# A plain positive decimal number, ASCII digits only (so no `1e9999`, `nan`, `٣` or `-5`).
DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


# --- quoting the user's words, and the errors for a word that fits nowhere ---------


def safe(word: str) -> str:
    """`word` made safe to quote: short, printable, no backticks, Slack-escaped."""
    short = word if len(word) <= ECHO_LIMIT else word[: ECHO_LIMIT - 1] + "…"
    short = "".join(c if c.isprintable() and c != "`" else "?" for c in short)
    return short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(word: str) -> str:
    """`word` quoted in backticks, made safe."""
    return f"`{safe(word)}`"


def is_slack_token(word: str) -> bool:
    # `<@U123|name>`, `<#C123|general>`, `<https://…>`, `<!here>`: escaped mentions and links.
    return word.startswith("<")


def unknown_word(word: str, *, after: str, usage: str, flags: tuple[str, ...], category_free: bool) -> ParseError:
    """The error for a word that is neither a category nor an option where it stands."""
    if is_slack_token(word):
        return ParseError(
            f"I don't understand {quote(word)}: mentions, channels and links aren't part of `/usage`.", usage
        )
    close_flags = difflib.get_close_matches(word.lower(), flags, n=2, cutoff=0.75)
    if close_flags:
        return ParseError(f"I don't understand {quote(word)} after `{after}`.", usage, tuple(close_flags))
    if category_free:
        return unknown_category(word, usage)
    return ParseError(f"I don't understand {quote(word)} after `{after}`.", usage)


def unknown_category(word: str, usage: str) -> ParseError:
    """The error for a word that stands where a category must, with the closest categories."""
    if is_slack_token(word):
        return ParseError(
            f"I don't understand {quote(word)}: mentions, channels and links aren't part of `/usage`.", usage
        )
    return ParseError(f"Unknown category {quote(word)}.", usage, tuple(suggest_categories(word)))


# --- numbers -------------------------------------------------------------------


def looks_numeric(word: str) -> bool:
    """True for words that are clearly meant as numbers: `7`, `-5`, `+30`, `$25`, `2.5`."""
    stripped = word.lstrip("+-$")
    return bool(stripped) and stripped[0] in "0123456789"


def drop_thousands_commas(text: str) -> str:
    # `1,000` and `1,000.50` are fine; `1,00` is probably a European decimal, so leave it to fail.
    whole, dot, fraction = text.partition(".")
    groups = whole.split(",")
    if len(groups) > 1 and 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups) + dot + fraction
    return text
