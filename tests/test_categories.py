from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.usage.categories import (
    ALIASES,
    known_categories,
    resolve_category,
    suggest_categories,
)

BUNDLED = Path(__file__).resolve().parent.parent / "bot" / "data" / "usage_categories.txt"


def test_bundled_list_is_loaded_in_order_without_blanks() -> None:
    categories = known_categories()
    assert len(categories) == 643
    assert categories[0] == "a2p-10dlc-registrationfees-brandregistration"
    assert categories == tuple(line for line in BUNDLED.read_text().splitlines() if line)
    assert len(set(categories)) == len(categories)


def test_list_is_read_once() -> None:
    assert known_categories() is known_categories()


@pytest.mark.parametrize("alias, target", sorted(ALIASES.items()))
def test_every_alias_points_at_a_known_category(alias: str, target: str) -> None:
    assert target in known_categories()
    assert resolve_category(alias) == target


@pytest.mark.parametrize(
    "word, expected",
    [
        ("messages", "sms"),
        ("texts", "sms"),
        ("text", "sms"),
        ("spend", "totalprice"),
        ("cost", "totalprice"),
        ("total", "totalprice"),
        ("price", "totalprice"),
        ("money", "totalprice"),
        ("voice", "calls"),
        ("call", "calls"),
        ("mms", "mms"),
        ("numbers", "phonenumbers"),
        ("recordings", "recordings"),
        ("whatsapp", "channels-whatsapp"),
        ("lookups", "lookups"),
    ],
)
def test_aliases(word: str, expected: str) -> None:
    assert resolve_category(word) == expected


@pytest.mark.parametrize(
    "word, expected",
    [
        ("sms", "sms"),
        ("SMS", "sms"),
        ("Messages", "sms"),
        ("  calls-inbound ", "calls-inbound"),
        ("TotalPrice", "totalprice"),
        ("sms_inbound", "sms-inbound"),
        ("channels-whatsapp-template-marketing", "channels-whatsapp-template-marketing"),
    ],
)
def test_known_categories_resolve_case_insensitively(word: str, expected: str) -> None:
    assert resolve_category(word) == expected


@pytest.mark.parametrize("word", ["", "   ", "payload", "smss-inbound", "all", "public", "<@U123>", "🎉"])
def test_unknown_words_do_not_resolve(word: str) -> None:
    assert resolve_category(word) is None


def test_is_known_category_ignores_aliases() -> None:
    assert "sms" in known_categories()
    assert "messages" not in known_categories()


def test_suggestions_are_canonical_and_unique() -> None:
    assert suggest_categories("smss")[0] == "sms"
    assert suggest_categories("mesages")[0] == "sms"
    assert suggest_categories("whatsap")[0] == "channels-whatsapp"
    assert suggest_categories("spnd")[0] == "totalprice"
    # `message` and `messages` are both aliases of sms: one suggestion, not two.
    assert suggest_categories("messag").count("sms") == 1


def test_suggestions_respect_limit() -> None:
    assert len(suggest_categories("calls-inbound-x", limit=2)) == 2
    assert suggest_categories("calls-inbound-x", limit=0) == []


def test_no_suggestions_for_nonsense_or_huge_words() -> None:
    assert suggest_categories("zzzzqqqq") == []
    assert suggest_categories("") == []
    assert suggest_categories("sms" * 1000) == []


@given(st.text())
def test_resolve_and_suggest_never_raise(word: str) -> None:
    resolved = resolve_category(word)
    assert resolved is None or resolved in known_categories()
    suggestions = suggest_categories(word)
    assert len(suggestions) <= 3
    assert len(set(suggestions)) == len(suggestions)
    assert all(s in known_categories() for s in suggestions)
