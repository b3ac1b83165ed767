"""Tests for bot/render/: formatting, Block Kit layout, Slack limits, escaping, plain text."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.alerts.render_triggers import render_trigger_created, render_trigger_deleted, render_triggers
from bot.commands.help import render_error, render_help, render_parse_error
from bot.commands.types import ParseError
from bot.model import DateRange, Message, Period, UsageRecord, UsageTrigger
from bot.render.blocks import clip, escape_mrkdwn, slack_len
from bot.render.formats import format_money, format_quantity, sparkline
from bot.render.limits import check_limits
from bot.render.plain import render_plain
from bot.usage.render import SAMPLE_LABEL, render_series, render_summary

D = Decimal
START = date(2026, 11, 1)
END = date(2026, 11, 25)


def rec(category: str, price: str | None, count: str | None = None, **kw: object) -> UsageRecord:
    fields: dict[str, object] = {
        "category": category,
        "description": kw.pop("description", category.upper()),
        "count": D(count) if count is not None else None,
        "count_unit": kw.pop("count_unit", "messages"),
        "usage": kw.pop("usage", D(count) if count is not None else None),
        "usage_unit": kw.pop("usage_unit", "messages"),
        "price": D(price) if price is not None else None,
        "price_unit": kw.pop("price_unit", "usd"),
        "start_date": kw.pop("start_date", START),
        "end_date": kw.pop("end_date", END),
    }
    fields.update(kw)
    return UsageRecord(**fields)  # type: ignore[arg-type]


def all_text(message: Message) -> str:
    """Every piece of text in the blocks, in order."""
    parts: list[str] = []
    for block in message.blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [
            e["text"] if isinstance(e["text"], str) else e["text"]["text"]
            for e in block.get("elements", [])
            if "text" in e
        ]
    return "\n".join(parts)


def many_categories(n: int) -> list[UsageRecord]:
    records = [rec("totalprice", "98765.43", None, description="Total Price", count_unit="", usage_unit="usd")]
    for i in range(n):
        records.append(
            rec(
                f"category-number-{i:04d}",
                f"{(i % 97) + 1}.{i % 100:02d}",
                str(1000 + i),
                description=f"Some fairly descriptive Twilio product name {i}",
                usage=D(1500 + i),
                usage_unit="minutes",
            )
        )
    return records


# --- money and quantities ------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "unit", "expected"),
    [
        (D("12.345"), "usd", "$12.35"),  # half-up, like an invoice
        (D("1234.5678"), "usd", "$1,234.57"),
        (D("1234567.891"), "USD", "$1,234,567.89"),
        (D("0"), "usd", "$0.00"),
        (D("-0"), "usd", "$0.00"),
        (D("-1"), "usd", "-$1.00"),
        (D("-1234.5"), "usd", "-$1,234.50"),
        (D("0.004"), "usd", "<$0.01"),
        (D("0.0099"), "usd", "<$0.01"),
        (D("0.01"), "usd", "$0.01"),
        (D("-0.003"), "usd", "-<$0.01"),
        (D("12.345"), "eur", "€12.35"),
        (D("12.345"), "gbp", "£12.35"),
        (D("12.345"), "jpy", "12.35 JPY"),
        (D("1500"), "brl", "1,500.00 BRL"),
        (D("0.001"), "jpy", "<0.01 JPY"),
        (D("7"), "", "7.00"),
        (None, "usd", "—"),
        (D("NaN"), "usd", "—"),
        (D("Infinity"), "usd", "—"),
        (D("1E+3"), "usd", "$1,000.00"),
    ],
)
def test_format_money(amount: Decimal | None, unit: str, expected: str) -> None:
    assert format_money(amount, unit) == expected


def test_format_money_absurd_amount_stays_short() -> None:
    text = format_money(D("1E+999999"), "usd")
    assert text.startswith("$") and len(text) < 20


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (D("12345"), "messages", "12,345 messages"),
        (D("12345.0"), "messages", "12,345 messages"),
        (D("12.50"), "minutes", "12.5 minutes"),
        (D("12.345"), "minutes", "12.35 minutes"),
        (D("1234567.891"), "minutes", "1,234,567.89 minutes"),
        (D("0"), "calls", "0 calls"),
        (D("0.004"), "minutes", "<0.01 minutes"),
        (D("-3"), "calls", "-3 calls"),
        (D("1E+3"), "calls", "1,000 calls"),
        (D("42"), "", "42"),
        (None, "calls", "—"),
    ],
)
def test_format_quantity(value: Decimal | None, unit: str, expected: str) -> None:
    assert format_quantity(value, unit) == expected


def test_escape_mrkdwn() -> None:
    assert escape_mrkdwn("<@U123> & <!channel>") == "&lt;@U123&gt; &amp; &lt;!channel&gt;"
    # Already-escaped text (e.g. a ParseError message) is not escaped twice.
    assert escape_mrkdwn("&lt;@U1&gt; &amp; co") == "&lt;@U1&gt; &amp; co"


def test_lengths_count_as_slack_does_in_utf16_units() -> None:
    assert slack_len("abc") == 3
    assert slack_len("café") == 4  # one unit each, below U+FFFF
    assert slack_len("a🚨b") == 4  # an emoji beyond U+FFFF takes two
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdef", 4) == "abc…"
    assert clip("🚨🚨🚨", 5) == "🚨🚨…"


# --- summary ---------------------------------------------------------------------------


def sample_records() -> list[UsageRecord]:
    return [
        rec("totalprice", "1234.5678", None, description="Total Price", count_unit="", usage_unit="usd"),
        rec("sms", "10.00", "1000", description="SMS"),
        rec(
            "calls",
            "250.50",
            "120",
            description="Voice Minutes",
            count_unit="calls",
            usage=D("345.5"),
            usage_unit="minutes",
        ),
        rec("mms", "10.00", "5000", description="MMS"),  # same price as sms, more events
        rec("lookups", "0", "0", description="Lookups", usage=D("0")),  # no usage: hidden
        rec("recordings", None, None, description="Recordings", usage=None),  # nothing at all: hidden
    ]


def test_summary_layout_and_ordering() -> None:
    message = render_summary(sample_records(), Period.THIS_MONTH)
    assert message.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Twilio usage · This month", "emoji": True},
    }
    assert message.blocks[1]["type"] == "context"
    assert "2026-11-01 – 2026-11-25 (GMT)" in message.blocks[1]["elements"][0]["text"]
    text = all_text(message)
    assert "*Total spend:* $1,234.57" in text
    # Most expensive first; equal prices ordered by count (mms has more events than sms).
    assert text.index("Voice Minutes") < text.index("MMS") < text.index("SMS")
    assert "• Voice Minutes — *$250.50* · 120 calls · 345.5 minutes" in text
    # Usage equal to count in the same unit is not repeated.
    assert "• SMS — *$10.00* · 1,000 messages\n" in text + "\n"
    # totalprice is the headline, not a category line; zero categories are hidden.
    assert "Total Price" not in text
    assert "Lookups" not in text and "Recordings" not in text
    assert "3 categories with usage" in text
    assert message.public is False
    assert message.error is False
    assert check_limits(message) == []
    # The notification text carries the total too.
    assert "$1,234.57" in message.text


def test_summary_packs_lines_into_one_section() -> None:
    message = render_summary(sample_records(), Period.THIS_MONTH)
    sections = [b for b in message.blocks if b["type"] == "section"]
    assert len(sections) == 2  # the total, then every category line together


def test_summary_public_as_of_and_range_header() -> None:
    records = [
        rec("totalprice", "5", None, as_of="2026-11-20T10:15:00+00:00", start_date=None, end_date=None),
        rec("sms", "5", "500", as_of="2026-11-20T10:15:00+00:00", start_date=None, end_date=None),
    ]
    rng = DateRange(date(2026, 11, 1), date(2026, 11, 20))
    message = render_summary(records, rng, public=True)
    assert message.public is True
    assert message.to_slack()["response_type"] == "in_channel"
    assert message.blocks[0]["text"]["text"] == "Twilio usage · 2026-11-01 to 2026-11-20"
    context = message.blocks[1]["elements"][0]["text"]
    assert "2026-11-01 – 2026-11-20 (GMT)" in context  # from the range when records have no dates
    assert "as of 2026-11-20 10:15 GMT" in context


def test_summary_top_ten_and_the_rest() -> None:
    records = [rec("totalprice", "1000", None)]
    records += [rec(f"cat-{i:02d}", str(100 - i), "10", description=f"Product {i:02d}") for i in range(47)]
    message = render_summary(records, Period.THIS_MONTH)
    text = all_text(message)
    shown = re.findall(r"Product (\d\d)", text)
    assert shown == [f"{i:02d}" for i in range(10)]
    rest = sum(100 - i for i in range(10, 47))
    assert f"… and 37 more categories (${rest:,}.00) — add `all` to see every one" in text
    assert check_limits(message) == []

    everything = render_summary(records, Period.THIS_MONTH, show_all=True)
    assert len(re.findall(r"Product \d\d", all_text(everything))) == 47
    assert "more categories" not in all_text(everything)
    assert check_limits(everything) == []


def test_summary_exactly_ten_has_no_more_line() -> None:
    records = [rec(f"cat-{i}", str(10 + i), "1") for i in range(10)]
    assert "more categor" not in all_text(render_summary(records, Period.TODAY))


@pytest.mark.parametrize("show_all", [False, True])
def test_summary_thousand_categories_stays_within_limits(show_all: bool) -> None:
    records = many_categories(1000)
    message = render_summary(records, Period.THIS_MONTH, show_all=show_all)
    assert check_limits(message) == []
    assert len(message.blocks) <= 50
    assert len(message.text) <= 4000
    text = all_text(message)
    shown = len(re.findall(r"descriptive Twilio product name \d+", text))
    match = re.search(r"… and ([\d,]+) more categories \(\$[\d,.]+\)", text)
    assert match, text[-500:]
    assert shown + int(match.group(1).replace(",", "")) == 1000
    if show_all:
        assert shown > 10
        assert "left out" in text  # says it could not fit, rather than "add `all`"
    else:
        assert shown == 10
        assert "add `all` to see every one" in text


def test_summary_show_all_fits_everything_on_a_normal_account() -> None:
    message = render_summary(many_categories(60), Period.THIS_MONTH, show_all=True)
    assert len(re.findall(r"descriptive Twilio product name \d+", all_text(message))) == 60
    assert check_limits(message) == []


def test_summary_empty_results() -> None:
    empty = render_summary([], Period.TODAY)
    assert "No usage in this period." in all_text(empty)
    assert check_limits(empty) == []
    assert "No usage in this period." in empty.text

    filtered = render_summary([], Period.TODAY, category="sms")
    assert "No usage for `sms` in this period." in all_text(filtered)
    assert filtered.blocks[0]["text"]["text"] == "Twilio usage · Today · sms"

    zero = render_summary([rec("sms", "0", "0", usage=D("0"))], Period.TODAY, category="sms")
    assert "No usage for `sms` in this period." in all_text(zero)


def test_summary_category_filter() -> None:
    message = render_summary(sample_records(), Period.THIS_MONTH, category="calls")
    text = all_text(message)
    assert "Voice Minutes" in text
    assert "SMS" not in text and "Total spend" not in text
    assert "*Spend on `calls`:* $250.50" in text


def test_summary_sample_label() -> None:
    message = render_summary(sample_records(), Period.THIS_MONTH, sample=True)
    assert message.blocks[0]["text"]["text"].endswith(SAMPLE_LABEL)
    assert SAMPLE_LABEL in message.blocks[1]["elements"][-1]["text"]
    assert SAMPLE_LABEL in message.text
    # Even a huge category name cannot push the label out of the header.
    long = render_summary([], Period.TODAY, category="x" * 500, sample=True)
    assert long.blocks[0]["text"]["text"].endswith(SAMPLE_LABEL)
    assert check_limits(long) == []


def test_summary_escapes_twilio_text() -> None:
    records = [rec("sms<@U1>", "5", "5", description="<@U123> & <!channel>", count_unit="<b>")]
    message = render_summary(records, Period.TODAY)
    text = all_text(message) + message.text
    assert "&lt;@U123&gt; &amp; &lt;!channel&gt;" in text
    assert "<@U123>" not in text and "<!channel>" not in text and "<b>" not in text
    # A record without description falls back to its (escaped) category.
    bare = render_summary([rec("a<@U9>`b", "5", "5", description="")], Period.TODAY)
    assert "`a&lt;@U9&gt;'b`" in all_text(bare)


def test_summary_mixed_currencies_in_rest() -> None:
    records = [rec(f"c{i}", "1", "1", price_unit="usd") for i in range(11)]
    records.append(rec("eur-thing", "0.5", "1", price_unit="eur"))
    text = all_text(render_summary(records, Period.TODAY))
    assert "… and 2 more categories ($1.00 + €0.50)" in text


# --- series ------------------------------------------------------------------------------


def daily(day: int, price: str, count: str, category: str = "sms") -> UsageRecord:
    d = date(2026, 11, day)
    return rec(category, price, count, start_date=d, end_date=d)


def test_series_ordering_sparkline_and_total() -> None:
    records = [daily(d, str(d), str(d * 10)) for d in (23, 19, 21, 20, 22, 18, 24, 25)]  # shuffled
    records += [daily(d, "999", "1", category="calls") for d in range(18, 26)]  # other categories ignored
    message = render_series(records, Period.DAILY, category="sms", count=7)
    assert check_limits(message) == []
    text = all_text(message)
    days = re.findall(r"2026-11-(\d\d) \w{3}", text)
    assert days == ["19", "20", "21", "22", "23", "24", "25"]  # last 7, oldest first
    total = sum(range(19, 26))
    assert f"*Total over the last 7 days:* ${total}.00 · {sum(d * 10 for d in range(19, 26)):,} messages" in text
    spark = re.search(r"`([▁▂▃▄▅▆▇█·]+)`", text)
    assert spark and len(spark.group(1)) == 7
    assert spark.group(1)[-1] == "█"  # the most expensive day is the last one
    assert list(spark.group(1)) == sorted(spark.group(1))  # rising spend, rising bars
    assert "$25.00  250 messages" in text
    assert "999" not in text
    assert message.blocks[0]["text"]["text"] == "Twilio usage · last 7 days · sms"


def test_series_uses_totalprice_without_category() -> None:
    records = [daily(d, "2", "0", category="totalprice") for d in (1, 2, 3)]
    records += [daily(d, "50", "10", category="sms") for d in (1, 2, 3)]
    message = render_series(records, Period.DAILY, category=None, count=7)
    text = all_text(message)
    assert "*Total over the last 7 days:* $6.00" in text
    assert "$50" not in text


def test_series_monthly_labels_and_several_records_per_day() -> None:
    records = [
        rec("totalprice", "10", None, start_date=date(2026, 10, 1), end_date=date(2026, 10, 31)),
        rec("totalprice", "5", None, start_date=date(2026, 11, 1), end_date=date(2026, 11, 25)),
        rec("totalprice", "2.5", None, start_date=date(2026, 11, 1), end_date=date(2026, 11, 25)),
    ]
    message = render_series(records, Period.MONTHLY, category=None, count=6)
    text = all_text(message)
    assert re.search(r"2026-10  . +\$10\.00", text)
    assert re.search(r"2026-11  . +\$7\.50", text)  # two records of one month are added up
    assert "last 6 months" in message.blocks[0]["text"]["text"]


def test_series_empty() -> None:
    message = render_series([], Period.DAILY, category="sms", count=7)
    assert "No usage for `sms` in the last 7 days." in all_text(message)
    assert check_limits(message) == []


def test_series_long_keeps_newest_within_limits() -> None:
    records = [
        rec("sms", str(i), str(i), start_date=date.fromordinal(738000 + i), end_date=date.fromordinal(738000 + i))
        for i in range(1, 1001)
    ]
    message = render_series(records, Period.DAILY, category="sms", count=1000)
    assert check_limits(message) == []
    text = all_text(message)
    assert date.fromordinal(739000).isoformat() in text  # the newest day is shown
    assert re.search(r"… [\d,]+ earlier days not shown", text)


def test_sparkline() -> None:
    assert sparkline([D(0), D(1), D(2), D(7)]) == "▁▂▃█"
    assert sparkline([D(0), D(0)]) == "▁▁"
    assert sparkline([D(5), None, D(5)]) == "█·█"
    assert sparkline([]) == ""


# --- help and errors ------------------------------------------------------------------------

LINES = (
    ("/usage help", "Show this help."),
    ("/usage today|yesterday [CATEGORY] [all] [public]", "Usage for a period; `all` lists everything."),
    ("/usage daily|monthly [CATEGORY] [N]", "One line per day or month."),
    ("/usage trigger CATEGORY VALUE", "Set a trigger: <b> & co."),
)


def test_help_lists_every_form() -> None:
    message = render_help(LINES)
    text = all_text(message)
    for form, _ in LINES:
        assert f"`{form}`" in text
    assert "Usage for a period; `all` lists everything." in text
    assert "&lt;b&gt; &amp; co." in text
    assert "Examples" in text and "`/usage daily sms 7`" in text
    assert message.public is False
    assert check_limits(message) == []
    plain = render_plain(message)
    for form, _ in LINES:
        assert form in plain


def test_help_with_very_many_forms_stays_within_limits() -> None:
    message = render_help([(f"/usage form-{i}", "x" * 200) for i in range(300)])
    assert check_limits(message) == []
    assert "more forms" in all_text(message)


def test_parse_error_with_suggestions() -> None:
    error = ParseError("Unknown category `smss`.", usage="/usage today [CATEGORY]", suggestions=("sms", "mms"))
    message = render_parse_error(error)
    text = all_text(message)
    assert text.startswith(":warning: Unknown category `smss`.")
    assert "Did you mean `sms`, `mms`?" in text
    assert "Usage: `/usage today [CATEGORY]`" in text
    assert "Try `/usage help`" in text
    assert message.public is False
    assert message.error is True
    assert len(message.blocks) == 1
    assert check_limits(message) == []


def test_parse_error_without_suggestions_escapes() -> None:
    message = render_parse_error(ParseError("Bad <@U1> word"))
    text = all_text(message)
    assert "Did you mean" not in text and "Usage:" not in text
    assert "&lt;@U1&gt;" in text


def test_render_error() -> None:
    message = render_error("Twilio is unavailable <right now>")
    assert message.text == ":warning: Twilio is unavailable &lt;right now&gt;"
    assert message.public is False
    assert message.error is True
    assert check_limits(message) == []


# --- triggers --------------------------------------------------------------------------------


def trigger(**kw: object) -> UsageTrigger:
    fields: dict[str, object] = {
        "sid": "UT" + "a" * 32,
        "usage_category": "sms",
        "trigger_value": "+1000",
        "current_value": "12345",
        "trigger_by": "count",
        "recurring": "monthly",
        "friendly_name": "Too many texts",
        "callback_url": "https://bot.example.com/twilio/usage-triggers?channel=C0CHAN",
    }
    fields.update(kw)
    return UsageTrigger(**fields)  # type: ignore[arg-type]


def test_trigger_created_relative_count() -> None:
    message = render_trigger_created(trigger(), channel_id="C123", value_requested="+1000")
    text = all_text(message)
    assert "`sms`" in text
    assert "1,000 more than now" in text
    assert "*Measured by*\ncount" in text
    assert "every month (GMT)" in text
    assert "Too many texts" in text
    assert "<#C123>" in text and "<#C123>" in message.text
    assert "`UT" in text
    assert "Twilio's threshold" not in text  # Twilio kept the relative value as asked
    assert check_limits(message) == []


def test_trigger_created_price_and_once() -> None:
    t = trigger(trigger_value="25.000000", trigger_by="price", recurring="", friendly_name="", current_value="3.5")
    message = render_trigger_created(t, channel_id="C123", value_requested="$25")
    text = all_text(message)
    assert "$25.00" in text
    assert "*Measured by*\nprice" in text
    assert "*Period*\nonce" in text
    assert "*Current value*\n$3.50" in text
    assert "Name" not in text


def test_trigger_created_shows_twilios_absolute_threshold() -> None:
    t = trigger(trigger_value="13345")
    text = all_text(render_trigger_created(t, channel_id="C1", value_requested="+1000"))
    assert "1,000 more than now (Twilio's threshold: 13,345)" in text


def test_trigger_created_escapes_name_and_rejects_odd_channel() -> None:
    t = trigger(friendly_name="<!channel> alert")
    message = render_trigger_created(t, channel_id="<!here>", value_requested="1000")
    text = all_text(message) + message.text
    assert "<!channel>" not in text and "<!here>" not in text
    assert "&lt;!channel&gt; alert" in text
    assert "default alert channel" in text


def test_triggers_list() -> None:
    triggers = [
        trigger(),
        trigger(
            sid="UT" + "b" * 32,
            usage_category="totalprice",
            trigger_value="50",
            current_value="12.5",
            trigger_by="price",
            recurring="",
            friendly_name="",
            callback_url="https://bot.example.com/twilio/usage-triggers",
            date_fired=datetime(2026, 11, 20, 10, 30, tzinfo=timezone(timedelta(hours=1))),  # shown in GMT
        ),
    ]
    message = render_triggers(triggers, channels={"UT" + "a" * 32: "C999"}, creators={"UT" + "a" * 32: "U42"})
    text = all_text(message)
    first, second = [line for line in text.splitlines() if line.startswith("•")]
    assert "*Too many texts* · `sms`" in first
    assert "count 12,345 of 1,000 more than at creation" in first
    assert "every month (GMT)" in first
    assert "<#C999>" in first  # the stored channel wins over the callback URL
    assert "by <@U42>" in first
    assert f"`UT{'a' * 32}`" in first
    assert "price $12.50 of $50.00" in second
    assert "once" in second
    assert "default alert channel" in second
    assert "last fired 2026-11-20 09:30 GMT" in second
    assert message.blocks[0]["text"]["text"] == "Usage triggers (2)"
    assert check_limits(message) == []


def test_triggers_channel_from_callback_url() -> None:
    text = all_text(render_triggers([trigger()], channels={}, creators={}))
    assert "<#C0CHAN>" in text
    assert "by <@" not in text


def test_triggers_are_paged_with_delete_buttons() -> None:
    triggers = [trigger(sid=f"UT{i:032d}", friendly_name=f"Trigger number {i}") for i in range(1000)]
    first = render_triggers(triggers, channels={}, creators={}, category="sms")
    assert check_limits(first) == []
    assert re.findall(r"Trigger number (\d+)", all_text(first)) == [str(i) for i in range(20)]
    deletes = [b["accessory"] for b in first.blocks if "accessory" in b]
    assert len(deletes) == 20
    assert deletes[0]["action_id"] == "triggers_delete" and deletes[0]["confirm"]["confirm"]["text"] == "Delete"
    assert deletes[0]["value"] == f"UT{0:032d}|sms|0"
    [nav] = [b for b in first.blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in nav["elements"]] == [("triggers_page_next", "sms|1")]
    assert "page 1 of 50" in all_text(first)

    last = render_triggers(triggers, channels={}, creators={}, page=49)
    assert re.findall(r"Trigger number (\d+)", all_text(last)) == [str(i) for i in range(980, 1000)]
    [nav] = [b for b in last.blocks if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in nav["elements"]] == [("triggers_page_prev", "|48")]
    assert check_limits(last) == []
    beyond = render_triggers(triggers, channels={}, creators={}, page=400)
    assert "page 50 of 50" in all_text(beyond)


def test_triggers_empty_and_deleted() -> None:
    assert "No usage triggers" in all_text(render_triggers([], channels={}, creators={}))
    deleted = render_trigger_deleted("UT123")
    assert "`UT123`" in deleted.text and check_limits(deleted) == []
    assert "&lt;" in render_trigger_deleted("<@U1>").text


# --- plain text ---------------------------------------------------------------------------------


def test_render_plain_strips_mrkdwn() -> None:
    message = render_summary(sample_records(), Period.THIS_MONTH)
    plain = render_plain(message)
    assert "Twilio usage · This month" in plain
    assert "Total spend: $1,234.57" in plain
    assert "*" not in plain
    assert "Voice Minutes — $250.50 · 120 calls · 345.5 minutes" in plain
    assert "2026-11-01 – 2026-11-25 (GMT)" in plain


def test_render_plain_links_code_and_entities() -> None:
    message = Message(
        text="x",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Hi* <https://x.io|the site> `a *b*` &lt;ok&gt;"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "<#C1> <@U2> <https://y.io>\n```\nrow *1*\n```"}},
        ],
    )
    plain = render_plain(message)
    assert "Hi the site `a *b*` <ok>" in plain
    assert "#C1 @U2 https://y.io" in plain
    assert "row *1*" in plain and "```" not in plain


def test_render_plain_trigger_fields_and_text_only() -> None:
    plain = render_plain(render_trigger_created(trigger(), channel_id="C1", value_requested="+1000"))
    assert "Threshold: 1,000 more than now" in plain
    assert render_plain(Message(text="*bold* &amp; done")) == "bold & done"


# --- limits ---------------------------------------------------------------------------------------


def test_check_limits_reports_violations() -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    message = Message(
        text="t" * 40_001,
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11},
            section,
        ]
        + [{"type": "divider"}] * 47,
    )
    problems = check_limits(message)
    joined = "\n".join(problems)
    assert "51 blocks" in joined
    assert "3,001 characters" in joined
    assert "151 characters" in joined
    assert "11 elements" in joined
    assert "11 fields" in joined
    assert "40,001" in joined
    assert check_limits(Message(text="ok", blocks=[{"type": "divider"}])) == []


def test_check_limits_total_block_text() -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}} for _ in range(5)]
    assert any("msg_blocks_too_long" in p for p in check_limits(Message(text="t", blocks=blocks)))


# --- property: any records render within Slack's limits --------------------------------------------

decimals = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-1000, max_value=10**9, places=4),
)
words = st.text(max_size=300)
records_strategy = st.builds(
    UsageRecord,
    category=st.one_of(st.sampled_from(["totalprice", "sms", "calls", ""]), words),
    description=words,
    count=decimals,
    count_unit=st.one_of(st.sampled_from(["messages", "calls", ""]), words),
    usage=decimals,
    usage_unit=st.one_of(st.sampled_from(["messages", "minutes", ""]), words),
    price=decimals,
    price_unit=st.one_of(st.sampled_from(["usd", "eur", "jpy", ""]), st.text(max_size=20)),
    start_date=st.one_of(st.none(), st.dates()),
    end_date=st.one_of(st.none(), st.dates()),
    as_of=st.one_of(st.just(""), st.just("2026-11-25T10:00:00+00:00"), words),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(records_strategy, max_size=60),
    period=st.sampled_from(list(Period)),
    category=st.one_of(st.none(), st.sampled_from(["sms", "totalprice"]), words),
    show_all=st.booleans(),
    sample=st.booleans(),
)
def test_property_summary_always_within_limits(
    records: list[UsageRecord], period: Period, category: str | None, show_all: bool, sample: bool
) -> None:
    message = render_summary(records, period, category=category, show_all=show_all, sample=sample)
    assert check_limits(message) == []
    assert len(message.text) <= 4000
    render_plain(message)  # must not raise either
